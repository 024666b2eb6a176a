"""COCO-style instance annotations -> multi-image grounding samples.

Most box datasets ship in this format: ``images`` (id, file_name, width, height),
``annotations`` (id, image_id, category_id, bbox as [x, y, w, h] pixels, optional
iscrowd and attributes) and ``categories`` (id, name). From them we build:

* ``group_grounding``: a few images and a description ("the large dog") that fits
  exactly one object among all of them; the question names no image;
* ``common_object``: images that share exactly one category, present once in the
  image the question names.

Objects get their category, a ``size`` attribute by COCO's area convention (small below
32x32 pixels, medium below 96x96, else large) and any ``attributes`` the annotation
carries. Crowd annotations are never targets, but they count when deciding whether a
description is unique. Bad input raises a DataError naming the file, the entry and the
field, or is recorded and skipped with a SkipLog.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirg.core.boxes import BOX_TOLERANCE
from mirg.data.references import CommonObject, Description
from mirg.data.schema import (
    DataError,
    Sample,
    SkipLog,
    check_image,
    read_json,
    resolve_image_path,
)
from mirg.data.synth.families import QUESTIONS
from mirg.errors import MirgError

COCO_FAMILIES = ("group_grounding", "common_object")


@dataclass
class CocoImage:
    file_name: str
    width: int
    height: int
    objects: list[dict[str, Any]] = field(default_factory=list)


def read_coco(
    annotation_file: str | Path,
    image_root: str | Path,
    *,
    check_images: str = "decode",
    skips: SkipLog | None = None,
) -> dict[int, CocoImage]:
    """Validate a COCO-style file; return its images (by id) with their objects.

    An image or annotation that fails validation raises DataError, or with ``skips`` is
    recorded and left out (a skipped image takes its annotations with it).
    """
    path = Path(annotation_file)
    data = read_json(path, "annotation file")
    return coco_images(data, path, image_root, check_images=check_images, skips=skips)


def coco_images(
    data: object,
    path: Path,
    image_root: str | Path,
    *,
    check_images: str = "decode",
    skips: SkipLog | None = None,
) -> dict[int, CocoImage]:
    """:func:`read_coco` on a file already parsed (``path`` names it in messages), for
    readers that need more of it (RefCOCO's supercategories)."""
    root = Path(image_root)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object with images, annotations, categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: field {key!r}: expected a list")

    def fail(where: str, why: str) -> None:
        if skips is None:
            raise DataError(f"{path}: {where}: {why}")
        skips.add(f"{path}: {where}", why)

    categories: dict[int, str] = {}
    for i, cat in enumerate(data["categories"]):
        if (
            not isinstance(cat, dict)
            or not isinstance(cat.get("id"), int)
            or not isinstance(cat.get("name"), str)
        ):
            raise DataError(f"{path}: categories[{i}]: expected {{'id': int, 'name': str}}")
        if cat["id"] in categories:
            raise DataError(
                f"{path}: categories[{i}]: field 'id': duplicate category id {cat['id']} "
                "(ids must be unique)"
            )
        categories[cat["id"]] = cat["name"]

    # An id used twice cannot say which image its annotations belong to: refuse all holders.
    holders: dict[int, list[int]] = defaultdict(list)
    for i, raw in enumerate(data["images"]):
        if isinstance(raw, dict) and isinstance(raw.get("id"), int):
            holders[raw["id"]].append(i)

    images: dict[int, CocoImage] = {}
    for i, raw in enumerate(data["images"]):
        where = f"images[{i}]"
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), int):
            fail(where, "field 'id': expected an integer id")
            continue
        where = f"images[{i}] (id {raw['id']})"
        if len(holders[raw["id"]]) > 1:
            j, k = holders[raw["id"]][:2]
            fail(
                where,
                f"field 'id': duplicate image id {raw['id']} (images[{j}] and images[{k}]); "
                "its annotations could belong to either, ids must be unique",
            )
            continue
        name, w, h = raw.get("file_name"), raw.get("width"), raw.get("height")
        if not isinstance(name, str) or not name:
            fail(where, "field 'file_name': expected a relative path")
            continue
        if not (isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0):
            fail(where, f"fields 'width'/'height': expected positive integers, got {w!r}, {h!r}")
            continue
        try:
            file_path = resolve_image_path(root, name, f"{path}: {where}: field 'file_name'")
            size = check_image(file_path, f"{path}: {where}", check_images)
            if size is not None and size != (w, h):
                raise DataError(
                    f"{path}: {where}: fields 'width'/'height' say {w}x{h}, "
                    f"the file is {size[0]}x{size[1]}"
                )
        except DataError as exc:
            if skips is None:
                raise
            skips.add(f"{path}: {where}", str(exc))
            continue
        images[raw["id"]] = CocoImage(name, w, h)

    for i, ann in enumerate(data["annotations"]):
        where = f"annotations[{i}]"
        if not isinstance(ann, dict):
            fail(where, "expected an object")
            continue
        if "id" in ann:
            where += f" (id {ann['id']})"
        image_id = ann.get("image_id")
        image = images.get(image_id) if isinstance(image_id, int) else None
        if image is None:
            if not any(
                img.get("id") == image_id for img in data["images"] if isinstance(img, dict)
            ):
                fail(where, f"field 'image_id': no image {image_id!r}")
            continue  # its image was skipped
        if ann.get("category_id") not in categories:
            fail(where, f"field 'category_id': unknown category {ann.get('category_id')!r}")
            continue
        bbox = ann.get("bbox")
        if not (
            isinstance(bbox, list)
            and len(bbox) == 4
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in bbox)
        ):
            fail(where, f"field 'bbox': expected [x, y, w, h] numbers, got {bbox!r}")
            continue
        x, y, bw, bh = (float(v) for v in bbox)
        if not (bw > 0 and bh > 0):
            fail(where, f"field 'bbox': width and height must be positive, got {bbox}")
            continue
        box = [x / image.width, y / image.height, (x + bw) / image.width, (y + bh) / image.height]
        if not all(-BOX_TOLERANCE <= v <= 1 + BOX_TOLERANCE for v in box):
            fail(
                where,
                f"field 'bbox': {bbox} lies outside the {image.width}x{image.height} image",
            )
            continue
        area = bw * bh  # COCO's size words: under 32x32 pixels small, under 96x96 medium
        attributes = {
            "size": "small" if area < 32 * 32 else "medium" if area < 96 * 96 else "large"
        }
        extra = ann.get("attributes")
        if isinstance(extra, dict):
            attributes |= {str(k): v for k, v in extra.items() if isinstance(v, str)}
        image.objects.append(
            {
                "box": [round(min(1.0, max(0.0, v)), 6) for v in box],
                "category": categories[ann["category_id"]],
                "attributes": attributes,
                "id": f"a{ann.get('id', i)}",
                "crowd": bool(ann.get("iscrowd")),
            }
        )
    for image in images.values():  # reading order, like the synthetic world
        image.objects.sort(key=lambda o: (o["box"][1], o["box"][0]))
    return images


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if k != "crowd"}
    if obj.get("crowd"):
        out["attributes"] = dict(out["attributes"], crowd="yes")
    return out


