"""Does image-aware GRPO add to SFT, and does the dual reward beat plain IoU? (issue 19)

From the SFT model of a demo run (``make demo`` writes ``runs/demo``), each *arm* trains
from the same SFT model on the demo's GRPO prompts (a fresh, binding-weighted world, not
SFT's samples) with the demo's GRPO recipe, and is scored on fresh binding items:

- ``dual``: ``[object, image, format]``: IoU earned only on the named target image, plus
  the image and format rewards (mirg's reward);
- ``iou``: ``[iou, format]``: plain IoU whichever image the answer names (the usual
  single-image grounding reward);
- ``gate``: ``[object, format]``: the image gate alone;
- ``image``: ``[iou, image, format]``: the image reward alone;
- ``sft``: the continued-SFT control: SFT goes on from the same model for as many
  optimizer steps, on the GRPO prompts' trajectories, at the demo's SFT settings.

Seeds are paired: with seed ``s`` every arm sees the same prompts in the same order (the
trainer's sampler is seeded; dynamic sampling's refills then follow each arm's own drops).
Every model is scored greedily (strict protocol) on ``--items`` fresh binding items of a
world seed no training uses (``binding_items.py``), same-place items (the look-alike at
the target's place: a box on the wrong image earns full plain IoU) and different-place
items apart, and on the demo's own 120 test items. ``--control`` runs the same on the
control world (``same_place_look_alike`` 0: every look-alike elsewhere), where dual and IoU
should tie; it makes its own demo run first (``--demo`` names where).

Runs go ``--jobs`` at a time, one torch thread each; each writes ``runs/<arm>-<seed>.json``
when done, and a rerun skips what is there (``--fresh`` starts over).

    .venv/bin/python benchmarks/bench_binding.py --demo runs/demo --out runs/bench-binding
    .venv/bin/python benchmarks/bench_binding.py --demo runs/demo-control --control \\
        --arms dual iou --out runs/bench-binding-control
    .venv/bin/python benchmarks/bench_binding.py --demo runs/demo --steps 2 --items 16 \\
        --seeds 1 --arms dual sft --out runs/bench-smoke  # smoke

Prints a table and writes ``bench_binding.json``. Figures: docs/benchmarks.md, docs/demo.md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from binding_items import FRESH_SEED, binding_world, fresh_binding_items, same_place_ids

ARMS: dict[str, list[str] | None] = {
    "dual": ["object", "image", "format"],
    "iou": ["iou", "format"],
    "gate": ["object", "format"],
    "image": ["iou", "image", "format"],
    "sft": None,  # continued SFT
}
PARTS = (
    "fresh",
    "fresh_same_place",
    "fresh_different_place",
    "fresh_target_1",
    "fresh_target_2",
    "demo_binding",
    "demo_all",
)


def _plan(demo: Path) -> Any:
    """The plan and world a demo run recorded in its summary."""
    from mirg.data.synth import WorldConfig
    from mirg.demo import DemoPlan

    summary = json.loads((demo / "summary.json").read_text(encoding="utf-8"))
    fields = {k: v for k, v in summary["plan"].items() if k in DemoPlan.__dataclass_fields__}
    if "grpo_family_weights" in fields:
        fields["grpo_family_weights"] = tuple(fields["grpo_family_weights"])
    world = {k: tuple(v) if isinstance(v, list) else v for k, v in summary["world"].items()}
    return DemoPlan(**fields, world=WorldConfig(**world)), summary


def score(model: str, job: dict, out: Path) -> dict:
    """Strict image accuracy and Acc@0.5 on the fresh binding items (all, same-place,
    different-place) and on the demo's test items (its binding items, and all 120)."""
    from mirg.demo import subset_metrics
    from mirg.eval.run import EvalConfig, evaluate

    result = {}
    fresh = Path(job["fresh_dir"]) / "train.jsonl"
    decoding = {"max_new_tokens": job["max_new_tokens"], "device": "cpu", "batch_size": 16}
    config = EvalConfig(model=model, data=str(fresh), out=str(out / "eval-fresh"),
                        tasks=["group_grounding"], limit=job["items"], **decoding)  # fmt: skip
    every = evaluate(config, progress=False)["average"]
    items = _fresh_items(job)
    same = set(job["same_place"])
    result["fresh"] = {"n": len(items), **every}
    keys = {it.key for it in items}
    result["fresh_same_place"] = subset_metrics(out / "eval-fresh", items, same, job["profile"])
    result["fresh_different_place"] = subset_metrics(
        out / "eval-fresh", items, keys - same, job["profile"]
    )
    for k in (1, 2):  # a policy that leans to one image shows here, not in the mean
        chosen = {it.key for it in items if it.target_image == k}
        result[f"fresh_target_{k}"] = subset_metrics(
            out / "eval-fresh", items, chosen, job["profile"]
        )
    demo_test = Path(job["demo"]) / "data" / "test.jsonl"
    config = EvalConfig(model=model, data=str(demo_test), out=str(out / "eval-demo"),
                        limit=job["demo_per_task"], **decoding)  # fmt: skip
    demo = evaluate(config, progress=False)
    result["demo_all"] = {"n": job["demo_per_task"] * 3, **demo["average"]}
    result["demo_binding"] = {"n": job["demo_per_task"], **demo["tasks"]["group_grounding"]}
    return {
        part: {
            "n": m.get("n", 0),
            "image_acc": round(m.get("image_acc", 0.0), 2),
            "acc@0.5": round(m.get("acc@0.5", 0.0), 2),
        }
        for part, m in result.items()
    }


