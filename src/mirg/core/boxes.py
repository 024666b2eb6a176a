"""Boxes in mirg's internal form: (x1, y1, x2, y2) relative to the image, 0..1.

Every other coordinate convention (0..1000 integers, absolute pixels of a resized frame)
is converted to this form at the edges (see ``profiles``), so IoU, rewards and scoring
only ever see relative boxes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from mirg.errors import MirgError

Box = tuple[float, float, float, float]

#: How far a relative coordinate may lie outside [0, 1] and still be valid. Annotation
#: tools and rounding put boxes a hair outside the image (MIG-Bench has answers at 1.001);
#: one percent of the side is generous for rounding and still rejects wrong conventions
#: (a 0..1000 box read as relative lies far outside).
BOX_TOLERANCE = 0.01


class BoxError(MirgError):
    """A box that is not four finite, ordered numbers inside the image."""


def is_number(value: object) -> bool:
    """A finite int or float (a bool is not a number here)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def finite_box(value: object) -> Box | None:
    """A JSON list of four finite numbers as floats, in whatever convention a file stores
    boxes (unordered, unbounded); None for anything else."""
    if isinstance(value, list) and len(value) == 4 and all(is_number(v) for v in value):
        return tuple(float(v) for v in value)  # type: ignore[return-value]
    return None


def validate_box(values: object, *, tolerance: float = BOX_TOLERANCE, where: str = "box") -> Box:
    """Return ``values`` as a relative :data:`Box`, or raise :class:`BoxError` saying why.

    ``where`` names the box in the message (file, item and field), so callers can say
    exactly which input is bad.
    """
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise BoxError(f"{where}: expected a list of 4 numbers, got {type(values).__name__}")
    if len(values) != 4:
        raise BoxError(f"{where}: expected 4 numbers, got {len(values)}")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise BoxError(f"{where}: expected numbers, got {v!r}")
        if not math.isfinite(v):
            raise BoxError(f"{where}: coordinate {v!r} is not finite")
        out.append(float(v))
    x1, y1, x2, y2 = out
    if x2 <= x1 or y2 <= y1:
        raise BoxError(f"{where}: box {out} is empty or inverted (need x1 < x2 and y1 < y2)")
    lo, hi = -tolerance, 1.0 + tolerance
    if not all(lo <= v <= hi for v in out):
        raise BoxError(
            f"{where}: box {out} lies outside the image (relative 0..1, tolerance {tolerance})"
        )
    return (x1, y1, x2, y2)


def clip_box(box: Sequence[float]) -> Box:
    """Clamp each coordinate into [0, 1] (ordering is left as is)."""
    x1, y1, x2, y2 = (min(1.0, max(0.0, float(v))) for v in box)
    return (x1, y1, x2, y2)


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Continuous intersection over union of two boxes in the same coordinates.

    Never raises on numbers: an inverted box, a degenerate one, an empty union or a
    non-finite coordinate scores 0. This is also the published MIG-Bench evaluator's
    formula, whose only other outcome (a division by zero) we score as 0.
    """
    ax1, ay1, ax2, ay2 = a
    bx1, by1, bx2, by2 = b
    if not (ax1 < ax2 and ay1 < ay2 and bx1 < bx2 and by1 < by2):
        return 0.0  # inverted, degenerate or NaN (every comparison with NaN is false)
    iw = min(ax2, bx2) - max(ax1, bx1)
    ih = min(ay2, by2) - max(ay1, by1)
    if not (iw > 0 and ih > 0):
        return 0.0
    inter = iw * ih
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    if not (union > 0) or not math.isfinite(union):
        return 0.0
    value = inter / union
    return value if 0.0 <= value <= 1.0 else (1.0 if value > 1.0 else 0.0)
