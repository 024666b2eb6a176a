"""Self-contained HTML reports: metrics beside published results, charts, and a gallery.

The page opens from disk with no server: images are embedded as small base64 JPEGs,
boxes are drawn as positioned outlines over them, charts are inline SVG, and the
task and hit/miss filters are a few lines of inline JavaScript.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirg.core.boxes import Box
from mirg.core.scoring import read_predictions, score_items
from mirg.data.schema import DataError, open_image, read_json
from mirg.errors import MirgError
from mirg.eval.benchmarks import load_eval_items
from mirg.eval.run import METRICS, PREDICTIONS, REPORT, RUN
from mirg.files import write_text

GALLERY_LIMIT = 200


@dataclass
class ItemView:
    """One evaluated item as the gallery shows it: the ground-truth and predicted boxes as
    (1-based image, relative box), ``hit`` (IoU >= 0.5 under the run's protocol; MC-Bench:
    each image rightly said to hold a target or not) and ``note``, what the model answered."""

    key: int | str
    task: str
    question: str
    images: Sequence[str]
    target_image: int | None
    response: str
    iou: float
    hit: bool
    gt_boxes: Sequence[tuple[int, Sequence[float]]]
    pred_boxes: Sequence[tuple[int, Box]]
    note: str


def item_views(
    items: Sequence[Any], predictions: Mapping, protocol: str, profile: str
) -> list[ItemView]:
    """Join items with their predictions; the box, image, IoU and hit are the scorer's own
    (``score_items``), so the report cannot disagree with the metrics."""
    views = []
    for it, score in zip(items, score_items(items, predictions, protocol, profile), strict=True):
        pred = predictions.get(it.key)
        chosen = score.image
        if protocol == "official":
            chosen = chosen or it.target_image or 1  # the official protocol never checks
        on = range(1, len(it.images) + 1)
        views.append(
            ItemView(
                it.key,
                it.task,
                it.question,
                it.images,
                it.target_image,
                pred.response if pred else "",
                score.iou,
                score.iou >= 0.5,
                [(k, it.target_box) for k in on if it.target_image in (None, k)],
                [(chosen, score.box)] if score.box is not None and chosen else [],
                f"answered Image-{chosen or '?'}",
            )
        )
    return views


# --------------------------------------------------------------------------- pieces


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def svg_bars(values: Mapping[str, float], *, reference: Mapping[str, float] | None = None) -> str:
    """Horizontal bar chart of percentages; ``reference`` draws a dashed tick per bar
    (chance level)."""
    row, label_w, width = 22, 150, 640
    height = row * len(values) + 10
    scale = (width - label_w - 60) / 100
    parts = [f'<svg class="chart" width="{width}" height="{height}" role="img">']
    for i, (name, v) in enumerate(values.items()):
        y = 5 + i * row
        w = max(0.0, v) * scale
        parts.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{esc(name)}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="#4c78a8"/>'
        )
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 14}">{v:.1f}%</text>')
        if reference and name in reference:
            x = label_w + reference[name] * scale
            parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y}" y2="{y + row - 2}" '
                'stroke="#e45756" stroke-width="2" stroke-dasharray="3,2"/>'
            )
    parts.append("</svg>")
    return "".join(parts)


def svg_histogram(values: Sequence[float]) -> str:
    """Histogram of values in [0, 1] (IoU)."""
    bins, width, height = 10, 640, 180
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, max(0, int(v * bins)))] += 1
    top = max(counts) or 1
    bw = (width - 40) / bins
    parts = [f'<svg class="chart" width="{width}" height="{height + 30}" role="img">']
    for i, c in enumerate(counts):
        h = (height - 20) * c / top
        x = 30 + i * bw
        parts.append(
            f'<rect x="{x:.1f}" y="{height - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" fill="#72b7b2"/>'
        )
        parts.append(
            f'<text x="{x + bw / 2:.1f}" y="{height - h - 3:.1f}" text-anchor="middle">{c}</text>'
        )
        parts.append(f'<text x="{x:.1f}" y="{height + 14}" font-size="10">{i / bins:.1f}</text>')
    parts.append(
        f'<text x="{width - 10}" y="{height + 14}" font-size="10" text-anchor="end">1.0</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def svg_lines(series: Mapping[str, Sequence[tuple[float, float]]]) -> str:
    """Line chart of named (x, y) series (training curves, by step)."""
    width, height = 640, 220
    colours = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2", "#9d755d"]
    points = [p for s in series.values() for p in s]
    if not points:
        return "<p>no data</p>"
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    L, B = 50, height - 30

    def xy(p: tuple[float, float]) -> str:
        return f"{L + (p[0] - x0) / (x1 - x0) * (width - L - 10):.1f},{B - (p[1] - y0) / (y1 - y0) * (B - 10):.1f}"

    parts = [
        f'<svg class="chart" width="{width}" height="{height + 20 * len(series)}" role="img">',
        f'<line x1="{L}" y1="{B}" x2="{width - 10}" y2="{B}" stroke="#999"/>',
        f'<text x="{L - 4}" y="{B}" text-anchor="end" font-size="10">{y0:.3g}</text>',
        f'<text x="{L - 4}" y="14" text-anchor="end" font-size="10">{y1:.3g}</text>',
        f'<text x="{width - 10}" y="{B + 14}" text-anchor="end" font-size="10">step {x1:.0f}</text>',
    ]
    for i, (name, s) in enumerate(series.items()):
        c = colours[i % len(colours)]
        if s:
            parts.append(
                f'<polyline fill="none" stroke="{c}" stroke-width="1.5" points="{" ".join(xy(p) for p in s)}"/>'
            )
        parts.append(f'<text x="{L}" y="{height + 12 + 20 * i}" fill="{c}">— {esc(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def metrics_table(metrics: Mapping, chance: Mapping | None = None) -> str:
    """Per-task table of a metrics dict (``mirg score`` shape), chance levels beside it."""
    head = (
        "<tr><th>task</th><th>n</th><th>Acc@0.3</th><th>Acc@0.5</th><th>Acc@0.7</th><th>mIoU</th>"
    )
    head += "<th>chance Acc@0.5</th></tr>" if chance else "</tr>"
    rows = []
    for task, r in [*metrics["tasks"].items(), ("average", metrics["average"])]:
        n = r.get("n", sum(t["n"] for t in metrics["tasks"].values()))
        cells = (
            f"<td>{esc(task)}</td><td>{n}</td>"
            + "".join(f"<td>{r[k]:.2f}</td>" for k in ("acc@0.3", "acc@0.5", "acc@0.7"))
            + f"<td>{r['miou']:.3f}</td>"
        )
        if chance:
            c = chance.get("tasks", {}).get(task) if task != "average" else chance.get("average")
            cells += f"<td>{c['acc@0.5']:.2f}</td>" if c else "<td>–</td>"
        rows.append(f'<tr class="{"avg" if task == "average" else ""}">{cells}</tr>')
    return f'<table class="metrics">{head}{"".join(rows)}</table>'


def thumbnail(path: str) -> tuple[str, tuple[int, int]]:
    """A data URI of a small JPEG of the image as shown (EXIF orientation applied, the
    pixels the boxes were scored on: :func:`mirg.data.schema.open_image`), and its
    (width, height) as shown. An image that cannot be used (missing, unreadable, over the
    data pipeline's pixel limit) raises OSError (drawn as unavailable)."""
    try:
        image = open_image(path)
    except DataError as exc:
        raise OSError(str(exc)) from None
    size = image.size
    image.thumbnail((256, 256))
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), size


