"""RefCOCO / RefCOCO+ / RefCOCOg as a benchmark: single-image referring-expression
grounding, scored as Acc@0.5, the figure every grounding paper reports. It tells whether
multi-image training cost a model its single-image grounding.

Input is refer's layout (github.com/lichengunc/refer): ``--data`` is the refs file as JSON,
JSONL or parquet (read by :func:`mirg.data.readers.refcoco.read_refs`; refer's own
``refs(unc).p`` is a pickle, which evaluation does not open: docs/evaluation.md turns it
into JSON once), the instances are ``instances.json`` beside it, and ``--images`` is COCO's
``train2014`` folder, where every RefCOCO image lies.

Every sentence of every ref outside ``train`` is one item: one image, the question
``Locate "<sentence>" in the image.``, the referred annotation's box as the target, and
the ref's split as its task: ``val``, ``testA`` (people), ``testB`` (other objects) for
RefCOCO and RefCOCO+, ``val`` and ``test`` for RefCOCOg's umd split (which has no
testA/testB; the google split has ``val`` only).

**The metric.** An answer is a hit when its box has IoU >= 0.5 with the ground-truth box;
Acc@0.5 is the share of hits per split and over all sentences pooled (what papers call
"overall"), not a mean of the splits. An answer is read by mirg's strict judge
(:mod:`mirg.core.judge`), so one without a readable box, or naming an image other than
Image-1, is a miss, as is an item without a prediction.

**Which IoU.** The field's two reference evaluations agree on continuous boxes: MAttNet's
``computeIoU`` (the refer authors' own) takes ``[x, y, w, h]`` to ``x2 = x + w - 1`` and
then adds 1 to every side, which cancels, so its intersection and union are those of
``[x, x + w)``; Qwen-VL's ``evaluate_grounding.py`` converts ``[x, y, w, h]`` to
``[x, y, x + w, y + h]`` and takes torchvision's IoU, with no +1. mirg does the same: the
box is ``[x, y, x + w, y + h]`` with no pixel +1 (the +1 some later scripts add on
``x2 - x1`` changes small boxes' IoU and is not the published protocol). IoU does not change
when both boxes are scaled by the image size, so mirg's relative boxes give the same
value, except for rounding: an IoU of exactly 0.5 in pixels can come out of relative
coordinates as 0.49999999999999994, so a value within :data:`TIE_TOLERANCE` of 0.5
counts as 0.5 (a tie is a hit in the field's integer pixels). Integer pixel boxes that are
not a tie lie much farther from 0.5 than that. One difference remains: MAttNet scores
an overlap only one pixel wide as 0, where this counts it; it cannot reach 0.5 unless the
boxes are under 2 pixels wide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from mirg.core.migbench import BenchError
from mirg.core.prompts import reserved_tokens_problem
from mirg.core.scoring import ItemScore, Prediction, score_items
from mirg.errors import MirgError
from mirg.eval.benchmarks.base import NUMBER, EvalItem, GroundingBenchmark

THRESHOLD = 0.5
#: How far below 0.5 an IoU may fall by rounding and still be the tie it is in pixels
#: (rounding errs by at most about 1e-14; integer pixel boxes that are not a tie lie at
#: least 1e-8 away on images of up to 4,000 x 4,000 pixels).
TIE_TOLERANCE = 1e-10
#: The splits in the order papers print them; any other non-train split follows.
SPLITS = ("val", "testA", "testB", "test")
QUESTION = 'Locate "{text}" in the image.'
#: refer's ``refs(unc).p`` to JSON, read by an unpickler that refuses every class.
PICKLE_TO_JSON = (
    'python -c "import json, sys; from mirg.data.readers.refcoco import iter_refs; '
    "json.dump([r for _, r in iter_refs(sys.argv[1], allow_pickle=True)], "
    "open(sys.argv[2], 'w'))\""
)


def load_refcoco(
    refs: str | Path,
    images: str | Path | None,
    instances: str | Path | None = None,
) -> list[EvalItem]:
    """One item per sentence of every ref outside ``train``, keyed ``"<ref_id>:<j>"``."""
    # The data layer (Pillow; the COCO reader imports numpy) here, not where files are
    # recognised: every run without --bench asks this module first.
    from mirg.data.readers.coco import coco_images
    from mirg.data.readers.records import Tally
    from mirg.data.readers.refcoco import read_refs
    from mirg.data.schema import read_json, resolve_image_path

    refs = Path(refs)
    if images is None:
        raise BenchError(
            f"{refs}: RefCOCO needs --images ROOT, COCO's train2014 folder (where every "
            "RefCOCO, RefCOCO+ and RefCOCOg image lies)"
        )
    if refs.suffix.lower() in (".p", ".pkl", ".pickle"):
        raise BenchError(
            f"{refs}: a pickle, which mirg eval does not open; turn it into JSON once with "
            f"mirg's plain-data unpickler: {PICKLE_TO_JSON} '{refs}' {refs.parent / 'refs.json'}"
        )
    instances = Path(instances) if instances else refs.parent / "instances.json"
    if not instances.is_file():
        raise BenchError(
            f"{refs}: the instances file {instances} is not there; put refer's instances.json "
            "beside the refs file (refer's layout)"
        )
    # coco_images checks the file (and confines every image path under the root); the
    # target box comes from the annotation's own numbers, not its rounded relative copy.
    data = read_json(instances, "instances file")
    coco = coco_images(data, instances, images, check_images="none")
    boxes = {ann.get("id"): (ann["image_id"], ann["bbox"]) for ann in data["annotations"]}
    items = []
    for ref in read_refs(refs, Tally(unit="refs"), split=None):
        if ref.split == "train":
            continue
        image_id, (x, y, w, h) = boxes.get(ref.ann_id, (None, (0, 0, 0, 0)))
        if image_id != ref.image_id or image_id not in coco:
            raise BenchError(
                f"{ref.where}: field 'ann_id': {instances} has no annotation {ref.ann_id} on "
                f"image {ref.image_id}; were the refs made for another instances file?"
            )
        image = coco[image_id]
        path = resolve_image_path(Path(images), image.file_name, f"{ref.where}: image")
        for j, text in enumerate(ref.sentences):
            if (problem := reserved_tokens_problem(text)) is not None:
                raise BenchError(f"{ref.where}: field 'sentences[{j}]': {problem}")
            items.append(
                EvalItem(
                    key=f"{ref.ref_id}:{j}",
                    task=ref.split,
                    images=(str(path),),
                    question=QUESTION.format(text=text),
                    target_box=(
                        x / image.width,
                        y / image.height,
                        (x + w) / image.width,
                        (y + h) / image.height,
                    ),
                    target_image=1,
                )
            )
    order = {split: i for i, split in enumerate(SPLITS)}
    return sorted(items, key=lambda it: (order.get(it.task, len(order)), it.task))


def score_refcoco(
    items: Sequence[EvalItem], predictions: Mapping[int | str, Prediction], profile: str
) -> dict:
    """The metrics from the answers, each read by the strict judge."""
    return refcoco_metrics(score_items(items, predictions, "strict", profile))


def _row(group: Sequence[ItemScore]) -> dict:
    hits = sum(s.iou >= THRESHOLD - TIE_TOLERANCE for s in group)
    return {"n": len(group), "hits": hits, "acc@0.5": 100.0 * hits / len(group) if group else 0.0}


def refcoco_metrics(scores: Sequence[ItemScore]) -> dict:
    """Acc@0.5 in percent per split (``tasks``) and over every sentence (``pooled``)."""
    by_split: dict[str, list[ItemScore]] = {}
    for s in scores:
        by_split.setdefault(s.task, []).append(s)
    return {
        "protocol": "refcoco",
        "tasks": {split: _row(group) for split, group in by_split.items()},
        "pooled": _row(scores),
        "missing": sum(s.missing for s in scores),
    }


def format_refcoco(metrics: Mapping) -> str:
    """The terminal table: Acc@0.5 per split and pooled."""
    head = f"{'split':<10}{'n':>7}{'hits':>7}{'Acc@0.5':>9}"
    rows = [*metrics["tasks"].items(), ("pooled", metrics["pooled"])]
    lines = ["RefCOCO Acc@0.5 (IoU >= 0.5)", head, "-" * len(head)]
    lines += [f"{name:<10}{r['n']:>7}{r['hits']:>7}{r['acc@0.5']:>9.2f}" for name, r in rows]
    if metrics.get("missing"):
        lines.append(f"missing predictions (scored as misses): {metrics['missing']}")
    return "\n".join(lines)


class RefCocoBench(GroundingBenchmark):
    """Acc@0.5 per split and pooled; only mirg's ``reasoning`` prompt."""

    name = "RefCOCO"
    summary = "pooled"
    row_fields: Mapping[str, Any] = {"n": int, "hits": int, "acc@0.5": NUMBER}

    def recognises(self, path: Path) -> bool:
        """refer's layout: a file named ``refs…`` with ``instances.json`` beside it."""
        return path.name.startswith("refs") and (path.parent / "instances.json").is_file()

    def load(self, data: Path, images: Path | None) -> list[EvalItem]:
        return load_refcoco(data, images)

    def check(self, data: Path, items: Sequence[EvalItem], prompt: str, sizes: Mapping) -> None:
        if prompt != "reasoning":
            raise MirgError(
                f"{data}: RefCOCO has no published prompt for generative models to reproduce; "
                "evaluate it with --prompt reasoning (mirg's)"
            )

    def score(
        self,
        items: Sequence[EvalItem],
        predictions: Mapping,
        protocol: str,
        profile: str,
        out: Path | None = None,
    ) -> dict:
        """The strict judge whatever ``protocol`` says: RefCOCO has one figure."""
        return score_refcoco(items, predictions, profile)

    def table(self, metrics: Mapping) -> str:
        return format_refcoco(metrics)

    def sections(
        self,
        items: Sequence[EvalItem],
        predictions: Mapping,
        metrics: Mapping,
        profile: str,
        gallery_limit: int,
    ) -> list[tuple[str, str]]:
        from mirg.eval.report import esc, gallery, item_views, svg_bars, svg_histogram

        views = [
            replace(v, hit=v.iou >= THRESHOLD - TIE_TOLERANCE)
            for v in item_views(items, predictions, "strict", profile)
        ]
        rows = [*metrics["tasks"].items(), ("pooled", metrics["pooled"])]
        return [
            ("RefCOCO Acc@0.5 (%)", f"<pre>{esc(format_refcoco(metrics))}</pre>"),
            ("Acc@0.5 per split and pooled", svg_bars({k: r["acc@0.5"] for k, r in rows})),
            ("IoU histogram", svg_histogram([v.iou for v in views])),
            ("Gallery (hit: IoU ≥ 0.5 on Image-1)", gallery(views, gallery_limit)),
        ]


REFCOCO = RefCocoBench()
