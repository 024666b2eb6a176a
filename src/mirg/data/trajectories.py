"""Reasoning trajectories from object-level and image-level annotations (docs/trajectories.md).

A trajectory names what the question refers to (a description, a marked box, the object
all images share, a difference, a region), walks the images and their candidate objects
with boxes in the target model's coordinate profile, rules each candidate in or out by
the attribute or relation that decides it, and concludes with one image and one box:

    <think>…</think><answer>{"image": K, "bbox_2d": [x1, y1, x2, y2]}</answer>

Templates are deterministic; each step has several phrasings, chosen by a generator
seeded with (seed, sample id), so a dataset gets varied text and the same text every run.
Where a sample carries no object annotations (only the target, as in MIG-Bench), the
trajectory falls back to image-level reasoning: captions, relations, the reference box
of the question, then the target. Where it carries both, captions people wrote
(``meta.caption_source``, e.g. COCO's) open the reasoning as image-level facts before the
object-level search; a referring expression (RefCOCO) rules images out by its category
and names the annotated object as the one it fits.
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from typing import Any

from mirg.core.profiles import CoordinateProfile, get_profile
from mirg.data.references import (
    CommonObject,
    Description,
    Difference,
    Expression,
    MarkedObject,
    NamedObject,
    QuotedBox,
    Region,
    TwoHop,
)
from mirg.data.schema import DataError, Sample
from mirg.errors import MirgError

#: At most this many candidates are walked per image, so text stays bounded.
MAX_CANDIDATES = 8
#: full: every step; brief: reference, scope and conclusion; minimal: the conclusion only
#: (the fewest tokens, for tiny models and short completion budgets); lookup: where the
#: model must choose the image, a table of what tells the candidates apart, each value
#: followed by its image number, then the question's value with its number, so that the
#: choice is a lookup in the model's own reasoning (elsewhere as minimal; docs/demo.md).
DETAILS = ("full", "brief", "minimal", "lookup")

_INTRO_DESCRIPTION = (
    "The question asks for {desc}.",
    "I need to find {desc}.",
    "The target is described as {desc}.",
)
_SCOPE_ALL = (
    "No image is named, so I check all {n} images.",
    "The question does not say which image, so I look at each of the {n}.",
    "Any of the {n} images may hold it.",
)
_SCOPE_ONE = (
    "The answer is in Image-{k}.",
    "I search Image-{k}.",
    "Image-{k} is where to look.",
)
_INTRO_MARKED = (
    "The red box in Image-1 marks {a} at {box}.",
    "Image-1 marks {a} with a red box at {box}.",
    "The reference, boxed in red in Image-1, is {a} at {box}.",
)
_INTRO_TWO_HOP = (
    "First hop: the red box in Image-1 marks {a} at {box}, so I need something {want} "
    "that is not {avoid}.",
    "The marked object in Image-1 is {a} at {box}; the target shares {want} but is not {avoid}.",
    "Image-1 marks {a} at {box}. Second hop: find {want}, but not {avoid}.",
)
_INTRO_COMMON = (
    "I look for the object every image shares.",
    "The target is the object common to all images.",
    "First I find which object appears in every image.",
)
_HOLDS = (
    "Image-{i} holds {items}.",
    "Image-{i} shows {items}.",
    "In Image-{i}: {items}.",
)
_COMMON_FOUND = (
    "Only {a} is in every image; in Image-{k} it is at {box}.",
    "{a} appears in all of them, and in Image-{k} it sits at {box}.",
    "The shared object is {a}, at {box} in Image-{k}.",
)
_INTRO_DIFF = (
    "Image-1 and Image-2 show the same scene; I compare them object by object.",
    "The two images are aligned, so I compare each object.",
    "I go through the objects of both images to find the change.",
)
_SAME_IN_BOTH = (
    "{a} at {box} is in both.",
    "{a} at {box} is unchanged.",
    "{a} at {box} appears in both images.",
)
_REMOVED = (
    "{a} at {box} in Image-1 is missing from Image-2.",
    "Image-2 lacks {a} that Image-1 has at {box}.",
    "{a} at {box} disappears in Image-2.",
)
_ADDED = (
    "Image-2 has a new object, {a} at {box}.",
    "{a} at {box} appears only in Image-2.",
    "Image-2 adds {a} at {box}.",
)
_CHANGED = (
    "At {box}, {a} in Image-1 became {b} in Image-2.",
    "The object at {box} changed from {a} to {b}.",
    "{a} at {box} is {b} in Image-2.",
)
_INTRO_REGION = (
    "Image-{j} is a region cut from Image-{s}; I find where its content lies in Image-{s}.",
    "I match what Image-{j} shows to Image-{s}.",
    "Image-{j} is a crop of Image-{s}, so I look for its objects there.",
)
_REGION_OBJECT = (
    "Image-{j} shows {a}, which Image-{s} has at {box}.",
    "{a} in Image-{j} is at {box} in Image-{s}.",
    "{a} of Image-{j} sits at {box} in Image-{s}.",
)
_FITS = (
    "Image-{i} has {a} at {box}: it fits.",
    "In Image-{i}, {a} at {box} matches.",
    "Image-{i}: {a} at {box}, a match.",
)
_MISMATCH = (
    "Image-{i} has {a} at {box}, but it is {have}, not {want}.",
    "In Image-{i}, {a} at {box} is {have}, not {want}; ruled out.",
    "Image-{i}: {a} at {box} is ruled out, it is {have}.",
)
_SAME_AS_REFERENCE = (
    "Image-{i} has {a} at {box}, but it is {avoid} like the reference; ruled out.",
    "In Image-{i}, {a} at {box} is {avoid} too, so it does not count.",
    "Image-{i}: {a} at {box} is ruled out, it is {avoid}.",
)
_NO_CANDIDATES = (
    "Image-{i} has no candidates.",
    "Nothing in Image-{i} qualifies.",
    "Image-{i} holds nothing relevant.",
)
_NAMED = (
    "Image-{k}: {a} at {box}.",
    "Image-{k} has {a} at {box}.",
    "In Image-{k} there is {a} at {box}.",
)
_CONCLUDE = (
    "So the target is in Image-{k} at {box}.",
    "The answer is Image-{k}, box {box}.",
    "Therefore it is in Image-{k} at {box}.",
)
_CONCLUDE_ALIGNED = (
    "The images are aligned, so the difference is at {box}.",
    "So the difference is at {box}, in both images.",
    "The changed area is {box}.",
)
_INTRO_EXPRESSION = (
    'The question asks for "{text}", which describes {a}.',
    'I need to find "{text}": {a}.',
    'The target is "{text}", {a}.',
)
_NO_CATEGORY = (
    "Image-{i} has no {c}.",
    "There is no {c} in Image-{i}.",
    "Image-{i} holds no {c}, so it is ruled out.",
)
_EXPRESSION_FITS = (
    "Image-{i} has {a} at {box}: the expression fits it.",
    'In Image-{i}, {a} at {box} matches "{text}".',
    "Image-{i}: {a} at {box} is the one described.",
)
_EXPRESSION_OTHER = (
    "Image-{i} has {a} at {box}, but the expression does not fit it.",
    "In Image-{i}, {a} at {box} is another {c}, not the one described.",
    'Image-{i}: {a} at {box} does not match "{text}".',
)
_CAPTION = (
    "Image-{i} shows {caption}.",
    "Image-{i}: {caption}.",
    "Image-{i} pictures {caption}.",
)
_IMAGE_LEVEL = (
    "The question concerns {n} images.",
    "There are {n} images to consider.",
    "I am given {n} images.",
)
_REFERENCE_BOX = (
    "The reference is marked in Image-1 at {box}.",
    "Image-1 marks the reference at {box}.",
    "The red box in Image-1 is at {box}.",
)


def _a(words: str) -> str:
    return ("an " if words[:1] in "aeiou" else "a ") + words


def _words(obj: dict[str, Any]) -> str:
    """'small blue triangle': size, colour, then the category."""
    attrs = obj.get("attributes") or {}
    parts = [str(attrs[k]) for k in ("size", "colour") if k in attrs]
    parts.append(str(obj.get("category") or "object"))
    return " ".join(parts)


def _feature(obj: dict[str, Any], key: str) -> object:
    if key == "category":
        return obj.get("category")
    return (obj.get("attributes") or {}).get(key)


def _value_words(key: str, value: object) -> str:
    """How a feature value reads after "it is": 'a circle', 'blue', 'small'."""
    return _a(str(value)) if key == "category" else str(value)


class _Writer:
    """Accumulates sentences; picks phrasings from the sample's own generator."""

    def __init__(
        self, sample: Sample, profile: CoordinateProfile, frames: list | None, seed: int
    ) -> None:
        self.sample = sample
        self.profile = profile
        self.frames = frames
        self.rng = random.Random(zlib.crc32(f"{seed}:{sample.id}".encode()))
        self.parts: list[str] = []

    def box(self, box: Sequence[float], image: int) -> str:
        frame = self.frames[image - 1] if self.frames is not None else None
        return self.profile.render_box(box, frame)

    def say(self, options: Sequence[str], **values: object) -> None:
        text = self.rng.choice(options).format(**values)
        self.parts.append(text[:1].upper() + text[1:])

    def walk(
        self,
        images: Sequence[int],
        match: dict[str, object],
        differ: dict[str, object],
    ) -> None:
        """Each candidate of each image, ruled in or out by the first deciding feature."""
        for i in images:
            candidates = self.sample.objects[i - 1][:MAX_CANDIDATES]
            if not candidates:
                self.say(_NO_CANDIDATES, i=i)
                continue
            for obj in candidates:
                a, box = _a(_words(obj)), self.box(obj["box"], i)
                failed = next((k for k, v in match.items() if _feature(obj, k) != v), None)
                if failed is not None:
                    have = _feature(obj, failed)
                    have = _value_words(failed, have if have is not None else "unknown")
                    want = _value_words(failed, match[failed])
                    self.say(_MISMATCH, i=i, a=a, box=box, have=have, want=want)
                    continue
                same = next((k for k, v in differ.items() if _feature(obj, k) == v), None)
                if same is not None:
                    avoid = _value_words(same, differ[same])
                    self.say(_SAME_AS_REFERENCE, i=i, a=a, box=box, avoid=avoid)
                    continue
                self.say(_FITS, i=i, a=a, box=box)


