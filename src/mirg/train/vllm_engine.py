"""vLLM for GRPO rollouts, set up from the processor the model trains with.

TRL 1.16 starts colocated vLLM as ``vllm.LLM(model=model.name_or_path, …)`` with no pixel
caps and no per-prompt image limit: a checkpoint whose saved processor has other caps gets
other image-token counts in vLLM than in training, and an unset ``vllm_max_model_length``
sizes vLLM for the model's full context (128k tokens), which does not fit beside training.
So before the trainer is built, :func:`write_vllm_model` saves the training processor beside
links to the model's files (``output_dir/vllm-model``, for ``trl vllm-serve`` too),
:func:`engine_args` computes caps, image limit and ``max_model_len`` as evaluation does, and
:func:`trl_vllm_arguments` hands them to TRL's ``LLM(...)`` call.

Unmeasured here (no GPU): :func:`memory_need` against vLLM's real use, and the run itself.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mirg.train.recipes import ConfigError
from mirg.train.setup import logger

VLLM_FOLDER = "vllm-model"
MARKER = "mirg_vllm_model.json"
#: TRL 1.16 fixes vLLM's max_num_batched_tokens at 4096: one image's tokens must fit in it.
TRL_BATCHED_TOKENS = 4096


def write_vllm_model(
    model: str, processor: Any, folder: str | Path, revision: str | None = None
) -> Path:
    """A model folder for vLLM: ``processor`` saved, links to the model's other files.

    Links, not copies: no weight is written twice. Written beside ``folder`` and renamed
    into place, so a reader never sees half of it.
    """
    from mirg.models.loading import pixel_caps

    folder, source = Path(folder), Path(model).expanduser().absolute()
    if not source.is_dir():  # a hub name: its snapshot in the hub cache
        from huggingface_hub import snapshot_download

        try:
            source = Path(snapshot_download(model, revision=revision, local_files_only=True))
        except Exception as exc:
            raise ConfigError(
                f"cannot find the local copy of {model} for vLLM: {exc}; download it first"
            ) from None
    tmp = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    processor.save_pretrained(str(tmp))
    for item in sorted(source.iterdir()):
        if item.is_file() and not (tmp / item.name).exists() and item.name != MARKER:
            (tmp / item.name).symlink_to(item.absolute())
    lo, hi = pixel_caps(processor)
    (tmp / MARKER).write_text(
        json.dumps({"source": str(source), "min_pixels": lo, "max_pixels": hi}, indent=2) + "\n"
    )
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def longest_prompt(processor: Any, rows: Sequence[dict]) -> int:
    """Tokens of the longest prompt of ``rows`` (training rows: ``prompt`` messages and
    ``images`` paths), image tokens counted at the processor's frames."""
    from mirg.eval.generation import image_sizes, prompt_tokens

    return max(prompt_tokens(processor, row["prompt"], image_sizes(row["images"])) for row in rows)


def engine_args(config: Any, processor: Any, rows: Sequence[dict], folder: str) -> dict[str, Any]:
    """vLLM engine arguments for this run, from the processor and the training rows."""
    from mirg.eval.generation import vllm_engine_args
    from mirg.models.loading import frame_rule

    rule = frame_rule(processor)
    per_image = rule.max_pixels // (rule.factor * rule.factor)
    if per_image > TRL_BATCHED_TOKENS:
        raise ConfigError(
            f"max_pixels {rule.max_pixels} gives up to {per_image} tokens per image, more than "
            f"the {TRL_BATCHED_TOKENS} tokens TRL lets vLLM batch at once: lower max_pixels "
            f"to at most {TRL_BATCHED_TOKENS * rule.factor * rule.factor}"
        )
    return vllm_engine_args(
        folder,
        processor,
        max_images=max(len(row["images"]) for row in rows),
        max_model_len=config.vllm_max_model_length,
        longest_prompt=longest_prompt(processor, rows),
        max_new_tokens=config.max_completion_length,
        gpu_memory_utilization=config.vllm_gpu_memory_utilization,
        tensor_parallel_size=config.vllm_tensor_parallel_size,
    )


def memory_need(model: Any, max_model_len: int, sequences: int) -> dict[str, float]:
    """GB vLLM needs (bf16): the weights, the KV cache (K and V of every layer) of one full
    sequence, which vLLM must hold to start, and of ``sequences`` at once, which it needs to
    run them all together (with less it queues them). An estimate: CUDA graphs and
    activations add to it."""
    text = model.config.get_text_config()
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    per_token = 2 * text.num_hidden_layers * kv_heads * head_dim * 2
    weights = sum(int(getattr(p, "ds_numel", p.numel())) for p in model.parameters()) * 2
    one = per_token * max_model_len
    return {
        "weights_gb": weights / 1e9,
        "one_sequence_gb": one / 1e9,
        "all_sequences_gb": one * sequences / 1e9,
        "minimum_gb": (weights + one) / 1e9,
        "total_gb": (weights + one * sequences) / 1e9,
    }


