"""Parse a model's answer into (image, box), whatever form it was written in.

Reads mirg's canonical ``<think>…</think><answer>{"image": K, "bbox_2d": [...]}</answer>``,
Qwen2.5/3-VL JSON (``{"bbox_2d": [...]}``), Qwen2-VL box tokens
(``<|box_start|>(x1,y1),(x2,y2)<|box_end|>``), Migician-style free text ("It is in the
second image. <|box_start|>…") and image references such as ``Image-2``, ``image 2``,
``2nd image`` or ``the second image``.

The parser never raises and runs in linear time: tags are found with ``str.find`` and
every regular expression has bounded repetition and starts at a literal, so no input can
make it backtrack catastrophically. Numbers come back as written (the model's
coordinates); a :class:`~mirg.core.profiles.CoordinateProfile` turns them into a
relative box.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUM = r"(-?\d{1,12}(?:\.\d{1,12})?)"
_SEP = r"\s{0,8},\s{0,8}"
# One alternation, scanned left to right without overlap, so "<|box_start|>(1,2),(3,4)"
# is one box, not a tokens box plus a pair box.
_BOX_RE = re.compile(
    r"\(\s{0,8}" + _NUM + _SEP + _NUM + r"\s{0,8}\)\s{0,8},?\s{0,8}"  # (x1,y1),(x2,y2)
    r"\(\s{0,8}" + _NUM + _SEP + _NUM + r"\s{0,8}\)"
    r"|[\[(]\s{0,8}" + _NUM + _SEP + _NUM + _SEP + _NUM + _SEP + _NUM + r"\s{0,8}[\])]"
    r"|<box>\s{0,8}"
    + _NUM
    + r"\s{1,8}"
    + _NUM
    + r"\s{1,8}"
    + _NUM
    + r"\s{1,8}"
    + _NUM
    + r"\s{0,8}</box>"
)
_IMAGE_KEY_RE = re.compile(
    r'"image"\s{0,8}:\s{0,8}"?\s{0,8}(?:image[\s_\-]{0,3})?(-?\d{1,6})', re.I
)
ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5,
    "sixth": 6, "seventh": 7, "eighth": 8, "ninth": 9, "tenth": 10,
}  # fmt: skip
_IMAGE_REF_RE = re.compile(
    r"\b(?:image|picture|img)[\s_\-#:]{0,3}(\d{1,3})\b"  # Image-2, image 2, image_2
    r"|\b(\d{1,3})(?:st|nd|rd|th)\s{1,3}(?:image|picture)\b"  # 2nd image, 3th image
    r"|\b(" + "|".join(ORDINALS) + r")\s{1,3}(?:image|picture)\b",  # the second image
    re.I,
)

ANSWER_OPEN, ANSWER_CLOSE = "<answer>", "</answer>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class ParsedAnswer:
    """What a response says. ``box`` holds the model's own numbers (convert with a profile).

    ``error`` is None for a clean, unambiguous answer; otherwise it says why the answer
    cannot be trusted (no box, several boxes, several answer blocks, image out of range…)
    and rewards give it nothing. ``image`` and ``box`` may still be set for inspection.
    """

    image: int | None
    box: tuple[float, float, float, float] | None
    error: str | None = None
    n_answers: int = 0  # <answer> blocks
    n_boxes: int = 0  # distinct boxes in the answer region

    @property
    def ok(self) -> bool:
        return self.error is None


def _blocks(text: str, open_tag: str, close_tag: str) -> list[tuple[int, int]]:
    """(content_start, content_end) of each complete block, in linear time.

    Each closing tag pairs with the nearest opening tag before it, so a stray unclosed
    ``<answer>`` earlier in the text does not swallow the real answer.
    """
    out = []
    pos = 0
    while True:
        end = text.find(close_tag, pos)
        if end < 0:
            return out
        start = text.rfind(open_tag, pos, end)
        if start >= 0:
            out.append((start + len(open_tag), end))
        pos = end + len(close_tag)


def answer_region(text: str) -> tuple[str, int]:
    """The part of a response that holds the answer, and the number of answer blocks.

    The content of the last ``<answer>`` block when there is one; otherwise whatever
    follows ``</think>`` (so reasoning that mentions several images is not read as the
    answer); otherwise the whole text.
    """
    blocks = _blocks(text, ANSWER_OPEN, ANSWER_CLOSE)
    if blocks:
        a, b = blocks[-1]
        return text[a:b], len(blocks)
    think_end = text.rfind(THINK_CLOSE)
    if think_end >= 0:
        return text[think_end + len(THINK_CLOSE) :], 0
    return text, 0


def parse_image_reference(text: str) -> int | None:
    """The image a piece of text names (``Image-2``, ``2nd image``…), the last one if several."""
    found = _image_refs(text)
    return found[-1][1] if found else None


def _image_refs(text: str) -> list[tuple[int, int]]:
    refs = []
    for m in _IMAGE_REF_RE.finditer(text):
        digits = m.group(1) or m.group(2)
        k = int(digits) if digits else ORDINALS[m.group(3).lower()]
        refs.append((m.start(), k))
    return refs


def parse_answer(text: object) -> ParsedAnswer:
    """Parse any response; never raises (non-strings give an error result)."""
    if not isinstance(text, str):
        return ParsedAnswer(None, None, f"response is {type(text).__name__}, not text")
    try:
        return _parse(text)
    except Exception as exc:  # pragma: no cover - defensive: the contract is "never raises"
        return ParsedAnswer(None, None, f"unparseable: {type(exc).__name__}")


def _parse(text: str) -> ParsedAnswer:
    region, n_answers = answer_region(text)
    boxes: list[tuple[int, tuple[float, float, float, float]]] = []
    for m in _BOX_RE.finditer(region):
        nums = tuple(float(g) for g in m.groups() if g is not None)
        if len(nums) == 4:
            boxes.append((m.start(), nums))  # type: ignore[arg-type]
    distinct = list(dict.fromkeys(b for _, b in boxes))
    box = boxes[0][1] if boxes else None
    first_box_at = boxes[0][0] if boxes else len(region)

    image: int | None = None
    key = _IMAGE_KEY_RE.search(region)
    if key:
        image = int(key.group(1))
    else:
        refs = _image_refs(region)
        before = [k for pos, k in refs if pos < first_box_at]
        # Free text: the image named last before the box ("…from Image-1 is in Image-3: …").
        if before:
            image = before[-1]
        elif refs:
            image = refs[0][1]

    error = None
    if n_answers > 1:
        error = f"{n_answers} answer blocks"
    elif box is None:
        error = "no box found"
    elif len(distinct) > 1:
        error = f"{len(distinct)} different boxes"
    elif image is not None and image < 1:
        error = f"image index {image} is not 1-based"
    return ParsedAnswer(image, box, error, n_answers, len(distinct))


def has_canonical_format(text: object) -> bool:
    """Exactly one ``<think>`` block, then exactly one ``<answer>`` block holding one
    clean answer, and nothing but whitespace around them."""
    if not isinstance(text, str):
        return False
    body = text.strip()
    if body.count(THINK_OPEN) != 1 or body.count(THINK_CLOSE) != 1:
        return False
    if body.count(ANSWER_OPEN) != 1 or body.count(ANSWER_CLOSE) != 1:
        return False
    if not body.startswith(THINK_OPEN) or not body.endswith(ANSWER_CLOSE):
        return False
    think_end = body.find(THINK_CLOSE)
    answer_start = body.find(ANSWER_OPEN)
    if answer_start < think_end or body[think_end + len(THINK_CLOSE) : answer_start].strip():
        return False
    return parse_answer(body).ok