def _caption_text(caption: str) -> str:
    """A caption as a clause: no final period, "A man…" -> "a man…" (not "TV…")."""
    text = caption.strip().rstrip(".").strip()
    if text[:1].isupper() and not text[1:2].isupper():
        text = text[:1].lower() + text[1:]
    return text


def _walk_expression(w: _Writer, ref: Expression, scope: Sequence[int]) -> None:
    """Per image: no object of the category rules it out; else each object of the
    category, the one the annotation picks fitting the expression."""
    s = w.sample
    target = s.target
    c = ref.category
    for i in scope:
        same = [j for j, o in enumerate(s.objects[i - 1]) if o.get("category") == c]
        if not same:
            w.say(_NO_CATEGORY, i=i, c=c)
            continue
        shown = same[:MAX_CANDIDATES]
        if target is not None and target["image"] == i and target["object"] not in shown:
            shown[-1] = target["object"]
        for j in shown:
            obj = s.objects[i - 1][j]
            a, box = _a(_words(obj)), w.box(obj["box"], i)
            hit = target is not None and (target["image"], target["object"]) == (i, j)
            phrasing = _EXPRESSION_FITS if hit else _EXPRESSION_OTHER
            w.say(phrasing, i=i, a=a, box=box, c=c, text=ref.text)


