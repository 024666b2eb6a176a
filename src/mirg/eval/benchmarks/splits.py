"""mirg's own dataset splits (``*.jsonl``) as a benchmark: images under the file's folder
unless ``--images`` is given, one target box per sample, keyed by the sample's id."""

from __future__ import annotations

from pathlib import Path

from mirg.eval.benchmarks.base import EvalItem, GroundingBenchmark


class Splits(GroundingBenchmark):
    name = "mirg split"

    def recognises(self, path: Path) -> bool:
        return path.suffix == ".jsonl"

    def load(self, data: Path, images: Path | None) -> list[EvalItem]:
        from mirg.data.schema import read_samples  # Pillow and the data layer, only here

        root = images or data.parent
        return [
            EvalItem(
                key=s.id,
                task=s.task,
                images=tuple(str((root / p).resolve()) for p in s.images),
                question=s.question,
                target_box=s.target_box,
                target_image=s.target_image,
                record=s,
            )
            for s in read_samples(data, root=root, check_images="none")
        ]


SPLITS = Splits()
