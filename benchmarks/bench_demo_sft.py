"""The demo's SFT step, by world mix and trajectory detail: seconds per step, tokens per step.

An SFT step of ``mirg demo`` cost 0.25 s on 2026-11-25 and 0.42-0.47 s on 2026-12-01 (docs/
benchmarks.md, Demo). Between the two the demo's world went from one binding question in
three to three in five, and its trajectories from ``minimal`` to ``lookup`` (a table of
each image's deciding value where the model must choose the image). This measures each
change on its own: the shipped base, the demo's SFT recipe and batch, ``--steps`` steps
per variant, each run in its own process with one torch thread, variants alternating.

    .venv/bin/python benchmarks/bench_demo_sft.py --out runs/bench_demo_sft [--steps 40 --repeats 2]

Prints a JSON summary (and writes it to OUT/bench_demo_sft.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from bench_train import _result, _timer

#: (name, binding weight among single_object/common_object/group_grounding, detail)
VARIANTS = (
    ("2026-11-25: 1 in 3 binding, minimal", 1.0, "minimal"),
    ("1 in 3 binding, lookup", 1.0, "lookup"),
    ("3 in 5 binding, minimal", 3.0, "minimal"),
    ("today: 3 in 5 binding, lookup", 3.0, "lookup"),
)


def worker(trajectories: str, out: str, steps: str) -> dict:
    """SFT of the shipped base on ``trajectories`` with the demo's recipe and plan."""
    import torch

    from mirg.demo import BASE_MODEL, DemoPlan, demo_config
    from mirg.train.sft import build_sft_trainer

    torch.set_num_threads(1)
    started = time.perf_counter()
    plan = DemoPlan()
    config = demo_config(
        "sft",
        model_name_or_path=str(BASE_MODEL),
        dataset_path=trajectories,
        output_dir=out,
        max_steps=int(steps),
        learning_rate=plan.sft_lr,
        per_device_train_batch_size=plan.sft_batch,
        seed=0,
        logging_steps=1,
        disable_tqdm=True,
    )
    timer = _timer()
    trainer = build_sft_trainer(config, callbacks=[timer])
    trainer.train()
    result = _result(timer, trainer, started)
    result["tokens_per_step"] = (result["num_tokens"] or 0) / max(1, result["steps"])
    return result


def prepare(out: Path, samples: int) -> dict[str, str]:
    """One dataset per world mix and its trajectories at each detail; paths by variant."""
    from mirg.data.synth import write_dataset
    from mirg.demo import DEMO_WORLD, write_trajectories

    paths = {}
    for name, binding, detail in VARIANTS:
        data = out / f"data-binding{binding:g}"
        if not (data / "manifest.json").is_file():
            write_dataset(data, samples, 0, replace(DEMO_WORLD, weights=(1.0, 1.0, binding)))
        trajectories = data / f"trajectories-{detail}.jsonl"
        if not trajectories.is_file():
            write_trajectories(data / "train.jsonl", trajectories, "qwen3-vl", detail)
        paths[name] = str(trajectories)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_demo_sft")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(*args.worker)))
        return 0
    out = Path(args.out)
    paths = prepare(out, args.samples)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    runs: dict[str, list[dict]] = {name: [] for name in paths}
    for repeat in range(args.repeats):
        for number, (name, trajectories) in enumerate(paths.items()):
            folder = out / "runs" / f"variant{number}-run{repeat}"
            command = [sys.executable, __file__, "--worker", trajectories, str(folder)]
            done = subprocess.run(
                [*command, str(args.steps)], env=env, capture_output=True, text=True, check=True
            )
            runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(f"[{repeat}] {name}: {runs[name][-1]['median_step_s']:.3f} s/step", flush=True)
    summary = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "steps": args.steps,
        "repeats": args.repeats,
        "variants": {
            name: {
                "median_step_s": statistics.median(r["median_step_s"] for r in found),
                "step_s_runs": [round(r["median_step_s"], 4) for r in found],
                "tokens_per_step": found[0]["tokens_per_step"],
                "peak_rss_mb": max(r["peak_rss_mb"] for r in found),
            }
            for name, found in runs.items()
        },
    }
    (out / "bench_demo_sft.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
