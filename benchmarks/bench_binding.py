"""Dual reward against plain IoU on the demo's binding questions (issue 12).

The paper's ablation, at the demo's scale. From the SFT model of a demo run (``make demo``
writes ``runs/demo``), image-aware GRPO with the demo's own settings and data runs once
per reward and seed:

- ``dual``: the default ``[object, image, format]`` (IoU earned only on the named target
  image, plus the image and format rewards);
- ``iou``: ``[iou]``, plain IoU with the target box whichever image the answer names.

Each GRPO model is evaluated (strict protocol) on every ``group_grounding`` item of the
demo's test split: "Find the small red circle in one of the images.", the look-alike in the
other image, at the target's place in about half of them (``same_place_look_alike``), where
a box on the wrong image earns full plain IoU and nothing from the gated reward.

    .venv/bin/python benchmarks/bench_binding.py --demo runs/demo --out runs/bench-binding
    .venv/bin/python benchmarks/bench_binding.py --demo DIR --steps 2 --limit 8 --seeds 1  # smoke

Prints a table and writes ``bench_binding.json`` (per seed: image accuracy, Acc@0.5, the
same on the same-place items; means and sd; chance on the same items). Figures:
docs/benchmarks.md and docs/demo.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

REWARDS = {"dual": ["object", "image", "format"], "iou": ["iou"]}


def binding_items(data: Path, limit: int | None) -> list:
    from mirg.eval.items import load_eval_items

    return load_eval_items(data / "test.jsonl", tasks=["group_grounding"], limit=limit or None)


def same_place_ids(data: Path) -> set[str]:
    """Binding test samples whose look-alike sits exactly where the target sits."""
    ids = set()
    for line in (data / "test.jsonl").read_text(encoding="utf-8").splitlines():
        s = json.loads(line)
        if s["task"] != "group_grounding":
            continue
        target = s["objects"][s["target_image"] - 1][s["target"]["object"]]["box"]
        others = [o["box"] for i, objs in enumerate(s["objects"], 1) if i != s["target_image"]
                  for o in objs]  # fmt: skip
        if target in others:
            ids.add(s["id"])
    return ids


def score(
    model: str, data: Path, items: list, same: set[str], out: Path, plan, profile: str
) -> dict:
    """Strict image accuracy and Acc@0.5 on the binding items, all and same-place only."""
    from mirg.demo import subset_metrics
    from mirg.eval.run import EvalConfig, evaluate

    config = EvalConfig(model=model, data=str(data / "test.jsonl"), out=str(out),
                        tasks=["group_grounding"], limit=len(items),
                        max_new_tokens=plan.max_new_tokens, device=plan.device)  # fmt: skip
    every = {"n": len(items), **evaluate(config, progress=False)["average"]}
    same_place = subset_metrics(out, items, same, profile)  # the predictions just written
    return {
        name: {
            "items": m["n"],
            "image_acc": round(m.get("image_acc", 0.0), 1),
            "acc@0.5": round(m.get("acc@0.5", 0.0), 1),
        }
        for name, m in (("all", every), ("same_place", same_place))
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo", required=True, help="a demo run folder (its sft/ and data/)")
    parser.add_argument("--out", default="runs/bench-binding")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, help="GRPO steps (default: the demo's)")
    parser.add_argument("--limit", type=int, help="binding test items (default: all)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from mirg.demo import DemoPlan, demo_config
    from mirg.eval.chance import chance_metrics
    from mirg.eval.items import load_eval_items
    from mirg.train.grpo import run_grpo

    demo, out = Path(args.demo), Path(args.out)
    summary = json.loads((demo / "summary.json").read_text(encoding="utf-8"))
    plan = DemoPlan(
        **{k: v for k, v in summary["plan"].items() if k in DemoPlan.__dataclass_fields__}
    )
    data, sft = demo / "data", str(demo / "sft")
    out.mkdir(parents=True, exist_ok=True)
    items = binding_items(data, args.limit)
    same = same_place_ids(data)
    train_boxes = [it.target_box for it in load_eval_items(data / "train.jsonl")]
    chance = chance_metrics(items, train_boxes, seed=0)["average"]
    result: dict = {
        "demo": str(demo),
        "started": time.strftime("%Y-%m-%d %H:%M"),
        "steps": args.steps or plan.grpo_steps,
        "chance": {
            "image_acc": round(chance["image_acc"], 1),
            "acc@0.5": round(chance["acc@0.5"], 1),
        },
        "sft": score(sft, data, items, same, out / "eval-sft", plan, summary["profile"]),
        "runs": {},
    }
    t0 = time.perf_counter()
    for name, rewards in REWARDS.items():
        for seed in range(args.seeds):
            config = demo_config(
                "grpo",
                model_name_or_path=sft,
                dataset_path=str(data / "train.jsonl"),
                output_dir=str(out / f"grpo-{name}-{seed}"),
                max_steps=args.steps or plan.grpo_steps,
                learning_rate=plan.grpo_lr,
                num_generations=plan.num_generations,
                per_device_train_batch_size=plan.grpo_batch,
                max_completion_length=plan.max_new_tokens,
                seed=seed,
                logging_steps=10,
                disable_tqdm=True,
                use_cpu=plan.device == "cpu",
                rewards=rewards,
            )
            model = run_grpo(config).output_dir
            run = score(
                model, data, items, same, out / f"eval-{name}-{seed}", plan, summary["profile"]
            )
            result["runs"].setdefault(name, []).append(run)
            print(name, seed, json.dumps(run), flush=True)
    for name, runs in result["runs"].items():
        for part in ("all", "same_place"):
            for key in ("image_acc", "acc@0.5"):
                values = [r[part][key] for r in runs]
                sd = statistics.stdev(values) if len(values) > 1 else 0.0
                result.setdefault("mean", {}).setdefault(name, {})[f"{part} {key}"] = (
                    round(statistics.mean(values), 1), round(sd, 1))  # fmt: skip
    result["seconds"] = round(time.perf_counter() - t0)
    (out / "bench_binding.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"binding items {len(items)} ({len(same & {it.key for it in items})} same-place); "
          f"chance {result['chance']}; SFT {result['sft']}")  # fmt: skip
    for name, runs in result["runs"].items():
        per_seed = ", ".join(f"{r['all']['image_acc']:.1f}" for r in runs)
        mean, sd = result["mean"][name]["all image_acc"]
        print(f"{name:5s} image accuracy per seed {per_seed}  mean {mean:.1f} ± {sd:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