def _box_div(box: Sequence[float], cls: str) -> str:
    x1, y1, x2, y2 = (min(1.0, max(0.0, float(v))) for v in box)
    return (
        f'<div class="box {cls}" style="left:{100 * x1:.2f}%;top:{100 * y1:.2f}%;'
        f'width:{100 * max(0.0, x2 - x1):.2f}%;height:{100 * max(0.0, y2 - y1):.2f}%"></div>'
    )


def gallery(views: Sequence[ItemView], limit: int = GALLERY_LIMIT) -> str:
    """Cards with every image of a sample, the ground truth (green) on the target image and
    the prediction (red) on the image the model chose; filterable by task and hit/miss
    (also from the address: ``report.html#task=diff&hit=miss``)."""
    shown = list(views)[:limit]
    tasks = sorted({v.task for v in views})
    controls = (
        '<div class="filters">task <select id="f-task"><option value="">all</option>'
        + "".join(f'<option value="{esc(t)}">{esc(t)}</option>' for t in tasks)
        + '</select> outcome <select id="f-hit"><option value="">all</option>'
        '<option value="hit">hit (IoU ≥ 0.5)</option><option value="miss">miss</option></select>'
        f' <span id="f-count">{len(shown)}</span> shown'
        + (f" (first {limit} of {len(views)} items)" if len(views) > limit else "")
        + "</div>"
    )
    cards = []
    for v in shown:
        figs = []
        for k, path in enumerate(v.images, 1):
            try:
                uri, _ = thumbnail(path)
                img = f'<img src="{uri}" alt="Image-{k}">'
            except OSError:
                img = f'<div class="noimg">Image-{k} unavailable</div>'
            boxes = "".join(_box_div(b, "gt") for i, b in v.gt_boxes if i == k)
            boxes += "".join(_box_div(b, "pred") for i, b in v.pred_boxes if i == k)
            figs.append(
                f'<figure><div class="frame">{img}{boxes}</div><figcaption>Image-{k}'
                f"{' (target)' if v.target_image == k else ''}</figcaption></figure>"
            )
        outcome = "hit" if v.hit else "miss"
        cards.append(
            f'<div class="card {outcome}" data-task="{esc(v.task)}" data-hit="{outcome}">'
            f'<div class="meta"><b>{esc(v.key)}</b> · {esc(v.task)} · IoU {v.iou:.2f} · '
            f'<span class="{outcome}">{outcome}</span> · {esc(v.note)}'
            f'</div><div class="images">{"".join(figs)}</div>'
            f'<p class="q">{esc(v.question)}</p>'
            f"<details><summary>reasoning / response</summary><pre>{esc(v.response)}</pre></details></div>"
        )
    return controls + f'<div id="gallery">{"".join(cards)}</div>'


CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}
table{border-collapse:collapse;margin:8px 0 20px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child,table.published td:last-child{text-align:left}tr.avg,tr.ours{font-weight:bold;background:#f3f6fa}
.chart text{font-size:12px}.card{border:1px solid #ddd;border-radius:6px;padding:8px;margin:10px 0}
.images{display:flex;flex-wrap:wrap;gap:8px}figure{margin:0}.frame{position:relative;display:inline-block}
.frame img{display:block;width:200px;height:auto}.box{position:absolute;box-sizing:border-box}
.box.gt{border:2px solid #2ca02c}.box.pred{border:2px dashed #d62728}
.card.hit{border-left:4px solid #2ca02c}.card.miss{border-left:4px solid #d62728}span.hit{color:#2ca02c}span.miss{color:#d62728}pre{white-space:pre-wrap;font-size:12px}.q{margin:6px 0}
.legend span{margin-right:16px}.noimg{width:128px;height:96px;background:#eee}
"""

JS = """
function applyFilters(){var t=document.getElementById('f-task').value,h=document.getElementById('f-hit').value,n=0;
document.querySelectorAll('#gallery .card').forEach(function(c){var ok=(!t||c.dataset.task===t)&&(!h||c.dataset.hit===h);
c.style.display=ok?'':'none';if(ok)n++;});document.getElementById('f-count').textContent=n;}
document.addEventListener('DOMContentLoaded',function(){
var q=new URLSearchParams(location.hash.slice(1));['task','hit'].forEach(function(k){
var e=document.getElementById('f-'+k);if(!e)return;if(q.get(k))e.value=q.get(k);e.addEventListener('change',applyFilters);});
if(document.getElementById('f-task'))applyFilters();});
"""


def page(title: str, sections: Sequence[tuple[str, str]]) -> str:
    """A complete HTML page from (heading, html) sections."""
    body = "".join(f"<section><h2>{esc(h)}</h2>{content}</section>" for h, content in sections)
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        f"<style>{CSS}</style><script>{JS}</script></head><body><h1>{esc(title)}</h1>{body}</body></html>"
    )


def evaluation_sections(
    metrics: Mapping,
    views: Sequence[ItemView],
    chance: Mapping | None = None,
    gallery_limit: int = GALLERY_LIMIT,
) -> list[tuple[str, str]]:
    """Table, charts and gallery of a run scored one box per item (``mirg score``'s
    metrics); a benchmark adds its own sections around them."""
    acc = {t: r["acc@0.5"] for t, r in metrics["tasks"].items()}
    ref = {t: r["acc@0.5"] for t, r in (chance or {}).get("tasks", {}).items()} or None
    legend = ' <span class="legend">(dashed red: chance level)</span>' if ref else ""
    return [
        ("Metrics per task", metrics_table(metrics, chance)),
        (f"Acc@0.5 per task{' and chance' if ref else ''}", svg_bars(acc, reference=ref) + legend),
        ("IoU histogram", svg_histogram([v.iou for v in views])),
        (
            "Gallery",
            '<p class="legend"><span style="color:#2ca02c">■ ground truth</span>'
            '<span style="color:#d62728">▢ prediction, on the image the model named</span></p>'
            + gallery(views, gallery_limit),
        ),
    ]


def write_report(out: str | Path, gallery_limit: int = GALLERY_LIMIT) -> Path:
    """(Re)build ``out/report.html`` from an evaluation folder (``mirg report DIR``) with
    its benchmark's sections."""
    run, items, metrics, predictions = read_run(Path(out))
    cfg = run["config"]
    bench = items[0].benchmark
    info = (
        f"<p>model <code>{esc(cfg['model'])}</code> · data <code>{esc(cfg['data'])}</code> · "
        f"benchmark {esc(bench.name)} · prompt {esc(cfg['prompt'])} · protocol "
        f"{esc(metrics['protocol'])} · profile {esc(run['profile_used'])} · missing "
        f"predictions {metrics['missing']}</p>"
    )
    sections = bench.sections(items, predictions, metrics, run["profile_used"], gallery_limit)
    path = Path(out) / REPORT
    write_text(path, page("mirg evaluation", [("Run", info), *sections]))
    return path


def read_run(out: Path) -> tuple[dict, list, dict, dict]:
    """An evaluation folder's run.json, items (of the benchmark run.json names, else the one
    recognising the data file), metrics.json and predictions; the JSON files are checked
    for the fields the report reads, the metrics for those its benchmark's rows hold."""
    if not out.is_dir():
        raise MirgError(f"{out}: not a folder; give a mirg eval --out folder")
    for name in (RUN, PREDICTIONS, METRICS):
        if not (out / name).is_file():
            raise MirgError(f"{out}: no {name}; is this a mirg eval output folder?")
    run = read_json(out / RUN)
    _fields(out / RUN, run, {"config": dict, "profile_used": str})
    cfg = run["config"]
    _fields(out / RUN, cfg, {"data": str, "model": str, "prompt": str}, "config.")
    items = load_eval_items(
        cfg["data"], cfg.get("images"), cfg.get("tasks"), cfg.get("limit"), cfg.get("bench")
    )
    if not items:
        raise MirgError(f"{cfg['data']}: no items to report on")
    bench = items[0].benchmark
    metrics = read_json(out / METRICS)
    needs = {"protocol": str, "tasks": dict, "missing": int, bench.summary: dict}
    _fields(out / METRICS, metrics, {**needs, **bench.metrics_fields})
    for task, row in metrics["tasks"].items():
        _fields(out / METRICS, row, {"n": int, **bench.row_fields}, f"tasks.{task}.")
    _fields(out / METRICS, metrics[bench.summary], bench.row_fields, f"{bench.summary}.")
    return run, items, metrics, read_predictions(out / PREDICTIONS)


def _fields(path: Path, obj: object, needs: Mapping[str, Any], prefix: str = "") -> None:
    """DataError naming ``path`` and the field when ``obj`` lacks one of ``needs`` (name ->
    type) or holds another type: a run killed while writing it, or an edit gone wrong."""
    for name, kind in needs.items():
        if not isinstance(obj, dict) or not isinstance(obj.get(name), kind):
            raise DataError(
                f"{path}: field '{prefix}{name}': missing or of the wrong type; rerun mirg "
                "eval on this folder to rewrite it"
            )
