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
from mirg.core.boxes import Box, iou, is_number
from mirg.core.judge import judge, resolved_image
from mirg.core.migbench import TASKS
from mirg.core.profiles import ProfileError, get_profile
from mirg.errors import MirgError, shown

THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7)
#: Largest frame side accepted in ``input_sizes`` (far above any model's frame).
MAX_FRAME_SIDE = 1 << 20


class PredictionError(MirgError):
    """A predictions file or request that cannot be scored; the message names the file,
    line and field."""


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
    where: str = ""  # file:line it was read from, for messages


@dataclass(frozen=True)
class ItemScore:
    """One item's outcome; ``image_ok`` is None where the protocol does not check images.
    ``box`` is the predicted box (relative) and ``image`` the image the answer names, as
    the protocol read them: what a report draws."""

    key: int | str
    task: str
    iou: float
    image_ok: bool | None
    missing: bool = False
    box: Box | None = None
    image: int | None = None


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
    # The published evaluator never reads the image; the one the answer names is kept
    # for display only.
    named = resolved_image(parse_answer(prediction.response), len(item.images))
    return ItemScore(item.key, item.task, value, None, box=box, image=named)


def score_strict(item: ScorableItem, prediction: Prediction, profile: str) -> ItemScore:
    sizes, n_images = prediction.input_sizes, len(item.images)
    if sizes is not None and len(sizes) != n_images:
        where = f"{prediction.where}: " if prediction.where else f"item {shown(item.key)}: "
        raise PredictionError(
            f"{where}field 'input_sizes': {len(sizes)} frame(s) for {n_images} images; give "
            "one [w, h] per image, in order"
        )
    response = parse_answer(prediction.response)
    verdict = judge(response, item.target_image, item.target_box, profile, sizes, n_images)
    return ItemScore(
        item.key, item.task, verdict.iou, verdict.image_ok, box=verdict.box, image=verdict.image
    )


def score_items(
    items: Sequence[ScorableItem],
    predictions: Mapping[int | str, Prediction],
    protocol: str,
    profile: str | None = None,
) -> list[ItemScore]:
    """Score every item; an item without a prediction is a miss (``missing=True``)."""
    if protocol not in PROTOCOLS:
        raise PredictionError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if protocol == "strict":
        if profile is None:
            raise PredictionError("the strict protocol needs a coordinate profile (--profile)")
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
        first = predictions[unknown[0]]
        where = f"{first.where}: " if first.where else ""
        raise PredictionError(
            f"{where}predictions for unknown items: {shown(unknown[:5])} ({len(unknown)} in "
            "all): the benchmark has no such item; was the file made for another benchmark "
            "file or split?"
        )
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
    """The metrics JSON: accuracies in percent, mIoU as a fraction, unweighted task mean.
    Where the protocol checks images, each task and the average also carry ``image_acc``
    (percent of answers naming the right image)."""
    by_task: dict[str, list[ItemScore]] = {}
    missing = 0
    for s in scores:
        by_task.setdefault(s.task, []).append(s)
        missing += s.missing
    tasks = {}
    for task, group in by_task.items():
        n = len(group)
        row: dict[str, float | int] = {"n": n}
        for t in THRESHOLDS:
            row[f"acc@{t}"] = 100.0 * sum(s.iou >= t for s in group) / n
        row["miou"] = sum(s.iou for s in group) / n
        if any(s.image_ok is not None for s in group):
            row["image_acc"] = 100.0 * sum(bool(s.image_ok) for s in group) / n
        tasks[task] = row
    return metrics_dict(protocol, tasks, missing)


def metrics_dict(protocol: str, tasks: Mapping[str, Mapping], missing: int = 0) -> dict:
    """The metrics JSON from per-task rows: tasks in the published column order, each
    metric averaged over tasks (unweighted, as MIG-Bench reports)."""
    order = {task: i for i, task in enumerate(TASKS)}
    rows = dict(sorted(tasks.items(), key=lambda kv: order.get(kv[0], len(order))))
    keys = [*(f"acc@{t}" for t in THRESHOLDS), "miou"]
    if rows and all("image_acc" in row for row in rows.values()):
        keys.append("image_acc")
    average = {k: (sum(r[k] for r in rows.values()) / len(rows) if rows else 0.0) for k in keys}
    return {"protocol": protocol, "tasks": rows, "average": average, "missing": missing}


