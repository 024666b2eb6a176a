"""The benchmarks ``mirg eval`` runs, by name (``--bench``) or by what their file looks like.

``BENCHMARKS`` maps each built-in's short name to where it lives; a user's own is named by
dotted path (:mod:`mirg.registry`). Without ``--bench``, each built-in is asked in this
order whether it recognises the ``--data`` file; MIG-Bench (:data:`FALLBACK`) takes any file
no other recognises, so a benchmark added anywhere in the table is asked before it.
How to write one: :mod:`mirg.eval.benchmarks.base`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import replace
from itertools import count
from pathlib import Path

from mirg.errors import MirgError, shown
from mirg.eval.benchmarks.base import EvalItem, GroundingBenchmark
from mirg.registry import resolve

__all__ = ["BENCHMARKS", "EvalItem", "GroundingBenchmark", "get_benchmark"]

BENCHMARKS = {
    "refcoco": "mirg.eval.benchmarks.refcoco:REFCOCO",
    "splits": "mirg.eval.benchmarks.splits:SPLITS",
    "mcbench": "mirg.eval.benchmarks.mcbench:MCBENCH",
    "migbench": "mirg.eval.benchmarks.migbench:MIGBENCH",
}
FALLBACK = "migbench"  # its reader names what is wrong with a file that is no benchmark's


def get_benchmark(name: str | None, data: str | Path) -> GroundingBenchmark:
    """The benchmark ``name`` (a short name or a dotted path), or without one the first
    built-in that recognises ``data``."""
    if not name:
        recognising = (s for s in BENCHMARKS if s != FALLBACK and _get(s).recognises(Path(data)))
        name = next(recognising, FALLBACK)
    return _get(name)


def _get(name: str) -> GroundingBenchmark:
    bench = resolve(name, BENCHMARKS, "benchmark", example="my_pkg.module.BENCH")
    if isinstance(bench, type) and issubclass(bench, GroundingBenchmark):
        bench = bench()  # the class named instead of its instance
    if not isinstance(bench, GroundingBenchmark):
        methods = ("recognises", "load", "check", "messages", "score", "table", "sections")
        missing = ", ".join(m for m in methods if not hasattr(bench, m))
        raise MirgError(
            f"benchmark {shown(name)} is {type(bench).__name__}, not a benchmark"
            + (f" (it has no {missing})" if missing else "")
            + ": name an instance of a mirg.eval.benchmarks.base.GroundingBenchmark subclass"
        )
    return bench


def load_eval_items(
    data: str | Path,
    images_root: str | Path | None = None,
    tasks: Sequence[str] | None = None,
    limit: int | None = None,
    bench: str | None = None,
) -> list[EvalItem]:
    """Items of a benchmark file (``bench``: its name or dotted path; without it, the
    benchmark that recognises the file), each carrying that benchmark.

    ``tasks`` keeps only those tasks; ``limit`` keeps the first N items *per task*, so a
    quick run still covers every task.
    """
    data = Path(data)
    if data.is_dir():
        raise MirgError(
            f"{data}: --data is a folder; give MIG_data.json or a split file such as "
            f"{data}/test.jsonl"
        )
    benchmark = get_benchmark(bench, data)
    loaded = benchmark.load(data, Path(images_root) if images_root else None)
    items = [replace(it, benchmark=benchmark) for it in loaded]
    if tasks:
        unknown = sorted(set(tasks) - {it.task for it in items})
        if unknown:
            known = ", ".join(sorted({it.task for it in items}))
            raise MirgError(f"{data}: no items of task(s) {unknown}; tasks here: {known}")
        items = [it for it in items if it.task in set(tasks)]
    if limit is not None:
        seen: defaultdict[str, Iterator[int]] = defaultdict(count)  # each task's items so far
        items = [it for it in items if next(seen[it.task]) < limit]
    return items
