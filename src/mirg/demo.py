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
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mirg.data.synth import WorldConfig

STAGES = ("base", "sft", "grpo")
#: The shipped base: a tiny Qwen3-VL that mirg pre-trained (pretrain_base; its figures are
#: in docs/demo.md).
BASE_MODEL = Path(__file__).resolve().parent / "assets" / "demo-base-qwen3-vl"
#: The demo's trainer settings, shipped with the package (mirg.train.configs.load_config).
DEMO_RECIPES = Path(__file__).resolve().parent / "recipes" / "demo"
METRIC_KEYS = ("acc@0.3", "acc@0.5", "acc@0.7", "miou", "image_acc")

#: The demo's world: 84-px images, one object per image on a 3x3 grid of 28-px cells, a
#: fixed question layout, three families: single-image localisation (learnable in minutes),
#: two-image common-object questions (the question names the image to answer in) and
#: two-image binding, the cross-image choice the image reward is for ("Find the small red
#: circle in one of the images."; the other image holds a look-alike of another colour;
#: image chance 50%). Look-alikes change colour only: the tiny vision tower tells colours
#: apart but barely shapes at 28 px (docs/demo.md). Half the binding look-alikes sit exactly
#: where the target sits (``same_place_look_alike=0.5``): there a box on the wrong image
#: overlaps the target fully, which plain IoU rewards and the image-gated reward does not.
DEMO_WORLD = WorldConfig(
    families=("single_object", "common_object", "group_grounding"),
    weights=(1.0, 1.0, 3.0),  # 3 in 5 samples are binding: the skill SFT learns slowest
    image_size=84,
    images=(2, 2),
    distractors=(0, 0),
    sizes=("small",),
    backgrounds=("flat",),
    fixed_layout=True,
    look_alike_changes=("colour",),
    same_place_look_alike=0.5,
)


@dataclass
class DemoPlan:
    """Sizes and budgets of one demo run (``--quick`` shrinks everything).

    The defaults come from measured probes on this CPU (docs/demo.md): the shipped 128-wide
    two-layer Qwen3-VL base, SFT at 1e-4 with a cosine schedule, and the ``lookup``
    trajectory detail: a table of each image's deciding value followed by its number where
    the model must choose the image (the choice became learnable with it), the conclusion
    only elsewhere, so completions stay short enough for GRPO's sampling on a CPU.
    """

    samples: int = 3000
    sft_steps: int = 1000
    grpo_steps: int = 40
    eval_items: int = 120  # test items evaluated per stage, split evenly over families
    sft_batch: int = 8
    sft_lr: float = 1e-4  # from the shipped base; --from-scratch uses 3e-4 (measured)
    grpo_lr: float = 1e-5
    num_generations: int = 8
    grpo_batch: int = 32  # completions per step: 4 prompts x 8 generations
    max_new_tokens: int = 104  # the longest trajectory (a binding table) is 92 tokens
    trajectory_detail: str = "lookup"
    device: str = "cpu"  # the documented figures are CPU figures; "cuda"/"auto" for a GPU
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
    """The demo's SFT recipe (``DEMO_RECIPES/sft.yaml``: the whole model trains, cosine
    schedule with 5% warm-up, on the CPU) with this run's model, data and budget.
    ``seed`` None keeps TRL's default."""
    from mirg.train.configs import SFTTrainConfig, load_config

    values = {
        "model_name_or_path": model,
        "dataset_path": dataset,
        "output_dir": output_dir,
        "max_steps": steps,
        "learning_rate": lr,
        "per_device_train_batch_size": batch,
        "logging_steps": logging_steps,
        "overwrite_output_dir": True,  # a rerun of the demo trains its stages afresh
        **extra,
    }
    if seed is not None:
        values["seed"] = seed
    return load_config(SFTTrainConfig, DEMO_RECIPES / "sft.yaml", values)


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
    """The demo's GRPO recipe (``DEMO_RECIPES/grpo.yaml``: sampling at temperature 1, KL
    coefficient 0.04, cosine schedule, on the CPU) with this run's model, data and budget."""
    from mirg.train.configs import GRPOTrainConfig, load_config

    values = {
        "model_name_or_path": model,
        "dataset_path": dataset,
        "output_dir": output_dir,
        "max_steps": steps,
        "learning_rate": lr,
        "num_generations": num_generations,
        "per_device_train_batch_size": batch,
        "max_completion_length": max_completion_length,
        "seed": seed,
        "logging_steps": logging_steps,
        "overwrite_output_dir": True,
        **extra,
    }
    return load_config(GRPOTrainConfig, DEMO_RECIPES / "grpo.yaml", values)