def _deciding_keys(
    sample: Sample, target: dict[str, Any], match: dict[str, object], scope: Sequence[int]
) -> tuple[str, ...] | None:
    """The fewest features whose values only the target holds among the candidates of
    ``scope`` (what tells the images apart): one ``match`` feature if one suffices, else
    all of them, else every feature; None when nothing does."""
    others = [o for i in scope for o in sample.objects[i - 1][:MAX_CANDIDATES] if o is not target]
    every = ("size", "colour", "category")
    for keys in (*((k,) for k in (*match, *every)), tuple(match), every):
        value = [_feature(target, k) for k in keys]
        if (
            keys
            and None not in value
            and all([_feature(o, k) for k in keys] != value for o in others)
        ):
            return keys
    return None


def _key_words(obj: dict[str, Any], keys: tuple[str, ...]) -> str | None:
    """'green', 'green cross': the object's values of ``keys``, in the order of _words."""
    rank = {"size": 0, "colour": 1, "category": 3}  # any other feature in between
    values = [_feature(obj, k) for k in sorted(keys, key=lambda k: rank.get(k, 2))]
    return None if None in values else " ".join(str(v) for v in values)


def _lookup_table(w: _Writer, match: dict[str, object], scope: Sequence[int]) -> None:
    """'Image-1: green 1. Image-2: yellow 2. Asked: green 1.': each candidate's deciding
    value right before its image number, so finding the question's value in the table and
    copying the number after it is the whole decision (measured in docs/demo.md)."""
    s = w.sample
    target = s.target_object()
    keys = None if target is None else _deciding_keys(s, target, match, scope)
    if keys is None:
        return
    for i in scope:
        values = [_key_words(o, keys) for o in s.objects[i - 1][:MAX_CANDIDATES]]
        shown = ", ".join(f"{v} {i}" for v in values if v is not None)
        w.parts.append(f"Image-{i}: {shown or 'none'}.")
    w.parts.append(f"Asked: {_key_words(target, keys)} {s.answer_image()}.")


