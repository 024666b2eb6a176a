"""The one image-gated judge of an answer: the rewards, the strict protocol, verl and the
report all ask it, so a box can never count in one place and not in another.

An answer is right on the image when it names the target image (any image counts where
the task sets none; with one image, an answer that names none means Image-1). Its box is
read in the model's coordinate profile on the frame of the image it names, and its IoU
with the target counts only on the right image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from mirg.core.answers import ParsedAnswer
from mirg.core.boxes import Box, iou
from mirg.core.profiles import CoordinateProfile, ProfileError, get_profile


@dataclass(frozen=True)
class Judgement:
    """``image_ok``: the answer names the target image. ``box``: the answer's box, relative,
    on the image it names (None when there is none or it cannot be read). ``iou``: IoU with
    the target box, 0 on the wrong image."""

    image_ok: bool
    box: Box | None
    iou: float
    image: int | None  # the image the answer refers to


def resolved_image(parsed: ParsedAnswer, n_images: int | None) -> int | None:
    """The image an answer refers to: the named one, or Image-1 for a one-image prompt."""
    if parsed.image is None and n_images == 1:
        return 1
    return parsed.image


def answer_box(
    parsed: ParsedAnswer,
    profile: str | CoordinateProfile,
    frames: Sequence[Sequence[int]] | None = None,
    n_images: int | None = None,
) -> Box | None:
    """The answer's box as a relative box, or None when it has none or it cannot be
    converted. Absolute-pixel profiles read it on the frame of the image the answer names
    (Image-1 when it names none, as for aligned image pairs)."""
    if parsed.box is None or parsed.error is not None:
        return None
    prof = get_profile(profile)
    frame = None
    if prof.needs_frame:
        if not frames:
            raise ProfileError(
                f"profile {prof.name!r} needs input_sizes (the frame each image was shown at)"
            )
        if n_images is not None and len(frames) != n_images:
            raise ProfileError(
                f"input_sizes has {len(frames)} frame(s) for {n_images} images; one [w, h] "
                "per image is needed to read the box"
            )
        k = resolved_image(parsed, n_images) or 1
        if not 1 <= k <= len(frames):
            return None
        frame = frames[k - 1]
    box = prof.to_relative(parsed.box, frame)
    return box if all(math.isfinite(v) for v in box) else None


def judge(
    parsed: ParsedAnswer,
    target_image: int | None,
    target_box: Sequence[float],
    profile: str | CoordinateProfile = "normalized",
    frames: Sequence[Sequence[int]] | None = None,
    n_images: int | None = None,
    *,
    read_box: bool = True,
) -> Judgement:
    """Judge one parsed answer against its target (``frames``: the [w, h] each image was
    shown at, needed by absolute-pixel profiles; ``read_box`` False judges the image only).
    An answer the parser flagged (several boxes, several answer blocks) is wrong on the
    image and has no box: hedging earns 0."""
    if parsed.error is not None:
        return Judgement(False, None, 0.0, None)
    image = resolved_image(parsed, n_images)
    image_ok = target_image is None or image == int(target_image)
    if not read_box:
        return Judgement(image_ok, None, 0.0, image)
    try:
        box = answer_box(parsed, profile, frames, n_images)
    except ProfileError:
        if image_ok:
            raise
        box = None  # a wrong-image answer scores 0 whatever its frame
    overlap = iou(box, target_box) if image_ok and box is not None else 0.0
    return Judgement(image_ok, box, overlap, image)
