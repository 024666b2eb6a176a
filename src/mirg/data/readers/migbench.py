"""MIG-Bench items as samples, through the core reader (``mirg.core.migbench``).

The benchmark annotates only the answer box (and reference boxes quoted in questions),
so each sample carries the target as its one annotated object and is marked
``meta["annotations"] = "target_only"``: trajectories then reason at the image level
rather than claim that other images hold nothing. The target image is the core's
derivation from the task rules (null for ``diff``, whose two images are aligned).

Items whose stored answer is not a valid box (a few ``common_object`` answers are
inverted or exceed 1) raise a DataError naming the item, or are recorded and skipped with
a :class:`~mirg.data.schema.SkipLog`.
"""

from __future__ import annotations

from pathlib import Path

from mirg.core.migbench import MigBenchItem, load_migbench
from mirg.data.readers.conversations import OBJECT_REF_RE, target_only_sample
from mirg.data.references import Description, QuotedBox, Reference
from mirg.data.schema import (
    MAX_IMAGE_PIXELS,
    DataError,
    Sample,
    SkipLog,
    check_image,
    data_box,
    resolve_image_path,
)


def item_to_sample(
    item: MigBenchItem,
    where: str,
    image_root: Path | None = None,
    check_images: str = "none",
    max_pixels: int = MAX_IMAGE_PIXELS,
) -> Sample:
    """One benchmark item as a sample; image files are checked only when asked."""
    here = f"{where}: item {item.index}"
    box = data_box(list(item.target_box), here, "answer")
    images = [str(Path(p)) for p in item.images]  # "./MIG-Bench/x.jpg" -> "MIG-Bench/x.jpg"
    base = image_root if image_root is not None else Path(".")
    sizes = []
    for k, rel in enumerate(images if check_images != "none" else []):
        field = f"{here}: field 'images[{k}]'"
        size = check_image(resolve_image_path(base, rel, field), field, check_images, max_pixels)
        if size is not None:
            sizes.append(list(size))
    reference: Reference | None = None
    described = OBJECT_REF_RE.search(item.question)
    if item.reference_boxes:
        reference = QuotedBox(
            image=1, box=data_box(list(item.reference_boxes[0]), here, "reference.box")
        )
    elif described:
        reference = Description(text=described.group(1).strip())
    return target_only_sample(
        sample_id=f"migbench-{item.index}",
        task=item.task,
        images=images,
        question=item.question.strip(),
        target_image=item.target_image,
        box=box,
        reference=reference,
        relations=[],
        sizes=sizes or None,
        meta={"source": "MIG-Bench", "index": item.index},
    )


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
    root = Path(image_root) if image_root is not None else None
    samples = []
    for item in load_migbench(path):
        try:
            samples.append(item_to_sample(item, str(path), root, check_images))
        except DataError as exc:
            if skips is None:
                raise
            skips.add(f"{path}: item {item.index}", str(exc))
    return samples