def _signature(obj: dict[str, Any], keys: Sequence[str]) -> tuple:
    return tuple(obj["category"] if k == "category" else obj["attributes"].get(k) for k in keys)


def _group_grounding(
    rng: random.Random, ids: list[int], images: dict[int, CocoImage], n: int, min_area: float
) -> Sample | None:
    chosen = rng.sample(ids, n)
    pool = [(k, obj) for k, i in enumerate(chosen, 1) for obj in images[i].objects]
    rng.shuffle(pool)
    for keys in (("category",), ("size", "category")):
        counts = Counter(_signature(obj, keys) for _, obj in pool)
        for k, obj in pool:
            x1, y1, x2, y2 = obj["box"]
            if obj["crowd"] or (x2 - x1) * (y2 - y1) < min_area:
                continue
            if counts[_signature(obj, keys)] == 1:
                reference = Description.of(dict(zip(keys, _signature(obj, keys), strict=True)))
                return _sample("group_grounding", chosen, images, k, obj, rng, reference)
    return None


def _common_object(
    rng: random.Random,
    by_category: dict[str, list[int]],
    images: dict[int, CocoImage],
    n: int,
    min_area: float,
) -> Sample | None:
    category = rng.choice(sorted(by_category))
    holders = by_category[category]
    if len(holders) < n:
        return None
    chosen = rng.sample(holders, n)
    shared = set.intersection(*({o["category"] for o in images[i].objects} for i in chosen))
    if shared != {category}:
        return None
    options = []
    for k, i in enumerate(chosen, 1):
        found = [o for o in images[i].objects if o["category"] == category]
        x1, y1, x2, y2 = found[0]["box"]
        if len(found) == 1 and not found[0]["crowd"] and (x2 - x1) * (y2 - y1) >= min_area:
            options.append((k, found[0]))
    if not options:
        return None
    k, obj = rng.choice(options)
    reference = CommonObject(match={"category": category})
    return _sample("common_object", chosen, images, k, obj, rng, reference)


