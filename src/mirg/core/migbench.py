"""Reader for the MIG-Bench annotation file (``MIG_data.json``).

The file is a JSON list; an item has no id and is identified by its 0-based position.
Besides validating each item, the reader derives the **target image** (1-based) that the
strict protocol and the image reward need, from each task's rules:

* ``common_object``, ``multi_view``, ``object_tracking``: the question names it, as the
  last "in the Nth image" ("…locate this object in the 3th image");
* ``region``: the region is located inside the source image, which is Image-1;
* ``correspondence``, ``view_diff``, ``refer_grounding``, ``reasoning``: Image-2 (the
  first image is the reference, the answer is in the second);
* ``group_grounding``: named only in ``additional_info`` ("It is in the first image.");
* ``diff``: none (the two images are aligned, the box holds in both).

Two files are in use. The public ``MIG_data.json`` (4,295 items, :data:`PUBLIC_COUNTS`)
and a revised copy that UniVG-R1's evaluation loads (``revised_MIG_bench.json``, not
published): the published Common, GG and Reason figures of InternVL2-8B, Qwen2-VL-7B,
Migician and UniVG-R1 are exact fractions of 815, 485 and 97 items, not of the public
816, 499 and 101 (:data:`REVISED_COUNTS`). The reader takes either (any file in this
layout); :func:`bench_file` says which one per-task item counts come from.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirg.core.answers import ORDINALS
from mirg.core.boxes import Box, finite_box
from mirg.core.prompts import reserved_tokens_problem
from mirg.errors import MirgError

#: Column names of the published tables, in their order.
TASK_COLUMNS: dict[str, str] = {
    "diff": "static",
    "view_diff": "robust",
    "common_object": "common",
    "object_tracking": "ot",
    "multi_view": "mv",
    "region": "region",
    "refer_grounding": "refer",
    "group_grounding": "gg",
    "reasoning": "reason",
    "correspondence": "co_re",
}
TASKS: tuple[str, ...] = tuple(TASK_COLUMNS)
#: Items per task of the public ``MIG_data.json`` (4,295 items).
PUBLIC_COUNTS: dict[str, int] = {
    "diff": 528,
    "view_diff": 94,
    "common_object": 816,
    "object_tracking": 550,
    "multi_view": 288,
    "region": 1203,
    "refer_grounding": 99,
    "group_grounding": 499,
    "reasoning": 101,
    "correspondence": 117,
}
#: Items per task of the revised file, as the published figures imply it (4,276 items).
REVISED_COUNTS: dict[str, int] = PUBLIC_COUNTS | {
    "common_object": 815,
    "group_grounding": 485,
    "reasoning": 97,
}
_NAMED_IN_QUESTION = {"common_object", "multi_view", "object_tracking"}
_FIXED_TARGET = {
    "region": 1,
    "correspondence": 2,
    "view_diff": 2,
    "refer_grounding": 2,
    "reasoning": 2,
    "diff": None,
}
_NTH_IMAGE_RE = re.compile(r"in the (\d{1,2})(?:st|nd|rd|th) image", re.I)
_GG_TARGET_RE = re.compile(r"It is in the (\w{1,10}) image", re.I)
_REF_BOX_RE = re.compile(
    r"<\|box_start\|>\((\d{1,4}),\s{0,4}(\d{1,4})\),\s{0,4}\((\d{1,4}),\s{0,4}(\d{1,4})\)<\|box_end\|>"
)


class BenchError(MirgError):
    """Malformed benchmark input; the message names the file, item and field."""


@dataclass(frozen=True)
class MigBenchItem:
    index: int
    task: str
    images: tuple[str, ...]
    question: str
    target_box: Box  # the "answer" box as stored: may be inverted or exceed 1
    additional_info: str = ""
    need_format: bool = True
    target_image: int | None = None
    reference_boxes: tuple[Box, ...] = ()

    @property
    def key(self) -> int:
        """How predictions refer to this item (its position in the file)."""
        return self.index


def reference_boxes(question: str) -> tuple[Box, ...]:
    """Relative boxes quoted in a question in the 0..1000 box-token convention."""
    return tuple(
        tuple(int(v) / 1000.0 for v in m.groups())  # type: ignore[misc]
        for m in _REF_BOX_RE.finditer(question)
    )


def derive_target_image(task: str, question: str, additional_info: str) -> int | None:
    """The 1-based image holding the answer, by the task's rule (module docstring).

    Raises ValueError when the rule finds nothing (callers add the item's location).
    """
    if task in _FIXED_TARGET:
        return _FIXED_TARGET[task]
    if task in _NAMED_IN_QUESTION:
        found = _NTH_IMAGE_RE.findall(question)
        if not found:
            raise ValueError("question names no target image ('in the Nth image')")
        return int(found[-1])
    if task == "group_grounding":
        m = _GG_TARGET_RE.search(additional_info)
        if not m or m.group(1).lower() not in ORDINALS:
            raise ValueError("additional_info names no target image ('It is in the … image')")
        return ORDINALS[m.group(1).lower()]
    raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")


def _item(raw: object, index: int, where: str) -> MigBenchItem:
    def bad(field_name: str, why: str) -> BenchError:
        return BenchError(f"{where}: item {index}: field {field_name!r}: {why}")

    if not isinstance(raw, dict):
        raise BenchError(f"{where}: item {index}: expected an object, got {type(raw).__name__}")
    for name in ("task", "images", "question", "answer"):
        if name not in raw:
            raise bad(name, "missing")
    task = raw["task"]
    if task not in TASKS:
        raise bad("task", f"unknown task {task!r}; known: {', '.join(TASKS)}")
    images = raw["images"]
    if not isinstance(images, list) or not images or not all(isinstance(p, str) for p in images):
        raise bad("images", "expected a non-empty list of paths")
    question = raw["question"]
    if not isinstance(question, str):
        raise bad("question", "expected text")
    if (problem := reserved_tokens_problem(question)) is not None:
        raise bad("question", problem)
    answer = finite_box(raw["answer"])
    if answer is None:
        raise bad("answer", f"expected a box of 4 finite numbers, got {raw['answer']!r}")
    info = raw.get("additional_info", "") or ""
    if not isinstance(info, str):
        raise bad("additional_info", "expected text")
    try:
        target = derive_target_image(task, question, info)
    except ValueError as exc:
        raise bad(
            "additional_info" if task == "group_grounding" else "question", str(exc)
        ) from None
    if target is not None and not 1 <= target <= len(images):
        raise bad("question", f"target image {target} but the item has {len(images)} images")
    return MigBenchItem(
        index=index,
        task=task,
        images=tuple(images),
        question=question,
        target_box=answer,
        additional_info=info,
        need_format=bool(raw.get("need_format", True)),
        target_image=target,
        reference_boxes=reference_boxes(question),
    )


def read_bench_json(path: Path, what: str) -> Any:
    """A benchmark file's parsed JSON (a leading UTF-8 byte order mark skipped, as every
    mirg reader does); a missing file, a byte that is not UTF-8 or bad JSON raises naming
    the file (``what`` says which file it should have been)."""
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: {what} not found") from None
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise BenchError(f"{path}: not UTF-8 text (byte {byte:#04x} at {exc.start})") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise BenchError(f"{path}: not valid JSON ({where}): {exc.msg}") from None


def load_migbench(path: str | Path) -> list[MigBenchItem]:
    """Read and validate ``MIG_data.json``; raises BenchError naming file, item and field."""
    path = Path(path)
    raw = read_bench_json(path, "MIG-Bench annotation file")
    if not isinstance(raw, list):
        raise BenchError(f"{path}: expected a JSON list of items, got {type(raw).__name__}")
    return [_item(entry, i, str(path)) for i, entry in enumerate(raw)]


def task_counts(items: Iterable[MigBenchItem]) -> dict[str, int]:
    """Items per task."""
    return dict(Counter(item.task for item in items))


def bench_file(counts: Mapping[str, int]) -> str:
    """Which MIG-Bench file per-task item counts are: ``"public"`` (``MIG_data.json``),
    ``"revised"`` (the file the UniVG-R1 figures were scored on) or ``"other"`` (a subset,
    e.g. ``--limit`` or ``--tasks``, or another file)."""
    counts = {task: n for task, n in counts.items() if n}
    if counts == PUBLIC_COUNTS:
        return "public"
    if counts == REVISED_COUNTS:
        return "revised"
    return "other"
