"""MIG-Bench scoring under two protocols, per task and averaged.

``official`` reproduces the published MIG-Bench evaluator so numbers compare with the
literature: it searches the response for a box with six patterns tried in a fixed order
(the first pattern that matches anywhere wins), rescales values the way the evaluator does,
never checks the image, and scores the plain IoU against the answer box as stored.

``strict`` is image-aware: the response is parsed with mirg's parser under a coordinate
profile, and a hit at threshold t needs IoU >= t *and* the right image wherever the task
determines one. Its IoU is image-gated (0 on the wrong image), like the object reward.

Predictions are JSONL lines ``{"index": i, "response": "…"}`` (or ``"id"`` for mirg
datasets), plus ``"input_sizes": [[w, h], …]`` for absolute-pixel profiles.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mirg.core.answers import parse_answer
from mirg.core.boxes import iou
from mirg.core.migbench import TASKS
from mirg.core.profiles import ProfileError, get_profile
from mirg.core.rewards import image_correct, predicted_box

THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7)
PROTOCOLS: tuple[str, ...] = ("official", "strict")

_I = r"(\d+)"
_F = r"(\d+\.\d+)"
#: The published evaluator's box patterns, in the order it tries them.
OFFICIAL_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(rf"\({_I},\s*{_I}\),\s*\({_I},\s*{_I}\)"),  # (a,b),(c,d) integers
    re.compile(rf"\[{_F},\s*{_F},\s*{_F},\s*{_F}\]"),  # [a, b, c, d] decimals
    re.compile(rf"\({_F},{_F}\),\({_F},{_F}\)"),  # (a,b),(c,d) decimals, no spaces
    re.compile(rf"\({_F},\s*{_F},\s*{_F},\s*{_F}\)"),  # (a, b, c, d) decimals
    re.compile(rf"\[{_I},\s*{_I},\s*{_I},\s*{_I}\]"),  # [a, b, c, d] integers
    re.compile(rf"<box>{_I}\s+{_I}\s+{_I}\s+{_I}</box>"),  # <box>a b c d</box>
)


class ScorableItem(Protocol):
    """What scoring needs of a benchmark item (MigBenchItem and mirg dataset items)."""

    @property
    def key(self) -> int | str: ...

    task: str
    images: Sequence[str]
    target_box: Sequence[float]
    target_image: int | None


@dataclass(frozen=True)
class Prediction:
    key: int | str
    response: str
    input_sizes: tuple[tuple[int, int], ...] | None = None


@dataclass(frozen=True)
class ItemScore:
    """One item's outcome; ``image_ok`` is None where the protocol does not check images."""

    key: int | str
    task: str
    iou: float
    image_ok: bool | None
    missing: bool = False


def official_box(response: str) -> tuple[float, float, float, float] | None:
    """The box the published evaluator reads from a response, rescaled as it rescales."""
    for pattern in OFFICIAL_PATTERNS:
        matches = pattern.findall(response)
        if not matches:
            continue
        values = [float(v) for v in matches[0]]
        if len(matches) == 1:
            values = [v / 1000.0 if v >= 1 else v for v in values]
        else:
            values = [v / 1000.0 if v > 1 else v for v in values]
        return tuple(values)  # type: ignore[return-value]
    return None


def score_official(item: ScorableItem, prediction: Prediction) -> ItemScore:
    box = official_box(prediction.response)
    value = iou(box, item.target_box) if box is not None else 0.0
    return ItemScore(item.key, item.task, value, None)


def score_strict(item: ScorableItem, prediction: Prediction, profile: str) -> ItemScore:
    parsed = parse_answer(prediction.response)
    n_images = len(item.images)
    ok = image_correct(parsed, item.target_image, n_images)
    if not ok:
        return ItemScore(item.key, item.task, 0.0, False)
    box = predicted_box(parsed, profile, prediction.input_sizes, n_images)
    return ItemScore(item.key, item.task, iou(box, item.target_box) if box else 0.0, True)


