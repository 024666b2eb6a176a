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

import functools
import re
from typing import NamedTuple

_NUM = r"(-?\d{1,12}(?:\.\d{1,12})?)"
_SEP = r"\s{0,8},\s{0,8}"
_PAIR = _NUM + _SEP + _NUM
_POINTS_END = r"\s{0,8}\)\s{0,8},?\s{0,8}\(\s{0,8}" + _PAIR + r"\s{0,8}\)"  # "),(x2,y2)"
_LIST_END = _SEP + _PAIR + r"\s{0,8}[\])]"  # ", x2, y2]"
_TOKENS = r"<box>\s{0,8}" + r"\s{1,8}".join([_NUM] * 4) + r"\s{0,8}</box>"
# One alternation, scanned left to right without overlap, so "<|box_start|>(1,2),(3,4)"
# is one box, not a tokens box plus a pair box. "(x1,y1),(x2,y2)" and "[x1, y1, x2, y2]" or
# "(x1, y1, x2, y2)" share their first two numbers, so each opening bracket is tried once.
_BOX_RE = re.compile(rf"[\[(]\s{{0,8}}{_PAIR}(?:{_POINTS_END}|{_LIST_END})|{_TOKENS}")
# Fast path for the canonical answer body, which is what a trained policy writes.
_CANONICAL_BODY_RE = re.compile(
    r'\s{0,8}\{\s{0,4}"image":\s{0,4}(\d{1,3}),\s{0,4}"bbox_2d":\s{0,4}\[\s{0,4}'
    + _SEP.join([_NUM] * 4)
    + r"\s{0,4}\]\s{0,4}\}\s{0,8}"
)
# The whole canonical completion with tag-free reasoning, answered by one fullmatch.
_CANONICAL_COMPLETION_RE = re.compile(
    r"\s*<think>[^<]*</think>\s*<answer>" + _CANONICAL_BODY_RE.pattern + r"</answer>\s*"
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


class ParsedAnswer(NamedTuple):
    """What a response says. ``box`` holds the model's own numbers (convert with a profile).

    ``error`` is None for a clean, unambiguous answer; otherwise it says why the answer
    cannot be trusted (no box, several boxes, several answer blocks, image out of range…)
    and rewards give it nothing. ``image`` and ``box`` may still be set for inspection.
    """

    image: int | None
    box: tuple[float, float, float, float] | None
    error: str | None = None
    n_answers: int = 0  # <answer> blocks
    n_boxes: int = 0  # distinct boxes in the answer region: 0, 1, or 2 meaning "several"

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


#: Responses up to this length are memoised: TRL calls the object, image and format rewards
#: one after another on the same completions, so each is analysed once. Longer texts are
#: analysed every time, so a few huge adversarial strings cannot pin memory.
_MEMO_MAX_CHARS = 4096


def parse_answer(text: object) -> ParsedAnswer:
    """Parse any response; never raises (non-strings give an error result)."""
    if not isinstance(text, str):
        return ParsedAnswer(None, None, f"response is {type(text).__name__}, not text")
    return (_analyze_memo(text) if len(text) <= _MEMO_MAX_CHARS else _analyze(text))[0]


def has_canonical_format(text: object) -> bool:
    """Exactly one ``<think>`` block, then exactly one ``<answer>`` block holding one
    clean answer, and nothing but whitespace around them."""
    if not isinstance(text, str):
        return False
    if len(text) <= _MEMO_MAX_CHARS:
        return _analyze_memo(text)[1]
    return _canonical_layout(text) and _analyze(text)[1]  # cheap layout check first


def _analyze(text: str) -> tuple[ParsedAnswer, bool]:
    fast = _CANONICAL_COMPLETION_RE.fullmatch(text)
    if fast is not None and int(fast.group(1)) >= 1:
        k, x1, y1, x2, y2 = fast.groups()
        return ParsedAnswer(int(k), (float(x1), float(y1), float(x2), float(y2)), None, 1, 1), True
    try:
        parsed = _parse(text)
    except Exception as exc:  # pragma: no cover - defensive: the contract is "never raises"
        return ParsedAnswer(None, None, f"unparseable: {type(exc).__name__}"), False
    return parsed, parsed.error is None and _canonical_layout(text)


_analyze_memo = functools.lru_cache(maxsize=8192)(_analyze)


def clear_memo() -> None:
    """Forget memoised analyses (benchmarks use it to time cold parsing)."""
    _analyze_memo.cache_clear()


def _parse(text: str) -> ParsedAnswer:
    region, n_answers = answer_region(text)
    fast = _CANONICAL_BODY_RE.fullmatch(region)
    if fast is not None:
        k, *nums = fast.groups()
        image = int(k)
        box = (float(nums[0]), float(nums[1]), float(nums[2]), float(nums[3]))
        error = f"{n_answers} answer blocks" if n_answers > 1 else None
        if error is None and image < 1:
            error = f"image index {image} is not 1-based"
        return ParsedAnswer(image, box, error, n_answers, 1)
    # The first box, and whether any other box differs from it (hedging). Repeats of the
    # same numbers are one box; the scan stops at the first different box.
    box: tuple[float, float, float, float] | None = None
    first_box_at = len(region)
    first_key: tuple[str, ...] = ()
    n_boxes = 0
    for m in _BOX_RE.finditer(region):
        key = tuple(g for g in m.groups() if g is not None)
        if box is None:
            box = (float(key[0]), float(key[1]), float(key[2]), float(key[3]))
            first_box_at, first_key, n_boxes = m.start(), key, 1
        elif key != first_key and tuple(float(v) for v in key) != box:
            n_boxes = 2
            break

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
    elif n_boxes > 1:
        error = "several different boxes"
    elif image is not None and image < 1:
        error = f"image index {image} is not 1-based"
    return ParsedAnswer(image, box, error, n_answers, n_boxes)


def _canonical_layout(text: str) -> bool:
    """One think block, then one answer block, nothing but whitespace around them (the
    answer's content is checked by the parser)."""
    body = text.strip()
    if not body.startswith(THINK_OPEN) or not body.endswith(ANSWER_CLOSE):
        return False
    if any(body.count(tag) != 1 for tag in (THINK_OPEN, THINK_CLOSE, ANSWER_OPEN, ANSWER_CLOSE)):
        return False
    think_end = body.find(THINK_CLOSE)
    answer_start = body.find(ANSWER_OPEN)
    return (
        answer_start > think_end and not body[think_end + len(THINK_CLOSE) : answer_start].strip()
    )
