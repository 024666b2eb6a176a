"""Load a vision-language model and its processor by path, and know how it writes boxes.

Training, evaluation and inference all load through ``load_model_and_processor`` so the
same rules hold everywhere: the coordinate profile follows the model family (or is given
explicitly for families mirg does not know), pixel caps are configuration (image size
drives memory), the processor pads on the left (GRPO and batched generation need it), and
a folder that cannot serve multimodal inputs fails with a message saying what is missing.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirg.core.profiles import CoordinateProfile, get_profile, smart_resize
from mirg.errors import MirgError
from mirg.models.families import CONFIG_KEY, FAMILIES, ModelFamily, get_family

PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


class ModelLoadError(MirgError):
    """A model folder or name that cannot be used as asked (the message says why)."""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc


def _is_local(path: str | Path) -> bool:
    """A local path (existing or not) rather than a hub name like ``Qwen/Qwen2.5-VL-3B``.

    A hub name has exactly one slash and its owner is not a local folder; so a typo in
    ``runs/tiny-sft`` fails at once as a missing folder instead of after hub retries.
    """
    s = str(path)
    p = Path(s).expanduser()
    if p.exists() or s.startswith(("/", "./", "../", "~")) or s in (".", ".."):
        return True
    return s.count("/") != 1 or p.parent.is_dir()


def model_config(path: str | Path) -> dict:
    """A model folder's config (an adapter's: its base model's; a hub name's: the hub's),
    or ``{}`` where there is none to read."""
    p = Path(path).expanduser()
    if (p / "config.json").is_file():
        return _read_json(p / "config.json")
    if (p / "adapter_config.json").is_file():
        base = _read_json(p / "adapter_config.json").get("base_model_name_or_path")
        return model_config(base) if base and _is_local(base) else {}
    if _is_local(p):
        return {}
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path)).to_dict()
    except OSError as exc:
        raise ModelLoadError(
            f"{path} is not a local model folder, and loading it from the Hugging Face hub "
            f"failed: {str(exc).splitlines()[0]}"
        ) from None


def find_family(model_or_path: Any) -> ModelFamily | None:
    """The family of a model, config or path: the one its config's ``mirg_family`` names
    (a family mirg does not ship), else the built-in of its ``model_type``, else None."""
    if isinstance(model_or_path, (str, Path)):
        config = model_config(model_or_path)
    else:
        config = getattr(model_or_path, "config", model_or_path)
        config = {key: getattr(config, key, None) for key in (CONFIG_KEY, "model_type")}
    named = config.get(CONFIG_KEY)
    if named is None:
        types = config.get("model_type")
        return next((f for f in FAMILIES.values() if types in f.model_types), None)
    try:
        return get_family(named)
    except MirgError as exc:
        raise ModelLoadError(f"{model_or_path}: config.json field {CONFIG_KEY!r}: {exc}") from None


def detect_family(model_or_path: Any) -> str | None:
    """The name of a model's family (``"qwen2.5-vl"`` …), or None if unknown."""
    family = find_family(model_or_path)
    return family.name if family else None


def resolve_profile(
    family: ModelFamily | None, profile: str | CoordinateProfile | None = None, what: str = "model"
) -> CoordinateProfile:
    """The coordinate profile: explicit wins, else the family's; unknown family needs one."""
    if profile is not None:
        return get_profile(profile)
    if family is None:
        raise ModelLoadError(
            f"{what} is of no model family mirg knows, so mirg cannot tell which coordinates "
            "it writes: pass a profile explicitly (profile: qwen2-vl | qwen2.5-vl | "
            "qwen3-vl | normalized), or name its family in config.json (mirg_family)"
        )
    return get_profile(family.profile)


# --------------------------------------------------------------------------- processor


def pixel_caps(processor: Any) -> tuple[int, int]:
    """(min_pixels, max_pixels) the processor resizes images into."""
    size = processor.image_processor.size
    get = size.get if isinstance(size, dict) else lambda k: getattr(size, k, None)
    lo = get("shortest_edge") or getattr(processor.image_processor, "min_pixels", None)
    hi = get("longest_edge") or getattr(processor.image_processor, "max_pixels", None)
    if lo is None or hi is None:
        raise ModelLoadError(
            f"{type(processor.image_processor).__name__} has no min/max pixel caps "
            "(shortest_edge/longest_edge)"
        )
    return int(lo), int(hi)