#: Question wordings: the synthetic world's for binding; for common objects, wording that
#: fits a COCO category (several instances of a kind, not one object).
_QUESTIONS = {
    "group_grounding": QUESTIONS["group_grounding"],
    "common_object": (
        "These images share one object. Locate it in Image-{k}.",
        "One kind of object appears in every image. Find it in Image-{k}.",
        "Recognize what the images have in common and locate it in Image-{k}.",
    ),
}


def _sample(
    family: str,
    chosen: list[int],
    images: dict[int, CocoImage],
    k: int,
    target: dict[str, Any],
    rng: random.Random,
    reference: Description | CommonObject,
) -> Sample:
    objects = [[_public(o) for o in images[i].objects] for i in chosen]
    index = images[chosen[k - 1]].objects.index(target)
    text = reference.text if isinstance(reference, Description) else None
    question = rng.choice(_QUESTIONS[family]).format(desc=text, k=k)
    return Sample(
        id="",
        task=family,
        images=[images[i].file_name for i in chosen],
        question=question,
        target_image=k,
        target_box=tuple(target["box"]),  # type: ignore[arg-type]
        objects=objects,
        reference=reference,
        target={"image": k, "object": index},
        image_sizes=[[images[i].width, images[i].height] for i in chosen],
        meta={"source": "coco", "image_ids": chosen},
    )


def coco_samples(
    images: dict[int, CocoImage],
    n: int,
    *,
    seed: int = 0,
    families: Sequence[str] = COCO_FAMILIES,
    images_per_sample: tuple[int, int] = (2, 4),
    min_area: float = 0.01,
) -> list[Sample]:
    """Up to ``n`` samples, families in turn, deterministic given ``seed``.

    Fewer come back when the annotations allow no more (too few images or no unique
    targets); callers report the shortfall. ``min_area`` (relative) keeps tiny objects
    from being targets.
    """
    if n < 1:
        raise MirgError(f"--n must be at least 1, got {n}")
    unknown = [f for f in families if f not in COCO_FAMILIES]
    if unknown or not families:
        raise MirgError(f"unknown COCO families {unknown}; known: {', '.join(COCO_FAMILIES)}")
    lo, hi = images_per_sample
    if not 1 <= lo <= hi <= 6:
        raise MirgError(f"images per sample: need 1 <= min <= max <= 6, got {images_per_sample}")
    rng = random.Random(f"coco/{seed}")
    ids = sorted(i for i, image in images.items() if image.objects)
    by_category: dict[str, list[int]] = defaultdict(list)
    for i in ids:
        for category in sorted({o["category"] for o in images[i].objects}):
            by_category[category].append(i)
    samples: list[Sample] = []
    attempts = 0
    while len(samples) < n and attempts < 50 * n and ids:
        family = families[len(samples) % len(families)]
        attempts += 1
        count = min(rng.randint(lo, hi), len(ids))
        if family == "group_grounding":
            sample = _group_grounding(rng, ids, images, count, min_area)
        else:
            sample = _common_object(rng, by_category, images, max(count, 2), min_area)
        if sample is None:
            continue
        sample.id = f"coco-{len(samples):06d}"
        samples.append(sample)
    return samples
