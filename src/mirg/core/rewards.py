"""Image-aware dual rewards for GRPO, as plain TRL reward functions.

Each has TRL's signature ``f(completions, **columns) -> list[float]`` (every dataset
column a list, one entry per completion) and reads ``target_image`` (1-based, or None where
the task determines none: any image counts), ``target_box`` (relative), ``profile``
(default ``"normalized"``), ``input_sizes`` (one ``[w, h]`` per image, the frame the model
saw, for absolute-pixel profiles) and ``images`` (its length only: an answer naming no
image counts as Image-1 when the prompt had one).

Design (docs/rewards.md): the object reward is the IoU earned *only on the right image*,
the image reward pays for naming it, the format reward for one think block then one clean
answer. An ambiguous answer (several boxes or answer blocks) earns 0 from all three, so
hedging never pays. Each lies in [0, 1]; the total is a weighted sum. :data:`REWARDS` is
the one registry of built-ins: GRPO's ``--rewards``, its weights and verl's total read it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from mirg.core.answers import has_canonical_format, parse_answer
from mirg.core.boxes import iou
from mirg.core.judge import Judgement, judge


@dataclass(frozen=True)
class RewardBreakdown:
    object: float
    image: float
    format: float

    def total(self, weights: Mapping[str, float]) -> float:
        return sum(float(weights.get(k, 0.0)) * v for k, v in vars(self).items())


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
    """All three rewards of one completion (what the teacher's filter judges by)."""
    text = completion_text(completion)
    verdict = judge(parse_answer(text), target_image, target_box, profile, input_sizes, n_images)
    return RewardBreakdown(
        object=_thresholded(verdict.iou, iou_threshold),
        image=1.0 if verdict.image_ok else 0.0,
        format=1.0 if has_canonical_format(text) else 0.0,
    )


def _thresholded(value: float, threshold: object) -> float:
    if isinstance(threshold, (int, float)) and not isinstance(threshold, bool):
        return 1.0 if value >= threshold else 0.0
    return value


def _column(columns: Mapping[str, object], name: str, n: int, default: object = None) -> list:
    value = columns.get(name)
    if value is None:
        return [default] * n
    if isinstance(value, str) or not isinstance(value, Sequence):
        return [value] * n  # a scalar bound with functools.partial
    if len(value) != n:
        raise ValueError(f"reward column {name!r} has {len(value)} entries for {n} completions")
    return list(value)


def _judgements(
    completions: Sequence[object], columns: Mapping[str, object], need_box: bool
) -> list[tuple[Judgement, Sequence[float]]]:
    """(judgement, target box) per completion, from TRL's per-completion columns."""
    n = len(completions)
    if "target_image" not in columns:
        raise KeyError("reward needs the dataset column 'target_image' (1-based, or None)")
    if need_box and "target_box" not in columns:
        raise KeyError("reward needs the dataset column 'target_box' (relative 0..1 box)")
    rows = zip(
        completions,
        _column(columns, "target_image", n),
        _column(columns, "target_box", n),
        _column(columns, "profile", n, "normalized"),
        _column(columns, "input_sizes", n),
        _column(columns, "images", n),
        strict=True,
    )
    out = []
    for completion, target, box, profile, sizes, images in rows:
        parsed = parse_answer(completion_text(completion))
        n_images = len(images) if isinstance(images, (list, tuple)) else None
        verdict = judge(
            parsed, target, box, profile or "normalized", sizes, n_images, read_box=need_box
        )
        out.append((verdict, box))
    return out


def object_reward(completions: Sequence[object], **columns: object) -> list[float]:
    """IoU with the target box, earned only when the answer names the target image; with
    an ``iou_threshold`` keyword (bound with functools.partial), 1 at IoU >= threshold."""
    threshold = columns.get("iou_threshold")
    return [_thresholded(v.iou, threshold) for v, _ in _judgements(completions, columns, True)]


def iou_reward(completions: Sequence[object], **columns: object) -> list[float]:
    """Plain IoU with the target box, whichever image the answer names: the baseline of
    the dual-reward ablation (a box on the wrong image at the target's place still earns)."""
    return [
        iou(v.box, box) if v.box is not None else 0.0
        for v, box in _judgements(completions, columns, True)
    ]


def image_reward(completions: Sequence[object], **columns: object) -> list[float]:
    """1 when the answer names the target image (any image when the task sets none)."""
    return [1.0 if v.image_ok else 0.0 for v, _ in _judgements(completions, columns, False)]


def format_reward(completions: Sequence[object], **columns: object) -> list[float]:
    """1 for exactly one <think> block then exactly one clean <answer> block, else 0."""
    return [1.0 if has_canonical_format(completion_text(c)) else 0.0 for c in completions]


@dataclass(frozen=True)
class Reward:
    """A built-in reward: its function, its default weight, and whether it is part of the
    default reward (GRPO's default ``rewards`` and verl's total)."""

    function: Callable[..., list[float]]
    weight: float
    default: bool = True


#: The built-in rewards by short name (``mirg train grpo --rewards object``); "iou" (see
#: :func:`iou_reward`) is outside the default.
REWARDS: Mapping[str, Reward] = {
    "object": Reward(object_reward, 1.0),
    "image": Reward(image_reward, 1.0),
    "format": Reward(format_reward, 0.5),
    "iou": Reward(iou_reward, 1.0, default=False),
}

#: The default reward's components and their weights.
DEFAULT_WEIGHTS: Mapping[str, float] = {n: r.weight for n, r in REWARDS.items() if r.default}
