"""The stages of the prepared GPU check (scripts/gpu_check.sh runs them, one process each).

    python scripts/gpu_check.py STAGE --out DIR [--dry-run]
    python scripts/gpu_check.py table --out DIR

Each stage appends one JSON line to DIR/results.jsonl: its name, ``ok``/``skipped``/
``failed``, seconds, its figures, and why it was skipped or failed. On a GPU the models
are random-init stand-ins at real dimensions (benchmarks/stand-ins/*.json: nothing is
downloaded); ``--dry-run`` runs every stage on the CPU with tiny models of the same
families, so the test suite checks the check itself.

Figures: SFT step time (median after the first step), peak GPU memory, the share of
trainable weights that changed (bf16 mixed precision with fp32 master weights must move
nearly all of them); GRPO step time split into generation and the rest; the LoRA adapter
merged and reloaded; batched evaluation items/s and how often batched and one-at-a-time
greedy answers agree; where the model was placed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
STAND_INS = REPO / "benchmarks" / "stand-ins"
RESULTS = "results.jsonl"

#: stage -> (stand-in, recipe) for the training stages
SFT_STAGES = {
    "sft-qwen2.5-vl-3b": ("qwen2.5-vl-3b", "recipes/qwen2.5-vl-3b/sft.yaml"),
    "sft-qwen3-vl-4b": ("qwen3-vl-4b", "recipes/qwen3-vl-4b/sft.yaml"),
}
GRPO_MODEL = ("qwen3-vl-2b", "recipes/qwen3-vl-4b/grpo.yaml")
STAGES = (
    "env",
    "placement",
    *SFT_STAGES,
    "grpo-hf",
    "grpo-vllm",
    "lora-grpo",
    "eval",
)


def varied_reward(completions: list, **_: Any) -> list[float]:
    """A reward that varies between completions, so a random model's GRPO step has a
    gradient (the grounding rewards of random text are all 0): the completion's length."""
    from mirg.core.rewards import completion_text

    return [min(len(completion_text(c)), 200) / 200 for c in completions]


# --------------------------------------------------------------------------- shared setup


class Check:
    """What every stage shares: the output folder, dry-run or GPU, data and stand-ins."""

    def __init__(self, out: Path, dry_run: bool) -> None:
        self.out = out
        self.dry = dry_run
        out.mkdir(parents=True, exist_ok=True)

    @property
    def device(self) -> str:
        return "cpu" if self.dry else "cuda"

    def data(self) -> Path:
        """A small synthetic split: two 84-px images per sample, the question names one."""
        from mirg.data.synth import PRESETS, write_dataset

        folder = self.out / "data"
        if not (folder / "manifest.json").is_file():
            write_dataset(folder, 64, 0, PRESETS["starter"])
        return folder

    def model(self, name: str) -> Path:
        """The stand-in ``name`` (real dimensions, random weights initialised on the GPU,
        bf16 on disk like a released checkpoint) or, in a dry run, a tiny model of the same
        family."""
        import torch

        from mirg.models.tiny import TinySpec, build_tiny_model, load_spec, save_tiny_model

        folder = self.out / "models" / name
        if (folder / "config.json").is_file():
            return folder
        family, spec = load_spec(STAND_INS / f"{name}.json")
        if self.dry:
            save_tiny_model(folder, family, TinySpec())
            return folder
        with torch.device("cuda"):  # billions of random weights: seconds on the GPU
            model, processor = build_tiny_model(family, spec)
        model.to(torch.bfloat16).save_pretrained(folder)
        processor.save_pretrained(folder)
        del model
        torch.cuda.empty_cache()
        return folder

    def trajectories(self, model: Path) -> Path:
        """SFT records for ``model``, frames taken from its processor's own caps."""
        from mirg.data.exports import Exporter
        from mirg.data.schema import read_samples
        from mirg.files import atomic_write
        from mirg.models.loading import detect_family, frame_rule, load_processor

        path = self.out / f"trajectories-{model.name}.jsonl"
        if not path.is_file():
            data = self.data()
            profile = detect_family(model)
            exporter = Exporter(
                profile,
                root=data,
                detail="minimal",
                frame_rule=frame_rule(load_processor(model)),
            )
            with atomic_write(path) as handle:
                for sample in read_samples(data / "train.jsonl"):
                    handle.write(json.dumps(exporter.sft(sample)) + "\n")
        return path

    def overrides(self, model: Path, dataset: Path, output: str, steps: int) -> dict[str, Any]:
        """What every training stage changes in its recipe: the stand-in, the data, a
        fresh output folder, a few steps, nothing saved on the way, no reporters."""
        values: dict[str, Any] = {
            "model_name_or_path": str(model),
            "dataset_path": str(dataset),
            "output_dir": str(self.out / output),
            "overwrite_output_dir": True,
            "max_steps": steps,
            "per_device_train_batch_size": 2,
            "gradient_accumulation_steps": 1,
            "logging_steps": 1,
            "save_strategy": "no",
            "report_to": "none",
            "grounding_eval_path": "none",
            "dataloader_num_workers": 0,
        }
        if self.dry:
            # tiny models: no pixel caps of the real ones, CPU asked for explicitly
            values.update({"use_cpu": True, "min_pixels": None, "max_pixels": None})
        return values


