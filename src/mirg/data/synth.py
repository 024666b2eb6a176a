"""The synthetic multi-image world: procedural grounding tasks that need nothing downloaded.

Each image is a background (flat, gradient or noise) with coloured shapes, every object
annotated. Task families mirror MIG-Bench, plus single-image localisation:

* ``single_object``: one image; "Locate the small red circle in Image-1."
* ``common_object``: one object (shape and colour) appears in every image, nothing else
  does; locate it in Image-k.
* ``diff``: two aligned images, one object added, removed or recoloured; locate it
  (no target image: the images are aligned, any image counts).
* ``visual_reference``: an object marked by a red box in Image-1; find the same object
  (moved, maybe rescaled) in Image-k, among look-alikes sharing its shape or colour.
* ``region``: Image-1 is a source, the other images are crops of it; locate crop j in
  Image-1.
* ``group_grounding``: a description ("the small blue triangle") that fits exactly one
  object in all the images; the question names no image, so choosing it is the task.
* ``reasoning`` (two hops): "the object in Image-k with the colour of the object marked
  in Image-1 but another shape".
* ``referring``: 1..N images, one described object in the image the question names
  ("Locate the small red circle in Image-3."); the other images may hold the same kind of
  object, so the image name decides. Multi-image localisation with the image named.
* ``name_object``: one object per image; "Name the object in Image-k and locate it." The
  reasoning names it (colour, shape, size), so nothing in the question can be copied: the
  grounded naming a pretrained VLM brings (``benchmarks/bench_binding.py`` teaches it to a
  tiny model before the binding task).

Everything is deterministic given the seed: sample ``i`` of a split draws from its own
generator seeded by (seed, split, i), so the same seed writes the same bytes and one
sample never depends on how many others were made. Small models on a CPU can learn it
(issue 6): small images, objects optionally aligned to the vision tower's merged-patch
cells, a fixed-length question layout, presets from single-image localisation upwards.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from mirg.data.schema import Sample

SHAPES: tuple[str, ...] = ("square", "circle", "triangle", "diamond", "cross")
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 38, 38),
    "green": (30, 170, 60),
    "blue": (40, 90, 230),
    "yellow": (240, 210, 30),
    "purple": (150, 60, 205),
    "orange": (245, 135, 20),
}
SIZES: tuple[str, ...] = ("small", "large")
BACKGROUNDS: tuple[str, ...] = ("flat", "gradient", "noise")
MARKER_RGB = (255, 0, 0)
FAMILIES: tuple[str, ...] = (
    "common_object",
    "diff",
    "visual_reference",
    "region",
    "group_grounding",
    "reasoning",
    "single_object",
    "name_object",
)
#: Families a world may use; ``referring`` is a pre-training family (the demo's base), not
#: part of the MIG-Bench-like default mix, so default datasets keep their bytes.
KNOWN_FAMILIES: tuple[str, ...] = (*FAMILIES, "referring")
#: Words for ``filler_words``: unrelated text between the images and the question.
FILLER_WORDS: tuple[str, ...] = tuple(
    "please look at these pictures carefully and then answer the question below here are "
    "some images for you to study take your time note that each one has a label read every "
    "part before you reply we show you a few scenes now consider them all".split()
)
SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True)
class WorldConfig:
    """The knobs of the world. ``cell`` > 0 aligns objects to a grid of that many pixels
    (28 for Qwen2/2.5-VL merged patches, 32 for Qwen3-VL): a small object fills one cell
    less a margin, a large one 2x2 cells. ``cell`` = 0 places objects freely with sides
    from ``min_object`` to ``max_object`` pixels."""

    families: tuple[str, ...] = FAMILIES
    weights: tuple[float, ...] | None = None  # family mix; equal when None
    image_size: int = 112
    images: tuple[int, int] = (2, 4)  # images per sample, min and max (1..6)
    distractors: tuple[int, int] = (1, 3)  # extra objects per image, min and max
    cell: int = 28
    min_object: int = 14
    max_object: int = 40
    sizes: tuple[str, ...] = SIZES
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = tuple(COLOURS)
    backgrounds: tuple[str, ...] = BACKGROUNDS
    occlusion: float = 0.0  # chance that a distractor partly covers another (free placement)
    look_alike_changes: tuple[str, ...] = ("colour", "shape")  # what a look-alike may change
    fixed_layout: bool = False  # one question template per family, descriptions always full
    # unrelated words put before the question (min, max): the distance between the images
    # and the question varies, so a model cannot read positions off that distance
    filler_words: tuple[int, int] = (0, 0)
    # group_grounding: chance that a look-alike in another image sits exactly where the
    # target sits, so a box on the wrong image still overlaps the target box fully
    same_place_look_alike: float = 0.0

    def validate(self) -> WorldConfig:
        """Raise ValueError naming the knob that cannot work."""
        unknown = [f for f in self.families if f not in KNOWN_FAMILIES]
        if not self.families or unknown:
            raise ValueError(f"unknown families {unknown}; known: {', '.join(KNOWN_FAMILIES)}")
        if self.weights is not None and (
            len(self.weights) != len(self.families) or any(w < 0 for w in self.weights)
        ):
            raise ValueError("weights: one non-negative weight per family")
        lo, hi = self.images
        if not 1 <= lo <= hi <= 6:
            raise ValueError(f"images: need 1 <= min <= max <= 6, got {self.images}")
        if not 0 <= self.distractors[0] <= self.distractors[1]:
            raise ValueError(f"distractors: need 0 <= min <= max, got {self.distractors}")
        if self.image_size < 32:
            raise ValueError(f"image_size {self.image_size} is below 32 pixels")
        if self.cell:
            if self.image_size % self.cell or self.image_size // self.cell < 2:
                raise ValueError(
                    f"cell {self.cell} must divide image_size {self.image_size} at least twice"
                )
            if "large" in self.sizes and self.image_size // self.cell < 3:
                raise ValueError("large objects (2x2 cells) need a grid of at least 3x3 cells")
        elif not 8 <= self.min_object < self.max_object <= self.image_size // 2:
            raise ValueError(
                f"need 8 <= min_object < max_object <= image_size/2, got "
                f"{self.min_object}, {self.max_object}"
            )
        for name, values, known in (
            ("sizes", self.sizes, SIZES),
            ("shapes", self.shapes, SHAPES),
            ("colours", self.colours, tuple(COLOURS)),
            ("backgrounds", self.backgrounds, BACKGROUNDS),
        ):
            if not values or any(v not in known for v in values):
                raise ValueError(f"{name}: choose from {', '.join(known)}, got {values}")
        if len(self.shapes) < 2 or len(self.colours) < 2:
            raise ValueError("need at least two shapes and two colours for look-alikes")
        if not self.look_alike_changes or any(
            a not in ("colour", "shape") for a in self.look_alike_changes
        ):
            raise ValueError(
                f"look_alike_changes: choose from colour, shape, got {self.look_alike_changes}"
            )
        if not 0.0 <= self.occlusion <= 1.0:
            raise ValueError(f"occlusion is a probability, got {self.occlusion}")
        if not 0.0 <= self.same_place_look_alike <= 1.0:
            raise ValueError(
                f"same_place_look_alike is a probability, got {self.same_place_look_alike}"
            )
        if not 0 <= self.filler_words[0] <= self.filler_words[1]:
            raise ValueError(f"filler_words: need 0 <= min <= max, got {self.filler_words}")
        return self


#: Named presets. ``single`` and ``starter`` follow the setups that tiny Qwen3-VL models
#: were measured to learn on CPU (issue 6): one 84-px image with one object on a 3x3 grid
#: of 28-px cells; ``starter`` is the easiest cross-image variant (two such images, the
#: same object in both, the question names the image); ``binding`` asks which image holds
#: the described object (one object per image, the other image holds a look-alike).
PRESETS: dict[str, WorldConfig] = {
    "single": WorldConfig(
        families=("single_object",),
        image_size=84,
        images=(1, 1),
        distractors=(0, 0),
        sizes=("small",),
        backgrounds=("flat",),
        fixed_layout=True,
    ),
    "starter": WorldConfig(
        families=("common_object",),
        image_size=84,
        images=(2, 2),
        distractors=(0, 0),
        sizes=("small",),
        backgrounds=("flat",),
        fixed_layout=True,
    ),
    "binding": WorldConfig(
        families=("group_grounding",),
        image_size=84,
        images=(2, 2),
        distractors=(0, 0),
        sizes=("small",),
        backgrounds=("flat",),
        fixed_layout=True,
    ),
    "default": WorldConfig(),
    "hard": WorldConfig(
        image_size=224,
        images=(2, 6),
        distractors=(2, 5),
        cell=0,
        min_object=16,
        max_object=64,
        occlusion=0.3,
    ),
}


class _NoRoom(Exception):
    """A required object did not fit; the sample is drawn again."""


@dataclass
class Obj:
    shape: str
    colour: str
    size: str
    box: tuple[int, int, int, int]  # pixels, x2/y2 exclusive
    uid: str
    marked: bool = False
    protected: bool = False  # nothing may be drawn over it (targets, references)
    occluded: bool = False
    truncated: bool = False

    @property
    def kind(self) -> tuple[str, str]:
        return (self.shape, self.colour)

    def annotation(self, width: int, height: int) -> dict[str, Any]:
        x1, y1, x2, y2 = self.box
        ann: dict[str, Any] = {
            "box": [x1 / width, y1 / height, x2 / width, y2 / height],
            "category": self.shape,
            "attributes": {"colour": self.colour, "size": self.size},
            "id": self.uid,
        }
        if self.marked:
            ann["marked"] = True
        if self.occluded:
            ann["attributes"]["occluded"] = True
        if self.truncated:
            ann["attributes"]["truncated"] = True
        return ann


def describe(match: dict[str, str]) -> str:
    """The words a question uses for an object: size, colour, then the category."""
    words = [match[k] for k in ("size", "colour") if k in match]
    words.append(match.get("category", "object"))
    return "the " + " ".join(words)


def _overlap(a: Sequence[int], b: Sequence[int], gap: int = 0) -> int:
    """Intersection area of two pixel boxes after growing ``a`` by ``gap``."""
    w = min(a[2] + gap, b[2]) - max(a[0] - gap, b[0])
    h = min(a[3] + gap, b[3]) - max(a[1] - gap, b[1])
    return w * h if w > 0 and h > 0 else 0


def _area(box: Sequence[int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


class Canvas:
    """One image's background and objects, with placement that keeps objects apart."""

    def __init__(self, config: WorldConfig, rng: random.Random, background: tuple) -> None:
        self.config = config
        self.rng = rng
        self.background = background
        self.objects: list[Obj] = []
        self.grid = config.image_size // config.cell if config.cell else 0
        self.used: set[tuple[int, int]] = set()
        self.crop_of: tuple[int, tuple[int, int, int, int]] | None = None  # (source k, box)

    def kinds(self) -> set[tuple[str, str]]:
        return {o.kind for o in self.objects}

    def place(
        self,
        shape: str,
        colour: str,
        size: str,
        uid: str,
        *,
        protected: bool = False,
        marked: bool = False,
        required: bool = True,
    ) -> Obj | None:
        """Put an object somewhere free; raise _NoRoom (required) or return None."""
        box = self._grid_box(size) if self.grid else self._free_box(size)
        if box is None:
            if required:
                raise _NoRoom
            return None
        obj = Obj(shape, colour, size, box, uid, marked=marked, protected=protected or marked)
        self.objects.append(obj)
        return obj

    def place_at(self, shape: str, colour: str, size: str, uid: str, box: tuple) -> Obj | None:
        """Put an object at exactly ``box`` (grid worlds) when its cells are free."""
        c = self.config.cell
        cells = (
            {
                (r, q)
                for r in range(box[1] // c, (box[3] - 1) // c + 1)
                for q in range(box[0] // c, (box[2] - 1) // c + 1)
            }
            if c
            else set()
        )
        if not c or cells & self.used:
            return None
        self.used.update(cells)
        obj = Obj(shape, colour, size, tuple(box), uid)  # type: ignore[arg-type]
        self.objects.append(obj)
        return obj

    def _grid_box(self, size: str) -> tuple[int, int, int, int] | None:
        span = 2 if size == "large" else 1
        g, c = self.grid, self.config.cell
        starts = [
            (r, q)
            for r in range(g - span + 1)
            for q in range(g - span + 1)
            if all((r + i, q + j) not in self.used for i in range(span) for j in range(span))
        ]
        if not starts:
            return None
        r, q = self.rng.choice(starts)
        self.used.update((r + i, q + j) for i in range(span) for j in range(span))
        m = max(1, c // 14)  # margin: room for a reference marker inside the cell
        return (q * c + m, r * c + m, (q + span) * c - m, (r + span) * c - m)

    def _free_box(self, size: str) -> tuple[int, int, int, int] | None:
        cfg, rng = self.config, self.rng
        mid = (cfg.min_object + cfg.max_object) // 2
        lo, hi = (cfg.min_object, mid) if size == "small" else (mid + 1, cfg.max_object)
        occlude = cfg.occlusion > 0 and rng.random() < cfg.occlusion
        for _ in range(40):
            side = rng.randint(lo, hi)
            x = rng.randint(0, cfg.image_size - side)
            y = rng.randint(0, cfg.image_size - side)
            box = (x, y, x + side, y + side)
            covered = []
            for other in self.objects:
                shared = _overlap(box, other.box, gap=3)
                if not shared:
                    continue
                real = _overlap(box, other.box)
                # Partial occlusion: cover at most a third of an unprotected object.
                if occlude and not other.protected and 0 < real <= _area(other.box) // 3:
                    covered.append(other)
                    continue
                break
            else:
                for other in covered:
                    other.occluded = True
                return box
        return None


def _background(config: WorldConfig, rng: random.Random) -> tuple:
    kind = rng.choice(config.backgrounds)

    def grey() -> tuple[int, int, int]:
        base = rng.randint(70, 175)
        return tuple(max(0, min(255, base + rng.randint(-12, 12))) for _ in range(3))  # type: ignore[return-value]

    if kind == "flat":
        return ("flat", grey())
    if kind == "gradient":
        return ("gradient", grey(), grey(), rng.choice(("horizontal", "vertical")))
    return ("noise", grey(), rng.getrandbits(32), rng.randint(6, 18))


def _render_background(spec: tuple, size: int) -> Image.Image:
    if spec[0] == "flat":
        return Image.new("RGB", (size, size), spec[1])
    if spec[0] == "gradient":
        a, b = np.array(spec[1], np.float32), np.array(spec[2], np.float32)
        t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None]
        ramp = (a + (b - a) * t).astype(np.uint8)  # (size, 3)
        arr = (
            np.broadcast_to(ramp[None, :, :], (size, size, 3))
            if spec[3] == "horizontal"
            else np.broadcast_to(ramp[:, None, :], (size, size, 3))
        )
        return Image.fromarray(np.ascontiguousarray(arr), "RGB")
    base, seed, sigma = spec[1], spec[2], spec[3]
    noise = np.random.default_rng(seed).normal(0.0, sigma, (size, size, 1)).astype(np.float32)
    arr = np.clip(np.array(base, np.float32)[None, None, :] + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def _draw(draw: ImageDraw.ImageDraw, obj: Obj, margin: int) -> None:
    x1, y1, x2, y2 = obj.box
    r, b = x2 - 1, y2 - 1  # PIL's coordinates are inclusive
    cx, cy = (x1 + r) / 2.0, (y1 + b) / 2.0
    fill = COLOURS[obj.colour]
    if obj.shape == "square":
        draw.rectangle((x1, y1, r, b), fill=fill)
    elif obj.shape == "circle":
        draw.ellipse((x1, y1, r, b), fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([(cx, y1), (r, b), (x1, b)], fill=fill)
    elif obj.shape == "diamond":
        draw.polygon([(cx, y1), (r, cy), (cx, b), (x1, cy)], fill=fill)
    else:  # cross: two bars a third of the side thick
        tw, th = (x2 - x1) / 3.0, (y2 - y1) / 3.0
        draw.rectangle((x1, y1 + th, r, b - th), fill=fill)
        draw.rectangle((x1 + tw, y1, r - tw, b), fill=fill)
    if obj.marked:
        draw.rectangle(
            (x1 - margin, y1 - margin, r + margin, b + margin), outline=MARKER_RGB, width=2
        )


def render(canvas: Canvas, size: int) -> Image.Image:
    """Background, then objects in placement order (later ones may cover earlier ones)."""
    image = _render_background(canvas.background, size)
    draw = ImageDraw.Draw(image)
    margin = max(2, canvas.config.cell // 14) if canvas.config.cell else 2
    for obj in canvas.objects:
        _draw(draw, obj, margin)
    return image


# ---------------------------------------------------------------------------- families


@dataclass
class _Built:
    canvases: list[Canvas]
    question: str
    target_image: int | None
    target_box: tuple[float, float, float, float] | None  # set for targets that are regions
    target_obj: tuple[int, Obj] | None  # (1-based image, object)
    reference: dict[str, Any]
    relations: list[dict[str, Any]] = field(default_factory=list)


class _Ctx:
    """What a family function needs: config, generator, fresh ids, random attributes."""

    def __init__(self, config: WorldConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self._next = 0

    def uid(self) -> str:
        self._next += 1
        return f"o{self._next}"

    def canvas(self, background: tuple | None = None) -> Canvas:
        return Canvas(self.config, self.rng, background or _background(self.config, self.rng))

    def n_images(self, least: int) -> int:
        lo, hi = self.config.images
        return self.rng.randint(max(lo, least), max(hi, least))

    def n_distractors(self) -> int:
        return self.rng.randint(*self.config.distractors)

    def kind(self) -> tuple[str, str, str]:
        c = self.config
        return (self.rng.choice(c.shapes), self.rng.choice(c.colours), self.rng.choice(c.sizes))

    def look_alike(self, shape: str, colour: str) -> tuple[str, str, str]:
        """An object sharing the shape or the colour (not both) with the given one; which of
        the two it changes is drawn from ``look_alike_changes``."""
        c, rng = self.config, self.rng
        changes = c.look_alike_changes
        if "shape" not in changes or ("colour" in changes and rng.random() < 0.5):
            return (shape, rng.choice([x for x in c.colours if x != colour]), rng.choice(c.sizes))
        return (rng.choice([x for x in c.shapes if x != shape]), colour, rng.choice(c.sizes))

    def fill(
        self,
        canvas: Canvas,
        count: int,
        allowed: Callable[[str, str, str], bool] = lambda s, c, z: True,
    ) -> None:
        """Add up to ``count`` random distractors that ``allowed`` accepts (skip when full)."""
        for _ in range(count):
            for _try in range(12):
                shape, colour, size = self.kind()
                if allowed(shape, colour, size):
                    canvas.place(shape, colour, size, self.uid(), required=False)
                    break

    def template(self, options: Sequence[str], **values: object) -> str:
        text = options[0] if self.config.fixed_layout else self.rng.choice(options)
        return text.format(**values)


def _description(ctx: _Ctx, shape: str, colour: str, size: str, need_size: bool) -> dict:
    match = {"category": shape, "colour": colour}
    if need_size or ctx.config.fixed_layout:
        match["size"] = size
    return {"kind": "description", "text": describe(match), "match": match}


def _single_object(ctx: _Ctx) -> _Built:
    canvas = ctx.canvas()
    shape, colour, size = ctx.kind()
    target = canvas.place(shape, colour, size, ctx.uid(), protected=True)
    count = ctx.n_distractors()
    if count:
        s, c, z = ctx.look_alike(shape, colour)
        canvas.place(s, c, z, ctx.uid(), required=False)
    ctx.fill(canvas, count - 1, lambda s, c, z: (s, c) != (shape, colour))
    reference = _description(ctx, shape, colour, size, need_size=False)
    question = ctx.template(
        (
            "Locate {desc} in Image-1.",
            "Where is {desc}?",
            "Find {desc} and give its box.",
        ),
        desc=reference["text"],
    )
    return _Built([canvas], question, 1, None, (1, target), reference)  # type: ignore[arg-type]


def _name_object(ctx: _Ctx) -> _Built:
    # One object per image (distractors would make "the object" ambiguous).
    canvases = [ctx.canvas() for _ in range(ctx.n_images(1))]
    objects = [c.place(*ctx.kind(), ctx.uid(), protected=True) for c in canvases]
    k = ctx.rng.randint(1, len(canvases))
    target = objects[k - 1]
    question = ctx.template(
        (
            "Name the object in Image-{k} and locate it.",
            "What is the object in Image-{k}, and where is it?",
            "Say what Image-{k} shows and give its box.",
        ),
        k=k,
    )
    match = {"category": target.shape, "colour": target.colour, "size": target.size}
    reference = {"kind": "name", "match": match}
    return _Built(canvases, question, k, None, (k, target), reference)  # type: ignore[arg-type]


def _referring(ctx: _Ctx) -> _Built:
    n = ctx.n_images(1)
    canvases = [ctx.canvas() for _ in range(n)]
    shape, colour, size = ctx.kind()
    k = ctx.rng.randint(1, n)
    target = canvases[k - 1].place(shape, colour, size, ctx.uid(), protected=True)
    for i, canvas in enumerate(canvases, 1):
        count = ctx.n_distractors()
        if i == k:
            if count:
                canvas.place(*ctx.look_alike(shape, colour), ctx.uid(), required=False)
            ctx.fill(canvas, count - 1, lambda s, c, z: (s, c) != (shape, colour))
            continue
        # Another image holds an object too, half the time the described kind: only the
        # image the question names decides.
        kind = (shape, colour, size) if ctx.rng.random() < 0.5 else ctx.kind()
        canvas.place(*kind, ctx.uid(), required=False)
        ctx.fill(canvas, count)
    reference = _description(ctx, shape, colour, size, need_size=False)
    question = ctx.template(
        (
            "Locate {desc} in Image-{k}.",
            "Find {desc} in Image-{k} and give its box.",
            "Where is {desc} in Image-{k}?",
            "In Image-{k}, locate {desc}.",
        ),
        desc=reference["text"],
        k=k,
    )
    return _Built(canvases, question, k, None, (k, target), reference)  # type: ignore[arg-type]


def _group_grounding(ctx: _Ctx) -> _Built:
    n = ctx.n_images(2)
    canvases = [ctx.canvas() for _ in range(n)]
    shape, colour, size = ctx.kind()
    k = ctx.rng.randint(1, n)
    target = canvases[k - 1].place(shape, colour, size, ctx.uid(), protected=True)
    # A same-shape, same-colour object of the other size elsewhere makes the size word matter.
    size_trap = len(ctx.config.sizes) > 1 and n > 1 and ctx.rng.random() < 0.3
    if size_trap:
        other = ctx.rng.choice([i for i in range(1, n + 1) if i != k])
        other_size = next(z for z in ctx.config.sizes if z != size)
        canvases[other - 1].place(shape, colour, other_size, ctx.uid(), required=False)
    # Cross-image ambiguity: a look-alike at the target's place in another image, where a
    # box on the wrong image overlaps the target box fully (plain IoU rewards it; the
    # image-gated object reward does not). Drawn only when the knob is on, so worlds
    # without it keep their random stream.
    same_place = 0
    if ctx.config.same_place_look_alike and ctx.rng.random() < ctx.config.same_place_look_alike:
        same_place = ctx.rng.choice([i for i in range(1, n + 1) if i != k])
    for i, canvas in enumerate(canvases, 1):
        if i == same_place:
            s, c, z = ctx.look_alike(shape, colour)
            if canvas.place_at(s, c, size, ctx.uid(), target.box) is None:
                canvas.place(s, c, z, ctx.uid(), required=False)
        elif i != k:  # every other image holds a look-alike, so no image is empty
            canvas.place(*ctx.look_alike(shape, colour), ctx.uid(), required=False)
        ctx.fill(canvas, ctx.n_distractors(), lambda s, c, z: (s, c) != (shape, colour))
    reference = _description(ctx, shape, colour, size, need_size=size_trap)
    question = ctx.template(
        (
            "Find {desc} in one of the images.",
            "Which image holds {desc}? Locate it.",
            "Locate {desc}; it is in one of the images.",
        ),
        desc=reference["text"],
    )
    return _Built(canvases, question, k, None, (k, target), reference)  # type: ignore[arg-type]


def _common_object(ctx: _Ctx) -> _Built:
    n = ctx.n_images(2)
    canvases = [ctx.canvas() for _ in range(n)]
    shape, colour, _ = ctx.kind()
    uid = ctx.uid()
    common = [
        c.place(shape, colour, ctx.rng.choice(ctx.config.sizes), uid, protected=True)
        for c in canvases
    ]
    for i, canvas in enumerate(canvases):
        others = [c for j, c in enumerate(canvases) if j != i]

        def allowed(s: str, c: str, z: str, canvas: Canvas = canvas, others=others) -> bool:
            # Unique within the image, and never a second object common to all images.
            kind = (s, c)
            return kind not in canvas.kinds() and not all(kind in o.kinds() for o in others)

        ctx.fill(canvas, ctx.n_distractors(), allowed)
    k = ctx.rng.randint(1, n)
    question = ctx.template(
        (
            "These images share one object. Locate it in Image-{k}.",
            "One object appears in every image. Find it in Image-{k}.",
            "Recognize the object the images have in common and locate it in Image-{k}.",
        ),
        k=k,
    )
    reference = {"kind": "common", "match": {"category": shape, "colour": colour}}
    relations = [{"type": "same_object", "object": uid, "images": list(range(1, n + 1))}]
    return _Built(canvases, question, k, None, (k, common[k - 1]), reference, relations)  # type: ignore[arg-type]


def _diff(ctx: _Ctx) -> _Built:
    first = ctx.canvas()
    count = max(1, ctx.n_distractors()) + 1
    for _ in range(count):
        shape, colour, size = ctx.kind()
        if (shape, colour) not in first.kinds():  # protected: any of them may become the target
            first.place(shape, colour, size, ctx.uid(), protected=True, required=False)
    if not first.objects:
        raise _NoRoom
    second = ctx.canvas(first.background)
    second.used = set(first.used)
    second.objects = [replace(o) for o in first.objects]
    change = ctx.rng.choice(("added", "removed", "changed"))
    relation: dict[str, Any] = {"type": "difference", "change": change, "images": [1, 2]}
    if change == "added":
        shape, colour, size = ctx.kind()
        obj = second.place(shape, colour, size, ctx.uid(), protected=True)
        where, target = 2, obj
        relation["after"] = {"category": shape, "colour": colour}
    else:
        index = ctx.rng.randrange(len(first.objects))
        if change == "removed":
            where, target = 1, first.objects[index]
            del second.objects[index]
            relation["before"] = {"category": target.shape, "colour": target.colour}
        else:
            before = first.objects[index]
            colour = ctx.rng.choice([c for c in ctx.config.colours if c != before.colour])
            target = replace(before, colour=colour)  # same id: the same object, recoloured
            second.objects[index] = target
            where = 2
            relation["before"] = {"category": before.shape, "colour": before.colour}
            relation["after"] = {"category": target.shape, "colour": colour}
    question = ctx.template(
        (
            "The two images differ in one object. Locate the difference.",
            "Compare these two images carefully and give the box of their difference.",
            "Find what changed between Image-1 and Image-2.",
        )
    )
    reference = {"kind": "difference", "images": [1, 2], "change": change}
    relations = [{"type": "same_scene", "images": [1, 2]}, relation]
    return _Built([first, second], question, None, None, (where, target), reference, relations)  # type: ignore[arg-type]


def _visual_reference(ctx: _Ctx) -> _Built:
    n = ctx.n_images(2)
    canvases = [ctx.canvas() for _ in range(n)]
    shape, colour, size = ctx.kind()
    uid = ctx.uid()
    marked = canvases[0].place(shape, colour, size, uid, marked=True)
    same = [marked]
    for canvas in canvases[1:]:  # the same object, moved and maybe rescaled
        same.append(
            canvas.place(shape, colour, ctx.rng.choice(ctx.config.sizes), uid, protected=True)
        )
        canvas.place(*ctx.look_alike(shape, colour), ctx.uid(), required=False)
    for canvas in canvases:
        ctx.fill(canvas, ctx.n_distractors(), lambda s, c, z: (s, c) != (shape, colour))
    k = ctx.rng.randint(2, n)
    question = ctx.template(
        (
            "Find the object marked by the red box in Image-1 in Image-{k}.",
            "The object in the red box of Image-1 also appears in Image-{k}. Locate it there.",
            "Locate the red-boxed object of Image-1 in Image-{k}.",
        ),
        k=k,
    )
    reference = {
        "kind": "marked",
        "image": 1,
        "uid": uid,
        "match": {"category": shape, "colour": colour},
    }
    relations = [{"type": "same_object", "object": uid, "images": list(range(1, n + 1))}]
    return _Built(canvases, question, k, None, (k, same[k - 1]), reference, relations)  # type: ignore[arg-type]


def _reasoning(ctx: _Ctx) -> _Built:
    n = ctx.n_images(2)
    canvases = [ctx.canvas() for _ in range(n)]
    shape, colour, size = ctx.kind()
    marked_uid = ctx.uid()
    canvases[0].place(shape, colour, size, marked_uid, marked=True)
    k = ctx.rng.randint(2, n)
    other_shape = ctx.rng.choice([s for s in ctx.config.shapes if s != shape])
    target = canvases[k - 1].place(
        other_shape, colour, ctx.rng.choice(ctx.config.sizes), ctx.uid(), protected=True
    )
    # Traps: the marked object's shape in another colour, and maybe its exact twin.
    trap_colour = ctx.rng.choice([c for c in ctx.config.colours if c != colour])
    canvases[k - 1].place(
        shape, trap_colour, ctx.rng.choice(ctx.config.sizes), ctx.uid(), required=False
    )
    if ctx.rng.random() < 0.5:
        canvases[k - 1].place(
            shape, colour, ctx.rng.choice(ctx.config.sizes), ctx.uid(), required=False
        )
    for i, canvas in enumerate(canvases, 1):
        if i == k:  # nothing else of that colour, so one object answers
            ctx.fill(canvas, ctx.n_distractors(), lambda s, c, z: c != colour)
        else:
            ctx.fill(canvas, ctx.n_distractors())
    question = ctx.template(
        (
            "In Image-{k}, find the object with the colour of the marked object in Image-1 "
            "but another shape.",
            "Image-1 marks an object with a red box. Locate the object in Image-{k} that has "
            "its colour but not its shape.",
            "Which object in Image-{k} shares the colour of the red-boxed object in Image-1 "
            "while having a different shape? Locate it.",
        ),
        k=k,
    )
    reference = {
        "kind": "two_hop",
        "image": 1,
        "uid": marked_uid,
        "match": {"colour": colour},
        "differ": {"category": shape},
    }
    return _Built(canvases, question, k, None, (k, target), reference)  # type: ignore[arg-type]


def _region(ctx: _Ctx) -> _Built:
    cfg, rng = ctx.config, ctx.rng
    n = ctx.n_images(2)
    source = ctx.canvas()
    # Enough objects that crops show something: at least one per crop.
    for _ in range(max(n - 1, ctx.n_distractors() + 1)):
        shape, colour, size = ctx.kind()
        if (shape, colour) not in source.kinds():
            source.place(shape, colour, size, ctx.uid(), required=False)
    if not source.objects:
        raise _NoRoom
    crops: list[tuple[int, int, int, int]] = []
    S = cfg.image_size
    for _ in range(n - 1):
        anchor = rng.choice(source.objects).box
        for _try in range(30):
            if cfg.cell:
                span = (S // cfg.cell + 1) // 2 * cfg.cell
                lo_x = max(0, (anchor[2] - span + cfg.cell - 1) // cfg.cell * cfg.cell)
                hi_x = min(S - span, anchor[0] // cfg.cell * cfg.cell)
                lo_y = max(0, (anchor[3] - span + cfg.cell - 1) // cfg.cell * cfg.cell)
                hi_y = min(S - span, anchor[1] // cfg.cell * cfg.cell)
                if lo_x > hi_x or lo_y > hi_y:
                    anchor = rng.choice(source.objects).box
                    continue
                x = rng.randrange(lo_x, hi_x + 1, cfg.cell)
                y = rng.randrange(lo_y, hi_y + 1, cfg.cell)
            else:
                span = rng.randint(
                    max(anchor[2] - anchor[0], anchor[3] - anchor[1], S * 2 // 5), S * 3 // 5
                )
                x = rng.randint(max(0, anchor[2] - span), min(S - span, anchor[0]))
                y = rng.randint(max(0, anchor[3] - span), min(S - span, anchor[1]))
            box = (x, y, x + span, y + span)
            if all(_overlap(box, c) < _area(box) // 2 for c in crops):
                crops.append(box)
                break
            anchor = rng.choice(source.objects).box
        else:
            break
    if not crops:
        raise _NoRoom
    canvases = [source]
    relations = []
    for j, box in enumerate(crops, 2):
        crop = Canvas(cfg, rng, source.background)
        crop.crop_of = (1, box)
        scale = S / (box[2] - box[0])
        for obj in source.objects:
            x1, y1 = max(obj.box[0], box[0]), max(obj.box[1], box[1])
            x2, y2 = min(obj.box[2], box[2]), min(obj.box[3], box[3])
            if x2 <= x1 or y2 <= y1 or (x2 - x1) * (y2 - y1) * 4 < _area(obj.box):
                continue  # not visible enough to name
            mapped = (
                round((x1 - box[0]) * scale),
                round((y1 - box[1]) * scale),
                round((x2 - box[0]) * scale),
                round((y2 - box[1]) * scale),
            )
            crop.objects.append(
                replace(obj, box=mapped, marked=False, truncated=(x1, y1, x2, y2) != obj.box)
            )
        canvases.append(crop)
        relations.append({"type": "crop_of", "image": j, "source": 1, "box": [v / S for v in box]})
    j = rng.randint(2, len(canvases))
    question = ctx.template(
        (
            "Image-1 is a source image. Locate the region shown in Image-{j} inside Image-1.",
            "The images after Image-1 are regions cut from it. Where in Image-1 is the region of "
            "Image-{j}?",
            "Find where the region pictured in Image-{j} lies in the source image, Image-1.",
        ),
        j=j,
    )
    reference = {"kind": "region", "image": j, "source": 1}
    box = crops[j - 2]
    return _Built(canvases, question, 1, tuple(v / S for v in box), None, reference, relations)  # type: ignore[arg-type]


_FAMILY_BUILDERS: dict[str, Callable[[_Ctx], _Built]] = {
    "single_object": _single_object,
    "common_object": _common_object,
    "diff": _diff,
    "visual_reference": _visual_reference,
    "region": _region,
    "group_grounding": _group_grounding,
    "reasoning": _reasoning,
    "name_object": _name_object,
    "referring": _referring,
}


def _caption(canvas: Canvas, k: int) -> str:
    if canvas.crop_of is not None:
        return f"A region of Image-{canvas.crop_of[0]}."
    if not canvas.objects:
        return f"An empty {canvas.background[0]} background."
    names = ", ".join(f"a {o.size} {o.colour} {o.shape}" for o in canvas.objects)
    return f"A {canvas.background[0]} background with {names}."


def generate_sample(
    config: WorldConfig, family: str, seed: int, split: str, index: int
) -> tuple[Sample, list[Image.Image]]:
    """One sample and its images, from its own generator (seed, split, index, family)."""
    rng = random.Random(f"{seed}/{split}/{index}/{family}")
    builder = _FAMILY_BUILDERS[family]
    for _attempt in range(50):
        try:
            built = builder(_Ctx(config, rng))
            break
        except _NoRoom:
            continue
    else:
        raise ValueError(
            f"family {family!r}: objects do not fit in {config.image_size}-px images; "
            "use fewer distractors or smaller objects"
        )
    question = built.question
    lo, hi = config.filler_words
    if hi:  # its own generator: the world's stream stays as without filler
        filler_rng = random.Random(f"{seed}/{split}/{index}/filler")
        words = [filler_rng.choice(FILLER_WORDS) for _ in range(filler_rng.randint(lo, hi))]
        if words:
            question = " ".join(words).capitalize() + ". " + question
    S = config.image_size
    sample_id = f"{split}-{index:06d}"
    images: list[Image.Image] = []
    for canvas in built.canvases:
        if canvas.crop_of is not None:
            source = images[canvas.crop_of[0] - 1]
            images.append(source.crop(canvas.crop_of[1]).resize((S, S), Image.Resampling.NEAREST))
        else:
            images.append(render(canvas, S))
    # Annotations in reading order (top to bottom, left to right), not drawing order.
    orders = [sorted(c.objects, key=lambda o: (o.box[1], o.box[0])) for c in built.canvases]
    objects = [[o.annotation(S, S) for o in order] for order in orders]
    target = None
    if built.target_obj is not None:
        k, obj = built.target_obj
        target = {"image": k, "object": next(j for j, o in enumerate(orders[k - 1]) if o is obj)}
        target_box = tuple(objects[k - 1][target["object"]]["box"])
    else:
        target_box = built.target_box
    reference = dict(built.reference)
    if "uid" in reference:  # a marked object: point at its annotation
        uid = reference.pop("uid")
        j = next(j for j, o in enumerate(orders[0]) if o.uid == uid and o.marked)
        reference["object"] = j
        reference["box"] = objects[0][j]["box"]
    sample = Sample(
        id=sample_id,
        task=family,
        images=[f"images/{split}/{sample_id}-{k}.png" for k in range(1, len(images) + 1)],
        question=question,
        target_image=built.target_image,
        target_box=target_box,  # type: ignore[arg-type]
        objects=objects,
        relations=built.relations,
        captions=[_caption(c, k) for k, c in enumerate(built.canvases, 1)],
        reference=reference,
        target=target,
        image_sizes=[[S, S] for _ in images],
        meta={"family": family, "seed": seed},
    )
    return sample, images


def family_counts(config: WorldConfig, n: int) -> dict[str, int]:
    """How many samples of each family among ``n``: proportional to the weights, exactly."""
    weights = list(config.weights or [1.0] * len(config.families))
    total = sum(weights) or 1.0
    shares = [n * w / total for w in weights]
    counts = [int(s) for s in shares]
    by_remainder = sorted(range(len(shares)), key=lambda i: (counts[i] - shares[i], i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return dict(zip(config.families, counts, strict=True))


def split_sizes(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> dict[str, int]:
    """Train/val/test sizes for ``n`` samples; val and test get at least one from n >= 3."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"split fractions: three non-negative numbers, got {fractions}")
    total = sum(fractions)
    val = round(n * fractions[1] / total)
    test = round(n * fractions[2] / total)
    if n >= 3:
        val = max(val, 1) if fractions[1] else 0
        test = max(test, 1) if fractions[2] else 0
    return {"train": n - val - test, "val": val, "test": test}


def _layout_key(sample: Sample) -> str:
    """What a model sees apart from background pixels: question and object layout."""
    return json.dumps([sample.question, sample.objects], sort_keys=True)


def write_dataset(
    out: str | Path,
    n: int,
    seed: int,
    config: WorldConfig,
    *,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    preset: str | None = None,
) -> dict[str, Any]:
    """Write ``out/{train,val,test}.jsonl``, ``out/images/`` and ``out/manifest.json``.

    Returns the manifest: seed, knobs, counts per split and family, and how many test
    samples repeat a train sample's question and layout (small worlds repeat; say so).
    """
    config.validate()
    if n < 1:
        raise ValueError(f"--n must be at least 1, got {n}")
    out = Path(out)
    sizes = split_sizes(n, fractions)
    counts: dict[str, dict[str, int]] = {}
    layouts: dict[str, set[str]] = {}
    for split in SPLITS:
        (out / "images" / split).mkdir(parents=True, exist_ok=True)
        per_family = family_counts(config, sizes[split])
        order = [f for f, c in per_family.items() for _ in range(c)]
        random.Random(f"{seed}/{split}/order").shuffle(order)
        keys: set[str] = set()
        with (out / f"{split}.jsonl").open("w", encoding="utf-8") as handle:
            for index, family in enumerate(order):
                sample, images = generate_sample(config, family, seed, split, index)
                for rel, image in zip(sample.images, images, strict=True):
                    image.save(out / rel, format="PNG", compress_level=1)
                handle.write(json.dumps(sample.to_json(), separators=(",", ":")) + "\n")
                keys.add(_layout_key(sample))
        counts[split] = {f: c for f, c in per_family.items() if c}
        layouts[split] = keys
    manifest = {
        "generator": "mirg synth",
        "seed": seed,
        "n": n,
        "preset": preset,
        "knobs": asdict(config),
        "splits": sizes,
        "counts": counts,
        "test_layouts_seen_in_train": len(layouts["test"] & layouts["train"]),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest
