"""MC-Bench: its annotation file, mirg's prompt for it, and its two metrics.

MC-Bench (Xu et al., 2024; github.com/XuYunqiu/MC-Bench) pairs two images with a short
open-ended text (a *referring*, *comparison* or *reasoning* style, covering 20 skills) and
annotates every instance the text picks out, in either image, both or neither. Its file
is COCO-like JSON (``descriptions``, ``images``, ``annotations``, ``categories``): one
description per sample names its images (``images_id``), each annotation is a pixel box
``[x, y, w, h]`` on one image, and its ``category_id`` is a *group* ("group 1", "group 2"…)
where a text asks for several kinds of instance. A sample without annotations is a
negative one. Results are COCO detections: ``{"image_id", "category_id", "bbox", "score"}``.

The metrics are those of the published evaluation script (``eval_mc_bench.py``),
reimplemented here without numpy, pycocotools or scipy:

* **image-level accuracy**: a sample is right when, for each of its images, "at least
  one prediction" equals "at least one target"; every prediction counts, whatever its
  score or group;
* **instance-level AP50**: COCO box AP at IoU 0.5 (all areas, at most 100 predictions
  per image and group, precision at 101 recall points), per group, averaged with
  weights equal to each group's share of the annotations. Predictions are ranked by
  score (ties keep the file's order, image by image); a prediction on an image without
  that group's target is a false positive.

Before AP the script renames the predicted groups of each image with a "group 2" target
and its pair to the annotated groups they match best (every ordering tried, scored by the
mean IoU of a Hungarian matching), with two defects: it rereads the results for every such
image, so only the last one's renaming survives, and it renames one group after another, so
a swap 1 <-> 2 puts every box into group 1. Protocol ``official`` keeps both, and the
script's file-order readings, so it gives the published figures bit for bit
(:func:`regroup_as_script`); ``corrected`` renames every such sample's groups at once
(:func:`regroup`). They differ only where a renaming lost or merged changes a group.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import json
import math
import operator
import re
from collections import Counter
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mirg.core.answers import answer_region
from mirg.core.boxes import finite_box, is_number
from mirg.core.migbench import BenchError, read_bench_json
from mirg.core.profiles import CoordinateProfile, get_profile
from mirg.core.prompts import COORDINATE_WORDS, THINK_THEN_ANSWER, user_content

#: The three text styles, in the order tables show them.
STYLES: tuple[str, ...] = ("Referring", "Comparison", "Reasoning")
#: The evaluation script's constants: IoU threshold, predictions kept per image and group,
#: the area range of "all", and the 101 recall points (numpy's linspace values, exactly).
IOU_THRESHOLD = 0.5
MAX_DETECTIONS = 100
AREA_RANGE = (0.0, 1e5**2)
RECALL_POINTS: tuple[float, ...] = (*(k * 0.01 for k in range(100)), 1.0)
_EPS = 2.220446049250313e-16  # np.spacing(1), added to the precision's denominator


# --------------------------------------------------------------------------- the file


@dataclass(frozen=True)
class McImage:
    id: int
    file_name: str
    width: int
    height: int

    def relative(self, bbox: Sequence[float]) -> tuple[float, float, float, float]:
        """A pixel box ``[x, y, w, h]`` on this image as mirg's relative (x1, y1, x2, y2)."""
        x, y, w, h = bbox
        return (x / self.width, y / self.height, (x + w) / self.width, (y + h) / self.height)


@dataclass(frozen=True)
class McTarget:
    """One annotated instance: ``image`` is its 1-based place in the sample."""

    id: int
    image: int
    bbox: tuple[float, float, float, float]  # x, y, w, h in pixels of the original image
    group: int  # category_id
    iscrowd: bool = False
    area: float = 0.0

    def relative(self, image: McImage) -> tuple[float, float, float, float]:
        """The box as mirg's relative (x1, y1, x2, y2)."""
        return image.relative(self.bbox)


@dataclass(frozen=True)
class McFile:
    """What the published script reads from the file beyond the samples."""

    images: tuple[int, ...]  # image ids in the file's order: its accuracy pairs neighbours
    pairs: Mapping[int, int]  # image id -> ``pair_image_id`` (else the next image of its text)
    categories: tuple[int, ...]  # category ids in the file's order
    second: tuple[int, ...]  # the ids of the categories named "group 2"
    annotations: tuple[tuple[int, int], ...]  # (image id, category id), in the file's order

    def regrouped_images(self, keep: Container[int]) -> list[int]:
        """``coco.getImgIds(catIds=coco.getCatIds('group 2'))`` on a file holding only the
        images in ``keep``: CPython's set order, built as pycocotools builds it."""
        if not self.second:
            return [i for i in self.images if i in keep]
        ids, *others = (
            set([i for i, c in self.annotations if c == k and i in keep]) for k in self.second
        )
        for other in others:
            ids &= other
        return list(ids)


@dataclass(frozen=True)
class McSample:
    """One description with its images (in ``images_id`` order) and every target."""

    id: int
    text: str
    style: str
    positive: bool
    images: tuple[McImage, ...]
    targets: tuple[McTarget, ...]
    file: McFile = dataclasses.field(compare=False, repr=False)
    regrouped: bool = False  # predicted groups are matched to the annotated ones (regroup)


@dataclass(frozen=True)
class Detection:
    """One predicted box, in the published results format's terms."""

    image_id: int
    group: int  # category_id
    bbox: tuple[float, float, float, float]  # x, y, w, h in pixels
    score: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id,
            "category_id": self.group,
            "bbox": list(self.bbox),
            "score": self.score,
        }


def is_mcbench(raw: object) -> bool:
    """Whether decoded JSON looks like an MC-Bench file (MIG-Bench's is a list)."""
    return isinstance(raw, dict) and {"descriptions", "images", "annotations"} <= set(raw)


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _records(raw: dict, name: str, where: str) -> list[dict]:
    records = raw.get(name)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise BenchError(f"{where}: field {name!r}: expected a list of objects")
    return records


def parse_mcbench(raw: object, where: str) -> list[McSample]:
    """Validate decoded MC-Bench JSON and build its samples, in the file's order.

    Errors name ``where``, the record (``descriptions[3]``, ``annotations[17]``) and the
    field. Each image belongs to exactly one description; ``area`` and ``iscrowd`` default
    to the box's area and 0 where a file leaves them out.
    """
    if not isinstance(raw, dict):
        raise BenchError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    for name in ("descriptions", "images", "annotations"):
        if name not in raw:
            raise BenchError(f"{where}: field {name!r}: missing (is this an MC-Bench file?)")

    def bad(record: str, field: str, why: str) -> BenchError:
        return BenchError(f"{where}: {record}: field {field!r}: {why}")

    groups: list[int] | None = None
    second: list[int] = []  # the ids of the categories named "group 2"
    if "categories" in raw:
        groups = []
        for k, cat in enumerate(_records(raw, "categories", where)):
            if not _int(cat.get("id")):
                raise bad(f"categories[{k}]", "id", f"expected an integer, got {cat.get('id')!r}")
            groups.append(cat["id"])
            if cat.get("name") == "group 2":
                second.append(cat["id"])

    images: dict[int, McImage] = {}
    pairs: dict[int, int] = {}
    for k, img in enumerate(_records(raw, "images", where)):
        record = f"images[{k}]"
        for field in ("id", "width", "height"):
            if not _int(img.get(field)) or (field != "id" and img[field] <= 0):
                raise bad(record, field, f"expected a positive integer, got {img.get(field)!r}")
        if not isinstance(img.get("file_name"), str) or not img["file_name"]:
            raise bad(
                record, "file_name", f"expected a relative path, got {img.get('file_name')!r}"
            )
        if img["id"] in images:
            raise bad(record, "id", f"duplicate image id {img['id']}")
        images[img["id"]] = McImage(img["id"], img["file_name"], img["width"], img["height"])
        if _int(img.get("pair_image_id")):
            pairs[img["id"]] = img["pair_image_id"]

    owner: dict[int, int] = {}  # image id -> description id
    descriptions: dict[int, dict] = {}  # by id, in the file's order
    for k, desc in enumerate(_records(raw, "descriptions", where)):
        record = f"descriptions[{k}]"
        if not _int(desc.get("id")):
            raise bad(record, "id", f"expected an integer, got {desc.get('id')!r}")
        record = f"descriptions[{k}] (id {desc['id']})"
        ids = desc.get("images_id")
        if not isinstance(ids, list) or not ids or not all(_int(i) for i in ids):
            raise bad(record, "images_id", f"expected a list of image ids, got {ids!r}")
        for n, i in enumerate(ids):
            pairs.setdefault(i, ids[(n + 1) % len(ids)])
            if i not in images:
                raise bad(record, "images_id", f"no image with id {i}")
            if i in owner:
                raise bad(record, "images_id", f"image {i} already belongs to description "
                          f"{owner[i]}")  # fmt: skip
            owner[i] = desc["id"]
        if not isinstance(desc.get("text"), str) or not desc["text"].strip():
            raise bad(record, "text", "expected non-empty text")
        if not isinstance(desc.get("text_style"), str) or not desc["text_style"]:
            raise bad(record, "text_style", f"expected one of {', '.join(STYLES)}")
        if not isinstance(desc.get("positive_sample", True), bool):
            raise bad(record, "positive_sample", "expected true or false")
        if desc["id"] in descriptions:
            raise bad(record, "id", f"duplicate description id {desc['id']}")
        descriptions[desc["id"]] = desc

    targets: dict[int, list[tuple[int, McTarget]]] = {}  # image id -> (order, target)
    ann_ids: set[int] = set()
    in_file: list[tuple[int, int]] = []  # (image id, category id) of each annotation
    for k, ann in enumerate(_records(raw, "annotations", where)):
        record = f"annotations[{k}]"
        for field in ("id", "image_id", "category_id"):
            if not _int(ann.get(field)):
                raise bad(record, field, f"expected an integer, got {ann.get(field)!r}")
        if ann["id"] in ann_ids:
            raise bad(record, "id", f"duplicate annotation id {ann['id']}")
        ann_ids.add(ann["id"])
        if ann["image_id"] not in owner:
            raise bad(record, "image_id", f"no description holds image {ann['image_id']}")
        if groups is not None and ann["category_id"] not in groups:
            raise bad(record, "category_id", f"{ann['category_id']} is not in 'categories'")
        bbox = ann.get("bbox")
        box = finite_box(bbox)
        if box is None or box[2] < 0 or box[3] < 0:
            raise bad(record, "bbox", f"expected [x, y, w, h] with w, h >= 0, got {bbox!r}")
        area = ann.get("area", bbox[2] * bbox[3])
        if not is_number(area):
            raise bad(record, "area", f"expected a number, got {area!r}")
        crowd = ann.get("iscrowd", 0)
        if crowd not in (0, 1) or isinstance(crowd, float):
            raise bad(record, "iscrowd", f"expected 0 or 1, got {crowd!r}")
        target = McTarget(ann["id"], 0, box, ann["category_id"], bool(crowd), float(area))
        targets.setdefault(ann["image_id"], []).append((k, target))
        in_file.append((ann["image_id"], ann["category_id"]))

    categories = groups if groups is not None else sorted({c for _, c in in_file})
    file = McFile(tuple(images), pairs, tuple(categories), tuple(second), tuple(in_file))
    samples = []
    for desc in descriptions.values():
        sample_images = tuple(images[i] for i in desc["images_id"])
        found = sorted(
            (order, replace(t, image=pos))
            for pos, img in enumerate(sample_images, 1)
            for order, t in targets.get(img.id, [])
        )
        samples.append(
            McSample(
                id=desc["id"],
                text=desc["text"].strip(),
                style=desc["text_style"],
                positive=desc.get("positive_sample", bool(found)),
                images=sample_images,
                targets=tuple(t for _, t in found),
                regrouped=not second or any(t.group in second for _, t in found),
                file=file,
            )
        )
    return samples


def load_mcbench(path: str | Path) -> list[McSample]:
    """Read and validate an MC-Bench annotation file (``mc-bench_v0.2_val.json``)."""
    path = Path(path)
    return parse_mcbench(read_bench_json(path, "MC-Bench annotation file"), str(path))


def read_results(path: str | Path, samples: Sequence[McSample]) -> list[Detection]:
    """Read a results file in the published format; every detection must name an image of
    ``samples``. Errors name the file, the result and the field."""
    path = Path(path)
    raw = read_bench_json(path, "MC-Bench results file")
    if not isinstance(raw, list):
        raise BenchError(f"{path}: expected a JSON list of detections")
    known = {img.id for s in samples for img in s.images}
    out = []
    for k, det in enumerate(raw):
        where = f"{path}: result {k}"
        if not isinstance(det, dict):
            raise BenchError(f"{where}: expected an object")
        for field in ("image_id", "category_id"):
            if not _int(det.get(field)):
                raise BenchError(f"{where}: field {field!r}: expected an integer")
        if det["image_id"] not in known:
            raise BenchError(f"{where}: field 'image_id': no image {det['image_id']} here")
        bbox = det.get("bbox")
        box = finite_box(bbox)
        if box is None:
            raise BenchError(f"{where}: field 'bbox': expected [x, y, w, h], got {bbox!r}")
        score = det.get("score", 1.0)
        if not is_number(score):
            raise BenchError(f"{where}: field 'score': expected a number, got {score!r}")
        out.append(Detection(det["image_id"], det["category_id"], box, score))
    return out


