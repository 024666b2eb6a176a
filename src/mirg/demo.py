"""``mirg demo``: the whole MIRG-RL pipeline on this laptop, with nothing downloaded.

synthetic world -> reasoning trajectories -> base model -> SFT -> image-aware GRPO ->
strict evaluation of every stage on the held-out test split -> ``report.html`` and
``summary.json``, every figure beside the chance level of the same split
(:mod:`mirg.eval.chance`): a tiny model trained for minutes is far from a pretrained VLM.

The base plays a user's pretrained VLM: a tiny Qwen3-VL shipped in ``mirg/assets/``
(:mod:`mirg.demo_base`); ``--from-scratch`` starts from random weights, ``--model PATH``
from your own model.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from mirg.data.synth import SMALL_WORLD, WorldConfig, layout_key, write_dataset
from mirg.data.synth.world import dataset_identity, holds_dataset

STAGES = ("base", "sft", "grpo")
#: The shipped base: a tiny Qwen3-VL that mirg pre-trained (mirg.demo_base.pretrain_base;
#: its figures are in docs/demo.md).
BASE_MODEL = Path(__file__).resolve().parent / "assets" / "demo-base-qwen3-vl"
#: The demo's trainer settings, shipped with the package (mirg.train.recipes.load_config).
DEMO_RECIPES = Path(__file__).resolve().parent / "recipes" / "demo"

#: The demo's world: 84-px images, one object per image on a 3x3 grid of 28-px cells, a
#: fixed question layout, three families: single-image localisation (learnable in minutes),
#: two-image common-object questions (the question names the image to answer in) and
#: two-image binding, the cross-image choice the image reward is for ("Find the small red
#: circle in one of the images."; the other image holds a look-alike of another colour;
#: image chance 50%). Look-alikes change colour only: the tiny vision tower tells colours
#: apart but barely shapes at 28 px (docs/demo.md). Half the binding look-alikes sit exactly
#: where the target sits (``same_place_look_alike=0.5``): there a box on the wrong image
#: overlaps the target fully, which plain IoU rewards and the image-gated reward does not.
DEMO_WORLD = replace(
    SMALL_WORLD,
    families=("single_object", "common_object", "group_grounding"),
    weights=(1.0, 1.0, 3.0),  # 3 in 5 samples are binding: the skill SFT learns slowest
    images=(2, 2),
    look_alike_changes=("colour",),
    same_place_look_alike=0.5,
)


@dataclass
class DemoPlan:
    """Sizes and budgets of one demo run (``--quick`` shrinks everything); the defaults are
    measured on this CPU (docs/demo.md). The ``lookup`` detail (a table of each image's
    deciding value where the model must choose the image, the conclusion only elsewhere)
    made the choice learnable and keeps completions short enough for GRPO on a CPU."""

    samples: int = 3000
    grpo_samples: int = 2500  # GRPO's own prompts: a fresh world (seed + 1), binding-weighted
    sft_steps: int = 1000
    grpo_steps: int = 200
    eval_items: int = 120  # test items evaluated per stage, split evenly over families
    sft_batch: int = 8
    sft_lr: float = 1e-4  # from the shipped base; --from-scratch uses 3e-4 (measured)
    grpo_lr: float = 1e-5  # 3e-5 swung the image prior in 2 of 5 seeds (docs/demo.md)
    num_generations: int = 8
    grpo_batch: int = 32  # completions per step: 4 prompts x 8 generations
    max_new_tokens: int = 104  # the longest trajectory (a binding table) is 92 tokens
    trajectory_detail: str = "lookup"
    device: str = "cpu"  # the documented figures are CPU figures; "cuda"/"auto" for a GPU
    model_spec: dict = field(default_factory=lambda: dict(DEMO_MODEL))
    world: WorldConfig = field(default_factory=lambda: DEMO_WORLD)
    # GRPO's prompts weight the families by how much signal their groups carry for the image
    # reward: only binding questions leave the image to the model (the other two families
    # name it or have one image), so 8 in 10 prompts are binding, the rest keep localisation.
    grpo_family_weights: tuple[float, ...] = (1.0, 1.0, 8.0)


#: The tiny model the demo builds: wider than the test models so that it learns to read
#: positions from the image (measured in docs/demo.md).
DEMO_MODEL = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "vision_hidden_size": 64,
    "vision_intermediate_size": 128,
}


def demo_config(stage: str, **values: Any) -> Any:
    """The demo's recipe for ``stage`` (``DEMO_RECIPES/<stage>.yaml``) with this run's
    values, by TRL's names. A rerun trains afresh."""
    from mirg.train.configs import GRPOTrainConfig, SFTTrainConfig
    from mirg.train.recipes import load_config

    kind = {"sft": SFTTrainConfig, "grpo": GRPOTrainConfig}[stage]
    recipe = DEMO_RECIPES / f"{stage}.yaml"
    return load_config(kind, recipe, {"overwrite_output_dir": True, **values})