class StepTimes:
    """Wall time of each optimizer step, and the GPU's peak memory (a TrainerCallback)."""

    def __new__(cls) -> Any:
        from transformers import TrainerCallback

        class Callback(TrainerCallback):
            def __init__(self) -> None:
                self.seconds: list[float] = []
                self._t0 = 0.0

            def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                self._t0 = time.perf_counter()

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                _sync()
                self.seconds.append(time.perf_counter() - self._t0)

        return Callback()


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _peak_gib() -> float | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def _median_after_first(values: list[float]) -> float | None:
    rest = values[1:] or values
    return round(statistics.median(rest), 3) if rest else None


def _trainable_snapshot(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _share_changed(model: Any, before: dict[str, Any]) -> float:
    changed = total = 0
    for name, param in model.named_parameters():
        if name in before:
            changed += int((param.detach() != before[name]).sum())
            total += param.numel()
    return round(changed / total, 4) if total else 0.0


# --------------------------------------------------------------------------- stages


def stage_env(check: Check) -> dict[str, Any]:
    import importlib.metadata as md
    import platform

    import torch

    versions = {}
    for package in ("torch", "transformers", "trl", "peft", "accelerate", "datasets", "vllm",
                    "flash-attn", "deepspeed"):  # fmt: skip
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            versions[package] = None
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    if not check.dry and gpu is None:
        raise RuntimeError("no CUDA device visible to torch; the GPU stages cannot run")
    return {
        "python": platform.python_version(),
        "gpu": gpu,
        "gpu_memory_gib": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        if gpu
        else None,
        "cuda": torch.version.cuda,
        "bf16_supported": bool(gpu and torch.cuda.is_bf16_supported()),
        "versions": versions,
    }


def stage_placement(check: Check) -> dict[str, Any]:
    """``--device`` places the whole model (not the CPU by default on a GPU machine)."""
    from mirg.models.loading import load_model_and_processor
    from mirg.models.placement import placement_kwargs

    model_dir = check.model(GRPO_MODEL[0])
    kwargs = placement_kwargs("auto")
    loaded = load_model_and_processor(model_dir, **kwargs)
    devices = sorted({str(p.device) for p in loaded.model.parameters()})
    expected = check.device
    if not all(d.startswith(expected) for d in devices):
        raise RuntimeError(f"--device auto placed parameters on {devices}, expected {expected}")
    return {
        "device_auto": devices,
        "dtype": str(kwargs["dtype"]).replace("torch.", ""),
        "attention": kwargs["attn_implementation"],
    }


def stage_sft(check: Check, stand_in: str, recipe: str) -> dict[str, Any]:
    """A few bf16 mixed-precision SFT steps of a stand-in with its recipe."""
    from mirg.train.configs import SFTTrainConfig, load_config
    from mirg.train.sft import build_sft_trainer

    model = check.model(stand_in)
    steps = 4
    config = load_config(
        SFTTrainConfig,
        REPO / recipe,
        check.overrides(model, check.trajectories(model), f"run-{stand_in}-sft", steps),
    )
    timer = StepTimes()
    trainer = build_sft_trainer(config, callbacks=[timer])
    before = _trainable_snapshot(trainer.model)
    trainer.train()
    return {
        "steps": steps,
        "step_seconds_median": _median_after_first(timer.seconds),
        "peak_gib": _peak_gib(),
        "share_of_trainable_weights_changed": _share_changed(trainer.model, before),
        "trainable_dtype": str(next(iter(before.values())).dtype).replace("torch.", ""),
        "bf16": bool(config.bf16),
        "attention": trainer.model.config._attn_implementation,
        "parameters": sum(p.numel() for p in trainer.model.parameters()),
    }


def _grpo_config(check: Check, name: str, steps: int, **extra: Any) -> Any:
    """GRPO of the small Qwen3-VL stand-in with its recipe, a few steps, the dual reward
    plus one that varies (random text earns 0 from the grounding rewards)."""
    from mirg.train.configs import GRPOTrainConfig, load_config

    stand_in, recipe = GRPO_MODEL
    model = check.model(stand_in)
    values = check.overrides(model, check.data() / "train.jsonl", f"run-{name}", steps)
    values.update(
        {
            "num_generations": 4,
            "per_device_train_batch_size": 4,
            "max_completion_length": 48,
            "rewards": ["object", "image", "format", "gpu_check.varied_reward"],
            **extra,
        }
    )
    return load_config(GRPOTrainConfig, REPO / recipe, values)


def _grpo(check: Check, name: str, **extra: Any) -> tuple[Any, dict[str, Any]]:
    """A few GRPO steps, generation timed apart from the rest of each step.

    The recipes take two optimizer steps per rollout (``num_iterations`` 2), so only every
    other step generates: the figures are means per step over whole rollout cycles after
    the first step (which also warms up), not medians, which would pick one kind of step.
    """
    from mirg.train.grpo import build_grpo_trainer

    steps = 5
    config = _grpo_config(check, name, steps, **extra)
    timer = StepTimes()
    trainer = build_grpo_trainer(config, callbacks=[timer])
    generation = [0.0] * steps  # seconds spent generating and scoring, by step
    inner = trainer._generate_and_score_completions

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            _sync()
            generation[min(trainer.state.global_step, steps - 1)] += time.perf_counter() - t0

    trainer._generate_and_score_completions = timed
    trainer.train()
    step = round(statistics.fmean(timer.seconds[1:]), 3)
    gen = round(statistics.fmean(generation[1:]), 3)
    rewards = [e["reward"] for e in trainer.state.log_history if "reward" in e]
    return config, {
        "steps": steps,
        "num_iterations": config.num_iterations,
        "step_seconds_mean": step,
        "generation_seconds_per_step": gen,
        "training_seconds_per_step": round(max(step - gen, 0.0), 3),
        "peak_gib": _peak_gib(),
        "reward_mean_per_step": [round(r, 3) for r in rewards],
    }


def stage_grpo_hf(check: Check) -> dict[str, Any]:
    return _grpo(check, "grpo-hf", use_vllm=False)[1]


def stage_grpo_vllm(check: Check) -> dict[str, Any]:
    import importlib.util

    if check.dry or importlib.util.find_spec("vllm") is None:
        reason = "dry run (vLLM needs a GPU)" if check.dry else "vLLM is not installed here"
        return {"skipped": reason}
    config, figures = _grpo(
        check,
        "grpo-vllm",
        use_vllm=True,
        vllm_mode="colocate",
        vllm_gpu_memory_utilization=0.3,
    )
    marker = Path(config.output_dir) / "vllm-model" / "mirg_vllm_model.json"
    figures["vllm_model_folder"] = json.loads(marker.read_text()) if marker.is_file() else None
    return figures


def stage_lora_grpo(check: Check) -> dict[str, Any]:
    """LoRA GRPO through ``run_grpo``: the adapter saved, merged into the model at the end,
    and the merged model reloaded as a plain model."""
    from mirg.models.loading import load_model_and_processor
    from mirg.train.grpo import run_grpo

    config = _grpo_config(check, "lora-grpo", 2, use_vllm=False, use_peft=True, lora_r=8)
    t0 = time.perf_counter()
    result = run_grpo(config)
    seconds = time.perf_counter() - t0
    merged = load_model_and_processor(result.output_dir).model
    adapter = Path(result.output_dir) / "adapter" / "adapter_model.safetensors"
    figures = {
        "steps": result.global_step,
        "train_and_merge_seconds": round(seconds, 1),
        "adapter_saved": adapter.is_file(),
        "merged_reloaded_parameters": sum(p.numel() for p in merged.parameters()),
        "merged_has_lora_weights": any("lora_" in n for n, _ in merged.named_parameters()),
        "peak_gib": _peak_gib(),
    }
    if figures["merged_has_lora_weights"] or not figures["adapter_saved"]:
        raise RuntimeError(f"the LoRA merge did not give a plain model: {figures}")
    return figures


def stage_eval(check: Check) -> dict[str, Any]:
    """Batched ``mirg eval`` on the device: items/s, and batched vs one-at-a-time answers."""
    from mirg.eval.benchmarks import load_eval_items
    from mirg.eval.generation import HFGenerator, eval_messages, load_images
    from mirg.eval.run import EvalConfig, evaluate
    from mirg.models.loading import load_model_and_processor
    from mirg.models.placement import placement_kwargs

    model_dir = check.model("qwen3-vl-2b")
    data = check.data() / "train.jsonl"
    config = EvalConfig(
        model=str(model_dir),
        data=str(data),
        out=str(check.out / "eval-batched"),
        batch_size=16,
        max_new_tokens=32,
        device=check.device,
    )
    t0 = time.perf_counter()
    metrics = evaluate(config, progress=False)
    seconds = time.perf_counter() - t0
    n_items = sum(row["n"] for row in metrics["tasks"].values())
    run = json.loads((check.out / "eval-batched" / "run.json").read_text())

    loaded = load_model_and_processor(model_dir, **placement_kwargs(check.device))
    items = load_eval_items(data)[:8]
    generator = HFGenerator(loaded.model, loaded.processor, max_new_tokens=32)
    messages = [eval_messages(it.question, len(it.images), "reasoning", loaded.profile)
                for it in items]  # fmt: skip
    images = [load_images(it.images) for it in items]
    batched = [g.text for g in generator.generate(messages, images)]
    single = [generator.generate([m], [i])[0].text for m, i in zip(messages, images, strict=True)]
    agree = sum(a == b for a, b in zip(batched, single, strict=True))
    return {
        "items": n_items,
        "seconds": round(seconds, 2),
        "items_per_second": round(n_items / seconds, 2),
        "device_recorded": run["config"]["device"],
        "batched_vs_single_agree": f"{agree}/{len(items)}",
        "truncated": metrics.get("truncated"),
    }


STAGE_FUNCTIONS: dict[str, Callable[[Check], dict[str, Any]]] = {
    "env": stage_env,
    "placement": stage_placement,
    **{name: (lambda c, a=args: stage_sft(c, *a)) for name, args in SFT_STAGES.items()},
    "grpo-hf": stage_grpo_hf,
    "grpo-vllm": stage_grpo_vllm,
    "lora-grpo": stage_lora_grpo,
    "eval": stage_eval,
}


# --------------------------------------------------------------------------- results


def record(out: Path, entry: dict[str, Any]) -> None:
    with (out / RESULTS).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def run_stage(name: str, out: Path, dry_run: bool) -> int:
    check = Check(out, dry_run)
    t0 = time.perf_counter()
    try:
        figures = STAGE_FUNCTIONS[name](check)
    except Exception as exc:  # a stage's failure is a result, written down with its cause
        record(out, {
            "stage": name, "status": "failed", "seconds": round(time.perf_counter() - t0, 1),
            "reason": f"{type(exc).__name__}: {exc}"[:500],
            "traceback": traceback.format_exc()[-2000:],
        })  # fmt: skip
        traceback.print_exc()
        return 1
    status = "skipped" if "skipped" in figures else "ok"
    record(out, {
        "stage": name, "status": status, "seconds": round(time.perf_counter() - t0, 1),
        "dry_run": dry_run, **figures,
    })  # fmt: skip
    return 0


def table(out: Path) -> str:
    """One line per stage: status, seconds, the figures that matter."""
    path = out / RESULTS
    if not path.is_file():
        return f"no results in {path}"
    keys = ("step_seconds_median", "step_seconds_mean", "generation_seconds_per_step",
            "training_seconds_per_step",
            "peak_gib", "share_of_trainable_weights_changed", "items_per_second",
            "batched_vs_single_agree", "device_auto", "attention", "gpu")  # fmt: skip
    lines = [f"{'stage':<20}{'status':<9}{'seconds':>8}  figures"]
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        figures = ", ".join(f"{k}={entry[k]}" for k in keys if entry.get(k) is not None)
        why = entry.get("skipped") or entry.get("reason") or ""
        lines.append(
            f"{entry['stage']:<20}{entry['status']:<9}{entry['seconds']:>8}  {figures or why}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=(*STAGES, "table", "record"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--dry-run", action="store_true", help="every stage on the CPU, tiny")
    parser.add_argument("--status", default="failed", help="record: the stage's status")
    parser.add_argument("--reason", default="", help="record: why")
    parser.add_argument("--for-stage", help="record: which stage")
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.stage == "table":
        print(table(out))
        return 0
    if args.stage == "record":
        out.mkdir(parents=True, exist_ok=True)
        record(out, {"stage": args.for_stage, "status": args.status, "seconds": 0,
                     "reason": args.reason})  # fmt: skip
        return 0
    if args.dry_run:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    return run_stage(args.stage, out, args.dry_run)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # gpu_check.varied_reward
    raise SystemExit(main())