def score_items(
    items: Sequence[ScorableItem],
    predictions: Mapping[int | str, Prediction],
    protocol: str,
    profile: str | None = None,
) -> list[ItemScore]:
    """Score every item; an item without a prediction is a miss (``missing=True``)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if protocol == "strict":
        if profile is None:
            raise ValueError("the strict protocol needs a coordinate profile (--profile)")
        prof = get_profile(profile)
        if prof.needs_frame:
            lacking = [p.key for p in predictions.values() if not p.input_sizes]
            if lacking:
                raise ProfileError(
                    f"profile {prof.name!r} writes absolute pixels: predictions need "
                    f"'input_sizes' (the frame each image was shown at); missing for "
                    f"{len(lacking)} predictions, e.g. {lacking[:3]}"
                )
    known = {item.key for item in items}
    unknown = [k for k in predictions if k not in known]
    if unknown:
        raise ValueError(f"predictions for unknown items: {unknown[:5]} ({len(unknown)} in all)")
    scores = []
    for item in items:
        pred = predictions.get(item.key)
        if pred is None:
            scores.append(ItemScore(item.key, item.task, 0.0, False, missing=True))
        elif protocol == "official":
            scores.append(score_official(item, pred))
        else:
            scores.append(score_strict(item, pred, profile))  # type: ignore[arg-type]
    return scores


def aggregate(scores: Iterable[ItemScore], protocol: str) -> dict:
    """The metrics JSON: accuracies in percent, mIoU as a fraction, unweighted task mean."""
    by_task: dict[str, list[ItemScore]] = {}
    missing = 0
    for s in scores:
        by_task.setdefault(s.task, []).append(s)
        missing += s.missing
    tasks = {}
    order = {task: i for i, task in enumerate(TASKS)}  # published column order first
    for task, group in sorted(by_task.items(), key=lambda kv: order.get(kv[0], len(order))):
        n = len(group)
        row: dict[str, float | int] = {"n": n}
        for t in THRESHOLDS:
            row[f"acc@{t}"] = 100.0 * sum(s.iou >= t for s in group) / n
        row["miou"] = sum(s.iou for s in group) / n
        tasks[task] = row
    keys = [f"acc@{t}" for t in THRESHOLDS] + ["miou"]
    average = {
        k: (sum(row[k] for row in tasks.values()) / len(tasks) if tasks else 0.0) for k in keys
    }
    return {"protocol": protocol, "tasks": tasks, "average": average, "missing": missing}


def format_table(metrics: Mapping) -> str:
    """A plain-text per-task table of a metrics dict."""
    head = f"{'task':<18}{'n':>6}{'Acc@0.3':>9}{'Acc@0.5':>9}{'Acc@0.7':>9}{'mIoU':>8}"
    lines = [f"protocol: {metrics['protocol']}", head, "-" * len(head)]
    for task, r in metrics["tasks"].items():
        lines.append(
            f"{task:<18}{r['n']:>6}{r['acc@0.3']:>9.2f}{r['acc@0.5']:>9.2f}"
            f"{r['acc@0.7']:>9.2f}{r['miou']:>8.3f}"
        )
    a = metrics["average"]
    n_total = sum(r["n"] for r in metrics["tasks"].values())
    lines.append("-" * len(head))
    lines.append(
        f"{'average':<18}{n_total:>6}{a['acc@0.3']:>9.2f}{a['acc@0.5']:>9.2f}"
        f"{a['acc@0.7']:>9.2f}{a['miou']:>8.3f}"
    )
    if metrics.get("missing"):
        lines.append(f"missing predictions (scored as misses): {metrics['missing']}")
    return "\n".join(lines)


def _input_sizes(value: object, where: str) -> tuple[tuple[int, int], ...] | None:
    if value is None:
        return None
    ok = isinstance(value, list) and all(
        isinstance(s, list)
        and len(s) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in s)
        for s in value
    )
    if not ok:
        raise ValueError(f"{where}: field 'input_sizes': expected [[w, h], …] with positive sizes")
    return tuple((int(w), int(h)) for w, h in value)  # type: ignore[misc]


def read_predictions(path: str | Path) -> dict[int | str, Prediction]:
    """Read predictions JSONL; malformed lines, duplicates and bad fields raise ValueError
    naming the file, line and field. Blank lines are allowed."""
    path = Path(path)
    out: dict[int | str, Prediction] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: not valid JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise ValueError(f"{where}: expected a JSON object")
            if "index" in obj:
                key = obj["index"]
                if isinstance(key, bool) or not isinstance(key, int):
                    raise ValueError(f"{where}: field 'index': expected an integer, got {key!r}")
            elif "id" in obj:
                key = obj["id"]
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    raise ValueError(f"{where}: field 'id': expected a string or integer")
            else:
                raise ValueError(f"{where}: missing field 'index' (or 'id')")
            response = obj.get("response")
            if not isinstance(response, str):
                raise ValueError(f"{where}: field 'response': expected text, got {response!r}")
            if key in out:
                raise ValueError(f"{where}: duplicate prediction for item {key!r}")
            out[key] = Prediction(key, response, _input_sizes(obj.get("input_sizes"), where))
    return out
