"""A user's own benchmark, written against mirg.eval.benchmarks.base only: a CSV file with one
single-image item per row (``id,image,question,x1,y1,x2,y2``, a relative box), images beside
the file. Scored by mirg's judge (the base class); the report gains a section of its own."""

import csv
from pathlib import Path

from mirg.eval.benchmarks.base import EvalItem, GroundingBenchmark


class ToyBench(GroundingBenchmark):
    name = "toy CSV"

    def recognises(self, path: Path) -> bool:
        return path.suffix == ".csv"

    def load(self, data: Path, images: Path | None) -> list[EvalItem]:
        root = images or data.parent
        with data.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        return [
            EvalItem(
                key=row["id"],
                task="toy",
                images=(str((root / row["image"]).resolve()),),
                question=row["question"],
                target_box=tuple(float(row[k]) for k in ("x1", "y1", "x2", "y2")),
                target_image=1,
                record=row,
            )
            for row in rows
        ]

    def sections(self, items, predictions, metrics, profile, gallery_limit):
        answered = sum(it.key in predictions for it in items)
        note = ("Toy benchmark", f"<p>toy rows answered: {answered} of {len(items)}</p>")
        return [note, *super().sections(items, predictions, metrics, profile, gallery_limit)]


BENCH = ToyBench()
