"""A benchmark as a task: what ``mirg eval``, ``mirg report`` and the training callback ask
of one benchmark, so that none of them branches on which benchmark it is.

To add one (RefCOCO, or a user's own), subclass :class:`GroundingBenchmark` in one module,
usually writing only ``name``, ``recognises`` and ``load``; then add one line to
``BENCHMARKS`` in ``mirg/eval/benchmarks/__init__.py`` or name it by dotted path
(``mirg eval --bench my_pkg.my_bench.BENCH``). Nothing else in mirg changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mirg.core.migbench import BenchError
from mirg.core.scoring import aggregate, format_table, score_items
from mirg.eval.generation import eval_messages

NUMBER = (int, float)


@dataclass(frozen=True)
class EvalItem:
    """One item a run predicts; the scorer (``mirg.core.scoring``) reads it like a MIG-Bench
    item: ``key``, ``task``, ``images``, ``target_box`` (relative 0..1), ``target_image``."""

    key: int | str
    task: str
    images: tuple[str, ...]  # absolute paths
    question: str
    target_box: tuple[float, float, float, float]
    target_image: int | None
    key_field: str = "id"  # the predictions field that carries ``key`` (MIG-Bench: "index")
    record: Any = None  # the benchmark's own record (a MigBenchItem, an McSample)
    benchmark: Any = field(default=None, compare=False, repr=False)  # set by load_eval_items


Items = Sequence[EvalItem]


class GroundingBenchmark:
    """A benchmark. The defaults are the common case: one target box per item, prompted with
    ``--prompt``, scored by mirg's judge under ``--protocol`` (Acc@0.3/0.5/0.7 and mIoU per
    task, their unweighted mean), reported with the generic table, charts and gallery.

    - ``load`` turns the file into :class:`EvalItem` (absolute image paths, refused outside
      the images root: :func:`confined`); ``--tasks`` and ``--limit`` apply after it.
    - ``check`` refuses before generation what the benchmark cannot score (a prompt;
      ``sizes``, each image's (width, height)).
    - ``score`` returns the metrics JSON: ``protocol``, ``tasks`` (a row per task, each with
      ``n``), ``missing``, the all-items row under ``summary`` and ``metrics_fields``;
      every row holds ``row_fields`` (``mirg report`` checks them all; the training
      callback logs the ``summary`` row). It may write ``writes`` into ``out`` (None
      outside a run folder).
    - ``table`` is what the terminal shows, ``sections`` the report's (heading, HTML) pairs.
    """

    name = "grounding"  # shown in the report and the terminal
    summary = "average"
    row_fields: Mapping[str, Any] = dict.fromkeys(("acc@0.3", "acc@0.5", "acc@0.7", "miou"), NUMBER)
    metrics_fields: Mapping[str, Any] = {}
    writes: tuple[str, ...] = ()

    def recognises(self, path: Path) -> bool:
        return False

    def check(self, data: Path, items: Sequence[EvalItem], prompt: str, sizes: Mapping) -> None:
        return None

    def messages(self, item: EvalItem, prompt: str, profile: Any) -> list[dict]:
        return eval_messages(item.question, len(item.images), prompt, profile)

    def score(
        self, items: Items, predictions: Mapping, protocol: str, profile: str, out: Path | None
    ) -> dict:
        return aggregate(score_items(items, predictions, protocol, profile), protocol)

    def table(self, metrics: Mapping) -> str:
        return format_table(metrics)

    def sections(
        self, items: Items, predictions: Mapping, metrics: Mapping, profile: str, gallery_limit: int
    ) -> list[tuple[str, str]]:
        from mirg.eval.report import evaluation_sections, item_views

        views = item_views(items, predictions, metrics["protocol"], profile)
        return evaluation_sections(metrics, views, gallery_limit=gallery_limit)


def require_images(data: Path, images: Path | None, what: str) -> Path:
    """``--images``, refused when absent: ``what`` says which folder the benchmark needs."""
    if images is None:
        raise BenchError(f"{data}: {what}")
    return images


def confined(root: Path, path: Path, where: str) -> str:
    """``path`` resolved, refused unless it stays under the resolved ``root`` (no ``..``,
    absolute path or symbolic link may lead a benchmark item to another file)."""
    base, resolved = root.resolve(), path.resolve()
    if not resolved.is_relative_to(base):
        raise BenchError(
            f"{where}: image path leads to {resolved}, outside the images root {base}; "
            "copy the image under the root, or give the real folder as --images"
        )
    return str(resolved)
