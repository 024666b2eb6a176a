"""Chance levels: what a guesser scores on the same split, to print beside every figure.

The guesser names a uniformly random image and draws a box from the training split's
target boxes (so its boxes have the sizes and places real targets have). Its expected
strict metrics are estimated by Monte Carlo with a fixed seed; its image accuracy is
exact: 1/n for an item with n images (1 where the task sets no target image).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from mirg.core.boxes import iou
from mirg.core.scoring import THRESHOLDS, metrics_dict
from mirg.errors import MirgError

ACC_KEYS = tuple(f"acc@{t}" for t in THRESHOLDS)


def chance_metrics(
    items: Sequence[object],
    prior_boxes: Sequence[Sequence[float]],
    *,
    draws: int = 200,
    seed: int = 0,
) -> dict:
    """The guesser's expected strict metrics in ``mirg score``'s shape, plus ``image_acc``
    (percent) overall and per task. ``items`` need ``task``, ``images``, ``target_box`` and
    ``target_image``; ``prior_boxes`` are the training split's relative target boxes."""
    if not prior_boxes:
        raise MirgError("chance levels need the training split's target boxes")
    rng = random.Random(seed)
    sums: dict[str, dict[str, float]] = {}
    image_hits = 0.0
    for it in items:
        p_image = 1.0 if it.target_image is None else 1.0 / len(it.images)  # type: ignore[attr-defined]
        ious = [iou(rng.choice(prior_boxes), it.target_box) for _ in range(draws)]  # type: ignore[attr-defined]
        row = sums.setdefault(
            it.task,  # type: ignore[attr-defined]
            {"n": 0, "miou": 0.0, "image_acc": 0.0, **dict.fromkeys(ACC_KEYS, 0.0)},
        )
        row["n"] += 1
        row["image_acc"] += 100.0 * p_image
        row["miou"] += p_image * sum(ious) / draws
        for t, key in zip(THRESHOLDS, ACC_KEYS, strict=True):
            row[key] += 100.0 * p_image * sum(v >= t for v in ious) / draws
        image_hits += p_image
    tasks = {
        task: {"n": int(r["n"]), **{k: r[k] / r["n"] for k in (*ACC_KEYS, "miou", "image_acc")}}
        for task, r in sums.items()
    }
    return {**metrics_dict("strict", tasks), "image_acc": 100.0 * image_hits / len(items)}
