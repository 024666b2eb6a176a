"""What SFT and GRPO share: loading the model as configured, freezing, saving."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirg.models.loading import LoadedModel, load_model_and_processor
from mirg.train.precision import check_trainable_dtypes
from mirg.train.recipes import ConfigError

logger = logging.getLogger("mirg.train")


@dataclass
class PreparedRun:
    """A run's checked inputs and loaded model: what a TRL trainer is built from."""

    loaded: LoadedModel
    train_rows: list[dict]
    eval_rows: list[dict]
    held_out: list | None  # the grounding split scored during training, if configured
    identity: dict[str, Any]  # what the run trains (data and model fingerprints): runs.py


def prepare_run(config: Any, stage: str, records: Callable[..., list[dict]]) -> PreparedRun:
    """Every input check that needs no model first (required keys, the output folder, the
    held-out split, the data's images and prompt texts), so a bad image is named before
    minutes go into loading a model; then the model and the rows ``records`` builds."""
    from mirg.train.callbacks import grounding_items
    from mirg.train.data import check_record_images
    from mirg.train.runs import check_output_dir

    for name in ("model_name_or_path", "dataset_path", "output_dir"):
        if getattr(config, name) in (None, ""):
            raise ConfigError(f"config key {name!r} is required (in the recipe or --{name} …)")
    identity = check_output_dir(config, stage)
    held_out = grounding_items(config) if config.grounding_eval_path else None
    options: dict[str, Any] = {"image_root": config.image_root, "check_images": config.check_images}
    sizes = check_record_images(
        config.dataset_path, max_samples=config.max_train_samples, **options
    )
    if config.eval_dataset_path:
        sizes |= check_record_images(config.eval_dataset_path, **options)
    loaded = load_for_training(config)
    options["sizes"] = sizes
    train = records(
        config.dataset_path,
        loaded.profile,
        loaded.processor,
        max_samples=config.max_train_samples,
        **options,
    )
    evaluation = []
    if config.eval_dataset_path:
        evaluation = records(config.eval_dataset_path, loaded.profile, loaded.processor, **options)
    if config.freeze_vision_tower:
        towers = loaded.model_family.vision_towers if loaded.model_family else ()
        frozen = freeze_vision_tower(loaded.model, *towers)
        logger.info("froze %s vision-tower parameters", f"{frozen:,}")
    return PreparedRun(loaded, train, evaluation, held_out, identity)


def training_attention(config: Any) -> str:
    """``attn_implementation`` resolved for where this run trains: ``auto`` is
    flash_attention_2 on a GPU with flash-attn installed, else sdpa (as evaluation does)."""
    import torch

    from mirg.models.placement import resolve_attention

    on_gpu = torch.cuda.is_available() and not config.use_cpu
    return resolve_attention(config.attn_implementation, "cuda" if on_gpu else "cpu")


def load_for_training(config: Any) -> LoadedModel:
    """The model and processor named by the config, with its pixel caps and profile; LoRA
    targets the family's modules unless the config names them.

    ``dtype``, ``model_revision`` and the 4/8-bit keys are TRL's ``ModelConfig``'s, applied
    as TRL's own scripts apply them. The attention that runs is logged.
    """
    from trl import get_quantization_config

    loaded = load_model_and_processor(
        config.model_name_or_path,
        attn_implementation=training_attention(config),  # first: it may refuse the config
        profile=config.profile,
        min_pixels=config.min_pixels,
        max_pixels=config.max_pixels,
        dtype=torch_dtype(config),
        model_kwargs={
            "revision": config.model_revision,
            "quantization_config": get_quantization_config(config),
        },
    )
    check_trainable_dtypes(config, loaded.model)  # dtype: auto may have loaded bf16 weights
    if config.lora_target_modules is None and loaded.model_family:
        config.lora_target_modules = loaded.model_family.lora_targets
    logger.info(
        "model %s (%s): %s attention (asked: %s), weights in %s, pixel caps %d-%d",
        config.model_name_or_path,
        loaded.family or "unknown family",
        attention_of(loaded.model),
        config.attn_implementation,
        str(next(loaded.model.parameters()).dtype).replace("torch.", ""),
        *loaded.pixel_caps,
    )
    return loaded


def torch_dtype(config: Any) -> Any:
    """``config.dtype`` as ``from_pretrained`` takes it: ``auto`` when unset."""
    import torch

    return "auto" if config.dtype in (None, "auto") else getattr(torch, config.dtype)


def attention_of(model: Any) -> str:
    """The attention implementation a loaded model runs with."""
    return str(getattr(model.config, "_attn_implementation", None) or "default")


