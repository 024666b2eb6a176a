"""Conversation-style grounding data -> samples: LLaVA / VLM-R1 records, and the turn
handling MGrounding-630k shares (:mod:`mirg.data.readers.mgrounding`).

Two record layouts, JSONL or a JSON list (``mirg convert --format llava``):

* conversations (LLaVA, VLM-R1's ``grpo_jsonl.py`` data): ``{"id", "image": PATH or
  [PATH, …] (or "images"), "conversations": [{"from": "human", "value": "<image>…"},
  {"from": "gpt", "value": ANSWER}, …]}``; ``"messages"`` with ``role``/``content`` is
  read the same way. Each human/gpt pair whose answer holds one box becomes a sample.
* VLM-R1's REC records (``rec_jsons_processed/*.json``): ``{"image", "problem",
  "solution": [x1, y1, x2, y2], "width", "height", "normal_caption"?, …}``.

Boxes are written in a declared profile (``--profile``): ``qwen2-vl``/``qwen3-vl``
(0..1000), ``qwen2.5-vl`` (absolute pixels of the smart-resized frame the source's
processor showed, which needs each image's size and that processor's pixel caps),
``normalized`` (0..1 of the image as stored), or ``pixels`` (absolute pixels of the image
as stored: VLM-R1's ``solution``). The answer may be bare numbers, Qwen2-VL box tokens,
``{"bbox_2d": …}`` JSON or mirg's canonical answer (one parser, :mod:`mirg.core.answers`).

The ``<image>`` placeholders of a record must number its images; the target image is the
one the answer names, else the only image, else the last one the question names. Samples
annotate only the target (``meta.annotations = "target_only"``), so trajectories reason
at the image level.
"""

from __future__ import annotations

import re
from argparse import Namespace
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirg.core.answers import parse_answer, parse_image_reference
from mirg.core.boxes import BOX_TOLERANCE, Box, clip_box
from mirg.core.migbench import reference_boxes
from mirg.core.profiles import PROFILES, get_profile
from mirg.data.readers import Reader
from mirg.data.readers.records import (
    ImageFiles,
    Tally,
    check_sample,
    input_files,
    iter_records,
    json_object,
    source_where,
)
from mirg.data.references import Description, QuotedBox, Reference
from mirg.data.schema import DataError, Sample, _bad, check_relative_path, data_box
from mirg.models.loading import FrameRule

#: Coordinate conventions a source may declare: the model profiles, and ``pixels``
#: (absolute pixels of the image file as stored, VLM-R1's REC ``solution``).
SOURCE_PROFILES = (*sorted(PROFILES), "pixels")
PLACEHOLDER = "<image>"
_HUMAN = ("human", "user")
_ASSISTANT = ("gpt", "assistant")
OBJECT_REF_RE = re.compile(r"<\|object_ref_start\|>(.{1,500}?)<\|object_ref_end\|>", re.S)
_REF_TAG_RE = re.compile(r"<ref>(.{1,500}?)</ref>", re.S)
_DESCRIBES_RE = re.compile(
    r"(?:describes|refers to|referred to by|described by)\s{0,3}:\s{0,3}(\S.{0,499}?)[.\s]*$",
    re.S | re.I,
)


