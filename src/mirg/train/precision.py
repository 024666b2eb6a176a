"""The precision policy: trainable bf16/fp16 weights without fp32 master weights lose most
updates, so they are refused from the config and again after loading (``dtype: auto``)."""

from __future__ import annotations

import os
from typing import Any

from mirg.train.recipes import ConfigError


def env_flag(name: str) -> bool:
    """A flag accelerate's launcher sets for the processes it starts (``true``/``True``)."""
    return os.environ.get(name, "").lower() == "true"


def check_precision(config: Any, dtype: str) -> None:
    """Refuse a full fine-tune of ``dtype`` weights that would not learn.

    The optimizer updates the weights in their own dtype unless something keeps fp32
    master weights: LoRA (PEFT trains adapters in fp32) or DeepSpeed ZeRO.
    """
    deepspeed = config.deepspeed or env_flag("ACCELERATE_USE_DEEPSPEED")
    if dtype not in ("bfloat16", "float16") or config.use_peft or deepspeed:
        return
    raise ConfigError(
        f"a full fine-tune of {dtype} weights without fp32 master weights loses its updates: "
        "the smallest change a bfloat16 weight of 0.02 keeps is about 6e-5 (float16: about "
        "8e-6), above learning rates of 1e-6 to 5e-6, so most optimizer steps round to zero. "
        "Load the weights in float32 (dtype: float32) and keep bf16: true "
        "(the Trainer runs the compute in bf16 autocast), or train LoRA (use_peft: true), or "
        "launch under DeepSpeed ZeRO, which keeps fp32 master weights"
    )


def check_trainable_dtypes(config: Any, model: Any) -> None:
    """Refuse low-precision trainable weights without master weights (``dtype: auto``)."""
    for param in model.parameters():
        if param.requires_grad:
            check_precision(config, str(param.dtype).removeprefix("torch."))