def freeze_vision_tower(model: Any, *names: str) -> int:
    """Freeze the vision encoder, the first module called one of ``names`` (the family's;
    by default the usual ones); returns how many parameters were frozen.

    Under DeepSpeed ZeRO-3 each process holds an empty shard of every weight
    (``numel() == 0``); ``ds_numel`` is the weight's full size.
    """
    names = names or ("visual", "vision_tower", "vision_model")
    tower = next((m for name, m in model.named_modules() if name.rsplit(".", 1)[-1] in names), None)
    if tower is None:
        logger.warning("no vision tower found (looked for %s); nothing frozen", names)
        return 0
    for p in tower.parameters():
        p.requires_grad_(False)
    return sum(int(getattr(p, "ds_numel", p.numel())) for p in tower.parameters())


def merge_adapter(adapter_dir: str | Path, out: str | Path, dtype: Any = "auto") -> None:
    """Write base model + the adapter in ``adapter_dir``, merged, to ``out``. The base loads
    afresh from disk: under DeepSpeed ZeRO-3 each process holds only a shard of the trained
    model, and merging those shards on one process would write a broken model."""
    adapter_dir, out = Path(adapter_dir), Path(out)
    if not any(adapter_dir.glob("adapter_model.*")):
        raise ConfigError(
            f"{adapter_dir} holds no adapter weights to merge; under DeepSpeed ZeRO-3 set "
            "zero3_save_16bit_model: true in the accelerate config (recipes/accelerate/"
            "deepspeed_zero3.yaml does), or merge later with load_model_and_processor(adapter)"
        )
    from transformers.integrations import deepspeed

    # Inside a ZeRO-3 run, from_pretrained would partition every weight it loads across all
    # processes (zero.Init), waiting for all of them: on one process alone it would hang.
    saved = deepspeed._hf_deepspeed_config_weak_ref  # transformers keeps only this reference
    deepspeed.unset_hf_deepspeed_config()
    try:
        merged = load_model_and_processor(adapter_dir, dtype=dtype)
    finally:
        deepspeed._hf_deepspeed_config_weak_ref = saved
    merged.model.save_pretrained(str(out))
    merged.processor.save_pretrained(str(out))
    for stray in ("adapter_config.json", "adapter_model.safetensors"):
        (out / stray).unlink(missing_ok=True)


def save_final(trainer: Any, config: Any, merge_lora: bool) -> None:
    """Save the final model and processor to output_dir. With LoRA the adapter goes to
    output_dir/adapter (every process takes part: under ZeRO-3 the Trainer gathers its
    shards) and the main process writes the merged full model to output_dir."""
    out = Path(config.output_dir)
    is_peft = hasattr(trainer.model, "peft_config")
    if not (is_peft and merge_lora):
        trainer.save_model(str(out))
        return
    adapter_dir = out / "adapter"
    trainer.save_model(str(adapter_dir))
    trainer.accelerator.wait_for_everyone()
    if trainer.accelerator.is_main_process:
        merge_adapter(adapter_dir, out, torch_dtype(config))
        logger.info("wrote the merged model to %s (adapter: %s)", out, adapter_dir)
    trainer.accelerator.wait_for_everyone()


@dataclass
class TrainResult:
    """What a run did: where it wrote, how many steps, its log history."""

    output_dir: str
    global_step: int
    log_history: list[dict]
    train_loss: float | None
    resumed_from: str | None = None


def train_and_save(
    trainer: Any, config: Any, identity: dict[str, Any], merge_lora: bool
) -> TrainResult:
    """Train under the output folder's lock (resuming this run's newest complete
    checkpoint when asked), save the final model (LoRA merged when asked). ``identity`` is
    the one :func:`prepare_run` fingerprinted, so the data is not hashed twice."""
    from mirg.files import folder_lock
    from mirg.train.runs import is_main_process, start_run

    stage = identity["stage"]

    # Only the main process holds output_dir's lock; a second run into it is refused, naming
    # the first.
    lock = (
        folder_lock(config.output_dir, f"mirg train {stage} of {config.model_name_or_path}")
        if is_main_process()
        else contextlib.nullcontext()
    )
    with lock:
        resume = start_run(config, identity, attention=attention_of(trainer.model))
        output = trainer.train(resume_from_checkpoint=resume)
        save_final(trainer, config, merge_lora=merge_lora)
    return TrainResult(
        output_dir=str(config.output_dir),
        global_step=trainer.state.global_step,
        log_history=list(trainer.state.log_history),
        train_loss=getattr(output, "training_loss", None),
        resumed_from=resume,
    )