def _fresh_items(job: dict) -> list:
    from mirg.eval.benchmarks import load_eval_items

    split = Path(job["fresh_dir"]) / "train.jsonl"
    return load_eval_items(split, tasks=["group_grounding"], limit=job["items"])


def train(job: dict, out: Path) -> tuple[str, dict]:
    """One arm's model from the SFT model: GRPO with the arm's rewards, or continued SFT."""
    from mirg.demo import demo_config
    from mirg.train.grpo import run_grpo
    from mirg.train.sft import run_sft

    common = {
        "output_dir": str(out / "model"),
        "max_steps": job["steps"],
        "seed": job["seed"],
        "logging_steps": 10,
        "disable_tqdm": True,
        "use_cpu": True,
    }
    if job["rewards"] is None:  # continued SFT on the GRPO prompts' trajectories
        config = demo_config(
            "sft",
            model_name_or_path=job["sft"],
            dataset_path=job["sft_trajectories"],
            learning_rate=job["sft_lr"],
            per_device_train_batch_size=job["sft_batch"],
            **common,
        )
        t0 = time.perf_counter()
        result = run_sft(config)
    else:
        config = demo_config(
            "grpo",
            model_name_or_path=job["sft"],
            dataset_path=job["grpo_prompts"],
            rewards=job["rewards"],
            **{**job["grpo"], **common},
        )
        t0 = time.perf_counter()
        result = run_grpo(config)
    keep = ("reward", "frac_reward_zero_std", "dynamic_sampling/dropped_frac", "entropy")
    curve = [
        {k: h[k] for k in ("step", *keep) if k in h}
        for h in result.log_history
        if any(k in h for k in keep)
    ]
    return result.output_dir, {"curve": curve, "train_seconds": round(time.perf_counter() - t0, 1)}


def run_job(job: dict) -> dict:
    import torch

    torch.set_num_threads(1)
    out = Path(job["folder"])
    t0 = time.perf_counter()
    if job["arm"] == "sft-start":
        model, log = job["sft"], {}
    elif (out / "model" / "model.safetensors").is_file():  # trained, then stopped: score it
        model, log = str(out / "model"), {}
    else:
        model, log = train(job, out)
    result = {"arm": job["arm"], "seed": job["seed"], "scores": score(model, job, out), **log}
    result["total_seconds"] = round(time.perf_counter() - t0, 1)
    path = Path(job["result"])
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"{job['arm']} seed {job['seed']}: {json.dumps(result['scores']['fresh'])} "
          f"same-place {json.dumps(result['scores']['fresh_same_place'])} "
          f"({result['total_seconds']:.0f} s)", flush=True)  # fmt: skip
    return result


def _mean_sd(values: list[float]) -> list[float]:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return [round(statistics.mean(values), 2), round(sd, 2)]


