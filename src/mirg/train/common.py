"""What SFT and GRPO share: loading the model as configured, freezing, LoRA, resuming."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from mirg.models.loading import LoadedModel, load_model_and_processor
from mirg.train.configs import DEFAULT_LORA_TARGETS, ConfigError, MirgArguments

logger = logging.getLogger("mirg.train")

VISION_TOWER_NAMES = ("visual", "vision_tower", "vision_model")


def require(config: MirgArguments, *names: str) -> None:
    """Fail before loading anything when a required key is unset."""
    for name in names:
        if getattr(config, name) in (None, ""):
            raise ConfigError(f"config key {name!r} is required (in the recipe or --{name} …)")


def load_for_training(config: MirgArguments) -> LoadedModel:
    """The model and processor named by the config, with its pixel caps and profile."""
    import torch

    dtype: Any = config.model_dtype
    if dtype != "auto":
        try:
            dtype = getattr(torch, dtype)
        except AttributeError:
            raise ConfigError(f"model_dtype {config.model_dtype!r} is not a torch dtype") from None
    return load_model_and_processor(
        config.model_name_or_path,  # type: ignore[arg-type]
        profile=config.profile,
        min_pixels=config.min_pixels,
        max_pixels=config.max_pixels,
        dtype=dtype,
        attn_implementation=config.attn_implementation,
    )


def vision_tower(model: Any) -> Any | None:
    """The vision encoder submodule (``model.model.visual`` for Qwen-VL), if any."""
    for name, module in model.named_modules():
        if name.rsplit(".", 1)[-1] in VISION_TOWER_NAMES:
            return module
    return None


def freeze_vision_tower(model: Any) -> int:
    """Freeze the vision encoder; returns how many parameters were frozen."""
    tower = vision_tower(model)
    if tower is None:
        logger.warning("no vision tower found (looked for %s); nothing frozen", VISION_TOWER_NAMES)
        return 0
    n = 0
    for p in tower.parameters():
        p.requires_grad_(False)
        n += p.numel()
    return n


def lora_config(config: MirgArguments) -> Any:
    """PEFT LoRA on the language model's linear layers (the vision tower stays as is)."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules or DEFAULT_LORA_TARGETS,
        task_type="CAUSAL_LM",
    )


def resume_checkpoint(config: Any) -> str | None:
    """The checkpoint to resume from: a path, or the last one in output_dir for ``auto``.

    ``resume_from_checkpoint: auto`` (or ``true``/``last``) resumes when output_dir holds a
    checkpoint and starts fresh otherwise, so one command serves both.
    """
    from transformers.trainer_utils import get_last_checkpoint

    value = config.resume_from_checkpoint
    if value in (None, "", "false", "False", "none", "None"):
        return None
    if str(value).lower() in ("auto", "true", "last"):
        out = Path(config.output_dir)
        last = get_last_checkpoint(str(out)) if out.is_dir() else None
        if last is None:
            logger.info("no checkpoint in %s; starting fresh", out)
        return last
    if not Path(value).is_dir():
        raise FileNotFoundError(f"resume_from_checkpoint: checkpoint folder {value} does not exist")
    return str(value)


def save_final(trainer: Any, config: Any, merge_lora: bool) -> None:
    """Save the final model and processor to output_dir (merged, when LoRA was trained).

    With LoRA the merged full model goes to output_dir and the adapter to
    output_dir/adapter, so ``load_model_and_processor(output_dir)`` gets the trained model.
    """
    out = Path(config.output_dir)
    is_peft = hasattr(trainer.model, "peft_config")
    if not (is_peft and merge_lora):
        trainer.save_model(str(out))
        return
    adapter_dir = out / "adapter"
    trainer.save_model(str(adapter_dir))
    if trainer.accelerator.is_main_process:
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        merged.save_pretrained(str(out))
        trainer.processing_class.save_pretrained(str(out))
        for stray in ("adapter_config.json", "adapter_model.safetensors"):
            if (out / stray).exists():
                os.remove(out / stray)
    trainer.accelerator.wait_for_everyone()


def clean_output_dir(path: str | Path) -> None:
    """Remove an output folder (tests and benchmarks start from nothing)."""
    shutil.rmtree(path, ignore_errors=True)
