"""``mirg demo``: the whole MIRG-RL pipeline on this laptop, with nothing downloaded.

synthetic world (train/val/test) -> reasoning trajectories -> base model -> SFT ->
image-aware GRPO (dual reward) -> strict evaluation of every stage on the held-out test
split -> ``report.html`` (training curves, per-stage table beside chance levels, gallery)
and ``summary.json``.

The base model plays the part of a user's pretrained VLM: a tiny Qwen3-VL that mirg
pre-trained on single-image localisation and ships in ``mirg/assets/`` (retrain it with
``mirg demo --pretrain-base DIR``, about 15 minutes on 2 cores). ``--from-scratch`` starts
from random weights instead; ``--model PATH`` from your own model.

Every figure is printed beside the chance level of the same test split
(:mod:`mirg.eval.chance`): a tiny model trained for minutes from random weights is far from
a pretrained VLM, and the report says what it learned and what it did not.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mirg.data.synth import WorldConfig

STAGES = ("base", "sft", "grpo")
#: The shipped base (see pretrain_base), 4,000 SFT steps from random weights: strict
#: Acc@0.5 on single-image localisation 68.3% on its held-out split (60 items) and 53.5% on
#: 200 items of a world drawn with another seed; chance 11.2% (docs/demo.md).
BASE_MODEL = Path(__file__).resolve().parent / "assets" / "demo-base-qwen3-vl"
METRIC_KEYS = ("acc@0.3", "acc@0.5", "acc@0.7", "miou", "image_acc")

#: The demo's world: 84-px images, one object per image on a 3x3 grid of 28-px cells, a
#: fixed question layout, three families: single-image localisation (learnable in minutes),
#: two-image common-object questions (the question names the image to answer in) and
#: two-image binding, the cross-image choice the image reward is for ("Find the small red
#: circle in one of the images."; the other image holds a look-alike of another colour;
#: image chance 50%). Look-alikes change colour only: the tiny vision tower tells colours
#: apart but barely shapes at 28 px (docs/demo.md).
DEMO_WORLD = WorldConfig(
    families=("single_object", "common_object", "group_grounding"),
    image_size=84,
    images=(2, 2),
    distractors=(0, 0),
    sizes=("small",),
    backgrounds=("flat",),
    fixed_layout=True,
    look_alike_changes=("colour",),
)


@dataclass
class DemoPlan:
    """Sizes and budgets of one demo run (``--quick`` shrinks everything).

    The defaults come from measured SFT probes on this CPU (docs/demo.md): a 128-wide
    two-layer Qwen3-VL, learning rate 3e-4 with a cosine schedule (1e-3 plateaued longer),
    and the ``minimal`` trajectory detail (the conclusion only inside ``<think>``), which
    keeps completions near 70 tokens so that GRPO's sampling fits the time budget.
    """

    samples: int = 3000
    sft_steps: int = 1500
    grpo_steps: int = 40
    eval_items: int = 120  # test items evaluated per stage, split evenly over families
    sft_batch: int = 8
    sft_lr: float = 1e-4  # from the shipped base; --from-scratch uses 3e-4 (measured)
    grpo_lr: float = 5e-5
    num_generations: int = 8
    grpo_batch: int = 16
    max_new_tokens: int = 80
    trajectory_detail: str = "minimal"
    model_spec: dict = field(default_factory=lambda: dict(DEMO_MODEL))
    world: WorldConfig = field(default_factory=lambda: DEMO_WORLD)


#: The tiny model the demo builds: wider than the test models so that it learns to read
#: positions from the image (measured in docs/demo.md).
DEMO_MODEL = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "vision_hidden_size": 64,
    "vision_intermediate_size": 128,
}


def cpu_sft_config(
    model: str,
    dataset: str,
    output_dir: str,
    steps: int,
    lr: float,
    *,
    batch: int = 8,
    seed: int | None = None,
    logging_steps: int = 50,
    **extra: Any,
) -> Any:
    """The SFT settings every tiny CPU run here shares: the whole model trains (vision tower
    too), cosine schedule with 5% warm-up, no weight decay, no checkpoints or reporters.
    ``seed`` None keeps TRL's default."""
    from mirg.train.configs import SFTTrainConfig

    if seed is not None:
        extra["seed"] = seed
    extra.setdefault("save_strategy", "no")
    return SFTTrainConfig(
        model_name_or_path=model,
        dataset_path=dataset,
        output_dir=output_dir,
        freeze_vision_tower=False,
        max_steps=steps,
        per_device_train_batch_size=batch,
        learning_rate=lr,
        lr_scheduler_type="cosine",
        warmup_steps=0.05,
        weight_decay=0.0,
        logging_steps=logging_steps,
        report_to="none",
        activation_checkpointing=False,
        dataloader_num_workers=0,
        **extra,
    )


