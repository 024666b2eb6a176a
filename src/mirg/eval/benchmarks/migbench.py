"""MIG-Bench (``MIG_data.json``): its official and strict protocols, its official prompt
(``need_format`` per item) and the published results beside a run's figures."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from mirg.core.migbench import TASK_COLUMNS, bench_file, load_migbench, task_counts
from mirg.core.profiles import CoordinateProfile
from mirg.eval.benchmarks.base import (
    EvalItem,
    GroundingBenchmark,
    Items,
    confined,
    require_images,
)
from mirg.eval.generation import eval_messages

#: What the ``file`` column of the published table means.
BENCH_FILE_NOTE = (
    "file: the MIG-Bench file a row was scored on, read from its figures (each is an exact "
    "fraction of that file's item counts). public: MIG_data.json, 4,295 items; revised: the "
    "revised file UniVG-R1's evaluation loads (Common 815, GG 485, Reason 97 items instead "
    "of 816, 499, 101); unknown: fractions of neither; other (this run): a subset or "
    "another file. Common, GG and Reason compare only between rows on the same file."
)


def _migbench_image(root: Path, relative: str) -> Path:
    """MIG-Bench paths read ``./MIG-Bench/images/…``: accept a root that holds the
    ``MIG-Bench`` folder or that is the ``MIG-Bench`` folder itself."""
    rel = Path(relative)  # pathlib drops the leading "./"
    candidate = root / rel
    if candidate.exists() or rel.parts[:1] != ("MIG-Bench",):
        return candidate
    inner = root.joinpath(*rel.parts[1:])
    return inner if inner.exists() else candidate


def published_results() -> list[dict[str, str]]:
    """Published MIG-Bench Acc@0.5 per task (percent), one row per model, with its source."""
    text = resources.files("mirg.eval").joinpath("published_migbench.csv").read_text("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def published_table(metrics: Mapping, items: Items | None = None) -> str:
    """Our Acc@0.5 per MIG-Bench task in the published column order, under published rows,
    each row saying which benchmark file it was scored on (from ``items``' task counts,
    else the metrics' ``n``)."""
    from mirg.eval.report import esc

    cols = list(TASK_COLUMNS.items())
    head = (
        "<tr><th>model</th>"
        + "".join(f"<th>{esc(c)}</th>" for _, c in cols)
        + "<th>avg</th><th>file</th><th>source</th></tr>"
    )
    ours = [metrics["tasks"].get(t, {}).get("acc@0.5") for t, _ in cols]
    cells = "".join(f"<td>{v:.2f}</td>" if v is not None else "<td>–</td>" for v in ours)
    counts = (
        task_counts(it.record for it in items)
        if items
        else {t: int(r.get("n", 0)) for t, r in metrics["tasks"].items()}
    )
    body = [
        f'<tr class="ours"><td>this run ({esc(metrics["protocol"])})</td>{cells}'
        f"<td>{metrics['average']['acc@0.5']:.2f}</td><td>{bench_file(counts)}</td>"
        "<td>this report</td></tr>"
    ]
    for r in published_results():
        cells = "".join(f"<td>{esc(r[c])}</td>" for _, c in cols)
        body.append(
            f"<tr><td>{esc(r['model'])}</td>{cells}<td>{esc(r['avg'])}</td>"
            f"<td>{esc(r.get('file', ''))}</td><td>{esc(r['source'])}</td></tr>"
        )
    note = f'<p class="legend">{esc(BENCH_FILE_NOTE)}</p>'
    return f'<table class="published">{head}{"".join(body)}</table>{note}'


class MigBench(GroundingBenchmark):
    name = "MIG-Bench"

    def load(self, data: Path, images: Path | None) -> list[EvalItem]:
        images = require_images(
            data,
            images,
            "MIG-Bench needs --images ROOT, the folder holding the benchmark's images (the "
            "MIG-Bench archive from the Hugging Face hub, unpacked)",
        )
        return [
            EvalItem(
                key=it.index,
                task=it.task,
                images=tuple(
                    confined(
                        images, _migbench_image(images, p), f"{data}: item {it.index}: images[{k}]"
                    )
                    for k, p in enumerate(it.images)
                ),
                question=it.question,
                target_box=it.target_box,
                target_image=it.target_image,
                key_field="index",
                record=it,
            )
            for it in load_migbench(data)
        ]

    def messages(self, item: EvalItem, prompt: str, profile: CoordinateProfile) -> list[dict]:
        need_format = item.record.need_format
        return eval_messages(item.question, len(item.images), prompt, profile, need_format)

    def sections(
        self, items: Items, predictions: Mapping, metrics: Mapping, profile: str, gallery_limit: int
    ) -> list[tuple[str, str]]:
        sections = super().sections(items, predictions, metrics, profile, gallery_limit)
        published = ("Beside published results (Acc@0.5, %)", published_table(metrics, items))
        return [sections[0], published, *sections[1:]]


MIGBENCH = MigBench()