QUICK = DemoPlan(
    samples=120,
    sft_steps=40,
    grpo_steps=4,
    eval_items=16,
    sft_batch=4,
    num_generations=4,
    grpo_batch=8,
    max_new_tokens=104,
    model_spec={},
)


def _stage_metrics(out: Path) -> dict[str, Any]:
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    return {
        **metrics["average"],
        "tasks": metrics["tasks"],
        "truncated": metrics.get("truncated", 0),
    }


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


def write_trajectories(
    samples: str | Path, out: str | Path, profile: str, detail: str, seed: int = 0
) -> Path:
    """SFT records (reasoning trajectory + canonical answer) for every sample of a split."""
    from mirg.data.exports import Exporter, export
    from mirg.data.schema import read_samples

    samples = Path(samples)
    exporter = Exporter(profile, root=samples.parent, seed=seed, detail=detail)
    export(read_samples(samples, check_images="none"), "sft", out, exporter)
    return Path(out)


@contextmanager
def _stage(name: str, log: Path, total: int | None = None, unit: str = "step") -> Iterator[Any]:
    """One progress bar on the terminal for a stage; everything the libraries print while
    it runs (TRL's log dictionaries, warnings) goes to ``log`` instead."""
    import logging
    import warnings

    from tqdm.auto import tqdm

    terminal = sys.stderr
    bar = tqdm(total=total, desc=f"{name:<9}", unit=unit, file=terminal, leave=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with (
        log.open("a", encoding="utf-8") as fh,
        redirect_stdout(fh),
        redirect_stderr(fh),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("default")
        handler = logging.StreamHandler(fh)
        logging.getLogger().addHandler(handler)
        try:
            yield bar
        finally:
            logging.getLogger().removeHandler(handler)
            bar.close()


def _bar_callback(bar: Any) -> Any:
    """A TrainerCallback that moves a stage's progress bar with the trainer's steps."""
    from transformers import TrainerCallback

    class BarCallback(TrainerCallback):
        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            bar.reset(total=state.max_steps)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            bar.update(state.global_step - bar.n)

    return BarCallback()


def unseen_layout_ids(data: Path) -> set[str]:
    """Test sample ids whose question and object layout never occur in the training split
    (small worlds repeat layouts; these items measure more than recall)."""
    from mirg.data.schema import read_samples
    from mirg.data.synth import layout_key

    seen = {layout_key(s) for s in read_samples(data / "train.jsonl", check_images="none")}
    test = read_samples(data / "test.jsonl", check_images="none")
    return {s.id for s in test if layout_key(s) not in seen}


def subset_metrics(eval_dir: Path, items: list, keep: set[str], profile: str) -> dict:
    """Strict metrics of an evaluation folder's predictions on the ``items`` in ``keep``."""
    from mirg.core.scoring import aggregate, read_predictions, score_items

    chosen = [it for it in items if it.key in keep]
    if not chosen:
        return {"n": 0}
    predictions = read_predictions(eval_dir / "predictions.jsonl")
    predictions = {k: p for k, p in predictions.items() if k in keep}
    metrics = aggregate(score_items(chosen, predictions, "strict", profile), "strict")
    return {"n": len(chosen), **metrics["average"], "tasks": metrics["tasks"]}


def run_demo(out: str | Path, plan: DemoPlan, model: str | None = None, seed: int = 0) -> dict:
    """Run every stage; returns the summary written to ``out/summary.json``."""
    from mirg.data.synth import write_dataset
    from mirg.eval.chance import chance_metrics
    from mirg.eval.items import load_eval_items
    from mirg.eval.run import EvalConfig, evaluate
    from mirg.models.loading import detect_family, resolve_profile
    from mirg.train.grpo import run_grpo
    from mirg.train.sft import run_sft

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    log = out / "logs" / "train.log"
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 1)

    # 1. data and trajectories
    t0 = time.perf_counter()
    data = out / "data"
    if not (data / "manifest.json").is_file():
        write_dataset(data, plan.samples, seed, plan.world)
    timed("data", t0)

    # 2. model: the given one, or (None) a tiny Qwen3-VL from random weights
    t0 = time.perf_counter()
    if model is None:
        from mirg.models.tiny import TinySpec, save_tiny_model

        model_dir = out / "model-base"
        if not (model_dir / "config.json").is_file():
            save_tiny_model(model_dir, "qwen3-vl", TinySpec(**plan.model_spec))
        model = str(model_dir)
    profile = resolve_profile(detect_family(model), None, what=model).name
    trajectories = data / f"trajectories-{profile}-{plan.trajectory_detail}.jsonl"
    if not trajectories.is_file():
        write_trajectories(data / "train.jsonl", trajectories, profile, plan.trajectory_detail)
    timed("model and trajectories", t0)
    print(
        f"data: {plan.samples} samples of {', '.join(plan.world.families)}; "
        f"trajectories ({plan.trajectory_detail}) for {profile} "
        f"({timings['data'] + timings['model and trajectories']:.0f} s)",
        file=sys.stderr,
    )

    test = data / "test.jsonl"
    per_task = max(1, plan.eval_items // len(plan.world.families))  # first N of each task
    items = load_eval_items(test, limit=per_task)
    train_boxes = [it.target_box for it in load_eval_items(data / "train.jsonl")]
    chance = chance_metrics(items, train_boxes, seed=seed)
    unseen = unseen_layout_ids(data)

    def evaluate_stage(stage: str, model_path: str) -> dict[str, Any]:
        t0 = time.perf_counter()
        folder = out / f"eval-{stage}"
        cfg = EvalConfig(
            model=model_path,
            data=str(test),
            out=str(folder),
            limit=per_task,
            batch_size=16,
            max_new_tokens=plan.max_new_tokens,
            device=plan.device,
        )
        with _stage(f"eval {stage}", log, len(items), "item") as bar:
            evaluate(cfg, progress=False)
            bar.update(len(items))
        timed(f"eval {stage}", t0)
        return {
            **_stage_metrics(folder),
            "unseen_layouts": subset_metrics(folder, items, unseen, profile),
        }

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
        disable_tqdm=True,
        use_cpu=plan.device == "cpu",
    )
    with _stage("sft", log, plan.sft_steps) as bar:
        sft_result = run_sft(sft, callbacks=[_bar_callback(bar)])
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
        disable_tqdm=True,
        use_cpu=plan.device == "cpu",
    )
    with _stage("grpo", log, plan.grpo_steps) as bar:
        grpo_result = run_grpo(grpo, callbacks=[_bar_callback(bar)])
    timed("grpo", t0)
    stages["grpo"] = evaluate_stage("grpo", grpo_result.output_dir)

    chance_row = {**chance["average"], "tasks": chance["tasks"]}
    summary = {
        **{s: stages[s] for s in STAGES},
        "chance": chance_row,
        "test_items": len(items),
        "test_items_unseen_layout": sum(it.key in unseen for it in items),
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


def write_base_curriculum(
    out: str | Path, n: int, seed: int, world: WorldConfig, profile: str = "qwen3-vl"
) -> Path:
    """The base's training trajectories from ``n`` samples of ``world``, half in the demo's
    fixed wording: ``minimal`` (the conclusion) for localisation, ``brief`` (the naming
    sentence, then the conclusion) for naming; returns the JSONL path."""
    from mirg.data.exports import Exporter
    from mirg.data.schema import read_samples
    from mirg.data.synth import write_dataset
    from mirg.files import atomic_write

    out = Path(out)
    samples = []
    for part, fixed in (("fixed", True), ("varied", False)):
        write_dataset(
            out / part,
            n // 2,
            seed + int(fixed),
            replace(world, fixed_layout=fixed),
            fractions=(1, 0, 0),
        )
        part_samples = read_samples(out / part / "train.jsonl", check_images="none")
        samples += [
            replace(s, id=f"{part}-{s.id}", images=[f"{part}/{i}" for i in s.images])
            for s in part_samples
        ]
    trajectories = out / "trajectories.jsonl"
    with atomic_write(trajectories) as handle:
        for sample in samples:
            detail = "brief" if sample.task == "name_object" else "minimal"
            exporter = Exporter(profile, root=out, seed=seed, detail=detail)
            handle.write(json.dumps(exporter.sft(sample), ensure_ascii=False) + "\n")
    return trajectories


def sinusoidal_positions(model_dir: str | Path, image: str | Path, scale: float = 3.0) -> None:
    """Give a tiny Qwen3-VL's vision tower a fixed-looking 2-D sinusoidal position table,
    ``scale`` times the spread of its patch embeddings on ``image``, and save the model.

    A real VLM's vision tower has learned where each patch is; a tiny random tower has
    not, and its small random table is washed out by the content, so the language model
    can only read an object's place from the rotary distance between its answer and the
    image, which changes with the prompt's layout (docs/demo.md, the base model). With
    this table the tower's output carries the place and training reads it from there.
    """
    import math

    import torch
    from PIL import Image

    from mirg.models.loading import load_model_and_processor

    loaded = load_model_and_processor(model_dir)
    tower = loaded.model.model.visual
    rows_cols, dim = tower.pos_embed.weight.shape
    side, quarter = math.isqrt(rows_cols), dim // 4
    freqs = torch.exp(-math.log(2.0 * side) * torch.arange(quarter) / quarter) * math.pi
    grid = torch.arange(side, dtype=torch.float32)
    row, col = grid.repeat_interleave(side), grid.repeat(side)

    def waves(p: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.sin(p[:, None] * freqs), torch.cos(p[:, None] * freqs)], 1)

    table = torch.cat([waves(row), waves(col)], 1)
    with Image.open(image) as picture:
        pixels = loaded.processor.image_processor(
            images=[picture.convert("RGB")], return_tensors="pt"
        )
    with torch.no_grad():
        content = tower.patch_embed(pixels["pixel_values"].to(tower.pos_embed.weight.dtype))
        tower.pos_embed.weight.copy_(table / table.std() * content.std() * scale)
    loaded.model.save_pretrained(model_dir)


