"""Where a CPU GRPO step of the demo goes: generation, the no-grad forwards (reference
model, old log-probs), the loss forward, backward, rewards, and the rest.

Runs ``--steps`` GRPO steps of the demo's recipe from a model (the demo's SFT model:
``make demo`` writes ``runs/demo/sft``) with each variant's settings, timing the trainer's
own methods by wrapping them (nothing in TRL changes):

    .venv/bin/python benchmarks/bench_grpo_step.py --demo runs/demo --steps 20

Variants, each lever spelled out: the 2026-12-01 demo's settings (β 0.04, one pass per
generation batch) and the levers that change the cost of a step: β 0 (no reference
forward), two passes per generation batch (``num_iterations`` 2: generation every other
step, one old-log-prob forward), and dynamic sampling (more generation where groups carry
no signal; today's demo). The other settings are the demo recipe's (temperature 0.7). Figures:
docs/benchmarks.md ("Where a GRPO step goes").
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

#: Every lever spelled out, so a variant means the same whatever the demo's recipe says.
_OLD_DEMO = {"beta": 0.04, "num_iterations": 1, "dynamic_sampling": False}
VARIANTS = {
    "the 2026-12-01 demo (beta 0.04, 1 pass)": _OLD_DEMO,
    "beta 0": {**_OLD_DEMO, "beta": 0.0},
    "beta 0, 2 passes": {**_OLD_DEMO, "beta": 0.0, "num_iterations": 2},
    "beta 0, 2 passes, dynamic sampling": {
        "beta": 0.0,
        "num_iterations": 2,
        "dynamic_sampling": True,
    },
}


def time_variant(demo: Path, data: Path, out: Path, steps: int, values: dict) -> dict:
    import torch

    from mirg.demo import DemoPlan, demo_config
    from mirg.train.grpo import build_grpo_trainer

    plan = DemoPlan()
    config = demo_config(
        "grpo",
        model_name_or_path=str(demo / "sft"),
        dataset_path=str(data),
        output_dir=str(out),
        max_steps=steps,
        learning_rate=plan.grpo_lr,
        num_generations=plan.num_generations,
        per_device_train_batch_size=plan.grpo_batch,
        max_completion_length=plan.max_new_tokens,
        disable_tqdm=True,
        **values,
    )
    trainer = build_grpo_trainer(config)
    spent: dict[str, float] = defaultdict(float)

    def wrap(obj: object, name: str, label: object) -> None:
        original = getattr(obj, name)

        def timed(*args: object, **kwargs: object) -> object:
            key = label() if callable(label) else label
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t0

        setattr(obj, name, timed)

    wrap(trainer, "_generate", "generation")
    wrap(trainer, "_calculate_rewards", "rewards")
    wrap(
        trainer,
        "_get_per_token_logps_and_entropies",
        lambda: "loss forward" if torch.is_grad_enabled() else "no-grad forwards",
    )
    wrap(trainer.accelerator, "backward", "backward")
    wrap(trainer, "_generate_and_score_completions", "generate and score (all)")
    wrap(trainer, "training_step", "training step (all)")
    t0 = time.perf_counter()
    trainer.train()
    total = time.perf_counter() - t0
    per_step = {k: round(v / steps, 3) for k, v in spent.items()}
    scoring = spent["generate and score (all)"] - spent["generation"] - spent["rewards"]
    scoring -= spent["no-grad forwards"]
    per_step["processor and batching"] = round(scoring / steps, 3)
    per_step["optimizer and other"] = round((total - spent["training step (all)"]) / steps, 3)
    per_step["total"] = round(total / steps, 3)
    return per_step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo", default="runs/demo", help="a demo run folder (its sft/, data/)")
    parser.add_argument("--data", help="GRPO prompts (default: the demo's, data-grpo/)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--out", default="runs/bench-grpo-step")
    parser.add_argument("--variants", nargs="*", help="names of VARIANTS (default: all)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    demo, out = Path(args.demo), Path(args.out)
    data = Path(args.data) if args.data else demo / "data-grpo" / "train.jsonl"
    results = {}
    for name in args.variants or VARIANTS:
        results[name] = time_variant(demo, data, out / "run", args.steps, VARIANTS[name])
        print(name, json.dumps(results[name]), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_grpo_step.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
