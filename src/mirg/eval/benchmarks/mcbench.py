"""MC-Bench as a benchmark: each description asks for every matching object on either of
two images (possibly none), scored by MC-Bench's own image-level accuracy and AP50
(``mirg.core.mcbench``) whatever ``--protocol`` says; its task is the text style. A run
also writes ``mcbench_results.json``, the answers in MC-Bench's published results format,
which its own evaluation script reads."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mirg.core import mcbench
from mirg.core.boxes import Box, iou
from mirg.core.mcbench import McSample, load_mcbench
from mirg.core.migbench import BenchError
from mirg.core.profiles import CoordinateProfile
from mirg.core.prompts import reserved_tokens_problem
from mirg.errors import MirgError
from mirg.eval.benchmarks.base import (
    NUMBER,
    EvalItem,
    GroundingBenchmark,
    Items,
    confined,
    require_images,
)
from mirg.files import write_json

MCBENCH_RESULTS = "mcbench_results.json"


class McItem(EvalItem):
    """An MC-Bench description; ``target_box`` is its first target (none: a negative)."""

    @property
    def mcbench(self) -> McSample:
        return self.record


def _mcbench_image(root: Path, file_name: str) -> Path:
    """MC-Bench's ``file_name`` is relative to its image folder: accept that folder as the
    root, or the folder that holds it (its archive unpacks to one of these names)."""
    folders = ("", "MC-Bench_images", "mc-bench_images")
    candidates = [root / folder / file_name for folder in folders]
    return next((c for c in candidates if c.exists()), candidates[0])


def _best_ious(targets: Sequence[tuple[int, Box]], boxes: Sequence[tuple[int, Box]]) -> list[float]:
    """Per target, the best IoU a box on the same image reaches (0 without one)."""
    return [max((iou(b, t) for k, b in boxes if k == i), default=0.0) for i, t in targets]


class McBench(GroundingBenchmark):
    name = "MC-Bench"
    summary = "overall"
    row_fields: Mapping[str, Any] = {"n": int, "ap50": NUMBER, "accuracy": NUMBER}
    metrics_fields: Mapping[str, Any] = {"corrected": dict}
    writes = (MCBENCH_RESULTS,)

    def recognises(self, path: Path) -> bool:
        """A JSON file holding an object (MIG-Bench's holds a list), from its first
        non-blank character."""
        if not path.is_file():
            return False
        with path.open("rb") as handle:
            while chunk := handle.read(4096):
                text = chunk.lstrip().lstrip(b"\xef\xbb\xbf")
                if text:
                    return text.startswith(b"{")
        return False

    def load(self, data: Path, images: Path | None) -> list[EvalItem]:
        images = require_images(
            data,
            images,
            "MC-Bench needs --images ROOT, the folder holding its images (MC-Bench_images "
            "from its archive, or the folder that holds it)",
        )
        items: list[EvalItem] = []
        for sample in load_mcbench(data):
            if (problem := reserved_tokens_problem(sample.text)) is not None:
                raise BenchError(f"{data}: description {sample.id}: field 'text': {problem}")
            first = sample.targets[0] if sample.targets else None
            paths = tuple(
                confined(
                    images,
                    _mcbench_image(images, img.file_name),
                    f"{data}: description {sample.id}: image {img.id}",
                )
                for img in sample.images
            )
            box = first.relative(sample.images[first.image - 1]) if first else (0.0, 0.0, 0.0, 0.0)
            target = first.image if first else None
            items.append(
                McItem(sample.id, sample.style, paths, sample.text, box, target, record=sample)
            )
        return items

    def check(self, data: Path, items: Items, prompt: str, sizes: Mapping) -> None:
        """Only mirg's prompt; MC-Bench boxes are pixels of the images as annotated, so an
        image file of another size (a resized copy) would shift every box: refused, named."""
        if prompt != "reasoning":
            raise MirgError(
                f"{data}: MC-Bench publishes no model prompt to reproduce; evaluate it with "
                "--prompt reasoning (mirg's, one instruction per text style)"
            )
        for it in items:
            for k, (path, img) in enumerate(zip(it.images, it.record.images, strict=True)):
                if sizes.get(path, (img.width, img.height)) != (img.width, img.height):
                    w, h = sizes[path]
                    raise BenchError(
                        f"description {it.key}: images[{k}] (image {img.id}, {path}): the file "
                        f"is {w}x{h} but the annotation says width {img.width}, height "
                        f"{img.height}; use the benchmark's own images"
                    )

    def messages(self, item: EvalItem, prompt: str, profile: CoordinateProfile) -> list[dict]:
        return mcbench.messages(item.record, profile)

    def score(
        self, items: Items, predictions: Mapping, protocol: str, profile: str, out: Path | None
    ) -> dict:
        """Image-level accuracy and AP50 from the answers; the answers as detections (score
        1, in pixels of the original images) go to ``out/mcbench_results.json``. An item
        without a prediction counts as answering no box."""
        found: list[mcbench.Detection] = []
        missing = unreadable = 0
        for it in items:
            pred = predictions.get(it.key)
            if pred is None:
                missing += 1
                continue
            detections, error = mcbench.detections(
                it.record, pred.response, profile, pred.input_sizes
            )
            found.extend(detections)
            unreadable += error is not None
        samples = [it.record for it in items]
        metrics = mcbench.metrics(samples, found, missing=missing, unreadable=unreadable)
        if out is not None:
            write_json(out / MCBENCH_RESULTS, [d.to_json() for d in found])
        return metrics

    def table(self, metrics: Mapping) -> str:
        return mcbench.format_table(metrics)

    def sections(
        self, items: Items, predictions: Mapping, metrics: Mapping, profile: str, gallery_limit: int
    ) -> list[tuple[str, str]]:
        """Its table (AP50 and image accuracy per text style), their charts, the best IoU
        each target got, and the gallery of every target and box."""
        from mirg.eval.report import gallery, svg_bars, svg_histogram

        views = mcbench_views(items, predictions, profile)
        styles = metrics["tasks"]
        target_ious = [x for v in views for x in _best_ious(v.gt_boxes, v.pred_boxes)]
        return [
            ("MC-Bench metrics (%)", mcbench_table(metrics)),
            ("AP50 per text style (official)", svg_bars({s: r["ap50"] for s, r in styles.items()})),
            (
                "Image-level accuracy per text style (official)",
                svg_bars({s: r["accuracy"] for s, r in styles.items()}),
            ),
            ("Best IoU of each target", svg_histogram(target_ious)),
            (
                "Gallery",
                '<p class="legend"><span style="color:#2ca02c">■ every target</span>'
                '<span style="color:#d62728">▢ every box the model gave</span> (hit: each image '
                "rightly said to hold a target or not)</p>" + gallery(views, gallery_limit),
            ),
        ]


def mcbench_views(items: Items, predictions: Mapping, profile: str) -> list:
    """MC-Bench samples with their answers read as the metrics read them
    (:func:`mirg.core.mcbench.detections`): every target and predicted box, ``hit`` when
    each image is rightly said to hold a target or not, ``iou`` the mean over targets of
    the best IoU a box on the same image reaches."""
    from mirg.eval.report import ItemView

    views = []
    for it in items:
        sample = it.record
        pred = predictions.get(it.key)
        found = (
            mcbench.detections(sample, pred.response, profile, pred.input_sizes)[0] if pred else []
        )
        image = {img.id: (k, img) for k, img in enumerate(sample.images, 1)}
        boxes = [(image[d.image_id][0], image[d.image_id][1].relative(d.bbox)) for d in found]
        targets = [(t.image, t.relative(sample.images[t.image - 1])) for t in sample.targets]
        best = _best_ious(targets, boxes)
        right = mcbench.image_accuracy([sample], found) == 1.0
        views.append(
            ItemView(
                it.key,
                it.task,
                sample.text,
                it.images,
                None,
                pred.response if pred else "",
                sum(best) / len(best) if best else 0.0,
                right,
                targets,
                boxes,
                f"{sum(v >= 0.5 for v in best)} of {len(best)} targets found (IoU ≥ 0.5), "
                f"{len(boxes)} boxes, images {'right' if right else 'wrong'}",
            )
        )
    return views


def mcbench_table(metrics: Mapping) -> str:
    """MC-Bench's figures per text style and over all samples under each protocol, by
    name: ``official`` (the published script's) beside ``corrected`` (mirg's regrouping),
    and the note on the official figures when there is one."""
    from mirg.eval.report import esc

    protocols = (metrics, metrics["corrected"])
    head = (
        '<tr><th></th><th></th><th colspan="2">official</th><th colspan="2">corrected</th>'
        "</tr><tr><th>text style</th><th>n</th>"
        + "<th>AP50</th><th>image accuracy</th>" * 2
        + "</tr>"
    )
    rows = []
    for style in [*metrics["tasks"], None]:
        pair = [p["tasks"][style] if style else p["overall"] for p in protocols]
        figures = "".join(f"<td>{r['ap50']:.2f}</td><td>{r['accuracy']:.2f}</td>" for r in pair)
        rows.append(
            f'<tr class="{"" if style else "avg"}"><td>{esc(style or "all samples")}</td>'
            f"<td>{pair[0]['n']}</td>{figures}</tr>"
        )
    notes = [
        "official: the published evaluation script's figures, its regrouping defects "
        "included; corrected: mirg's regrouping of each sample's groups",
        *([f"official: {metrics['official_note']}"] if metrics.get("official_note") else []),
    ]
    legend = "".join(f'<p class="legend">{esc(n)}</p>' for n in notes)
    return f'<table class="metrics">{head}{"".join(rows)}</table>{legend}'


MCBENCH = McBench()