def _marked_object(sample: Sample, ref: MarkedObject | TwoHop) -> dict[str, Any] | None:
    if ref.object is None or not 1 <= ref.image <= len(sample.objects):
        return None
    annotated = sample.objects[ref.image - 1]
    return annotated[ref.object] if 0 <= ref.object < len(annotated) else None


def _reasoning(w: _Writer, detail: str) -> None:
    """Write the steps before the conclusion, by what the question refers to."""
    s = w.sample
    ref = s.reference
    k = s.answer_image()
    full = detail == "full"
    # The question leaves the image to choose: the candidates of every image are in scope.
    choosing = s.n_images > 1 and s.target_image is not None and "Image-" not in s.question
    scope: Sequence[int] = range(1, s.n_images + 1) if choosing else [k]
    if detail == "lookup":
        if isinstance(ref, Description) and choosing and any(s.objects):
            _lookup_table(w, ref.match or {}, scope)
        return
    # Walking candidates claims the annotations list every object; samples that annotate
    # only the target (MIG-Bench) get image-level reasoning instead.
    if not any(s.objects) or s.meta.get("annotations") == "target_only":
        _image_level(w)
        return
    # Image-level facts before the object-level search, from captions people wrote
    # (synthetic captions only repeat the objects).
    if full and s.meta.get("caption_source"):
        for i, caption in enumerate(s.captions, 1):
            if caption.strip():
                w.say(_CAPTION, i=i, caption=_caption_text(caption))
    if isinstance(ref, Expression):
        w.say(_INTRO_EXPRESSION, text=ref.text, a=_a(ref.category))
        if choosing:
            w.say(_SCOPE_ALL, n=s.n_images)
        if full:
            _walk_expression(w, ref, scope)
    elif isinstance(ref, Description):
        w.say(_INTRO_DESCRIPTION, desc=ref.text or "the target")
        if choosing:
            w.say(_SCOPE_ALL, n=s.n_images)
        if full:
            w.walk(scope, ref.match or {}, {})
    elif isinstance(ref, (MarkedObject, TwoHop)):
        marked = _marked_object(s, ref)
        box = w.box(ref.box, ref.image) if ref.box is not None else "its box"
        a = _a(_words(marked)) if marked else "an object"
        differ = ref.differ if isinstance(ref, TwoHop) else {}
        if isinstance(ref, MarkedObject):
            w.say(_INTRO_MARKED, a=a, box=box)
        else:
            want = " and ".join(_value_words(key, v) for key, v in ref.match.items()) or "the same"
            avoid = " or ".join(_value_words(key, v) for key, v in differ.items()) or "the same"
            w.say(_INTRO_TWO_HOP, a=a, box=box, want=want, avoid=avoid)
        w.say(_SCOPE_ONE, k=k)
        if full:
            w.walk([k], ref.match, differ)
    elif isinstance(ref, NamedObject):
        target = s.target_object()
        a = _a(_words(target)) if target else "an object"
        w.say(_NAMED, k=k, a=a, box=w.box(s.target_box, k))
    elif isinstance(ref, CommonObject):
        w.say(_INTRO_COMMON)
        if full:
            for i, objs in enumerate(s.objects, 1):
                names = [_a(_words(o)) for o in objs[:MAX_CANDIDATES]]
                items = ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else ""
                w.say(_HOLDS, i=i, items=items or (names[0] if names else "nothing"))
        # The shared identity (shape and colour), not this image's size of it.
        target = s.target_object()
        if ref.match:
            a = _a(_words({"category": ref.match.get("category"), "attributes": ref.match}))
        else:
            a = _a(_words(target)) if target else "the shared object"
        w.say(_COMMON_FOUND, a=a, k=k, box=w.box(s.target_box, k))
    elif isinstance(ref, Difference) and s.n_images == 2:
        w.say(_INTRO_DIFF)
        if full:
            _walk_difference(w)
    elif isinstance(ref, Region):
        w.say(_INTRO_REGION, j=ref.image, s=ref.source)
        if full:
            source = s.objects[ref.source - 1]
            by_id = {o.get("id"): o for o in source if o.get("id") is not None}
            for obj in s.objects[ref.image - 1][:MAX_CANDIDATES]:
                there = by_id.get(obj.get("id"))
                if there is not None:
                    box = w.box(there["box"], ref.source)
                    w.say(_REGION_OBJECT, j=ref.image, s=ref.source, a=_a(_words(there)), box=box)
    else:
        _image_level(w)


