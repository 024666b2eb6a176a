"""Binding benchmark: can a tiny model learn the cross-image choice (issue 6)?

The ``binding`` world asks "Find the small red circle in one of the images." over two
84-px images, one object each; the other image holds a look-alike of another colour, so
naming the image is the task (image chance 50%). The ladder, every step through mirg's own
commands and measured on held-out items beside chance:

1. naming: the shipped base is taught grounded naming ("Name the object in Image-1 and
   locate it." -> "Image-1 has a small green circle at [...]"): colour and shape accuracy.
2. binding SFT from that model, ``full`` trajectories (each image's object named before the
   decision) against ``minimal`` ones (the conclusion only): image accuracy, Acc@0.5, and
   for ``full`` how often each image's colour and position were read right.
3. GRPO from the ``full`` SFT model: the dual reward (object IoU gated by the image, image,
   format) against plain IoU, same budget, several seeds: the paper's ablation.

    .venv/bin/python benchmarks/bench_binding.py --out runs/bench-binding   # ~40 min, 1 core
    .venv/bin/python benchmarks/bench_binding.py --quick --out /tmp/bb       # ~2 min smoke

Prints and writes ``bench_binding.json``. Figures: docs/demo.md.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from dataclasses import replace
from pathlib import Path

COLOURS = "red|green|blue|yellow|purple|orange"
#: "Image-2: a small red circle at [357, 24, ..." and the walk's other phrasings
DESCRIBED = re.compile(
    rf"Image-(\d)\D[^\[]*?\ba (?:small|large) ({COLOURS}) (\w+) at \[(\d+), (\d+)"
)


def read_descriptions(response: str, sample: dict) -> dict[str, int]:
    """How many image descriptions inside <think> name the right colour and position."""
    counts = {"described": 0, "colour_right": 0, "position_right": 0}
    think = response.split("</think>")[0]
    for part in re.split(r"(?=Image-\d)", think):
        m = DESCRIBED.match(part)
        if not m or not 1 <= int(m.group(1)) <= len(sample["objects"]):
            continue
        obj = sample["objects"][int(m.group(1)) - 1][0]
        corner = [round(v * 1000) for v in obj["box"][:2]]
        counts["described"] += 1
        counts["colour_right"] += m.group(2) == obj["attributes"]["colour"]
        counts["position_right"] += [int(m.group(4)), int(m.group(5))] == corner
    return counts


def evaluate_stage(model: str, data: Path, out: Path, limit: int, max_new_tokens: int) -> dict:
    from mirg.eval.chance import chance_metrics
    from mirg.eval.items import load_eval_items
    from mirg.eval.run import EvalConfig, evaluate

    metrics = evaluate(
        EvalConfig(
            model=model,
            data=str(data / "test.jsonl"),
            out=str(out),
            limit=limit,
            max_new_tokens=max_new_tokens,
        ),
        progress=False,
    )
    items = load_eval_items(data / "test.jsonl", limit=limit)
    train = [it.target_box for it in load_eval_items(data / "train.jsonl")]
    chance = chance_metrics(items, train, seed=0)
    truth = {d["id"]: d for d in map(json.loads, (data / "test.jsonl").read_text().splitlines())}
    reading = {"described": 0, "colour_right": 0, "position_right": 0, "shape_right": 0}
    for line in (out / "predictions.jsonl").read_text().splitlines():
        pred = json.loads(line)
        sample = truth[pred["id"]]
        for key, value in read_descriptions(pred["response"], sample).items():
            reading[key] += value
        target = sample["objects"][sample["target_image"] - 1][0]
        named = re.search(rf"\ba (?:small|large) (?:{COLOURS}) (\w+)", pred["response"])
        reading["shape_right"] += bool(named) and named.group(1) == target["category"]
    return {
        "acc@0.5": round(metrics["average"]["acc@0.5"], 1),
        "image_acc": round(metrics["average"]["image_acc"], 1),
        "chance_acc@0.5": round(chance["average"]["acc@0.5"], 1),
        "chance_image_acc": round(chance["image_acc"], 1),
        "items": len(items),
        **reading,
    }


def sft(model: str, data: Path, detail: str, out: Path, steps: int) -> str:
    from mirg.cli import main as cli
    from mirg.demo import cpu_sft_config
    from mirg.train.sft import run_sft

    trajectories = data / f"trajectories-{detail}.jsonl"
    if not trajectories.is_file():
        cli(["trajectories", "--data", str(data / "train.jsonl"), "--profile", "qwen3-vl",
             "--detail", detail, "--out", str(trajectories)])  # fmt: skip
    config = cpu_sft_config(model, str(trajectories), str(out), steps, 3e-4, disable_tqdm=True)
    return run_sft(config).output_dir


def grpo(model: str, data: Path, rewards: list[str], seed: int, out: Path, steps: int) -> str:
    from mirg.demo import cpu_grpo_config
    from mirg.train.grpo import run_grpo

    config = cpu_grpo_config(
        model,
        str(data / "train.jsonl"),
        str(out),
        steps,
        5e-5,
        num_generations=8,
        batch=16,
        max_completion_length=224,
        seed=seed,
        logging_steps=10,
        disable_tqdm=True,
        rewards=rewards,
    )
    return run_grpo(config).output_dir


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/bench-binding")
    parser.add_argument("--quick", action="store_true", help="toy sizes: checks the ladder runs")
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from mirg.data.synth import PRESETS, write_dataset
    from mirg.demo import BASE_MODEL

    q = args.quick
    samples, naming_steps, sft_steps, grpo_steps, limit = (
        (120, 4, 4, 2, 8) if q else (3000, 1000, 1500, 40, 100)
    )
    out = Path(args.out)
    naming_data, binding_data = out / "data-naming", out / "data-binding"
    naming_world = replace(PRESETS["single"], families=("name_object",))
    binding_world = replace(PRESETS["binding"], look_alike_changes=("colour",))
    for folder, world in ((naming_data, naming_world), (binding_data, binding_world)):
        if not (folder / "manifest.json").is_file():
            write_dataset(folder, samples, 0, world)
    result: dict = {"quick": q, "started": time.strftime("%Y-%m-%d %H:%M")}
    t0 = time.perf_counter()

    named = sft(str(BASE_MODEL), naming_data, "full", out / "naming", naming_steps)
    result["naming"] = evaluate_stage(named, naming_data, out / "eval-naming", limit, 100)
    for detail in ("full", "minimal"):
        model = sft(named, binding_data, detail, out / f"sft-{detail}", sft_steps)
        result[f"sft_{detail}"] = evaluate_stage(
            model, binding_data, out / f"eval-sft-{detail}", limit, 224
        )
    result["grpo"] = {}
    for name, rewards in (("dual", ["object", "image", "format"]), ("iou", ["iou"])):
        runs = []
        for seed in range(args.seeds):
            model = grpo(
                str(out / "sft-full"), binding_data, rewards, seed, out / f"grpo-{name}-{seed}",
                grpo_steps,
            )  # fmt: skip
            runs.append(
                evaluate_stage(model, binding_data, out / f"eval-grpo-{name}-{seed}", limit, 224)
            )
        summary: dict = {"runs": runs}
        for key in ("acc@0.5", "image_acc"):
            values = [r[key] for r in runs]
            summary[f"{key}_mean"] = round(statistics.mean(values), 1)
            summary[f"{key}_sd"] = round(statistics.stdev(values), 1) if len(values) > 1 else 0.0
        result["grpo"][name] = summary
    result["seconds"] = round(time.perf_counter() - t0)
    (out / "bench_binding.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
