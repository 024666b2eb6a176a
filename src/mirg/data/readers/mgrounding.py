"""MGrounding-630k (Migician's training set, hub dataset ``Michael4933/MGrounding-630k``)
-> samples, one per question/answer turn whose answer holds one box.

The published layout (github.com/thunlp/Migician, README "Data Preparation"): JSON lists
(``MGrounding-630k.json``, or one file per subset such as ``gg_train_120k.json``) of

    {"id": "5229016_8929009_6793119_3571391",
     "images": ["./MGrounding-630k/Group_Grounding/SA-1B/sa_5229016.jpg", …],
     "conversations": [{"from": "human", "value": "<image>\\n<image>\\n…Give the bounding box
                        of the region this sentence refers to: <|object_ref_start|>a statue
                        of a man<|object_ref_end|>."},
                       {"from": "gpt", "value": "It's in the third image.
                        <|box_start|>(316,58),(764,999)<|box_end|>"}, …],
     "type": "gg_train"}

Image paths are relative to the folder holding ``MGrounding-630k/`` (``--images``). Boxes
are Qwen2-VL's box tokens, 0..1000 relative to the image they are on. A record may hold
several turns; each becomes a sample with all the record's images.

The subset (``type``, matched by its words: common, diff, free/free-form, gg/group,
ot/tracking, refer, region) names the task and, where the answer names no image, the
rule that finds the target: ``region`` -> Image-1 (the source image the regions are cut
from); ``diff`` -> none (two aligned images); ``common``, ``ot``, ``refer`` -> the last
image the question names ("…locate it in the 2th image"); a one-image record -> Image-1.
Anything else must be named by the answer ("It's in the third image."), or the turn is
left out as "no target image".

Left out by design, counted and logged: answers without a box (group-grounding REG
turns, which describe a given region; free-form answers in words), answers with several
boxes, turns whose target image nothing determines. Bad records (placeholders that do not
number the images, turns that do not alternate, boxes outside 0..1000, paths leaving the
root) raise a DataError naming file, line, record and field, or are left out under
``--skip-bad``.

What the source says about images becomes image-level facts for trajectories: regions
are ``crop_of`` Image-1, tracking frames and common-object groups show the ``same_object``,
diff pairs are the ``same_scene``; a quoted box is the question's reference (on Image-1,
as in MIG-Bench), an ``<|object_ref_start|>`` phrase its description.
"""

from __future__ import annotations

import functools
import re
from argparse import Namespace
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mirg.core.answers import ORDINALS
from mirg.data.readers import Reader
from mirg.data.readers.conversations import (
    LeftOut,
    SampleIds,
    Turn,
    answer_numbers,
    conversation_turns,
    question_reference,
    read_turns,
    record_images,
    relative_box,
    target_image,
    target_only_sample,
)
from mirg.data.readers.records import ImageFiles, Tally, input_files, source_where
from mirg.data.references import Region
from mirg.data.schema import DataError, Sample

#: Subset words -> mirg task names (MIG-Bench's, where the benchmark has the task).
_SUBSETS = (
    ({"common"}, "common_object"),
    ({"diff", "difference"}, "diff"),
    ({"free", "freeform"}, "free_form"),
    ({"gg", "group"}, "group_grounding"),
    ({"ot", "tracking", "track"}, "object_tracking"),
    ({"refer", "referring"}, "refer_grounding"),
    ({"region"}, "region"),
)
#: Tasks whose question names the target image when the answer does not.
_NAMED_IN_QUESTION = {"common_object", "object_tracking", "refer_grounding"}
_REGION_RE = re.compile(
    r"\b(?:(\d{1,2})(?:st|nd|rd|th)|(" + "|".join(ORDINALS) + r"))\s{1,3}region", re.I
)
_WORD_RE = re.compile(r"[a-z]+")


