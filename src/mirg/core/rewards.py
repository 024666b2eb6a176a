"""Image-aware dual rewards for GRPO, as plain TRL reward functions.

Each function has TRL's signature ``f(completions, **columns) -> list[float]``: TRL passes
every dataset column as a list with one entry per completion. The columns read are

* ``target_image``: 1-based image that holds the target, or None where the task
  determines none (then any image counts);
* ``target_box``: the target box, relative 0..1;
* ``profile`` (optional, default ``"normalized"``): the coordinate profile the completion
  writes; ``input_sizes`` (one ``[w, h]`` per image, the frame the model saw) is required
  for absolute-pixel profiles;
* ``images`` (optional): used only for its length, so that an answer without an image
  number counts as Image-1 when the prompt had a single image.

Design (docs/rewards.md): the object reward is the IoU earned *only on the right image*,
so a box on the wrong image earns nothing; the image reward pays for naming the right
image; the format reward pays for exactly one think block then one clean answer. Any
ambiguous answer (several boxes, several answer blocks) earns 0 from all three: hedging is
never rewarded. Each lies in [0, 1]; the total is a weighted sum.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mirg.core.answers import ParsedAnswer, has_canonical_format, parse_answer
from mirg.core.boxes import iou
from mirg.core.profiles import ProfileError, get_profile

DEFAULT_WEIGHTS: Mapping[str, float] = {"object": 1.0, "image": 1.0, "format": 0.5}


@dataclass(frozen=True)
class RewardBreakdown:
    object: float
    image: float
    format: float

    def total(self, weights: Mapping[str, float] = DEFAULT_WEIGHTS) -> float:
        return sum(float(weights.get(k, 0.0)) * getattr(self, k) for k in DEFAULT_WEIGHTS)


def completion_text(completion: object) -> str:
    """Text of a completion: a string, or TRL's conversational ``[{"role", "content"}]``."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return completion_text(completion.get("content", completion.get("text", "")))
    if isinstance(completion, Sequence):
        return "".join(
            completion_text(part)
            for part in completion
            if not isinstance(part, Mapping)
            or (part.get("role", "assistant") == "assistant" and part.get("type", "text") == "text")
        )
    return ""


def resolved_image(parsed: ParsedAnswer, n_images: int | None) -> int | None:
    """The image an answer refers to: the named one, or Image-1 for a one-image prompt."""
    if parsed.image is None and n_images == 1:
        return 1
    return parsed.image


def image_correct(parsed: ParsedAnswer, target_image: int | None, n_images: int | None) -> bool:
    if parsed.error is not None:
        return False
    if target_image is None:
        return True
    return resolved_image(parsed, n_images) == int(target_image)


def predicted_box(
    parsed: ParsedAnswer,
    profile: str = "normalized",
    input_sizes: Sequence[Sequence[int]] | None = None,
    n_images: int | None = None,
) -> tuple[float, float, float, float] | None:
    """The parsed box as a relative box, or None when it cannot be converted.

    Absolute-pixel profiles use the frame of the image the answer names (Image-1 when it
    names none, as for aligned image pairs).
    """
    if parsed.box is None:
        return None
    prof = get_profile(profile)
    frame = None
    if prof.needs_frame:
        if not input_sizes:
            raise ProfileError(
                f"profile {prof.name!r} needs input_sizes (the frame each image was shown at)"
            )
        k = resolved_image(parsed, n_images) or 1
        if not 1 <= k <= len(input_sizes):
            return None
        frame = input_sizes[k - 1]
    box = prof.to_relative(parsed.box, frame)
    return box if all(math.isfinite(v) for v in box) else None


def score_completion(
    completion: object,
    target_image: int | None,
    target_box: Sequence[float],
    *,
    profile: str = "normalized",
    input_sizes: Sequence[Sequence[int]] | None = None,
    n_images: int | None = None,
    iou_threshold: float | None = None,
) -> RewardBreakdown:
    """All three rewards of one completion (also what verl's ``compute_score`` calls)."""
    text = completion_text(completion)
    parsed = parse_answer(text)
    fmt = 1.0 if has_canonical_format(text) else 0.0
    if not image_correct(parsed, target_image, n_images):
        return RewardBreakdown(object=0.0, image=0.0, format=fmt)
    box = predicted_box(parsed, profile, input_sizes, n_images)
    overlap = iou(box, target_box) if box is not None else 0.0
    if iou_threshold is not None:
        overlap = 1.0 if overlap >= iou_threshold else 0.0
    return RewardBreakdown(object=overlap, image=1.0, format=fmt)


