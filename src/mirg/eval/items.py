"""What an evaluation run iterates over: MIG-Bench items, MC-Bench samples or a mirg
dataset split.

All become :class:`EvalItem`, which the scorer (``mirg.core.scoring``) reads like a
MIG-Bench item: ``key``, ``task``, ``images``, ``target_box`` (relative) and
``target_image``. An MC-Bench item also carries its sample (every target on either image,
possibly none), which its own metrics (``mirg.core.mcbench``) read instead; its task is
the text style.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mirg.core.mcbench import McSample, load_mcbench
from mirg.core.migbench import BenchError, load_migbench
from mirg.core.prompts import reserved_tokens_problem
from mirg.errors import MirgError

#: Folders an MC-Bench image root may hold its images under (its archive unpacks to one).
MCBENCH_IMAGE_FOLDERS = ("MC-Bench_images", "mc-bench_images")


@dataclass(frozen=True)
class EvalItem:
    key: int | str  # MIG-Bench: 0-based position; mirg datasets: the sample id
    task: str
    images: tuple[str, ...]  # absolute paths
    question: str
    target_box: tuple[float, float, float, float]  # relative 0..1 (as stored)
    target_image: int | None
    need_format: bool = True  # MIG-Bench: whether the official prompt appends the format
    mcbench: McSample | None = None  # MC-Bench: the sample, with all its targets

    @property
    def key_field(self) -> str:
        """The predictions field that carries the key: ``index`` (MIG-Bench's position) or
        ``id`` (a mirg sample's id, an MC-Bench description's id)."""
        return "index" if isinstance(self.key, int) and self.mcbench is None else "id"


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


def _mcbench_image(root: Path, file_name: str) -> Path:
    """MC-Bench's ``file_name`` is relative to its image folder: accept that folder as the
    root, or the folder that holds it."""
    candidates = [
        root / file_name,
        *(root / folder / file_name for folder in MCBENCH_IMAGE_FOLDERS),
    ]
    return next((c for c in candidates if c.exists()), candidates[0])


def _is_json_object(path: Path) -> bool:
    """Whether a JSON file holds an object (MC-Bench) rather than a list (MIG-Bench), from
    its first non-blank character (False for a file that is not there: the MIG-Bench reader
    says so)."""
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        while chunk := handle.read(4096):
            text = chunk.lstrip().lstrip(b"\xef\xbb\xbf")
            if text:
                return text.startswith(b"{")
    return False


def _mcbench_items(data: Path, images_root: str | Path | None) -> list[EvalItem]:
    if images_root is None:
        raise BenchError(
            f"{data}: MC-Bench needs --images ROOT, the folder holding its images "
            "(MC-Bench_images from its archive, or the folder that holds it)"
        )
    root = Path(images_root)
    items = []
    for sample in load_mcbench(data):
        if (problem := reserved_tokens_problem(sample.text)) is not None:
            raise BenchError(f"{data}: description {sample.id}: field 'text': {problem}")
        first = sample.targets[0] if sample.targets else None
        items.append(
            EvalItem(
                key=sample.id,
                task=sample.style,
                images=tuple(
                    _confined(
                        root,
                        _mcbench_image(root, img.file_name),
                        f"{data}: description {sample.id}: image {img.id}",
                    )
                    for img in sample.images
                ),
                question=sample.text,
                target_box=first.relative(sample.images[first.image - 1])
                if first
                else (0.0, 0.0, 0.0, 0.0),
                target_image=first.image if first else None,
                mcbench=sample,
            )
        )
    return items


def _confined(root: Path, path: Path, where: str) -> str:
    """``path`` resolved, refused unless it stays under the resolved ``root`` (no ``..``,
    absolute path or symbolic link may lead a benchmark item to another file)."""
    base, resolved = root.resolve(), path.resolve()
    if not resolved.is_relative_to(base):
        raise BenchError(
            f"{where}: image path leads to {resolved}, outside the images root {base}; "
            "copy the image under the root, or give the real folder as --images"
        )
    return str(resolved)


def load_eval_items(
    data: str | Path,
    images_root: str | Path | None = None,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[EvalItem]:
    """Items of a benchmark file: ``MIG_data.json`` or MC-Bench's annotation file (both with
    ``images_root``), or a mirg split (``*.jsonl``, images under the file's folder unless
    ``images_root`` is given).

    ``tasks`` keeps only those tasks; ``limit`` keeps the first N items *per task*, so a
    quick run still covers every task.
    """
    data = Path(data)
    if data.is_dir():
        raise MirgError(
            f"{data}: --data is a folder; give MIG_data.json or a split file such as "
            f"{data}/test.jsonl"
        )
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
    elif _is_json_object(data):
        items = _mcbench_items(data, images_root)
    else:
        if images_root is None:
            raise BenchError(
                f"{data}: MIG-Bench needs --images ROOT, the folder holding the benchmark's "
                "images (the MIG-Bench archive from the Hugging Face hub, unpacked)"
            )
        root = Path(images_root)
        items = [
            EvalItem(
                key=it.index,
                task=it.task,
                images=tuple(
                    _confined(
                        root, _migbench_image(root, p), f"{data}: item {it.index}: images[{k}]"
                    )
                    for k, p in enumerate(it.images)
                ),
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
            raise MirgError(f"{data}: no items of task(s) {unknown}; tasks here: {known}")
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
    """Check that every image exists and decodes within the pixel limit of the data
    pipeline, before the first generation.

    Returns each image's (width, height). Raises FileNotFoundError with the count and the
    first few bad paths (one line), rather than a crash an hour into the run.
    """
    from mirg.data.schema import DataError, check_image

    sizes: dict[str, tuple[int, int]] = {}
    bad: list[str] = []
    for path in sorted({p for it in items for p in it.images}):
        if not Path(path).exists() and not Path(path).is_symlink():
            bad.append(f"{path} (missing)")
            continue
        try:
            size = check_image(Path(path), path, "decode")
        except DataError as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            for prefix in ("image", "image path", "image file"):
                reason = reason.removeprefix(f"{prefix} {path} ")
            bad.append(f"{path} ({reason})")
            continue
        assert size is not None  # "decode" always measures
        sizes[path] = size
    if bad:
        listed = "; ".join(bad[:show])
        raise FileNotFoundError(
            f"{len(bad)} of {len(sizes) + len(bad)} images are missing or unreadable; "
            f"first {min(show, len(bad))}: {listed}"
        )
    return sizes