@functools.lru_cache(maxsize=256)
def task_of(subset: str) -> str:
    """The mirg task of an MGrounding ``type`` ("gg_train" -> "group_grounding"); an
    unknown type is kept as written."""
    words = set(_WORD_RE.findall(subset.lower()))
    return next((task for keys, task in _SUBSETS if words & keys), subset or "grounding")


def _target_image(task: str, named: int | None, question: str, n: int, where: str) -> int | None:
    if named is None and task in ("region", "diff"):
        return 1 if task == "region" else None
    unnamed = f"the answer names no image and {task} implies none"
    if named is None and n > 1 and task not in _NAMED_IN_QUESTION:
        raise LeftOut("no target image", unnamed)
    return target_image(named, question, n, where, unnamed)


def _image_facts(
    task: str, question: str, n: int, target: int | None
) -> tuple[list[dict[str, Any]], Region | None]:
    """Relations the subset implies, and the region reference of a region question."""
    everyone = list(range(1, n + 1))
    if task == "region":
        relations = [{"type": "crop_of", "image": j, "source": 1} for j in everyone[1:]]
        found = _REGION_RE.search(question)
        if found:
            j = int(found.group(1)) if found.group(1) else ORDINALS[found.group(2).lower()]
            if 1 <= j < n:
                return relations, Region(image=j + 1, source=1)
        return relations, None
    if task in ("object_tracking", "common_object") and n > 1:
        return [{"type": "same_object", "images": everyone}], None
    if task == "refer_grounding" and target is not None and target != 1:
        return [{"type": "same_object", "images": [1, target]}], None
    if task == "diff" and n == 2:
        return [{"type": "same_scene", "images": [1, 2]}], None
    return [], None


def read_mgrounding(
    path: str | Path,
    *,
    images: ImageFiles,
    tally: Tally,
    record_sizes: bool = False,
    ids: SampleIds | None = None,
) -> Iterator[Sample]:
    """Samples from an MGrounding-630k JSON list (or JSONL), one per usable turn.

    ``images`` holds the root the record paths start from and how to check the files;
    ``record_sizes`` reads every image's size from its header (no decoding) into
    ``image_sizes``, which absolute-pixel profiles (qwen2.5-vl) need for exports.
    """
    source = Path(path).name

    def open_record(where: str, record: dict[str, Any]) -> tuple[str, list[Turn], tuple]:
        here = source_where(where, record)
        subset = record.get("type", "")
        if not isinstance(subset, str):
            raise DataError(f"{here}: field 'type': expected text, got {subset!r}")
        paths = record_images(record, here)
        turns = conversation_turns(record, here, len(paths))
        return here, turns, (record, subset, paths, images.record(paths, here, sizes=record_sizes))

    def turn_sample(opened: tuple, turn: Turn, where: str, sample_id: str) -> Sample:
        record, subset, paths, sizes = opened
        task, n = task_of(subset), len(paths)
        try:
            named, numbers = answer_numbers(turn.answer, where)
            box = relative_box(numbers, "qwen2-vl", None, None, where)
            target = _target_image(task, named, turn.question, n, where)
            relations, region = _image_facts(task, turn.question, n, target)
        except LeftOut as skip:  # counted by reason and subset
            raise LeftOut(f"{skip.reason} ({subset or 'no type'})", skip.detail) from None
        return target_only_sample(
            sample_id=sample_id,
            task=task,
            images=list(paths),
            question=turn.question,
            target_image=target,
            box=box,
            reference=region or question_reference(turn.question, where),
            relations=relations,
            sizes=sizes,
            meta={
                "source": "MGrounding-630k",
                "file": source,
                "type": subset,
                "record": record.get("id"),
                "turn": turn.number,
            },
        )

    return read_turns(path, tally, open_record, turn_sample, ids)


def _read(args: Namespace, tally: Tally) -> Iterator[Sample]:
    ids = SampleIds()
    for path, files in input_files(args):
        yield from read_mgrounding(
            path, images=files, tally=tally, record_sizes=args.image_sizes, ids=ids
        )


#: ``mirg convert --format mgrounding``.
READER = Reader("mgrounding", _read, unit="turns")
