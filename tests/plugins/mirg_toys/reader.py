"""A data reader defined outside mirg: a CSV of ``image,question,x1,y1,x2,y2`` rows, one
image per row, the box in pixels of the image (or 0..1 with ``--option units=relative``).

    mirg convert --format mirg_toys.reader.READER --input rows.csv \
        --option task=referring --option units=pixels --out samples.jsonl
"""

from __future__ import annotations

import argparse
import csv
from collections.abc import Iterator
from pathlib import Path

from mirg.data.readers import Reader
from mirg.data.readers.conversations import target_only_sample
from mirg.data.readers.records import ImageFiles, Tally, check_sample, input_files
from mirg.data.schema import DataError, Sample, data_box
from mirg.errors import MirgError

UNITS = ("pixels", "relative")


def read_rows(args: argparse.Namespace, tally: Tally) -> Iterator[Sample]:
    units = args.options.get("units", "pixels")
    if units not in UNITS:
        raise MirgError(f"--option units: expected one of {', '.join(UNITS)}, got {units!r}")
    task = args.options.get("task", "referring")
    for path, images in input_files(args):
        with open(path, newline="", encoding="utf-8") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                tally.records += 1
                where = f"{path}:{line}"
                try:
                    sample = _sample(row, Path(path), line, images, task, units)
                except DataError as exc:
                    tally.bad(exc, where)
                    continue
                tally.written += 1
                yield sample


def _sample(row: dict, path: Path, line: int, images: ImageFiles, task: str, units: str) -> Sample:
    where = f"{path}:{line}"
    numbers = []
    for key in ("x1", "y1", "x2", "y2"):
        try:
            numbers.append(float(row.get(key) or ""))
        except ValueError:
            raise DataError(
                f"{where}: field {key!r}: expected a number, got {row.get(key)!r}"
            ) from None
    size = images.size(row["image"], f"{where}: field 'image'")
    if units == "pixels":
        w, h = size
        numbers = [numbers[0] / w, numbers[1] / h, numbers[2] / w, numbers[3] / h]
    sample = target_only_sample(
        sample_id=f"{path.stem}-{line}",
        task=task,
        images=[row["image"]],
        question=row["question"],
        target_image=1,
        box=data_box(numbers, where, "box"),
        reference=None,
        relations=[],
        sizes=[list(size)],
        meta={"source": path.name},
    )
    return check_sample(sample, where)


READER = Reader("toy-csv", read_rows, unit="rows", options=("units", "task"))
