"""COCO caption files (``captions_train2017.json``, ``captions_train2014.json``) joined
into samples' ``captions``: the image-level annotations beside the object-level ones.

The file (cocodataset.org, "Caption annotations"): ``{"images": [{"id", "file_name",
"width", "height", …}], "annotations": [{"id", "image_id", "caption"}, …]}``, about five
captions per image. A sample image gets the first caption of its image in the file's
order. Images are matched by COCO image id where the sample records it
(``meta.image_ids``, written by the COCO and RefCOCO readers), else by file name, else by
the 12-digit id in a COCO file name (``COCO_train2014_000000581857.jpg`` and
``000000581857.jpg`` are the same image in the 2014 and 2017 releases).

A captioned sample says where its captions come from (``meta.caption_source``), so
trajectories write them as image-level facts before the object-level search
(:mod:`mirg.data.trajectories`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from mirg.data.readers import Reader
from mirg.data.readers.records import Tally
from mirg.data.schema import DataError, Sample, iter_jsonl, read_json

_COCO_NAME_RE = re.compile(r"^(?:COCO_[a-z]{3,5}\d{4}_)?(\d{12})\.jpg$")


@dataclass
class CaptionIndex:
    """The first caption of each image, by COCO image id and by file name."""

    source: str
    by_id: dict[int, str] = field(default_factory=dict)
    by_name: dict[str, str] = field(default_factory=dict)

    def caption(self, image_path: str, image_id: int | None = None) -> str:
        """The caption of one image ("" when the file has none for it)."""
        if image_id is not None and image_id in self.by_id:
            return self.by_id[image_id]
        name = PurePosixPath(image_path.replace("\\", "/")).name
        for key in (image_path, name):
            if key in self.by_name:
                return self.by_name[key]
        coco = _COCO_NAME_RE.match(name)
        return self.by_id.get(int(coco.group(1)), "") if coco else ""


def read_captions(path: str | Path) -> CaptionIndex:
    """Index a COCO caption file; DataError naming the file, entry and field."""
    path = Path(path)
    data = read_json(path, "caption file")
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object with 'images' and 'annotations'")
    for key in ("images", "annotations"):
        if not isinstance(data.get(key), list):
            raise DataError(f"{path}: field {key!r}: expected a list")
    names: dict[int, str] = {}
    for i, image in enumerate(data["images"]):
        if not isinstance(image, dict) or not isinstance(image.get("id"), int):
            raise DataError(f"{path}: images[{i}]: field 'id': expected an integer id")
        name = image.get("file_name")
        if not isinstance(name, str) or not name:
            where = f"{path}: images[{i}] (id {image['id']})"
            raise DataError(f"{where}: field 'file_name': expected a file name")
        names[image["id"]] = name
    index = CaptionIndex(source=path.name)
    for i, ann in enumerate(data["annotations"]):
        where = f"{path}: annotations[{i}]"
        if not isinstance(ann, dict):
            raise DataError(f"{where}: expected an object")
        image_id, text = ann.get("image_id"), ann.get("caption")
        if image_id not in names:
            raise DataError(f"{where}: field 'image_id': no image {image_id!r} in 'images'")
        if not isinstance(text, str):
            raise DataError(f"{where}: field 'caption': expected text, got {text!r}")
        text = " ".join(text.split())
        if not text or image_id in index.by_id:
            continue
        index.by_id[image_id] = text
        name = names[image_id]
        index.by_name.setdefault(name, text)
        index.by_name.setdefault(PurePosixPath(name).name, text)
    return index


def _joined(
    index: CaptionIndex, images: list[str], ids: object, old: list[str] | None
) -> tuple[list[str], int]:
    """Captions for ``images`` (existing ones kept) and how many were added."""
    if not (isinstance(ids, list) and len(ids) == len(images)):
        ids = [None] * len(images)
    old = old or [""] * len(images)
    new = [
        have or index.caption(path, image_id if isinstance(image_id, int) else None)
        for have, path, image_id in zip(old, images, ids, strict=True)
    ]
    return new, sum(1 for a, b in zip(old, new, strict=True) if b and not a)


def add_captions(sample: Sample, index: CaptionIndex) -> int:
    """Fill the sample's empty captions from the index; returns how many images got one.
    A sample that got any records ``meta.caption_source``."""
    new, added = _joined(index, sample.images, sample.meta.get("image_ids"), sample.captions)
    if added:
        sample.captions = new
        sample.meta = sample.meta | {"caption_source": index.source}
    return added


def caption_samples(path: str | Path, index: CaptionIndex, tally: Tally) -> Iterator[dict]:
    """The sample lines of a JSONL file with captions joined, line by line and otherwise
    untouched (``read_samples`` checks them when they are used). A line that is not a
    sample raises a DataError, or under ``tally.skip_bad`` is left out."""
    images = 0
    for number, raw in iter_jsonl(path):
        where = f"{path}:{number}"
        tally.records += 1
        tally.items += 1
        try:
            if isinstance(raw, DataError):
                raise raw
            if not isinstance(raw, dict) or not {"id", "images", "question"} <= set(raw):
                raise DataError(f"{where}: not a sample (expected id, images, question…)")
            paths, meta, old = raw["images"], raw.get("meta") or {}, raw.get("captions") or []
            if (
                not isinstance(paths, list)
                or not paths
                or not all(isinstance(p, str) for p in paths)
            ):
                raise DataError(f"{where}: field 'images': expected a list of relative paths")
            if not isinstance(meta, dict):
                raise DataError(f"{where}: field 'meta': expected an object")
            if not isinstance(old, list) or (old and len(old) != len(paths)):
                raise DataError(f"{where}: field 'captions': expected one per image")
        except DataError as exc:
            tally.bad(exc, where)
            continue
        new, added = _joined(index, paths, meta.get("image_ids"), old)
        if added:
            raw["captions"] = new
            raw["meta"] = meta | {"caption_source": index.source}
        images += len(paths)
        tally.notes["images captioned"] += added
        tally.written += 1
        yield raw
    tally.notes["images"] = images


#: ``mirg convert --format coco-captions``: the sample lines of ``--data`` pass through,
#: the captions of ``--captions`` joined.
READER = Reader(
    "coco-captions",
    lambda args, tally: caption_samples(args.data, read_captions(args.captions), tally),
    needs=("data", "captions"),
    unit="samples",
    images_beside="data",
)