def _column(columns: Mapping[str, object], name: str, n: int, default: object = None) -> list:
    value = columns.get(name)
    if value is None:
        return [default] * n
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value] * n  # a scalar bound with functools.partial
    if len(value) != n:
        raise ValueError(f"reward column {name!r} has {len(value)} entries for {n} completions")
    return list(value)


def _rows(completions: Sequence[object], columns: Mapping[str, object], need_box: bool):
    """(parsed answer, target image, n_images, target box, profile, input sizes) per completion."""
    n = len(completions)
    if "target_image" not in columns:
        raise KeyError("reward needs the dataset column 'target_image' (1-based, or None)")
    if need_box and "target_box" not in columns:
        raise KeyError("reward needs the dataset column 'target_box' (relative 0..1 box)")
    targets = _column(columns, "target_image", n)
    boxes = _column(columns, "target_box", n)
    profiles = _column(columns, "profile", n, "normalized")
    sizes = _column(columns, "input_sizes", n)
    images = _column(columns, "images", n)
    for completion, target, target_box, profile, size, imgs in zip(
        completions, targets, boxes, profiles, sizes, images, strict=True
    ):
        text = completion if isinstance(completion, str) else completion_text(completion)
        n_images = len(imgs) if isinstance(imgs, (list, tuple)) else None
        yield parse_answer(text), target, n_images, target_box, profile or "normalized", size


def object_reward(completions: Sequence[object], **columns: object) -> list[float]:
    """IoU with the target box, earned only when the answer names the target image.

    With an ``iou_threshold`` keyword (bind it with functools.partial) the reward is 1 at
    IoU >= threshold and 0 below.
    """
    threshold = columns.get("iou_threshold")
    out = []
    for parsed, target, n_images, target_box, profile, sizes in _rows(completions, columns, True):
        value = 0.0
        if image_correct(parsed, target, n_images):
            box = predicted_box(parsed, profile, sizes, n_images)
            value = iou(box, target_box) if box is not None else 0.0
            if isinstance(threshold, (int, float)):
                value = 1.0 if value >= threshold else 0.0
        out.append(value)
    return out


def iou_reward(completions: Sequence[object], **columns: object) -> list[float]:
    """Plain IoU with the target box, whichever image the answer names.

    Not image-aware: the baseline of the dual-reward ablation (a box on the wrong image at
    the target's place still earns). Training uses ``object_reward``.
    """
    out = []
    for parsed, _target, n_images, target_box, profile, sizes in _rows(completions, columns, True):
        box = predicted_box(parsed, profile, sizes, n_images) if parsed.error is None else None
        out.append(iou(box, target_box) if box is not None else 0.0)
    return out


def image_reward(completions: Sequence[object], **columns: object) -> list[float]:
    """1 when the answer names the target image (any image when the task sets none)."""
    return [
        1.0 if image_correct(parsed, target, n_images) else 0.0
        for parsed, target, n_images, *_ in _rows(completions, columns, False)
    ]


def format_reward(completions: Sequence[object], **columns: object) -> list[float]:
    """1 for exactly one <think> block then exactly one clean <answer> block, else 0."""
    return [
        1.0 if has_canonical_format(c if isinstance(c, str) else completion_text(c)) else 0.0
        for c in completions
    ]


def total_reward(
    completions: Sequence[object],
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    **columns: object,
) -> list[float]:
    """Weighted sum of the three rewards (for engines that take a single reward)."""
    parts = {
        "object": object_reward(completions, **columns),
        "image": image_reward(completions, **columns),
        "format": format_reward(completions, **columns),
    }
    return [
        sum(float(weights.get(k, 0.0)) * parts[k][i] for k in parts)
        for i in range(len(completions))
    ]