QUICK = DemoPlan(
    samples=120,
    grpo_samples=60,
    sft_steps=40,
    grpo_steps=4,
    eval_items=16,
    sft_batch=4,
    num_generations=4,
    grpo_batch=8,
    model_spec={},
)


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

    exporter = Exporter(profile, root=Path(samples).parent, seed=seed, detail=detail)
    export(read_samples(samples, check_images="none"), "sft", out, exporter)
    return Path(out)


def write_grpo_prompts(out: Path, plan: DemoPlan, seed: int) -> Path:
    """GRPO's prompts: fresh samples (world seed ``seed + 1``), not the ones SFT already
    learned from, the demo's world weighted by ``plan.grpo_family_weights``; written once
    into ``out/data-grpo``."""
    folder = Path(out) / "data-grpo"
    world = replace(plan.world, weights=plan.grpo_family_weights)
    write_world(folder, plan.grpo_samples, seed + 1, world)
    return folder / "train.jsonl"


def write_world(folder: Path, n: int, seed: int, world: WorldConfig) -> None:
    """A synthetic dataset, written unless ``folder`` already holds this very one (another
    one there is refused, as ``mirg synth`` refuses it)."""
    if not holds_dataset(folder, dataset_identity(n, seed, world)):
        write_dataset(folder, n, seed, world)


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


def unseen_layout_ids(data: Path, *trained_on: Path) -> set[str]:
    """Test sample ids whose question and object layout never occur in the training split
    (or in the ``trained_on`` splits): small worlds repeat layouts; these items measure
    more than recall."""
    from mirg.data.schema import read_samples

    seen = set()
    for split in trained_on or (data / "train.jsonl",):
        seen |= {layout_key(s) for s in read_samples(split, check_images="none")}
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


#: The record a demo folder holds first: a folder without it is not the demo's to replace.
DEMO_RECORD = "mirg_demo.json"
#: What a demo run writes at the top of its folder.
DEMO_WRITES = (
    "summary.json",
    "report.html",
    "logs",
    "data",
    "data-grpo",
    "model-base",
    "sft",
    "grpo",
    *(f"eval-{stage}" for stage in STAGES),
)


def run_demo(
    out: str | Path,
    plan: DemoPlan,
    model: str | None = None,
    seed: int = 0,
    overwrite: bool = False,
) -> dict:
    """Run every stage; returns the summary written to ``out/summary.json``.

    ``out`` must be empty, new, or an earlier demo's folder (it holds ``mirg_demo.json``):
    a folder holding files a demo would replace that no demo wrote is refused unless
    ``overwrite``. One demo at a time writes a folder (its lock)."""
    from mirg.files import check_free, folder_lock, write_json
    from mirg.outputs import claim_folder

    out = Path(out)
    check_free(out)
    claim_folder(out, command="mirg demo", record=DEMO_RECORD, writes=DEMO_WRITES,
                 ours=(out / DEMO_RECORD).is_file(), overwrite=overwrite)  # fmt: skip
    with folder_lock(out, "mirg demo"):
        write_json(out / DEMO_RECORD, {"command": "mirg demo", "seed": seed})
        return _run_stages(out, plan, model, seed)