def summarise(results: list[dict], chance: dict) -> dict:
    start = next(r for r in results if r["arm"] == "sft-start")["scores"]
    arms: dict[str, dict] = {}
    for r in results:
        if r["arm"] != "sft-start":
            arms.setdefault(r["arm"], {})[r["seed"]] = r["scores"]
    out: dict[str, Any] = {"chance": chance, "sft_start": start, "arms": {}}
    for arm, by_seed in arms.items():
        seeds = sorted(by_seed)
        entry: dict[str, Any] = {"seeds": seeds}
        for part in PARTS:
            for metric in ("image_acc", "acc@0.5"):
                values = [by_seed[s][part][metric] for s in seeds]
                entry[f"{part} {metric}"] = {"per_seed": values, "mean_sd": _mean_sd(values)}
        out["arms"][arm] = entry
    # paired differences on the fresh items, per seed
    paired = {}
    for a, b, part in (
        ("dual", "iou", "fresh_same_place"),
        ("dual", "iou", "fresh_different_place"),
        ("dual", "iou", "fresh"),
        ("dual", "sft", "fresh"),
        ("gate", "iou", "fresh_same_place"),
        ("image", "iou", "fresh_same_place"),
    ):
        if a in arms and b in arms:
            seeds = sorted(set(arms[a]) & set(arms[b]))
            diffs = [
                round(arms[a][s][part]["image_acc"] - arms[b][s][part]["image_acc"], 2)
                for s in seeds
            ]
            if diffs:
                paired[f"{a} - {b}, {part} image_acc"] = {
                    "per_seed": diffs,
                    "mean_sd": _mean_sd(diffs),
                }
    for arm in arms:
        diffs = [
            round(arms[arm][s]["fresh"]["image_acc"] - start["fresh"]["image_acc"], 2)
            for s in sorted(arms[arm])
        ]
        paired[f"{arm} - SFT start, fresh image_acc"] = {
            "per_seed": diffs,
            "mean_sd": _mean_sd(diffs),
        }
    out["paired"] = paired
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo", required=True, help="a demo run folder (its sft/ and data/)")
    parser.add_argument("--out", default="runs/bench-binding")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, help="optimizer steps (default: the demo's GRPO)")
    parser.add_argument("--items", type=int, default=1000, help="fresh binding items")
    parser.add_argument(
        "--control",
        action="store_true",
        help="the control world (same_place_look_alike 0); runs its demo first",
    )
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="GRPO recipe overrides, e.g. learning_rate=3e-5 temperature=0.7",
    )
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each")
    parser.add_argument("--fresh", action="store_true", help="rerun jobs already done")
    args = parser.parse_args()

    from mirg.demo import DemoPlan, write_grpo_prompts, write_trajectories
    from mirg.eval.benchmarks import load_eval_items
    from mirg.eval.chance import chance_metrics

    demo, out = Path(args.demo), Path(args.out)
    world = binding_world(0.0 if args.control else None)
    if args.control and not (demo / "summary.json").is_file():
        import torch

        from mirg.demo import BASE_MODEL, DEMO_WORLD, run_demo

        torch.set_num_threads(1)
        print(f"control world: a demo run into {demo} first", flush=True)
        run_demo(demo, DemoPlan(world=replace(DEMO_WORLD, same_place_look_alike=0.0)),
                 model=str(BASE_MODEL))  # fmt: skip
    plan, summary = _plan(demo)
    out.mkdir(parents=True, exist_ok=True)
    grpo_prompts = write_grpo_prompts(demo, plan, seed=summary.get("seed", 0))
    trajectories = grpo_prompts.with_name(f"trajectories-{summary['profile']}.jsonl")
    if not trajectories.is_file():
        write_trajectories(grpo_prompts, trajectories, summary["profile"], plan.trajectory_detail)
    fresh_dir = out / f"fresh-world-{FRESH_SEED}"
    items = fresh_binding_items(fresh_dir, args.items, FRESH_SEED, world)
    same = sorted(same_place_ids(fresh_dir / "train.jsonl") & {it.key for it in items})
    train_boxes = [it.target_box for it in load_eval_items(demo / "data" / "train.jsonl")]
    chance = chance_metrics(items, train_boxes, seed=0)["average"]

    grpo: dict[str, Any] = {
        "learning_rate": plan.grpo_lr,
        "num_generations": plan.num_generations,
        "per_device_train_batch_size": plan.grpo_batch,
        "max_completion_length": plan.max_new_tokens,
    }
    for pair in args.set:
        key, _, value = pair.partition("=")
        try:
            grpo[key] = json.loads(value)  # numbers, true/false, lists
        except ValueError:
            grpo[key] = value  # text: scale_rewards=none
    base_job = {
        "demo": str(demo),
        "sft": str(demo / "sft"),
        "grpo_prompts": str(grpo_prompts),
        "sft_trajectories": str(trajectories),
        "sft_lr": plan.sft_lr,
        "sft_batch": plan.sft_batch,
        "steps": args.steps or plan.grpo_steps,
        "grpo": grpo,
        "fresh_dir": str(fresh_dir),
        "items": args.items,
        "same_place": same,
        "profile": summary["profile"],
        "max_new_tokens": plan.max_new_tokens,
        "demo_per_task": max(1, plan.eval_items // len(plan.world.families)),
    }
    runs = out / "runs"
    runs.mkdir(exist_ok=True)
    jobs = [{**base_job, "arm": "sft-start", "seed": 0, "rewards": None}]
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for arm in args.arms:
            jobs.append({**base_job, "arm": arm, "seed": seed, "rewards": ARMS[arm]})
    settings = {**base_job, "same_place": len(same)}
    recorded = out / "settings.json"
    if recorded.is_file() and not args.fresh:
        before = json.loads(recorded.read_text())
        differ = sorted(k for k in before.keys() | settings.keys()
                        if before.get(k) != settings.get(k))  # fmt: skip
        if differ:
            raise SystemExit(f"{out} holds runs made with other settings ({recorded}: "
                             f"{', '.join(differ)} differ); use another --out, or --fresh to "
                             "start over")  # fmt: skip
    todo = []
    for job in jobs:
        job["folder"] = str(out / f"{job['arm']}-{job['seed']}")
        job["result"] = str(runs / f"{job['arm']}-{job['seed']}.json")
        if args.fresh:
            shutil.rmtree(job["folder"], ignore_errors=True)
            Path(job["result"]).unlink(missing_ok=True)
        if not Path(job["result"]).is_file():
            todo.append(job)
    recorded.write_text(json.dumps(settings, indent=1))
    print(f"{len(items)} fresh binding items ({len(same)} same-place); {len(todo)} runs to do, "
          f"{args.jobs} at a time", flush=True)  # fmt: skip
    t0 = time.perf_counter()
    if todo:
        with multiprocessing.get_context("spawn").Pool(args.jobs, maxtasksperchild=1) as pool:
            list(pool.imap_unordered(run_job, todo))
    results = [json.loads(Path(job["result"]).read_text()) for job in jobs]  # this run's only
    report = {
        "demo": str(demo),
        "control": args.control,
        "settings": {k: v for k, v in base_job.items() if k != "same_place"},
        "same_place_items": len(same),
        "seconds": round(time.perf_counter() - t0),
        **summarise(results, {k: round(chance[k], 1) for k in ("image_acc", "acc@0.5")}),
    }
    (out / "bench_binding.json").write_text(json.dumps(report, indent=2) + "\n")
    print_table(report)
    return 0


def print_table(report: dict) -> None:
    start = report["sft_start"]
    print(f"chance {report['chance']}; SFT start: fresh {start['fresh']['image_acc']:.1f}, "
          f"same-place {start['fresh_same_place']['image_acc']:.1f}, "
          f"different-place {start['fresh_different_place']['image_acc']:.1f}, "
          f"demo binding {start['demo_binding']['image_acc']:.1f}")  # fmt: skip
    for arm, entry in report["arms"].items():
        cells = []
        for part in PARTS[:-1]:
            mean, sd = entry[f"{part} image_acc"]["mean_sd"]
            cells.append(f"{part} {mean:.1f} ± {sd:.1f}")
        seeds = ", ".join(f"{v:.1f}" for v in entry["fresh image_acc"]["per_seed"])
        print(f"{arm:6s} image accuracy: {'; '.join(cells)}  (fresh per seed: {seeds})")
    for name, entry in report["paired"].items():
        mean, sd = entry["mean_sd"]
        print(f"  {name}: {mean:+.1f} ± {sd:.1f} (per seed {entry['per_seed']})")


if __name__ == "__main__":
    raise SystemExit(main())