def prepare(config: Any, model: Any, processor: Any, rows: Sequence[dict]) -> dict[str, Any]:
    """Before the trainer is built: write the vLLM folder, set ``vllm_max_model_length``,
    log what vLLM will get; returns the arguments for :func:`trl_vllm_arguments`.

    The main process writes the folder while the others wait; on a node that does not
    see its output_dir (no shared storage) the node's first process writes its own."""
    folder = Path(config.output_dir) / VLLM_FOLDER
    with config.main_process_first(local=False, desc="vLLM model folder"):
        stale = _stale(folder / MARKER, processor, config.model_name_or_path)
        if stale and int(os.environ.get("LOCAL_RANK", "0")) == 0:
            write_vllm_model(
                str(config.model_name_or_path), processor, folder, config.model_revision
            )
    args = engine_args(config, processor, rows, str(folder))
    config.vllm_max_model_length = args["max_model_len"]
    dtype = "bfloat16" if config.bf16 else "float16" if config.fp16 else "auto"
    extra = {k: args[k] for k in ("model", "limit_mm_per_prompt", "mm_processor_kwargs")}
    sequences = (
        config.per_device_train_batch_size
        * config.vllm_tensor_parallel_size
        * config.steps_per_generation
    )
    need = memory_need(model, args["max_model_len"], sequences)
    logger.info(
        "vLLM (%s): model folder %s, max_model_len %d, images per prompt %d, caps %s, dtype %s; "
        "needs about %.1f GB (weights %.1f + KV cache %.1f for %d sequences), share %.2f",
        config.vllm_mode,
        folder,
        args["max_model_len"],
        args["limit_mm_per_prompt"]["image"],
        args["mm_processor_kwargs"]["size"],
        dtype,
        need["total_gb"],
        need["weights_gb"],
        need["all_sequences_gb"],
        sequences,
        config.vllm_gpu_memory_utilization,
    )
    _check_share(config, need)
    if config.vllm_mode == "server":
        logger.warning(
            "vLLM server mode: serve the training processor's caps, e.g. trl vllm-serve "
            "--model %s --max_model_len %d",
            folder,
            args["max_model_len"],
        )
    return extra | {"dtype": dtype}


def _stale(marker: Path, processor: Any, model: str) -> bool:
    """Whether an existing vLLM folder was written for other caps or another model."""
    from mirg.models.loading import pixel_caps

    try:
        info = json.loads(marker.read_text())
    except (OSError, json.JSONDecodeError):
        return True
    lo, hi = pixel_caps(processor)
    local = Path(model).expanduser()
    same_source = not local.is_dir() or info.get("source") == str(local.absolute())
    return not same_source or (info.get("min_pixels"), info.get("max_pixels")) != (lo, hi)


def _check_share(config: Any, need: dict[str, float]) -> None:
    """Refuse a colocated vLLM share that cannot hold the weights and one full sequence
    (vLLM would fail to start, after the model loaded); warn when it cannot hold every
    rollout of a step at once (vLLM then queues them: slower, not wrong)."""
    import torch

    if config.vllm_mode != "colocate" or not torch.cuda.is_available():
        return
    total = torch.cuda.get_device_properties(0).total_memory / 1e9
    share = config.vllm_gpu_memory_utilization * total
    tp = max(1, config.vllm_tensor_parallel_size)
    if need["minimum_gb"] / tp > share:
        raise ConfigError(
            f"vllm_gpu_memory_utilization {config.vllm_gpu_memory_utilization} gives vLLM "
            f"{share:.1f} GB of this {total:.0f} GB GPU, but its weights and one sequence of "
            f"max_model_len {config.vllm_max_model_length} tokens need about "
            f"{need['minimum_gb'] / tp:.1f} GB; raise the share, lower max_completion_length "
            "or max_pixels, or set vllm_tensor_parallel_size"
        )
    if need["total_gb"] / tp > share:
        logger.warning(
            "vLLM's share (%.1f GB) holds fewer than all rollouts of a step at full length "
            "(about %.1f GB); vLLM will queue some: raise vllm_gpu_memory_utilization for speed",
            share,
            need["total_gb"] / tp,
        )


@contextlib.contextmanager
def trl_vllm_arguments(extra: dict[str, Any]) -> Iterator[None]:
    """While the trainer is built, TRL's ``LLM(...)`` also gets ``extra`` (which wins over
    what TRL passes: the model folder). TRL 1.16 offers no other way to pass vLLM engine
    arguments; without vLLM installed nothing changes (TRL raises its own ImportError)."""
    from trl.generation import vllm_generation

    original = getattr(vllm_generation, "LLM", None)
    if original is None:
        yield
        return

    def llm(*args: Any, **kwargs: Any) -> Any:
        return original(*args, **{**kwargs, **extra})

    vllm_generation.LLM = llm
    try:
        yield
    finally:
        vllm_generation.LLM = original