def pretrain_base(
    out: str | Path,
    seed: int = 0,
    *,
    steps: tuple[int, int, int] = (4000, 2000, 4000),
    samples: int = 16000,
    probe_items: int = 80,
    device: str = "cpu",
) -> Path:
    """Retrain the shipped base by its recipe (the skill repeats, the bytes need not).

    1. A tiny Qwen3-VL (``DEMO_MODEL``) from random weights learns single-image
       localisation: the ``single`` world (3,000 samples, ``minimal`` trajectories).
    2. Its vision tower gets a 2-D sinusoidal position table (:func:`sinusoidal_positions`)
       and it learns the same task with 0-40 unrelated words before the question (5,000
       samples), so it must read the place from the image, not from the layout.
    3. The multi-image curriculum (:data:`BASE_WORLD`, ``samples`` samples): localisation
       in 1-4 images with the image named, grounded naming, a look-alike in the image.
    Each stage: batch 8, cosine schedule, learning rate 3e-4 (2e-4 for stage 3);
    ``steps`` per stage. Writes ``out/model`` and ``out/probe.json`` (the position-gap probe,
    :mod:`mirg.eval.position_gap`).
    """
    from mirg.data.synth import PRESETS, write_dataset
    from mirg.eval.position_gap import probe_model
    from mirg.models.tiny import TinySpec, save_tiny_model
    from mirg.train.sft import run_sft

    out = Path(out)
    single, gaps = out / "1-single", out / "2-gaps"
    worlds = {
        single: (PRESETS["single"], 3000, seed),
        gaps: (replace(PRESETS["single"], filler_words=(0, 40)), 5000, seed + 7),
    }
    for folder, (world, n, world_seed) in worlds.items():
        if not (folder / "data" / "trajectories.jsonl").is_file():
            write_dataset(folder / "data", n, world_seed, world, fractions=(1, 0, 0))
            write_trajectories(
                folder / "data" / "train.jsonl",
                folder / "data" / "trajectories.jsonl",
                "qwen3-vl",
                "minimal",
            )
    curriculum = write_base_curriculum(out / "3-curriculum" / "data", samples, seed + 3, BASE_WORLD)
    save_tiny_model(out / "random-init", "qwen3-vl", TinySpec(**DEMO_MODEL))

    def stage(start: Path, folder: Path, data: Path, n_steps: int, lr: float) -> Path:
        config = cpu_sft_config(
            str(start),
            str(data),
            str(folder / "model"),
            n_steps,
            lr,
            seed=seed,
            logging_steps=100,
            use_cpu=device == "cpu",
        )
        run_sft(config)
        return folder / "model"

    model = stage(
        out / "random-init", single, single / "data" / "trajectories.jsonl", steps[0], 3e-4
    )
    sinusoidal_positions(model, next((single / "data" / "images" / "train").glob("*.png")))
    model = stage(model, gaps, gaps / "data" / "trajectories.jsonl", steps[1], 3e-4)
    model = stage(model, out / "3-curriculum", curriculum, steps[2], 2e-4)
    probe = probe_model(model, out / "probe", items=probe_items, device=device)
    (out / "probe.json").write_text(json.dumps(probe, indent=2) + "\n", encoding="utf-8")
    print(f"base model: {model}; position-gap probe: {probe}")
    print(f"use it: mirg demo --model {model}")
    return model


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
    n = summary.get("test_items_unseen_layout", 0)
    if n:
        unseen = ", ".join(
            f"{stage} {summary[stage]['unseen_layouts']['acc@0.5']:.1f}" for stage in STAGES
        )
        lines.append(f"Acc@0.5 on the {n} items whose layout never occurs in training: {unseen}")
    cut = {stage: summary[stage].get("truncated", 0) for stage in STAGES}
    if any(cut.values()):
        counts = ", ".join(f"{stage} {k}" for stage, k in cut.items())
        lines.append(f"answers cut off at max_new_tokens (scored as wrong): {counts}")
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
        "--device",
        default="cpu",
        help="cpu (default: the documented figures are CPU figures), cuda, cuda:N or auto "
        "(training and evaluation; a real VLM given with --model wants a GPU)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: a tiny model gains nothing from a second thread "
        "and slows down many times when another process competes for the cores)",
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from mirg.models.placement import resolve_device

    device = resolve_device(args.device)
    if device == "cpu":
        torch.set_num_threads(max(1, args.threads))
    if args.pretrain_base:
        pretrain_base(args.pretrain_base, seed=args.seed, device=device)
        return 0
    plan = replace(QUICK if args.quick else DemoPlan(), device=device)
    if args.from_scratch:
        model = None
        plan.sft_lr = 3e-4  # measured best from random weights (docs/demo.md)
    else:
        model = args.model or str(BASE_MODEL)
    run_demo(args.out, plan, model=model, seed=args.seed)
    return 0