def _run_stages(out: Path, plan: DemoPlan, model: str | None, seed: int) -> dict:
    from mirg.eval.benchmarks import load_eval_items
    from mirg.eval.chance import chance_metrics
    from mirg.eval.run import EvalConfig, evaluate
    from mirg.models.loading import find_family, resolve_profile
    from mirg.train.grpo import run_grpo
    from mirg.train.sft import run_sft

    log = out / "logs" / "train.log"
    t_start = time.perf_counter()
    timings: dict[str, float] = {}

    def timed(name: str, t0: float) -> None:
        timings[name] = round(time.perf_counter() - t0, 1)

    # 1. data and trajectories
    t0 = time.perf_counter()
    data = out / "data"
    write_world(data, plan.samples, seed, plan.world)
    timed("data", t0)

    # 2. model: the given one, or (None) a tiny Qwen3-VL from random weights
    t0 = time.perf_counter()
    if model is None:
        from mirg.models.tiny import TinySpec, save_tiny_model

        model_dir = out / "model-base"
        if not (model_dir / "config.json").is_file():
            save_tiny_model(model_dir, "qwen3-vl", TinySpec(**plan.model_spec))
        model = str(model_dir)
    profile = resolve_profile(find_family(model), None, what=model).name
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

    grpo_prompts = write_grpo_prompts(out, plan, seed)
    test = data / "test.jsonl"
    per_task = max(1, plan.eval_items // len(plan.world.families))  # first N of each task
    items = load_eval_items(test, limit=per_task)
    train_boxes = [it.target_box for it in load_eval_items(data / "train.jsonl")]
    chance = chance_metrics(items, train_boxes, seed=seed)
    unseen = unseen_layout_ids(data)
    unseen_by_grpo = unseen_layout_ids(data, grpo_prompts)

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
            metrics = evaluate(cfg, progress=False)
            bar.update(len(items))
        timed(f"eval {stage}", t0)
        return {
            **metrics["average"],
            "tasks": metrics["tasks"],
            "truncated": metrics["truncated"],
            "unseen_layouts": subset_metrics(folder, items, unseen, profile),
        }

    stages: dict[str, Any] = {"base": evaluate_stage("base", model)}

    common = dict(seed=seed, disable_tqdm=True, use_cpu=plan.device == "cpu")

    # 3. SFT on the trajectories
    t0 = time.perf_counter()
    sft = demo_config(
        "sft",
        model_name_or_path=model,
        dataset_path=str(trajectories),
        output_dir=str(out / "sft"),
        max_steps=plan.sft_steps,
        learning_rate=plan.sft_lr,
        per_device_train_batch_size=plan.sft_batch,
        logging_steps=max(1, plan.sft_steps // 50),
        **common,
    )
    with _stage("sft", log, plan.sft_steps) as bar:
        sft_result = run_sft(sft, callbacks=[_bar_callback(bar)])
    timed("sft", t0)
    stages["sft"] = evaluate_stage("sft", sft_result.output_dir)

    # 4. image-aware GRPO from the SFT model, on the samples (targets in columns)
    t0 = time.perf_counter()
    grpo = demo_config(
        "grpo",
        model_name_or_path=sft_result.output_dir,
        dataset_path=str(grpo_prompts),
        output_dir=str(out / "grpo"),
        max_steps=plan.grpo_steps,
        learning_rate=plan.grpo_lr,
        num_generations=plan.num_generations,
        per_device_train_batch_size=plan.grpo_batch,
        max_completion_length=plan.max_new_tokens,
        **common,
    )
    with _stage("grpo", log, plan.grpo_steps) as bar:
        grpo_result = run_grpo(grpo, callbacks=[_bar_callback(bar)])
    timed("grpo", t0)
    stages["grpo"] = evaluate_stage("grpo", grpo_result.output_dir)

    summary = {
        **{s: stages[s] for s in STAGES},
        "chance": {**chance["average"], "tasks": chance["tasks"]},
        "test_items": len(items),
        "test_items_unseen_layout": sum(it.key in unseen for it in items),
        # small worlds repeat: how many test samples share a train sample's question and
        # layout (the held-out figures partly measure recall of those)
        "test_layouts_seen_in_train": json.loads((data / "manifest.json").read_text())[
            "test_layouts_seen_in_train"
        ],
        # GRPO's prompts come from another seed, but the small world repeats layouts too
        "test_items_layout_in_grpo_prompts": sum(it.key not in unseen_by_grpo for it in items),
        "profile": profile,
        "model": model,
        "seed": seed,
        "plan": {k: v for k, v in asdict(plan).items() if k != "world"},
        "world": asdict(plan.world),
        "seconds": {**timings, "total": round(time.perf_counter() - t_start, 1)},
        "curves": {
            "sft": _curves(sft_result.log_history, ("loss",)),
            "grpo": _curves(grpo_result.log_history, ("reward", "loss")),
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    from mirg.demo_report import write_demo_report

    write_demo_report(out, summary)
    print(summary_table(summary))
    print(f"[demo] report: {out / 'report.html'}  summary: {out / 'summary.json'}")
    return summary


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
