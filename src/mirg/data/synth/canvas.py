"""One image: its objects, where they go (on a cell grid or freely, kept apart), and its
pixels (background, then objects, then the red reference marker)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageDraw

if TYPE_CHECKING:
    from mirg.data.synth.config import WorldConfig

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
PixelBox = tuple[int, int, int, int]  # pixels, x2/y2 exclusive
#: ("flat", grey) | ("gradient", grey, grey, direction) | ("noise", grey, seed, sigma)
Background = tuple[Any, ...]


class NoRoom(Exception):
    """A required object did not fit; the sample is drawn again."""


@dataclass
class Obj:
    shape: str
    colour: str
    size: str
    box: PixelBox
    uid: str
    marked: bool = False
    protected: bool = False  # nothing may be drawn over it (targets, references)
    occluded: bool = False
    truncated: bool = False

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


def overlap(a: Sequence[int], b: Sequence[int], gap: int = 0) -> int:
    """Intersection area of two pixel boxes after growing ``a`` by ``gap``."""
    w = min(a[2] + gap, b[2]) - max(a[0] - gap, b[0])
    h = min(a[3] + gap, b[3]) - max(a[1] - gap, b[1])
    return w * h if w > 0 and h > 0 else 0


def area(box: Sequence[int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def random_background(config: WorldConfig, rng: random.Random) -> Background:
    kind = rng.choice(config.backgrounds)

    def grey() -> tuple[int, ...]:
        base = rng.randint(70, 175)
        return tuple(max(0, min(255, base + rng.randint(-12, 12))) for _ in range(3))

    if kind == "flat":
        return ("flat", grey())
    if kind == "gradient":
        return ("gradient", grey(), grey(), rng.choice(("horizontal", "vertical")))
    return ("noise", grey(), rng.getrandbits(32), rng.randint(6, 18))


class Canvas:
    """One image's background and objects, with placement that keeps objects apart."""

    def __init__(self, config: WorldConfig, rng: random.Random, background: Background) -> None:
        self.config = config
        self.rng = rng
        self.background = background
        self.objects: list[Obj] = []
        self.grid = config.image_size // config.cell if config.cell else 0
        self.used: set[tuple[int, int]] = set()
        self.crop_of: tuple[int, PixelBox] | None = None  # (source image, box)

    def kinds(self) -> set[tuple[str, str]]:
        return {(o.shape, o.colour) for o in self.objects}

    def try_place(
        self,
        shape: str,
        colour: str,
        size: str,
        uid: str,
        *,
        protected: bool = False,
        marked: bool = False,
    ) -> Obj | None:
        """Put an object somewhere free, or return None where there is no room."""
        box = self._grid_box(size) if self.grid else self._free_box(size)
        if box is None:
            return None
        obj = Obj(shape, colour, size, box, uid, marked=marked, protected=protected or marked)
        self.objects.append(obj)
        return obj

    def place(self, shape: str, colour: str, size: str, uid: str, **flags: bool) -> Obj:
        """Put an object the sample needs somewhere free; raise NoRoom where there is none."""
        obj = self.try_place(shape, colour, size, uid, **flags)
        if obj is None:
            raise NoRoom
        return obj

    def place_at(self, shape: str, colour: str, size: str, uid: str, box: PixelBox) -> Obj | None:
        """Put an object at exactly ``box`` (grid worlds) when its cells are free."""
        c = self.config.cell
        if not c:
            return None
        cells = {
            (r, q)
            for r in range(box[1] // c, (box[3] - 1) // c + 1)
            for q in range(box[0] // c, (box[2] - 1) // c + 1)
        }
        if cells & self.used:
            return None
        self.used.update(cells)
        obj = Obj(shape, colour, size, box, uid)
        self.objects.append(obj)
        return obj

    def _grid_box(self, size: str) -> PixelBox | None:
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

    def _free_box(self, size: str) -> PixelBox | None:
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
                if not overlap(box, other.box, gap=3):
                    continue
                real = overlap(box, other.box)
                # Partial occlusion: cover at most a third of an unprotected object.
                if occlude and not other.protected and 0 < real <= area(other.box) // 3:
                    covered.append(other)
                    continue
                break
            else:
                for other in covered:
                    other.occluded = True
                return box
        return None


def _render_background(spec: Background, size: int) -> Image.Image:
    if spec[0] == "flat":
        return Image.new("RGB", (size, size), spec[1])
    if spec[0] == "gradient":
        a, b = np.array(spec[1], np.float32), np.array(spec[2], np.float32)
        t = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None]
        ramp = (a + (b - a) * t).astype(np.uint8)  # (size, 3)
        ramp = ramp[None, :, :] if spec[3] == "horizontal" else ramp[:, None, :]
        arr = np.broadcast_to(ramp, (size, size, 3))
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
    margin = max(2, canvas.config.cell // 14)
    for obj in canvas.objects:
        _draw(draw, obj, margin)
    return image