class LeftOut(Exception):
    """A turn or record the reader cannot use by design (an answer without a box): not an
    error; counted and logged with its reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Turn:
    """One question and its answer; ``number`` counts questions from 0."""

    number: int
    question: str
    answer: str


def record_images(record: dict[str, Any], where: str, key: str = "images") -> list[str]:
    """The record's image paths ("./a.jpg" -> "a.jpg"), a list even for one path, each
    relative and inside the root (by its text)."""
    images = record.get(key)
    if isinstance(images, str):
        images = [images]
    if not isinstance(images, list) or not images:
        raise _bad(where, key, "expected a path or a non-empty list of paths")
    out = []
    for k, image in enumerate(images):
        if not isinstance(image, str) or not image.strip():
            raise _bad(where, f"{key}[{k}]", f"expected a relative path, got {image!r}")
        image = image[2:] if image.startswith("./") else image
        check_relative_path(image, f"{where}: field '{key}[{k}]'")
        out.append(image)
    return out


def conversation_turns(record: dict[str, Any], where: str, n_images: int) -> list[Turn]:
    """Question/answer pairs of ``conversations`` (from/value) or ``messages``
    (role/content), placeholders taken out of the questions; DataError when the turns do
    not alternate or the ``<image>`` placeholders do not number the images."""
    key = "conversations" if "conversations" in record else "messages"
    turns = record.get(key)
    if not isinstance(turns, list) or not turns:
        raise _bad(where, "conversations", "expected a list of turns")
    speaker, text = ("from", "value") if key == "conversations" else ("role", "content")
    if isinstance(turns[0], dict) and turns[0].get(speaker) == "system":
        turns = turns[1:]
    out: list[Turn] = []
    placeholders = 0
    for i in range(0, len(turns), 2):
        pair = turns[i : i + 2]
        roles = [t.get(speaker) if isinstance(t, dict) else None for t in pair]
        values = [t.get(text) if isinstance(t, dict) else None for t in pair]
        if len(pair) < 2 or roles[0] not in _HUMAN or roles[1] not in _ASSISTANT:
            raise _bad(
                where,
                f"{key}[{i}]",
                f"expected a human turn then a gpt turn, got {roles} (turns must alternate)",
            )
        if not all(isinstance(v, str) for v in values):
            raise _bad(where, f"{key}[{i}]", f"expected text in {text!r}")
        question, answer = values
        placeholders += question.count(PLACEHOLDER)
        out.append(Turn(i // 2, question.replace(PLACEHOLDER, "").strip(), answer))
    if placeholders != n_images:
        raise _bad(
            where,
            key,
            f"{placeholders} '<image>' placeholder(s) but {n_images} image(s); they must agree",
        )
    return out


def answer_numbers(answer: str, where: str) -> tuple[int | None, tuple[float, ...]]:
    """The image an answer names (or None) and its box numbers as written; LeftOut when it
    holds no box or several, DataError when it names image 0."""
    parsed = parse_answer(answer)
    if parsed.box is None:
        raise LeftOut("answer has no box", answer[:120])
    if parsed.n_boxes > 1:
        raise LeftOut("answer has several boxes", answer[:120])
    if parsed.n_answers > 1:
        raise LeftOut("answer has several answer blocks", answer[:120])
    if parsed.image is not None and parsed.image < 1:
        raise _bad(where, "answer", f"names image {parsed.image}; images count from 1")
    return parsed.image, parsed.box


def relative_box(
    numbers: Sequence[float],
    profile: str,
    size: tuple[int, int] | None,
    frame_rule: FrameRule | None,
    where: str,
) -> Box:
    """A box in the source's convention -> a checked relative box (clipped into 0..1
    within the schema's 1% tolerance, rounded to 6 decimals: shorter lines, no loss)."""
    if profile == "pixels":
        assert size is not None
        w, h = size
        x1, y1, x2, y2 = numbers
        values = (x1 / w, y1 / h, x2 / w, y2 / h)
    else:
        prof = get_profile(profile)
        frame = None
        if prof.needs_frame and size is not None:
            frame = (frame_rule or FrameRule()).frame(*size)
        values = prof.to_relative(numbers, frame)
    x1, y1, x2, y2 = values
    lo, hi = -BOX_TOLERANCE, 1 + BOX_TOLERANCE
    if not (lo <= x1 < x2 <= hi and lo <= y1 < y2 <= hi):  # the schema's message says why
        x1, y1, x2, y2 = data_box(list(values), where, "answer")
    x1, y1, x2, y2 = clip_box((x1, y1, x2, y2))
    return (round(x1, 6), round(y1, 6), round(x2, 6), round(y2, 6))  # a millionth of a side


def question_reference(question: str, where: str) -> Reference | None:
    """What the question quotes: a box in Qwen2-VL's 0..1000 box tokens (taken to be on
    Image-1, as in MIG-Bench), else a marked referring phrase."""
    boxes = reference_boxes(question)
    if boxes:
        return QuotedBox(image=1, box=data_box(list(boxes[0]), where, "question (quoted box)"))
    found = (
        OBJECT_REF_RE.search(question)
        or _REF_TAG_RE.search(question)
        or _DESCRIBES_RE.search(question)
    )
    text = found.group(1).strip() if found else ""
    return Description(text=text) if text else None


