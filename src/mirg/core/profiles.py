"""Coordinate profiles: how each model family writes a box as text.

A profile converts between the numbers a model reads and writes and mirg's relative
0..1 boxes, and renders boxes for prompts and training targets. The families differ:

* ``qwen2-vl``: integers 0..1000 relative to the image; native text
  ``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``.
* ``qwen2.5-vl``: absolute pixels of the *resized frame the model saw* (Qwen's
  smart-resize, sides multiples of 28); native JSON ``{"bbox_2d": [x1, y1, x2, y2]}``.
  Converting needs that frame's (width, height) for the image the box is on.
* ``qwen3-vl``: integers 0..1000 relative; native JSON ``{"bbox_2d": [...]}``.
* ``normalized``: floats 0..1 with three decimals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mirg.core.boxes import Box
from mirg.errors import MirgError


class ProfileError(MirgError):
    """A conversion that cannot be made, e.g. absolute pixels without the frame size."""


def smart_resize(
    height: int,
    width: int,
    factor: int = 28,
    min_pixels: int = 56 * 56,
    max_pixels: int = 28 * 28 * 1280,
) -> tuple[int, int]:
    """Qwen-VL's resize rule: the (height, width) the vision tower actually sees.

    Both sides become multiples of ``factor`` (patch size x spatial merge: 28 for
    Qwen2/2.5-VL, 32 for Qwen3-VL) and the area is kept within [min_pixels, max_pixels]
    while the aspect ratio is preserved as closely as the rounding allows.
    """
    if height <= 0 or width <= 0:
        raise ProfileError(f"image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise ProfileError(f"aspect ratio of {width}x{height} exceeds 200, Qwen-VL rejects it")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.3f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class CoordinateProfile:
    """One family's text coordinates. ``scale`` is 1000 (relative integers), 1 (relative
    floats) or ``None`` (absolute pixels of the frame the model saw)."""

    name: str
    scale: int | None
    native: str  # "box_tokens" or "json"

    @property
    def needs_frame(self) -> bool:
        return self.scale is None

    def _frame(self, frame: Sequence[int] | None) -> tuple[float, float]:
        """What the numbers are relative to: the scale, or the frame for absolute pixels."""
        if self.scale is not None:
            return self.scale, self.scale
        if frame is None:
            raise ProfileError(
                f"profile {self.name!r} writes absolute pixels of the resized frame the model "
                "saw; the frame's (width, height) is required (input_sizes)"
            )
        w, h = frame
        if not (w > 0 and h > 0):
            raise ProfileError(f"profile {self.name!r}: frame size must be positive, got {frame}")
        return float(w), float(h)

    def to_relative(self, values: Sequence[float], frame: Sequence[int] | None = None) -> Box:
        """Model text coordinates -> relative box (no validation, no clipping)."""
        x1, y1, x2, y2 = values
        w, h = self._frame(frame)
        return (x1 / w, y1 / h, x2 / w, y2 / h)

    def from_relative(
        self, box: Sequence[float], frame: Sequence[int] | None = None
    ) -> tuple[float, float, float, float]:
        """Relative box -> the numbers this family writes (ints, or 3-decimal floats)."""
        x1, y1, x2, y2 = (float(v) for v in box)
        if self.scale == 1:
            return tuple(round(min(1.0, max(0.0, v)), 3) for v in (x1, y1, x2, y2))  # type: ignore[return-value]
        w, h = self._frame(frame)
        vals, lims = (x1 * w, y1 * h, x2 * w, y2 * h), (w, h, w, h)
        return tuple(int(min(lim, max(0, round(v)))) for v, lim in zip(vals, lims, strict=True))  # type: ignore[return-value]

    def render_box(self, box: Sequence[float], frame: Sequence[int] | None = None) -> str:
        """The box as a JSON list in this family's numbers, e.g. ``[120, 45, 300, 210]``."""
        return "[" + ", ".join(_fmt(v) for v in self.from_relative(box, frame)) + "]"

    def render_native(self, box: Sequence[float], frame: Sequence[int] | None = None) -> str:
        """The box the way the family's pretraining wrote it (for prompts that quote boxes)."""
        if self.native == "json":
            return f'{{"bbox_2d": {self.render_box(box, frame)}}}'
        x1, y1, x2, y2 = (_fmt(v) for v in self.from_relative(box, frame))
        return f"<|box_start|>({x1},{y1}),({x2},{y2})<|box_end|>"

    def render_answer(
        self, image: int, box: Sequence[float], frame: Sequence[int] | None = None
    ) -> str:
        """mirg's canonical answer body: ``{"image": K, "bbox_2d": [x1, y1, x2, y2]}``."""
        return f'{{"image": {int(image)}, "bbox_2d": {self.render_box(box, frame)}}}'


PROFILES: dict[str, CoordinateProfile] = {
    "qwen2-vl": CoordinateProfile("qwen2-vl", 1000, "box_tokens"),
    "qwen2.5-vl": CoordinateProfile("qwen2.5-vl", None, "json"),
    "qwen3-vl": CoordinateProfile("qwen3-vl", 1000, "json"),
    "normalized": CoordinateProfile("normalized", 1, "json"),
}


def get_profile(name: str | CoordinateProfile) -> CoordinateProfile:
    """The profile called ``name`` (a profile passes through), or a ProfileError listing them."""
    if isinstance(name, CoordinateProfile):
        return name
    try:
        return PROFILES[name]
    except (KeyError, TypeError):
        known = ", ".join(PROFILES)
        raise ProfileError(f"unknown coordinate profile {name!r}; known: {known}") from None