def cpu_grpo_config(
    model: str,
    dataset: str,
    output_dir: str,
    steps: int,
    lr: float,
    *,
    num_generations: int,
    batch: int,
    max_completion_length: int,
    seed: int,
    logging_steps: int = 1,
    **extra: Any,
) -> Any:
    """The GRPO settings every tiny CPU run here shares: sampling at temperature 1, KL
    coefficient 0.04, cosine schedule, the whole model trains, no checkpoints or reporters."""
    from mirg.train.configs import GRPOTrainConfig

    return GRPOTrainConfig(
        model_name_or_path=model,
        dataset_path=dataset,
        output_dir=output_dir,
        freeze_vision_tower=False,
        max_steps=steps,
        num_generations=num_generations,
        per_device_train_batch_size=batch,
        max_completion_length=max_completion_length,
        temperature=1.0,
        beta=0.04,
        learning_rate=lr,
        lr_scheduler_type="cosine",
        seed=seed,
        logging_steps=logging_steps,
        save_strategy="no",
        report_to="none",
        activation_checkpointing=False,
        dataloader_num_workers=0,
        **extra,
    )


QUICK = DemoPlan(
    samples=120,
    sft_steps=40,
    grpo_steps=4,
    eval_items=16,
    sft_batch=4,
    num_generations=4,
    grpo_batch=8,
    max_new_tokens=80,
    model_spec={},
)


def _stage_metrics(out: Path, items: list, profile: str) -> dict[str, float]:
    from mirg.core.scoring import read_predictions, score_items
    from mirg.eval.chance import image_accuracy

    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    scores = score_items(items, read_predictions(out / "predictions.jsonl"), "strict", profile)
    tasks = {
        task: {**row, "image_acc": image_accuracy([s for s in scores if s.task == task])}
        for task, row in metrics["tasks"].items()
    }
    return {**metrics["average"], "image_acc": image_accuracy(scores), "tasks": tasks}


def _curves(log_history: list[dict], keys: tuple[str, ...]) -> dict[str, list[tuple[float, float]]]:
    series: dict[str, list[tuple[float, float]]] = {}
    for entry in log_history:
        step = entry.get("step")
        for key, value in entry.items():
            if step is None or not isinstance(value, (int, float)):
                continue
            if any(k in key for k in keys) and not key.endswith("/std") and "runtime" not in key:
                series.setdefault(key, []).append((float(step), float(value)))
    return series