def target_only_sample(
    *,
    sample_id: str,
    task: str,
    images: list[str],
    question: str,
    target_image: int | None,
    box: Box,
    reference: Reference | None,
    sizes: list[list[int]] | None,
    meta: dict[str, Any],
    relations: list[dict[str, Any]] | None = None,
) -> Sample:
    """A sample that annotates only its answer (as the target object of its image)."""
    objects: list[list[dict[str, Any]]] = [[] for _ in images]
    target = None
    if target_image is not None:
        objects[target_image - 1].append({"box": list(box), "category": None, "attributes": {}})
        target = {"image": target_image, "object": 0}
    return Sample(
        id=sample_id,
        task=task,
        images=images,
        question=question,
        target_image=target_image,
        target_box=box,
        objects=objects,
        relations=relations or [],
        reference=reference,
        target=target,
        image_sizes=sizes,
        meta=meta | {"annotations": "target_only"},
    )


class SampleIds:
    """Sample ids from source ids and turn numbers, made unique by the record's position
    where a source repeats an id. An id counts as taken once :meth:`keep` records it (the
    reader keeps only written samples' ids: a turn left out takes none)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, source_id: object, turn: int, position: int) -> str:
        base = str(source_id) if source_id not in (None, "") else f"item{position}"
        sample_id = f"{base}-{turn}"
        return f"{base}@{position}-{turn}" if sample_id in self._seen else sample_id

    def keep(self, sample_id: str) -> None:
        self._seen.add(sample_id)


def _vlmr1_turn(record: dict[str, Any], where: str) -> Turn:
    """VLM-R1's REC record as one turn (its ``solution`` box as the answer text)."""
    problem, solution = record.get("problem"), record.get("solution")
    if not isinstance(problem, str) or not problem.strip():
        raise _bad(where, "problem", "expected the question text")
    if isinstance(solution, list):
        solution = "[" + ", ".join(str(v) for v in solution) + "]"
    if not isinstance(solution, str):
        raise _bad(where, "solution", f"expected a box, got {solution!r}")
    return Turn(0, problem.replace(PLACEHOLDER, "").strip(), solution)


def _declared_sizes(record: dict[str, Any], n_images: int) -> list[list[int]] | None:
    """``image_sizes`` ([[w, h], …]) or, for one image, ``width``/``height``, when given."""
    sizes = record.get("image_sizes")
    if (
        isinstance(sizes, list)
        and len(sizes) == n_images
        and all(
            isinstance(s, list) and len(s) == 2 and all(isinstance(v, int) and v > 0 for v in s)
            for s in sizes
        )
    ):
        return [list(s) for s in sizes]
    w, h = record.get("width"), record.get("height")
    if n_images == 1 and isinstance(w, int) and isinstance(h, int) and w > 0 and h > 0:
        return [[w, h]]
    return None


