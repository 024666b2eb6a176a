"""What an evaluation run iterates over: MIG-Bench items or a mirg dataset split.

Both become :class:`EvalItem`, which the scorer (``mirg.core.scoring``) reads like a
MIG-Bench item: ``key``, ``task``, ``images``, ``target_box`` (relative) and
``target_image``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mirg.core.migbench import load_migbench


@dataclass(frozen=True)
class EvalItem:
    key: int | str  # MIG-Bench: 0-based position; mirg datasets: the sample id
    task: str
    images: tuple[str, ...]  # absolute paths
    question: str
    target_box: tuple[float, float, float, float]  # relative 0..1 (as stored)
    target_image: int | None
    need_format: bool = True  # MIG-Bench: whether the official prompt appends the format

    @property
    def key_field(self) -> str:
        """The predictions field that carries the key: ``index`` or ``id``."""
        return "index" if isinstance(self.key, int) else "id"


def _migbench_image(root: Path, relative: str) -> Path:
    """MIG-Bench paths read ``./MIG-Bench/images/…``: accept a root that holds the
    ``MIG-Bench`` folder or that is the ``MIG-Bench`` folder itself."""
    rel = Path(relative)
    candidate = root / rel
    if candidate.exists() or not rel.parts or rel.parts[0] not in (".", "MIG-Bench"):
        return candidate
    parts = rel.parts[1:] if rel.parts[0] == "." else rel.parts
    inner = root / Path(*parts[1:]) if parts and parts[0] == "MIG-Bench" else candidate
    return inner if inner.exists() else candidate


def load_eval_items(
    data: str | Path,
    images_root: str | Path | None = None,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[EvalItem]:
    """Items of a benchmark file: ``MIG_data.json`` (with ``images_root``) or a mirg split
    (``*.jsonl``, images under the file's folder unless ``images_root`` is given).

    ``tasks`` keeps only those tasks; ``limit`` keeps the first N items *per task*, so a
    quick run still covers every task.
    """
    data = Path(data)
    if data.suffix == ".jsonl":
        from mirg.data.schema import read_samples  # Pillow and the data layer, only here

        root = Path(images_root) if images_root else data.parent
        samples = read_samples(data, root=root, check_images="none")
        items = [
            EvalItem(
                key=s.id,
                task=s.task,
                images=tuple(str((root / p).resolve()) for p in s.images),
                question=s.question,
                target_box=s.target_box,
                target_image=s.target_image,
            )
            for s in samples
        ]
    else:
        if images_root is None:
            raise ValueError(
                f"{data}: MIG-Bench needs --images ROOT, the folder holding the benchmark's "
                "images (the MIG-Bench archive from the Hugging Face hub, unpacked)"
            )
        root = Path(images_root)
        items = [
            EvalItem(
                key=it.index,
                task=it.task,
                images=tuple(str(_migbench_image(root, p).resolve()) for p in it.images),
                question=it.question,
                target_box=it.target_box,
                target_image=it.target_image,
                need_format=it.need_format,
            )
            for it in load_migbench(data)
        ]
    if tasks:
        unknown = sorted(set(tasks) - {it.task for it in items})
        if unknown:
            known = ", ".join(sorted({it.task for it in items}))
            raise ValueError(f"{data}: no items of task(s) {unknown}; tasks here: {known}")
        items = [it for it in items if it.task in set(tasks)]
    if limit is not None:
        seen: dict[str, int] = {}
        kept = []
        for it in items:
            if seen.get(it.task, 0) < limit:
                seen[it.task] = seen.get(it.task, 0) + 1
                kept.append(it)
        items = kept
    return items


def preflight(items: Sequence[EvalItem], show: int = 5) -> dict[str, tuple[int, int]]:
    """Check that every image exists and opens, before the first generation.

    Returns each image's (width, height). Raises FileNotFoundError with the count and the
    first few bad paths, rather than a crash an hour into the run.
    """
    from PIL import Image

    sizes: dict[str, tuple[int, int]] = {}
    bad: list[str] = []
    for path in sorted({p for it in items for p in it.images}):
        try:
            with Image.open(path) as image:
                image.load()
                sizes[path] = image.size
        except FileNotFoundError:
            bad.append(f"{path} (missing)")
        except (OSError, SyntaxError, ValueError) as exc:
            bad.append(f"{path} (cannot be read: {exc})")
    if bad:
        listed = "\n  ".join(bad[:show])
        raise FileNotFoundError(
            f"{len(bad)} of {len(sizes) + len(bad)} images are missing or unreadable; "
            f"first {min(show, len(bad))}:\n  {listed}"
        )
    return sizes