def set_pixel_caps(processor: Any, min_pixels: int | None, max_pixels: int | None) -> None:
    """Set the pixel caps of the image processor (None keeps the saved value)."""
    if min_pixels is None and max_pixels is None:
        return
    lo, hi = pixel_caps(processor)
    lo = int(min_pixels) if min_pixels is not None else lo
    hi = int(max_pixels) if max_pixels is not None else hi
    if not 0 < lo <= hi:
        raise ModelLoadError(
            f"pixel caps must satisfy 0 < min_pixels <= max_pixels, got {lo}, {hi}"
        )
    processor.image_processor.size = {"shortest_edge": lo, "longest_edge": hi}


#: Pixel caps a Qwen-VL processor uses unless configured otherwise; exports written without
#: a processor at hand assume them (``mirg export --min-pixels/--max-pixels`` change them).
DEFAULT_MIN_PIXELS = 56 * 56
DEFAULT_MAX_PIXELS = 28 * 28 * 1280


@dataclass(frozen=True)
class FrameRule:
    """How a Qwen-VL processor resizes an image into the frame the model sees: sides a
    multiple of ``factor`` (patch size x spatial merge), area within the pixel caps.
    Absolute-pixel profiles (Qwen2.5-VL) write boxes in frame pixels, so data, rewards and
    evaluation must use the rule of the processor that will see the images."""

    factor: int = 28
    min_pixels: int = DEFAULT_MIN_PIXELS
    max_pixels: int = DEFAULT_MAX_PIXELS

    def frame(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the frame an image of this size is shown at."""
        h, w = smart_resize(height, width, self.factor, self.min_pixels, self.max_pixels)
        return w, h

    def frames(self, images: Iterable[Any]) -> list[list[int]]:
        """One ``[w, h]`` frame per image (PIL images or ``(width, height)`` pairs): the
        ``input_sizes`` column of training rows and predictions."""
        sizes = (image.size if hasattr(image, "size") else image for image in images)
        return [list(self.frame(int(w), int(h))) for w, h in sizes]


def frame_rule(processor: Any) -> FrameRule:
    """The frame rule of a loaded processor: its own patch size, merge size and caps."""
    ip = processor.image_processor
    if getattr(ip, "patch_size", None) is None:
        raise ModelLoadError(
            f"{type(ip).__name__} has no patch_size: mirg's frame rule is Qwen-VL's resize "
            "(a multiple of patch_size x merge_size between pixel caps), so a model family "
            "must use a Qwen-VL-style image processor"
        )
    merge = int(getattr(ip, "merge_size", 1) or 1)
    return FrameRule(int(ip.patch_size) * merge, *pixel_caps(processor))


def default_frame_rule(
    profile: str | CoordinateProfile,
    min_pixels: int = DEFAULT_MIN_PIXELS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> FrameRule:
    """The frame rule of a profile's built-in family without loading it (factor 28 for
    profiles of no built-in family, as for Qwen2/2.5-VL)."""
    name = get_profile(profile).name
    factor = next((f.frame_factor for f in FAMILIES.values() if f.profile == name), 28)
    return FrameRule(factor, min_pixels, max_pixels)


def frame_size(processor: Any, width: int, height: int) -> tuple[int, int]:
    """(width, height) of the resized frame the model sees for an image of this size."""
    return frame_rule(processor).frame(width, height)


def input_sizes(processor: Any, images: Sequence[Any]) -> list[list[int]]:
    """One ``[w, h]`` frame per image (PIL images or ``(width, height)`` pairs)."""
    return frame_rule(processor).frames(images)


def image_tokens(processor: Any, width: int, height: int) -> int:
    """How many placeholder tokens one image of this size takes in the prompt."""
    rule = frame_rule(processor)
    w, h = rule.frame(width, height)
    return math.ceil(w / rule.factor) * math.ceil(h / rule.factor)


def load_processor(
    path: str | Path,
    *,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> Any:
    """The model's processor (tokenizer + image and video processors), left-padded.

    Left padding matters: GRPO and batched generation append completions on the right, and
    the processor's ``mm_token_type_ids`` must line up with the padded prompt ids.
    """
    from transformers import AutoProcessor, ProcessorMixin

    p = Path(path).expanduser()
    if _is_local(p):
        if not p.is_dir():
            raise ModelLoadError(f"model folder {p} does not exist")
        if not any((p / f).is_file() for f in PROCESSOR_FILES):
            raise ModelLoadError(
                f"model folder {p} has no processor ({' or '.join(PROCESSOR_FILES)}): a "
                "vision-language model needs its image processor; save it with "
                "processor.save_pretrained(folder) or copy it from the base model"
            )
    try:
        processor = AutoProcessor.from_pretrained(str(path), padding_side="left")
    except ImportError as exc:  # pragma: no cover - environment problem
        raise ModelLoadError(f"cannot load the processor of {path}: {exc}") from exc
    if not isinstance(processor, ProcessorMixin) or not hasattr(processor, "image_processor"):
        raise ModelLoadError(
            f"{path} loads as {type(processor).__name__}, not a multimodal processor: Qwen-VL "
            "processors also need a video processor, which needs torchvision installed"
        )
    processor.tokenizer.padding_side = "left"
    set_pixel_caps(processor, min_pixels, max_pixels)
    return processor


# --------------------------------------------------------------------------- model


@dataclass
class LoadedModel:
    """A model, its processor, its family (None: mirg knows none) and the coordinate profile
    it answers in."""

    model: Any
    processor: Any
    model_family: ModelFamily | None
    profile: CoordinateProfile
    path: str

    @property
    def family(self) -> str | None:
        """The family's name (``"qwen3-vl"`` …)."""
        return self.model_family.name if self.model_family else None

    @property
    def pixel_caps(self) -> tuple[int, int]:
        return pixel_caps(self.processor)

    def input_sizes(self, images: Sequence[Any]) -> list[list[int]]:
        """The frame (w, h) the model sees for each image (for ``input_sizes`` columns)."""
        return input_sizes(self.processor, images)