def run_demo(out: str | Path, plan: DemoPlan, model: str | None = None, seed: int = 0) -> dict:
    """Run every stage; returns the summary written to ``out/summary.json``."""
    from mirg.cli import main as cli
    from mirg.data.synth import write_dataset
    from mirg.eval.chance import chance_metrics
    from mirg.eval.items import load_eval_items
    from mirg.eval.run import EvalConfig, evaluate
    from mirg.models.loading import detect_family, resolve_profile
    from mirg.train.grpo import run_grpo
    from mirg.train.sft import run_sft

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 1)
        print(f"[demo] {name} done in {timings[name]:.1f} s", flush=True)

    # 1. data and trajectories
    t0 = time.perf_counter()
    data = out / "data"
    if not (data / "manifest.json").is_file():
        write_dataset(data, plan.samples, seed, plan.world)
    timed("data", t0)

    # 2. model: the given one, or (None) a tiny Qwen3-VL from random weights
    t0 = time.perf_counter()
    if model is None:
        from mirg.models.tiny import save_tiny_model

        model_dir = out / "model-base"
        if not (model_dir / "config.json").is_file():
            from mirg.models.tiny import TinySpec

            save_tiny_model(model_dir, "qwen3-vl", TinySpec(**plan.model_spec))
        model = str(model_dir)
    profile = resolve_profile(detect_family(model), None, what=model).name
    trajectories = data / f"trajectories-{profile}-{plan.trajectory_detail}.jsonl"
    if not trajectories.is_file():
        cli(
            [
                "trajectories",
                "--data",
                str(data / "train.jsonl"),
                "--profile",
                profile,
                "--detail",
                plan.trajectory_detail,
                "--out",
                str(trajectories),
            ]
        )
    timed("model and trajectories", t0)

    test = data / "test.jsonl"
    per_task = max(1, plan.eval_items // len(plan.world.families))  # first N of each task
    items = load_eval_items(test, limit=per_task)
    train_boxes = [it.target_box for it in load_eval_items(data / "train.jsonl")]
    chance = chance_metrics(items, train_boxes, seed=seed)

    def evaluate_stage(stage: str, model_path: str) -> dict[str, float]:
        t0 = time.perf_counter()
        cfg = EvalConfig(
            model=model_path,
            data=str(test),
            out=str(out / f"eval-{stage}"),
            limit=per_task,
            batch_size=16,
            max_new_tokens=plan.max_new_tokens,
        )
        evaluate(cfg)
        timed(f"eval {stage}", t0)
        return _stage_metrics(out / f"eval-{stage}", items, profile)

    stages: dict[str, Any] = {"base": evaluate_stage("base", model)}

    # 3. SFT on the trajectories
    t0 = time.perf_counter()
    sft = cpu_sft_config(
        model,
        str(trajectories),
        str(out / "sft"),
        plan.sft_steps,
        plan.sft_lr,
        batch=plan.sft_batch,
        seed=seed,
        logging_steps=max(1, plan.sft_steps // 50),
    )
    sft_result = run_sft(sft)
    timed("sft", t0)
    stages["sft"] = evaluate_stage("sft", sft_result.output_dir)

    # 4. image-aware GRPO from the SFT model, on the samples (targets in columns)
    t0 = time.perf_counter()
    grpo = cpu_grpo_config(
        sft_result.output_dir,
        str(data / "train.jsonl"),
        str(out / "grpo"),
        plan.grpo_steps,
        plan.grpo_lr,
        num_generations=plan.num_generations,
        batch=plan.grpo_batch,
        max_completion_length=plan.max_new_tokens,
        seed=seed,
    )
    grpo_result = run_grpo(grpo)
    timed("grpo", t0)
    stages["grpo"] = evaluate_stage("grpo", grpo_result.output_dir)

    chance_row = {**chance["average"], "image_acc": chance["image_acc"], "tasks": chance["tasks"]}
    summary = {
        **{s: stages[s] for s in STAGES},
        "chance": chance_row,
        "test_items": len(items),
        # small worlds repeat: how many test samples share a train sample's question and
        # layout (the held-out figures partly measure recall of those)
        "test_layouts_seen_in_train": json.loads((data / "manifest.json").read_text())[
            "test_layouts_seen_in_train"
        ],
        "profile": profile,
        "model": model,
        "plan": {k: v for k, v in asdict(plan).items() if k != "world"},
        "world": asdict(plan.world),
        "seconds": {**timings, "total": round(time.perf_counter() - t_start, 1)},
        "curves": {
            "sft": _curves(sft_result.log_history, ("loss",)),
            "grpo": _curves(grpo_result.log_history, ("reward", "loss")),
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    from mirg.eval.demo_report import write_demo_report

    write_demo_report(out, summary)
    print(summary_table(summary))
    print(f"[demo] report: {out / 'report.html'}  summary: {out / 'summary.json'}")
    return summary


#: The shipped base's curriculum: what a pretrained VLM brings to the demo, at toy scale.
#: Localisation in one image and in 1-4 images with the image named (``referring``: the
#: other images may hold the same kind of object), grounded naming in multi-image prompts,
#: a described object among a look-alike of another colour, and 0-40 unrelated words
#: before the question, so the distance from an image to the question varies and the
#: object's place must be read from the image itself (docs/demo.md, position gaps).
#: Half the samples use the demo's fixed wording, half vary it.
BASE_WORLD = WorldConfig(
    families=("single_object", "referring", "name_object"),
    weights=(1.0, 2.0, 1.0),
    image_size=84,
    images=(1, 4),
    distractors=(0, 1),
    sizes=("small",),
    backgrounds=("flat",),
    look_alike_changes=("colour",),
    filler_words=(0, 40),
)


def write_base_curriculum(out: str | Path, n: int, seed: int, profile: str = "qwen3-vl") -> Path:
    """The base's training trajectories (``brief`` detail: the naming sentence, then the
    conclusion) from ``n`` samples of ``BASE_WORLD``, half in the demo's fixed wording;
    returns the JSONL path."""
    from mirg.data.exports import Exporter, export
    from mirg.data.schema import read_samples
    from mirg.data.synth import write_dataset

    out = Path(out)
    samples = []
    for part, fixed in (("fixed", True), ("varied", False)):
        world = replace(BASE_WORLD, fixed_layout=fixed)
        write_dataset(out / part, n // 2, seed + int(fixed), world, fractions=(1, 0, 0))
        part_samples = read_samples(out / part / "train.jsonl", check_images="none")
        samples += [
            replace(s, id=f"{part}-{s.id}", images=[f"{part}/{i}" for i in s.images])
            for s in part_samples
        ]
    trajectories = out / "trajectories.jsonl"
    export(samples, "sft", trajectories, Exporter(profile, root=out, seed=seed, detail="brief"))
    return trajectories


def pretrain_base(
    out: str | Path,
    seed: int = 0,
    steps: int = 12000,
    samples: int = 16000,
    init: str | Path | None = None,
    spec: dict | None = None,
    save_steps: int = 0,
) -> Path:
    """Retrain the shipped base by its recipe (the skill repeats, the bytes need not).

    SFT on :data:`BASE_WORLD` trajectories, batch 8, learning rate 3e-4 with a cosine
    schedule, from ``init`` (a model folder) or from a tiny Qwen3-VL with random weights
    (``spec``: ``DEMO_MODEL`` dimensions unless given). Writes the model to ``out/model``.
    ``save_steps`` > 0 keeps checkpoints on the way (to probe the skill as it grows).
    """
    from mirg.models.tiny import TinySpec, save_tiny_model
    from mirg.train.sft import run_sft

    out = Path(out)
    trajectories = out / "data" / "trajectories.jsonl"
    if not trajectories.is_file():
        write_base_curriculum(out / "data", samples, seed)
    if init is None:
        init = out / "random-init"
        if not (init / "config.json").is_file():
            save_tiny_model(init, "qwen3-vl", TinySpec(**(spec or DEMO_MODEL)))
    extra: dict[str, Any] = {}
    if save_steps:
        extra = {"save_strategy": "steps", "save_steps": save_steps, "save_total_limit": None}
    config = cpu_sft_config(
        str(init),
        str(trajectories),
        str(out / "model"),
        steps,
        3e-4,
        seed=seed,
        logging_steps=100,
        **extra,
    )
    run_sft(config)
    print(f"base model: {out / 'model'}; use it: mirg demo --model {out / 'model'}")
    return out / "model"


def summary_table(summary: dict) -> str:
    head = f"{'stage':<8}{'Acc@0.3':>9}{'Acc@0.5':>9}{'Acc@0.7':>9}{'mIoU':>8}{'image acc':>11}"
    lines = [f"strict protocol, held-out test split ({summary['test_items']} items)", head]
    for stage in (*STAGES, "chance"):
        r = summary[stage]
        lines.append(
            f"{stage:<8}{r['acc@0.3']:>9.1f}{r['acc@0.5']:>9.1f}{r['acc@0.7']:>9.1f}"
            f"{r['miou']:>8.3f}{r['image_acc']:>11.1f}"
        )
    if "group_grounding" in summary["chance"]["tasks"]:
        chosen = ", ".join(
            f"{stage} {summary[stage]['tasks']['group_grounding']['image_acc']:.1f}"
            for stage in (*STAGES, "chance")
        )
        lines.append(f"image accuracy where the model must choose the image: {chosen}")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output folder")
    parser.add_argument("--quick", action="store_true", help="the same stages in about 2 minutes")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--model", help="start from this model instead of the shipped base (a real VLM wants a GPU)"
    )
    start.add_argument(
        "--from-scratch", action="store_true", help="start from a tiny model with random weights"
    )
    start.add_argument(
        "--pretrain-base",
        metavar="DIR",
        help="only retrain the shipped base model's recipe into DIR (about 16 minutes)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: a tiny model gains nothing from a second thread "
        "and slows down many times when another process competes for the cores)",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    if not torch.cuda.is_available():
        torch.set_num_threads(max(1, args.threads))
    if args.pretrain_base:
        pretrain_base(args.pretrain_base, seed=args.seed)
        return 0
    plan = replace(QUICK if args.quick else DemoPlan())
    if args.from_scratch:
        model = None
        plan.sft_lr = 3e-4  # measured best from random weights (docs/demo.md)
    else:
        model = args.model or str(BASE_MODEL)
    run_demo(args.out, plan, model=model, seed=args.seed)
    return 0
