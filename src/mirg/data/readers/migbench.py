"""MIG-Bench items as samples, through the core reader (``mirg.core.migbench``):
``mirg convert --format migbench --input MIG_data.json``.

The benchmark annotates only the answer box (and reference boxes quoted in questions),
so each sample carries the target as its one annotated object and is marked
``meta["annotations"] = "target_only"``: trajectories then reason at the image level
rather than claim that other images hold nothing. The target image is the core's
derivation from the task rules (null for ``diff``, whose two images are aligned).

Items whose stored answer is not a valid box (a few ``common_object`` answers are
inverted or exceed 1) raise a DataError naming the item, or are recorded and skipped
(``--skip-bad``; API: a :class:`~mirg.data.schema.SkipLog`).
"""

from __future__ import annotations

from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path

from mirg.core.migbench import load_migbench
from mirg.data.readers import Reader
from mirg.data.readers.conversations import question_reference, target_only_sample
from mirg.data.readers.records import ImageFiles, Tally, input_files
from mirg.data.schema import DataError, Sample, SkipLog, data_box


def read_items(
    path: str | Path, tally: Tally, images: ImageFiles, sizes: bool = False
) -> Iterator[Sample]:
    """The items of one benchmark file as samples, their image files checked (and sized)
    as ``images`` says; a bad item raises, or is counted and logged under
    ``tally.skip_bad``."""
    for item in load_migbench(path):
        tally.records += 1
        tally.items += 1
        here = f"{path}: item {item.index}"
        paths = [str(Path(p)) for p in item.images]  # "./MIG-Bench/x.jpg" -> "MIG-Bench/x.jpg"
        try:
            sample = target_only_sample(
                sample_id=f"migbench-{item.index}",
                task=item.task,
                images=paths,
                question=item.question.strip(),
                target_image=item.target_image,
                box=data_box(list(item.target_box), here, "answer"),
                reference=question_reference(item.question, here),
                sizes=images.record(paths, here, sizes=sizes),
                meta={"source": "MIG-Bench", "index": item.index},
            )
        except DataError as exc:
            tally.bad(exc, here)
            continue
        tally.written += 1
        yield sample


def migbench_samples(
    path: str | Path,
    *,
    image_root: str | Path | None = None,
    check_images: str = "none",
    skips: SkipLog | None = None,
) -> list[Sample]:
    """All items of ``MIG_data.json`` as samples.

    The images are not needed (``check_images="none"``, the default); given
    ``image_root`` (the folder the items' ``./MIG-Bench/...`` paths start from) and
    ``check_images="decode"``, each file is checked and its size recorded.
    """
    tally = Tally(skip_bad=skips is not None, log=skips if skips is not None else SkipLog())
    images = ImageFiles(image_root or ".", check_images)
    return list(read_items(path, tally, images, sizes=check_images == "decode"))


def _read(args: Namespace, tally: Tally) -> Iterator[Sample]:
    for path, files in input_files(args):
        yield from read_items(path, tally, files, args.image_sizes or args.check_images == "decode")


#: ``mirg convert --format migbench``.
READER = Reader("migbench", _read, unit="items")