def read_conversations(
    path: str | Path,
    *,
    profile: str,
    images: ImageFiles,
    tally: Tally,
    task: str = "grounding",
    frame_rule: FrameRule | None = None,
    record_sizes: bool = False,
    ids: SampleIds | None = None,
) -> Iterator[Sample]:
    """Samples from a LLaVA / VLM-R1 file, one per usable question/answer turn.

    ``profile`` is the source's box convention (:data:`SOURCE_PROFILES`); ``frame_rule``
    the source processor's resize rule for ``qwen2.5-vl`` (default: Qwen2.5-VL's caps).
    Image sizes come from the record when it declares them, else from the file headers
    when the profile needs them or ``record_sizes`` asks; either way they are kept in
    ``image_sizes``.
    """
    if profile not in SOURCE_PROFILES:
        known = ", ".join(SOURCE_PROFILES)
        raise DataError(f"unknown source profile {profile!r}; known: {known}")
    needs_size = profile == "pixels" or get_profile(profile).needs_frame
    record_sizes = record_sizes or needs_size  # read anyway: keep them for exports
    source = Path(path).name

    def open_record(where: str, record: dict[str, Any]) -> tuple[str, list[Turn], tuple]:
        here = source_where(where, record)
        key = "image" if "image" in record else "images"
        paths = record_images(record, here, key)
        if "problem" in record and "conversations" not in record:
            turns = [_vlmr1_turn(record, here)]
        else:
            turns = conversation_turns(record, here, len(paths))
        sizes = _declared_sizes(record, len(paths))
        read = images.record(paths, here, key, sizes=record_sizes and sizes is None)
        return here, turns, (record, here, key, paths, sizes or read)

    def turn_sample(opened: tuple, turn: Turn, where: str, sample_id: str) -> Sample:
        record, here, key, paths, sizes = opened
        named, numbers = answer_numbers(turn.answer, where)
        target = target_image(named, turn.question, len(paths), where)
        size = None
        if needs_size:
            k = target - 1
            size = (
                tuple(sizes[k]) if sizes else images.size(paths[k], f"{here}: field '{key}[{k}]'")
            )
        return target_only_sample(
            sample_id=sample_id,
            task=task,
            images=list(paths),
            question=turn.question,
            target_image=target,
            box=relative_box(numbers, profile, size, frame_rule, where),  # type: ignore[arg-type]
            reference=question_reference(turn.question, where),
            sizes=sizes,
            meta={
                "source": source,
                "record": record.get("id"),
                "turn": turn.number,
                "profile": profile,
            },
        )

    return read_turns(path, tally, open_record, turn_sample, ids)


def read_turns(
    path: str | Path,
    tally: Tally,
    open_record: Callable[[str, dict[str, Any]], tuple[str, list[Turn], Any]],
    turn_sample: Callable[[Any, Turn, str, str], Sample],
    ids: SampleIds | None = None,
) -> Iterator[Sample]:
    """The loop the conversation readers share. ``open_record(where, record)`` checks one
    record and returns where it is (with its id), its turns and what they need;
    ``turn_sample(opened, turn, where, sample_id)`` makes one turn's sample. A bad record
    or turn is raised, or under ``tally.skip_bad`` counted and logged; a turn left out by
    design (:class:`LeftOut`) is counted by its reason. Sample ids come from ``ids`` (one
    per reader unless shared across files); only a written sample's id is kept, so a
    left-out turn does not rename later ones."""
    ids = ids or SampleIds()
    for position, (where, record) in enumerate(iter_records(path)):
        tally.records += 1
        try:
            here, turns, opened = open_record(where, json_object(where, record))
        except DataError as exc:
            tally.items += 1
            tally.bad(exc, where)
            continue
        for turn in turns:
            tally.items += 1
            turn_where = f"{here}: turn {turn.number}"
            sample_id = ids(record.get("id"), turn.number, position)
            try:
                sample = turn_sample(opened, turn, turn_where, sample_id)
                sample = check_sample(sample, turn_where, paths=False)
            except LeftOut as skip:
                tally.leave_out(turn_where, skip.reason, skip.detail)
                continue
            except DataError as exc:
                tally.bad(exc, turn_where)
                continue
            ids.keep(sample.id)
            tally.written += 1
            yield sample


def target_image(
    named: int | None,
    question: str,
    n_images: int,
    where: str,
    unnamed: str = "neither the answer nor the question names one",
) -> int:
    """The image the answer names, else the only one, else the last the question names;
    LeftOut with the detail ``unnamed`` when none is."""
    if named is not None:
        if named > n_images:
            raise _bad(where, "answer", f"names image {named} of {n_images}")
        return named
    if n_images == 1:
        return 1
    target = parse_image_reference(question)
    if target is None or not 1 <= target <= n_images:
        raise LeftOut("no target image", unnamed)
    return target


def _read_llava(args: Namespace, tally: Tally) -> Iterator[Sample]:
    ids, rule = SampleIds(), FrameRule(28, args.min_pixels, args.max_pixels)
    for path, files in input_files(args):
        yield from read_conversations(
            path,
            profile=args.profile,
            images=files,
            tally=tally,
            task=args.task,
            frame_rule=rule,
            record_sizes=args.image_sizes,
            ids=ids,
        )


#: ``mirg convert --format llava``.
READER = Reader("llava", _read_llava, needs=("input", "profile"), unit="turns")
