"""Where a model runs and in what precision: ``--device``, ``--dtype`` and attention.

``auto`` means the GPU when there is one. Asking for CUDA where there is none is an error,
never a quiet fall-back to the CPU: a 7B evaluation on the CPU runs for days.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
from typing import Any

from mirg.errors import MirgError

DEVICES_HELP = "auto (CUDA when present), cpu, cuda or cuda:N"
DTYPES = ("auto", "bfloat16", "float16", "float32")
ATTENTIONS = ("auto", "flash_attention_2", "sdpa", "eager")

logger = logging.getLogger("mirg")


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when CUDA is available, else ``cpu``; ``cuda[:N]`` is checked."""
    import torch

    name = (device or "auto").strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return name
    if name == "cuda" or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise MirgError(
                f"--device {device}: CUDA is not available on this machine (torch "
                f"{torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); check the "
                "driver and the torch build, or pass --device cpu"
            )
        index = name.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise MirgError(
                f"--device {device}: this machine has {torch.cuda.device_count()} CUDA "
                "device(s), numbered from 0"
            )
        return name
    raise MirgError(f"--device {device!r}: choose {DEVICES_HELP}")


def resolve_dtype(dtype: str, device: str) -> Any:
    """``auto`` -> bfloat16 on a GPU that supports it (float16 on older ones), float32 on
    the CPU; otherwise the named torch dtype."""
    import torch

    if dtype not in DTYPES:
        raise MirgError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    if dtype != "auto":
        return getattr(torch, dtype)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32


def resolve_attention(attention: str | None, device: str) -> str:
    """``auto`` (or None) -> ``flash_attention_2`` on a GPU where flash-attn is installed,
    else ``sdpa``. Qwen2.5-VL's windowed vision attention under ``sdpa`` loops over the
    windows; FlashAttention-2 takes them in one call."""
    name = attention or "auto"
    if name not in ATTENTIONS:
        raise MirgError(f"attention {name!r}: choose one of {', '.join(ATTENTIONS)}")
    has_flash = importlib.util.find_spec("flash_attn") is not None
    if name == "auto":
        name = "flash_attention_2" if has_flash and device.startswith("cuda") else "sdpa"
    if name == "flash_attention_2" and not has_flash:
        raise MirgError(
            "attention flash_attention_2 needs flash-attn: pip install 'mirg[flash-attn]' "
            "(GPU only), or use sdpa"
        )
    return name


def placement_kwargs(device: str, dtype: str = "auto", attention: str | None = "auto") -> dict:
    """Keyword arguments for ``load_model_and_processor``: the whole model on one device,
    in the resolved dtype, with the resolved attention (logged, so a run says what ran)."""
    where = resolve_device(device)
    kwargs = {
        "dtype": resolve_dtype(dtype, where),
        "device_map": {"": where},
        "attn_implementation": resolve_attention(attention, where),
    }
    logger.info(
        "model on %s in %s with %s attention",
        where,
        str(kwargs["dtype"]).replace("torch.", ""),
        kwargs["attn_implementation"],
    )
    return kwargs


def add_placement_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device``, ``--dtype`` and ``--attention``, the same for every command that runs a
    model (eval, predict, demo)."""
    parser.add_argument("--device", default="auto", help=DEVICES_HELP)
    parser.add_argument("--dtype", default="auto", choices=DTYPES, help="auto: bf16 on a GPU")
    parser.add_argument(
        "--attention",
        default="auto",
        choices=ATTENTIONS,
        help="auto: flash_attention_2 where installed on a GPU, else sdpa",
    )
