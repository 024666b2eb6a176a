"""What a question refers to, the input of trajectory construction: one frozen dataclass
per kind, whose JSON object is ``{"kind": …, <fields in order>}`` (None fields left out).

``match``/``differ`` are object features by name (``category``, ``colour``, ``size``…):
the target has every ``match`` value and no ``differ`` value.
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from mirg.core.boxes import Box, validate_box
from mirg.errors import MirgError

Features = dict[str, str]
CHANGES = ("added", "removed", "changed")


@dataclass(frozen=True)
class Description:
    """Words that fit exactly one object ("the small blue triangle")."""

    kind: str = field(default="description", init=False)
    text: str
    match: Features | None = None

    @classmethod
    def of(cls, match: Features) -> Description:
        """The words a question uses: "the", size, colour, then the category."""
        words = [match[k] for k in ("size", "colour") if k in match]
        words.append(match.get("category", "object"))
        return cls(text="the " + " ".join(words), match=match)


@dataclass(frozen=True)
class MarkedObject:
    """An object boxed in red on ``image`` (its annotation ``object``, at ``box``)."""

    kind: str = field(default="marked", init=False)
    image: int
    match: Features
    object: int | None = None
    box: Box | None = None


@dataclass(frozen=True)
class TwoHop:
    """The marked object gives ``match``; the target shares it but not ``differ``."""

    kind: str = field(default="two_hop", init=False)
    image: int
    match: Features
    differ: Features
    object: int | None = None
    box: Box | None = None


@dataclass(frozen=True)
class NamedObject:
    """The one object of the asked image, whose features the answer names."""

    kind: str = field(default="name", init=False)
    match: Features


@dataclass(frozen=True)
class CommonObject:
    """The object (``match``: its identity) every image shows."""

    kind: str = field(default="common", init=False)
    match: Features


@dataclass(frozen=True)
class Difference:
    """The object ``change``d between aligned ``images``."""

    kind: str = field(default="difference", init=False)
    images: list[int]
    change: str


@dataclass(frozen=True)
class Region:
    """Image ``image`` is a crop of image ``source``."""

    kind: str = field(default="region", init=False)
    image: int
    source: int


@dataclass(frozen=True)
class Expression:
    """A referring expression people wrote ("man in red shirt on the left"), picking one
    object of ``category``. Free text, no structured features: the annotation says which
    object it picks, not which words decide (RefCOCO/+/g)."""

    kind: str = field(default="expression", init=False)
    text: str
    category: str


@dataclass(frozen=True)
class QuotedBox:
    """A box the question quotes on ``image`` (MIG-Bench's reference boxes)."""

    kind: str = field(default="box", init=False)
    image: int
    box: Box


Reference = (
    Description
    | MarkedObject
    | TwoHop
    | NamedObject
    | CommonObject
    | Difference
    | Region
    | QuotedBox
    | Expression
)
KINDS: dict[str, type[Reference]] = {
    cls.__dataclass_fields__["kind"].default: cls for cls in Reference.__args__
}


def reference_to_json(reference: Reference) -> dict[str, Any]:
    values = {f.name: getattr(reference, f.name) for f in fields(reference)}
    return {k: list(v) if k == "box" else v for k, v in values.items() if v is not None}


def _is_image(value: object, n_images: int) -> bool:
    return type(value) is int and 1 <= value <= n_images


def _is_features(value: object) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    )


#: Per field: (is the value valid, given the number of images; what it should be).
_CHECKS = {
    "text": (lambda v, n: isinstance(v, str), "text"),
    "category": (lambda v, n: isinstance(v, str) and bool(v), "a category name"),
    "match": (lambda v, n: _is_features(v), "an object of feature names to words"),
    "differ": (lambda v, n: _is_features(v), "an object of feature names to words"),
    "image": (_is_image, "an image number in 1..{n}"),
    "source": (_is_image, "an image number in 1..{n}"),
    "images": (
        lambda v, n: isinstance(v, list) and all(_is_image(i, n) for i in v),
        "a list of image numbers in 1..{n}",
    ),
    "object": (lambda v, n: type(v) is int and v >= 0, "an annotation index (0-based)"),
    "change": (lambda v, n: v in CHANGES, f"one of {', '.join(CHANGES)}"),
}


def reference_from_json(raw: object, n_images: int) -> Reference:
    """The typed reference of a JSON object, or MirgError naming the field and why."""
    kind = raw.get("kind") if isinstance(raw, dict) else None
    if not isinstance(raw, dict) or kind not in KINDS:
        known = ", ".join(KINDS)
        raise MirgError(f"field 'reference.kind': unknown kind {kind!r}; known: {known}")
    given = [f for f in fields(KINDS[kind]) if f.init]
    unknown = sorted(set(raw) - {f.name for f in given} - {"kind"})
    missing = [f.name for f in given if f.name not in raw and f.default is MISSING]
    if missing or unknown:
        problem = f"needs {', '.join(missing)}" if missing else f"has no field {', '.join(unknown)}"
        raise MirgError(f"field 'reference': a {kind!r} reference {problem}")
    values = {name: raw[name] for name in (f.name for f in given) if name in raw}
    for name, value in values.items():
        if name == "box":
            values[name] = validate_box(value, where="field 'reference.box'")
        elif not _CHECKS[name][0](value, n_images):
            what = _CHECKS[name][1].format(n=n_images)
            raise MirgError(f"field 'reference.{name}': expected {what}, got {value!r}")
    return KINDS[kind](**values)