# --------------------------------------------------------------------------- the metric


def box_iou(dt: Sequence[float], gt: Sequence[float], crowd: bool) -> float:
    """IoU of two ``[x, y, w, h]`` boxes as pycocotools computes it (a crowd target divides
    by the prediction's area alone), operation for operation."""
    w = min(dt[2] + dt[0], gt[2] + gt[0]) - max(dt[0], gt[0])
    if w <= 0:
        return 0.0
    h = min(dt[3] + dt[1], gt[3] + gt[1]) - max(dt[1], gt[1])
    if h <= 0:
        return 0.0
    inter = w * h
    union = dt[2] * dt[3] if crowd else dt[2] * dt[3] + gt[2] * gt[3] - inter
    return inter / union


def _left_sum(values: Iterable[float], start: float = 0.0) -> float:
    """A plain left-to-right float sum: ``sum()`` compensates rounding since Python 3.12."""
    return functools.reduce(operator.add, values, start)


def _pairwise_sum(values: Sequence[float]) -> float:
    """numpy's pairwise summation, so a mean equals ``np.mean`` to the last bit."""
    n = len(values)
    if n < 8:
        return _left_sum(values)
    if n <= 128:
        acc = list(values[:8])
        i = 8
        while i < n - n % 8:
            for j in range(8):
                acc[j] += values[i + j]
            i += 8
        total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
        return _left_sum(values[i:], total)
    half = n // 2
    half -= half % 8
    return _pairwise_sum(values[:half]) + _pairwise_sum(values[half:])