def _walk_difference(w: _Writer) -> None:
    first, second = w.sample.objects[0], w.sample.objects[1]
    later = {o.get("id"): o for o in second if o.get("id") is not None}
    seen = set()
    for obj in first[:MAX_CANDIDATES]:
        a, box = _a(_words(obj)), w.box(obj["box"], 1)
        other = later.get(obj.get("id"))
        if other is None:
            w.say(_REMOVED, a=a, box=box)
            continue
        seen.add(obj.get("id"))
        if _words(other) == _words(obj):
            w.say(_SAME_IN_BOTH, a=a, box=box)
        else:
            w.say(_CHANGED, a=a, b=_a(_words(other)), box=box)
    for obj in second[:MAX_CANDIDATES]:
        if obj.get("id") not in seen:
            w.say(_ADDED, a=_a(_words(obj)), box=w.box(obj["box"], 2))


def _image_level(w: _Writer) -> None:
    """Only the target (or nothing) is annotated: reason from the images as wholes."""
    s = w.sample
    w.say(_IMAGE_LEVEL, n=s.n_images)
    for i, caption in enumerate(s.captions, 1):
        if caption:
            w.parts.append(f"Image-{i}: {caption.rstrip('.')}.")
    for relation in s.relations:
        if relation.get("type") == "crop_of":
            w.parts.append(f"Image-{relation['image']} is a region of Image-{relation['source']}.")
        elif relation.get("type") == "same_object" and relation.get("images"):
            names = ", ".join(f"Image-{i}" for i in relation["images"])
            w.parts.append(f"The same object appears in {names}.")
    ref = s.reference
    if isinstance(ref, (Description, Expression)) and ref.text:
        w.say(_INTRO_DESCRIPTION, desc=ref.text)
    if isinstance(ref, (QuotedBox, MarkedObject, TwoHop)) and ref.box is not None:
        w.say(_REFERENCE_BOX, box=w.box(ref.box, ref.image))
    if s.target_image is not None and s.n_images > 1:
        w.say(_SCOPE_ONE, k=s.target_image)


def build_trajectory(
    sample: Sample,
    profile: str | CoordinateProfile,
    *,
    seed: int = 0,
    detail: str = "full",
    frames: list[list[int]] | None = None,
) -> str:
    """The completion for one sample: reasoning then the canonical answer.

    ``frames`` (the ``[w, h]`` each image is shown at, from
    :meth:`mirg.models.loading.FrameRule.frames`) is required by profiles that write
    absolute pixels (qwen2.5-vl); a DataError names the sample when it is missing.
    """
    prof = get_profile(profile)
    if detail not in DETAILS:
        raise MirgError(f"detail must be one of {DETAILS}, got {detail!r}")
    if prof.needs_frame and frames is None:
        raise DataError(
            f"sample {sample.id!r}: field 'image_sizes': profile {prof.name!r} writes absolute "
            "pixels and needs each image's size (open the images or record image_sizes)"
        )
    w = _Writer(sample, prof, frames, seed)
    if detail != "minimal":
        _reasoning(w, detail)
    k = sample.answer_image()
    box = w.box(sample.target_box, k)
    if detail == "lookup" and w.parts:
        w.parts.append(f"So Image-{k} at {box}.")  # one phrasing: the table's own terms
    elif sample.target_image is None and sample.n_images > 1:
        w.say(_CONCLUDE_ALIGNED, box=box)
    else:
        w.say(_CONCLUDE, k=k, box=box)
    frame = frames[k - 1] if frames is not None else None
    answer = prof.render_answer(k, sample.target_box, frame)
    return f"<think>{' '.join(w.parts)}</think><answer>{answer}</answer>"