def format_table(metrics: Mapping) -> str:
    """A plain-text per-task table of a metrics dict."""

    def row(name: str, n: int, r: Mapping) -> str:
        return (
            f"{name:<18}{n:>6}{r['acc@0.3']:>9.2f}{r['acc@0.5']:>9.2f}"
            f"{r['acc@0.7']:>9.2f}{r['miou']:>8.3f}"
        )

    head = f"{'task':<18}{'n':>6}{'Acc@0.3':>9}{'Acc@0.5':>9}{'Acc@0.7':>9}{'mIoU':>8}"
    lines = [f"protocol: {metrics['protocol']}", head, "-" * len(head)]
    lines += [row(task, r["n"], r) for task, r in metrics["tasks"].items()]
    lines.append("-" * len(head))
    n_total = sum(r["n"] for r in metrics["tasks"].values())
    lines.append(row("average", n_total, metrics["average"]))
    if metrics.get("missing"):
        lines.append(f"missing predictions (scored as misses): {metrics['missing']}")
    return "\n".join(lines)


def _input_sizes(value: object, where: str) -> tuple[tuple[int, int], ...] | None:
    if value is None:
        return None
    ok = isinstance(value, list) and all(
        isinstance(s, list)
        and len(s) == 2
        and all(is_number(v) and 0 < v <= MAX_FRAME_SIDE for v in s)
        for s in value
    )
    if not ok:
        raise PredictionError(
            f"{where}: field 'input_sizes': expected [[w, h], …] with sizes from 1 to "
            f"{MAX_FRAME_SIDE} pixels, got {shown(value)}"
        )
    return tuple((int(w), int(h)) for w, h in value)  # type: ignore[misc]


def read_predictions(path: str | Path) -> dict[int | str, Prediction]:
    """Read predictions JSONL; malformed lines, duplicates and bad fields raise
    PredictionError naming the file, line and field. Blank lines are allowed."""
    path = Path(path)
    if path.is_dir():
        raise PredictionError(f"{path} is a folder; expected a predictions JSONL file")
    out: dict[int | str, Prediction] = {}
    with path.open("rb") as fh:
        # Decoded line by line: a text-mode reader decodes ahead, so a byte that is not
        # UTF-8 would be reported on an earlier line than its own.
        for lineno, raw in enumerate(fh, 1):
            if lineno == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a byte order mark, as every reader
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise PredictionError(
                    f"{path}:{lineno}: not UTF-8 text (byte {raw[exc.start]:#04x}); "
                    "predictions files are UTF-8 JSONL"
                ) from None
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PredictionError(f"{where}: not valid JSON: {exc.msg}") from None
            if not isinstance(obj, dict):
                raise PredictionError(f"{where}: expected a JSON object, got {shown(obj)}")
            if "index" in obj:
                key = obj["index"]
                if isinstance(key, bool) or not isinstance(key, int):
                    raise PredictionError(
                        f"{where}: field 'index': expected an integer, got {shown(key)}"
                    )
            elif "id" in obj:
                key = obj["id"]
                if not isinstance(key, (str, int)) or isinstance(key, bool):
                    raise PredictionError(
                        f"{where}: field 'id': expected a string or integer, got {shown(key)}"
                    )
            else:
                raise PredictionError(f"{where}: missing field 'index' (or 'id')")
            response = obj.get("response")
            if not isinstance(response, str):
                raise PredictionError(
                    f"{where}: field 'response': expected text, got {shown(response)}"
                )
            if key in out:
                raise PredictionError(f"{where}: duplicate prediction for item {shown(key)}")
            out[key] = Prediction(key, response, _input_sizes(obj.get("input_sizes"), where), where)
    return out