def _matched(weights: Sequence[Sequence[float]]) -> list[float]:
    """The weights of a one-to-one matching of rows to columns with the largest total
    (every row or every column matched, whichever are fewer), row by row: the Hungarian
    method, as scipy's ``linear_sum_assignment`` on the negated matrix."""
    rows = [list(r) for r in weights]
    if not rows or not rows[0]:
        return []
    flipped = len(rows) > len(rows[0])
    if flipped:
        rows = [list(c) for c in zip(*rows, strict=True)]
    n, m = len(rows), len(rows[0])
    inf = float("inf")
    u, v = [0.0] * (n + 1), [0.0] * (m + 1)
    match, way = [0] * (m + 1), [0] * (m + 1)  # match[j]: the row (1-based) on column j
    for i in range(1, n + 1):
        match[0], j0 = i, 0
        low, used = [inf] * (m + 1), [False] * (m + 1)
        while True:
            used[j0] = True
            i0, delta, j1 = match[j0], inf, 0
            for j in range(1, m + 1):
                if not used[j]:
                    cur = -rows[i0 - 1][j - 1] - u[i0] - v[j]
                    if cur < low[j]:
                        low[j], way[j] = cur, j0
                    if low[j] < delta:
                        delta, j1 = low[j], j
            for j in range(m + 1):
                if used[j]:
                    u[match[j]] += delta
                    v[j] -= delta
                else:
                    low[j] -= delta
            j0 = j1
            if match[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            match[j0] = match[j1]
            j0 = j1
    pairs = sorted(((match[j], j) for j in range(1, m + 1) if match[j]), key=lambda p: p[flipped])
    return [rows[i - 1][j - 1] for i, j in pairs]


def _best_assignment(weights: Sequence[Sequence[float]]) -> float:
    """The largest total weight of a one-to-one matching (tests check it by brute force)."""
    return sum(_matched(weights))


def _by_group(detections: Iterable[Detection]) -> dict[tuple[int, int], list[Detection]]:
    """Detections by (image id, group), in their order."""
    out: dict[tuple[int, int], list[Detection]] = {}
    for det in detections:
        out.setdefault((det.image_id, det.group), []).append(det)
    return out


def _targets(samples: Sequence[McSample]) -> dict[tuple[int, int], list[McTarget]]:
    """Targets by (image id, group), in the file's order."""
    out: dict[tuple[int, int], list[McTarget]] = {}
    for s in samples:
        for t in s.targets:
            out.setdefault((s.images[t.image - 1].id, t.group), []).append(t)
    return out


def _best_choice(
    dts: Mapping[tuple[int, int], list[Detection]],
    gts: Mapping[tuple[int, int], list[McTarget]],
    images: Sequence[int],
    n_predicted: int,
    annotated: Sequence[int],
) -> tuple[int, ...]:
    """The annotated groups that predicted groups 1 to ``n_predicted`` become: of every
    ordered choice, the first whose boxes on ``images`` match best, by the mean IoU of an
    optimal one-to-one matching per image and group (summed left to right, as the script's
    ``sum()``); empty (no renaming) where there are more predicted groups than annotated."""
    best: tuple[int, ...] = ()
    best_score = -1.0
    for choice in itertools.permutations(annotated, n_predicted):
        ious: list[float] = []
        for mine, theirs in enumerate(choice, 1):
            for img in images:
                found, wanted = dts.get((img, mine)), gts.get((img, theirs))
                if found and wanted:
                    ious += _matched(
                        [[box_iou(d.bbox, g.bbox, g.iscrowd) for g in wanted] for d in found]
                    )
        score = _left_sum(ious) / len(ious) if ious else 0.0
        if score > best_score:
            best, best_score = choice, score
    return best


def regroup(samples: Sequence[McSample], detections: Sequence[Detection]) -> list[Detection]:
    """The predicted groups of each regrouped sample renamed at once to the annotated groups
    (ascending) that :func:`_best_choice` picks (protocol "corrected"); the detections keep
    their order.

    A sample is regrouped when it holds a target of the category named "group 2" (every
    sample, where no category has that name); its ``r`` predicted groups are read as groups
    1 to ``r``, the script's convention.
    """
    dts, gts = _by_group(detections), _targets(samples)
    mapping: dict[tuple[int, int], int] = {}  # (image id, predicted group) -> new group
    for sample in samples:
        if not sample.regrouped:
            continue
        ids = [img.id for img in sample.images]
        n_predicted = len({group for img, group in dts if img in ids})
        annotated = sorted({t.group for t in sample.targets})
        for mine, theirs in enumerate(_best_choice(dts, gts, ids, n_predicted, annotated), 1):
            for img_id in ids:
                mapping[img_id, mine] = theirs
    return [
        replace(d, group=mapping[d.image_id, d.group]) if (d.image_id, d.group) in mapping else d
        for d in detections
    ]


def _file(samples: Sequence[McSample]) -> McFile:
    return samples[0].file if samples else McFile((), {}, (), (), ())


def regroup_as_script(
    samples: Sequence[McSample], detections: Sequence[Detection]
) -> list[Detection] | None:
    """The script's renaming (protocol "official"), its two defects included (module
    docstring), on a file holding only ``samples``; None where no image holds a "group 2"
    target (the script stops there with a NameError).

    Of the images of ``coco.getImgIds(catIds=[group 2])`` only the last, with its
    ``pair_image_id``, counts; its choice is :func:`_best_choice`'s, the groups in set order
    and the boxes of groups the file lacks left out.
    """
    file = _file(samples)
    keep = {img.id for s in samples for img in s.images}
    regrouped = file.regrouped_images(keep)
    if not regrouped:
        return None
    ids = [regrouped[-1], file.pairs[regrouped[-1]]]
    cats = [c for img in ids if img in keep for i, c in file.annotations if i == img]
    annotated = list(set(cats))
    dts = {key: v for key, v in _by_group(detections).items() if key[1] in file.categories}
    n_predicted = len({d.group for d in detections if d.image_id in ids})
    choice = _best_choice(dts, _targets(samples), ids, n_predicted, annotated)

    def renamed(group: int) -> int:
        for old, new in enumerate(choice, 1):
            group = new if group == old else group
        return group

    return [replace(d, group=renamed(d.group)) if d.image_id in ids else d for d in detections]


#: One image and group evaluated: its predictions' scores, matched and ignored flags (in
#: score order), and its targets' ignored flags.
ImageResult = tuple[list[float], list[bool], list[bool], list[bool]]


def _evaluate_image(gts: Sequence[McTarget], dts: Sequence[Detection]) -> ImageResult | None:
    """One image and group as COCOeval's ``evaluateImg`` at IoU 0.5 and area "all"; None
    when it has neither targets nor predictions."""
    if not gts and not dts:
        return None
    lo, hi = AREA_RANGE
    gts = sorted(gts, key=lambda g: g.iscrowd or not lo <= g.area <= hi)  # ignored ones last
    gt_ignored = [g.iscrowd or not lo <= g.area <= hi for g in gts]
    dts = sorted(dts, key=lambda d: -d.score)[:MAX_DETECTIONS]  # sorted() is stable
    taken = [False] * len(gts)
    matched, dt_ignored = [False] * len(dts), [False] * len(dts)
    for d, det in enumerate(dts):
        best, m = min(IOU_THRESHOLD, 1 - 1e-10), -1
        for g, gt in enumerate(gts):
            if taken[g] and not gt.iscrowd:
                continue
            if m > -1 and not gt_ignored[m] and gt_ignored[g]:
                break
            overlap = box_iou(det.bbox, gt.bbox, gt.iscrowd)
            if overlap < best:
                continue
            best, m = overlap, g
        if m == -1:
            continue
        dt_ignored[d] = gt_ignored[m]
        matched[d] = gts[m].id != 0  # COCO records the target's id: id 0 reads as unmatched
        taken[m] = True
    for d, det in enumerate(dts):  # unmatched predictions outside the area range are ignored
        area = det.bbox[2] * det.bbox[3]
        if not matched[d] and not lo <= area <= hi:
            dt_ignored[d] = True
    return [d.score for d in dts], matched, dt_ignored, gt_ignored


def _average_precision(results: Sequence[ImageResult]) -> float | None:
    """AP at 101 recall points from the per-image results of one group (COCOeval's
    ``accumulate``), or None where the group has no target that counts."""
    scores = [s for r in results for s in r[0]]
    matched = [m for r in results for m in r[1]]
    ignored = [i for r in results for i in r[2]]
    positives = sum(not i for r in results for i in r[3])
    if positives == 0:
        return None
    order = sorted(range(len(scores)), key=lambda k: -scores[k])
    tp = fp = 0
    recall, precision = [], []
    for k in order:
        if ignored[k]:
            pass
        elif matched[k]:
            tp += 1
        else:
            fp += 1
        recall.append(tp / positives)
        precision.append(tp / (fp + tp + _EPS))
    precision = list(itertools.accumulate(reversed(precision), max))[::-1]  # never rises
    # recall never falls: np.searchsorted(recall, r, side="left")
    found = (bisect.bisect_left(recall, r) for r in RECALL_POINTS)
    points = [precision[i] if i < len(recall) else 0.0 for i in found]
    return _pairwise_sum(points) / len(points)


def weighted_ap50(
    samples: Sequence[McSample],
    detections: Sequence[Detection],
    categories: Sequence[int] | None = None,
) -> float:
    """Instance-level AP50: each group's AP weighted by its share of the annotations.

    ``categories`` (the file's order, for "official"): the script weighs the AP of the
    k-th smallest category id by the share of the k-th category in the file, the same
    category only where the file lists them in ascending order.
    """
    dts, targets = _by_group(detections), _targets(samples)
    images = sorted({img.id for s in samples for img in s.images})
    counts = Counter(t.group for s in samples for t in s.targets)
    total = sum(counts.values())
    order = sorted(counts) if categories is None else list(categories)
    weighted = 0.0
    for group, weight in zip(sorted(order), order, strict=True):
        results = []
        for img in images:
            result = _evaluate_image(targets.get((img, group), []), dts.get((img, group), []))
            if result is not None:
                results.append(result)
        ap = _average_precision(results)
        if ap is not None:
            weighted += (counts.get(weight, 0) / total) * ap
    return weighted


def image_accuracy(
    samples: Sequence[McSample],
    detections: Sequence[Detection],
    pairs: Sequence[Sequence[int]] | None = None,
) -> float:
    """Share of samples whose every image is rightly said to hold a target or not;
    ``pairs``: the image ids judged together, where not each sample's own."""
    groups = pairs if pairs is not None else [[img.id for img in s.images] for s in samples]
    if not groups:
        return 0.0
    held = {s.images[t.image - 1].id for s in samples for t in s.targets}
    predicted = {d.image_id for d in detections}
    return sum(all((i in held) == (i in predicted) for i in g) for g in groups) / len(groups)


@dataclass(frozen=True)
class McScore:
    """The script's two figures, as fractions: ``ap50`` and ``accuracy``."""

    ap50: float
    accuracy: float


#: "official": eval_mc_bench.py's figures (the published ones); "corrected": mirg's regrouping.
PROTOCOLS = ("official", "corrected")
NO_GROUP_2 = 'no image holds a "group 2" target: eval_mc_bench.py stops (NameError) there'


def evaluate(
    samples: Sequence[McSample], detections: Sequence[Detection], *, protocol: str = "corrected"
) -> McScore:
    """Both metrics for ``samples`` under ``protocol`` ("official": the script's figures on
    a file holding only these samples; its accuracy pairs neighbouring images of the file)."""
    keep = {img.id for s in samples for img in s.images}
    detections = [d for d in detections if d.image_id in keep]
    if protocol == "corrected":
        regrouped = regroup(samples, detections)
        return McScore(weighted_ap50(samples, regrouped), image_accuracy(samples, detections))
    if protocol != "official":
        raise BenchError(f"MC-Bench protocol {protocol!r}: expected one of {', '.join(PROTOCOLS)}")
    file = _file(samples)
    order = [i for i in file.images if i in keep]
    regrouped = regroup_as_script(samples, detections)
    return McScore(
        weighted_ap50(samples, detections if regrouped is None else regrouped, file.categories),
        image_accuracy(samples, detections, [order[k : k + 2] for k in range(0, len(order), 2)]),
    )


def metrics(
    samples: Sequence[McSample],
    detections: Sequence[Detection],
    *,
    missing: int = 0,
    unreadable: int = 0,
) -> dict:
    """The metrics JSON of an MC-Bench run, in percent: AP50 and accuracy over all samples
    (``overall``) and per text style (``tasks``), under protocol "official" (the published
    figures; per style, the script on a file holding only that style's samples, since it
    reports none), and under "corrected" beside them."""
    by_style: dict[str, list[McSample]] = {}
    for s in samples:
        by_style.setdefault(s.style, []).append(s)
    order = {style.lower(): i for i, style in enumerate(STYLES)}
    styles = sorted(by_style, key=lambda st: (order.get(st.lower(), len(order)), st))

    def rows(protocol: str) -> dict:
        def row(group: Sequence[McSample]) -> dict:
            score = evaluate(group, detections, protocol=protocol)
            return {"n": len(group), "ap50": 100 * score.ap50, "accuracy": 100 * score.accuracy}

        return {"tasks": {style: row(by_style[style]) for style in styles}, "overall": row(samples)}

    keep = {img.id for s in samples for img in s.images}
    return {
        "protocol": "mcbench",
        **rows("official"),
        "corrected": rows("corrected"),
        "official_note": None if _file(samples).regrouped_images(keep) else NO_GROUP_2,
        "missing": missing,
        "unreadable": unreadable,
        "detections": len(detections),
    }


def format_table(metrics: Mapping) -> str:
    """A plain-text per-style table of an MC-Bench metrics dict, each protocol by name."""
    head = f"{'text style':<14}{'n':>6}" + f"{'AP50':>9}{'Acc':>9}" * 2
    lines = ["MC-Bench (image-level accuracy, instance-level AP50, %)"]
    lines += [f"{'':<20}{'official':>18}{'corrected':>18}", head, "-" * len(head)]
    fixed = metrics["corrected"]
    for name, r, c in [
        *((name, r, fixed["tasks"][name]) for name, r in metrics["tasks"].items()),
        ("overall", metrics["overall"], fixed["overall"]),
    ]:
        if name == "overall":
            lines.append("-" * len(head))
        figures = "".join(f"{x['ap50']:>9.2f}{x['accuracy']:>9.2f}" for x in (r, c))
        lines.append(f"{name:<14}{r['n']:>6}{figures}")
    if metrics.get("official_note"):
        lines.append(f"official: {metrics['official_note']}")
    if metrics.get("missing"):
        lines.append(f"missing predictions (scored as no boxes): {metrics['missing']}")
    if metrics.get("unreadable"):
        lines.append(f"answers without a readable box list: {metrics['unreadable']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- prompting

#: How each text style is put to the model: the text alone is a noun phrase ("people
#: with flags in their hands"), so the instruction says what kind of reading it needs.
STYLE_INSTRUCTIONS: dict[str, str] = {
    "referring": "Find every object that this description refers to",
    "comparison": "Compare the images, then find every object that this description picks out",
    "reasoning": "Reason about what the images show, then find every object that this "
    "description refers to",
}


def question(sample: McSample) -> str:
    """The user's request for one sample, by its text style."""
    lead = STYLE_INSTRUCTIONS.get(sample.style.lower(), STYLE_INSTRUCTIONS["referring"])
    return f'{lead}: "{sample.text}". Any image may hold several such objects, or none.'


def system_prompt(profile: str | CoordinateProfile) -> str:
    """mirg's think/answer format with a list of boxes, possibly empty."""
    p = get_profile(profile)
    return (
        THINK_THEN_ANSWER + "a JSON list with one entry per object found: "
        '[{"image": K, "bbox_2d": [x1, y1, x2, y2]}, ...], where K is the number of the '
        f"image that holds the object and the box is in {COORDINATE_WORDS[p.scale]}. Answer [] "
        "when no image holds one. When the description asks for several kinds of object "
        '(people with the same role, say), add "group": G to each entry, numbering the '
        "kinds from 1."
    )


def messages(sample: McSample, profile: str | CoordinateProfile) -> list[dict]:
    """The prompt for one sample, in the layout of ``mirg.core.prompts.build_messages``."""
    return [
        {"role": "system", "content": [{"type": "text", "text": system_prompt(profile)}]},
        {"role": "user", "content": user_content(question(sample), len(sample.images))},
    ]


# --------------------------------------------------------------------------- answers

_NUM = r"(-?\d{1,12}(?:\.\d{1,12})?)"
_ENTRY_RE = re.compile(
    r'\{\s{0,8}"image"\s{0,8}:\s{0,8}(\d{1,3})\s{0,8},\s{0,8}"bbox_2d"\s{0,8}:\s{0,8}\[\s{0,8}'
    + r"\s{0,8},\s{0,8}".join([_NUM] * 4)
    + r'\s{0,8}\](?:\s{0,8},\s{0,8}"group"\s{0,8}:\s{0,8}(\d{1,3}))?'
)


@dataclass(frozen=True)
class AnswerBox:
    """One entry of an answer: the image (1-based), the box in the model's coordinates
    and the group (1 unless the answer says)."""

    image: int
    box: tuple[float, float, float, float]
    group: int = 1


def _entry(value: object) -> AnswerBox | None:
    if not isinstance(value, dict):
        return None
    image, box, group = value.get("image"), finite_box(value.get("bbox_2d")), value.get("group", 1)
    if not _int(image) or not _int(group) or group < 1 or box is None:
        return None
    return AnswerBox(image, box, group)


def parse_boxes(text: object) -> tuple[list[AnswerBox], str | None]:
    """The boxes an answer lists, and why it could not be read (None when it could).

    The answer is the last ``<answer>`` block (else what follows ``</think>``, else the
    text): a JSON list of ``{"image", "bbox_2d"[, "group"]}`` entries, ``[]`` for none, or a
    single entry. Entries that are not such objects are dropped; text that is not JSON is
    scanned for such objects instead. Never raises.
    """
    if not isinstance(text, str):
        return [], "the response is not text"
    region, n_answers = answer_region(text)
    if n_answers > 1:
        return [], f"{n_answers} answer blocks"
    body = region.strip()
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        found = [
            AnswerBox(int(m[1]), tuple(float(v) for v in m.groups()[1:5]), int(m[6] or 1))  # type: ignore[arg-type]
            for m in _ENTRY_RE.finditer(body)
        ]
        return found, None if found else "no box list found"
    entries = value if isinstance(value, list) else [value]
    boxes = [b for b in (_entry(e) for e in entries) if b is not None]
    return boxes, None if boxes or not entries else "no entry holds an image and a box"


def detections(
    sample: McSample,
    response: str,
    profile: str | CoordinateProfile,
    frames: Sequence[Sequence[int]] | None = None,
) -> tuple[list[Detection], str | None]:
    """An answer as detections in the results format (score 1: a generated answer ranks
    no box above another), and why it could not be read. Boxes on images the sample does
    not have are dropped; the rest are converted from the profile's coordinates (on the
    frame each image was shown at, for absolute-pixel profiles) to pixels of the original
    image, unclipped, as a detector's boxes would be."""
    prof = get_profile(profile)
    boxes, error = parse_boxes(response)
    out = []
    for b in boxes:
        if not 1 <= b.image <= len(sample.images):
            continue
        frame = None
        if prof.needs_frame:
            if not frames or len(frames) != len(sample.images):
                raise BenchError(
                    f"sample {sample.id}: profile {prof.name!r} needs one input size per image"
                )
            frame = frames[b.image - 1]
        x1, y1, x2, y2 = prof.to_relative(b.box, frame)
        img = sample.images[b.image - 1]
        bbox = (x1 * img.width, y1 * img.height, (x2 - x1) * img.width, (y2 - y1) * img.height)
        if all(math.isfinite(v) for v in bbox):
            out.append(Detection(img.id, b.group, bbox))
    return out, error
