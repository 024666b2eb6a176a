"""What SFT and GRPO share: loading the model as configured, freezing, resuming, saving."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from mirg.models.loading import LoadedModel, load_model_and_processor
from mirg.train.configs import ConfigError, check_trainable_dtypes

logger = logging.getLogger("mirg.train")

VISION_TOWER_NAMES = ("visual", "vision_tower", "vision_model")


def require(config: Any, *names: str) -> None:
    """Fail before loading anything when a required key is unset."""
    for name in names:
        if getattr(config, name) in (None, ""):
            raise ConfigError(f"config key {name!r} is required (in the recipe or --{name} …)")


def load_for_training(config: Any) -> LoadedModel:
    """The model and processor named by the config, with its pixel caps and profile.

    ``dtype``, ``model_revision`` and the 4/8-bit keys are TRL's ``ModelConfig``'s, applied
    as TRL's own scripts apply them.
    """
    import torch
    from trl import get_quantization_config

    dtype = config.dtype if config.dtype in (None, "auto") else getattr(torch, config.dtype)
    loaded = load_model_and_processor(
        config.model_name_or_path,
        profile=config.profile,
        min_pixels=config.min_pixels,
        max_pixels=config.max_pixels,
        dtype=dtype or "auto",
        attn_implementation=config.attn_implementation,
        model_kwargs={
            "revision": config.model_revision,
            "quantization_config": get_quantization_config(config),
        },
    )
    check_trainable_dtypes(config, loaded.model)  # dtype: auto may have loaded bf16 weights
    return loaded


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