def load_model_and_processor(
    path: str | Path,
    *,
    profile: str | CoordinateProfile | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
    dtype: Any = "auto",
    device_map: Any = None,
    attn_implementation: str | None = None,
    model_kwargs: dict | None = None,
) -> LoadedModel:
    """Load a model folder (or hub name) with its processor, family and profile; a LoRA
    adapter folder loads its base model and merges the adapter. Errors name the problem
    before any weights load."""
    from transformers import AutoModelForImageTextToText

    path_str = str(Path(path).expanduser()) if _is_local(path) else str(path)
    p = Path(path_str)
    if _is_local(p) and not (p / "config.json").is_file():
        if (p / "adapter_config.json").is_file():
            caps = {"min_pixels": min_pixels, "max_pixels": max_pixels}
            return _load_adapter(p, caps, profile=profile, dtype=dtype, device_map=device_map)
        raise ModelLoadError(
            f"{p} is not a model folder (no config.json)"
            if p.is_dir()
            else f"model folder {p} does not exist"
        )
    family = find_family(path_str)
    model_type = model_config(path_str).get("model_type")
    prof = resolve_profile(family, profile, what=f"model {path_str} ({model_type})")
    processor = load_processor(path_str, min_pixels=min_pixels, max_pixels=max_pixels)
    placement = {"device_map": device_map, "attn_implementation": attn_implementation}
    kwargs: dict[str, Any] = {"dtype": dtype, **(model_kwargs or {})}
    kwargs |= {k: v for k, v in placement.items() if v is not None}
    model = AutoModelForImageTextToText.from_pretrained(path_str, **kwargs)
    return LoadedModel(model, processor, family, prof, path_str)


def _load_adapter(folder: Path, caps: dict[str, Any], **options: Any) -> LoadedModel:
    """A PEFT adapter folder: base model + adapter, merged (processor from either; ``caps``:
    the processor's options)."""
    from peft import PeftModel

    base = _read_json(folder / "adapter_config.json").get("base_model_name_or_path")
    if not base:
        raise ModelLoadError(f"{folder}/adapter_config.json names no base_model_name_or_path")
    loaded = load_model_and_processor(base, **caps, **options)
    model = PeftModel.from_pretrained(loaded.model, str(folder)).merge_and_unload()
    own_processor = any((folder / f).is_file() for f in PROCESSOR_FILES)
    processor = load_processor(folder, **caps) if own_processor else loaded.processor
    return LoadedModel(model, processor, loaded.model_family, loaded.profile, str(folder))


# --------------------------------------------------------------------------- inputs


def generation_inputs(
    processor: Any,
    messages: Sequence[list[dict]],
    images: Sequence[Sequence[Any]],
) -> Any:
    """Processor outputs for a batch of prompts, ready for ``model.generate(**inputs)``.

    Every field the processor returns is kept, ``mm_token_type_ids`` included: without it
    transformers 5 puts Qwen-VL image tokens at wrong M-RoPE positions, silently.
    Prompts are left-padded. ``messages`` are prompt turns without the assistant answer.
    """
    texts = [
        processor.apply_chat_template(list(m), tokenize=False, add_generation_prompt=True)
        for m in messages
    ]
    flat = [list(imgs) for imgs in images]
    kwargs: dict[str, Any] = {"text": texts, "padding": True, "return_tensors": "pt"}
    if any(flat):
        kwargs["images"] = flat
    return processor(**kwargs)
