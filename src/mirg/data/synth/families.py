"""The task families: each a plain function from a :class:`Ctx` to the :class:`Built`
canvases, question, target and reference of one sample; :data:`TASK_FAMILIES` names them.

* ``single_object``: one image; "Locate the small red circle in Image-1."
* ``common_object``: one object (shape and colour) is in every image, nothing else is;
  locate it in Image-k.
* ``diff``: two aligned images, one object added, removed or recoloured; locate it (no
  target image: any image counts).
* ``visual_reference``: the object marked by a red box in Image-1, moved and maybe
  rescaled in Image-k among look-alikes sharing its shape or colour.
* ``region``: Image-1 is a source, the other images are crops of it; locate crop j there.
* ``group_grounding``: a description that fits one object over all the images; the
  question names no image, so choosing it is the task.
* ``reasoning`` (two hops): the object in Image-k with the colour of the object marked in
  Image-1 but another shape.
* ``referring``: the described object in the image the question names; other images may
  hold the same kind of object, so the image name decides.
* ``name_object``: one object per image; "Name the object in Image-k and locate it."; the
  reasoning names it, so nothing in the question can be copied.

A family draws everything from ``ctx.rng`` in a fixed order: any change here changes every
dataset drawn before.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mirg.core.boxes import Box
from mirg.data.references import (
    CommonObject,
    Description,
    Difference,
    MarkedObject,
    NamedObject,
    Reference,
    Region,
    TwoHop,
)
from mirg.data.synth.canvas import (
    Background,
    Canvas,
    NoRoom,
    Obj,
    PixelBox,
    area,
    overlap,
    random_background,
)

if TYPE_CHECKING:
    from mirg.data.synth.config import WorldConfig


@dataclass
class Built:
    """What a family drew; :func:`~mirg.data.synth.world.generate_sample` makes it a Sample."""

    canvases: list[Canvas]
    question: str
    target_image: int | None
    target: tuple[int, Obj] | None  # (1-based image, object); None where it is a region
    reference: Reference
    relations: list[dict[str, Any]] = field(default_factory=list)
    marked: Obj | None = None  # the object the red box marks on Image-1
    region: Box | None = None  # the target region (relative) where no object is the target


class Ctx:
    """What a family function needs: config, generator, fresh ids, random attributes."""

    def __init__(self, config: WorldConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self._next = 0

    def uid(self) -> str:
        self._next += 1
        return f"o{self._next}"

    def canvas(self, background: Background | None = None) -> Canvas:
        return Canvas(self.config, self.rng, background or random_background(self.config, self.rng))

    def n_images(self, least: int) -> int:
        lo, hi = self.config.images
        return self.rng.randint(max(lo, least), max(hi, least))

    def n_distractors(self) -> int:
        return self.rng.randint(*self.config.distractors)

    def kind(self) -> tuple[str, str, str]:
        c = self.config
        return (self.rng.choice(c.shapes), self.rng.choice(c.colours), self.rng.choice(c.sizes))

    def size(self) -> str:
        return self.rng.choice(self.config.sizes)

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
                    canvas.try_place(shape, colour, size, self.uid())
                    break

    def distract(self, canvas: Canvas, shape: str, colour: str) -> None:
        """Distractors beside a target: a look-alike first, then objects of other kinds."""
        count = self.n_distractors()
        if count:
            canvas.try_place(*self.look_alike(shape, colour), self.uid())
        self.fill(canvas, count - 1, lambda s, c, z: (s, c) != (shape, colour))

    def target_scene(self, least: int) -> tuple[list[Canvas], tuple[str, str, str], int, Obj]:
        """At least ``least`` canvases, a random kind, and an object of it placed in Image-k."""
        canvases = [self.canvas() for _ in range(self.n_images(least))]
        kind = self.kind()
        k = self.rng.randint(1, len(canvases))
        return canvases, kind, k, canvases[k - 1].place(*kind, self.uid(), protected=True)

    def template(self, options: Sequence[str], **values: object) -> str:
        text = options[0] if self.config.fixed_layout else self.rng.choice(options)
        return text.format(**values)


#: Each family's question wordings; the first is the fixed layout's (``fixed_layout``).
QUESTIONS: dict[str, tuple[str, ...]] = {
    "single_object": (
        "Locate {desc} in Image-1.",
        "Where is {desc}?",
        "Find {desc} and give its box.",
    ),
    "name_object": (
        "Name the object in Image-{k} and locate it.",
        "What is the object in Image-{k}, and where is it?",
        "Say what Image-{k} shows and give its box.",
    ),
    "referring": (
        "Locate {desc} in Image-{k}.",
        "Find {desc} in Image-{k} and give its box.",
        "Where is {desc} in Image-{k}?",
        "In Image-{k}, locate {desc}.",
    ),
    "group_grounding": (
        "Find {desc} in one of the images.",
        "Which image holds {desc}? Locate it.",
        "Locate {desc}; it is in one of the images.",
    ),
    "common_object": (
        "These images share one object. Locate it in Image-{k}.",
        "One object appears in every image. Find it in Image-{k}.",
        "Recognize the object the images have in common and locate it in Image-{k}.",
    ),
    "diff": (
        "The two images differ in one object. Locate the difference.",
        "Compare these two images carefully and give the box of their difference.",
        "Find what changed between Image-1 and Image-2.",
    ),
    "visual_reference": (
        "Find the object marked by the red box in Image-1 in Image-{k}.",
        "The object in the red box of Image-1 also appears in Image-{k}. Locate it there.",
        "Locate the red-boxed object of Image-1 in Image-{k}.",
    ),
    "reasoning": (
        "In Image-{k}, find the object with the colour of the marked object in Image-1 "
        "but another shape.",
        "Image-1 marks an object with a red box. Locate the object in Image-{k} that has "
        "its colour but not its shape.",
        "Which object in Image-{k} shares the colour of the red-boxed object in Image-1 "
        "while having a different shape? Locate it.",
    ),
    "region": (
        "Image-1 is a source image. Locate the region shown in Image-{j} inside Image-1.",
        "The images after Image-1 are regions cut from it. Where in Image-1 is the region of "
        "Image-{j}?",
        "Find where the region pictured in Image-{j} lies in the source image, Image-1.",
    ),
}


def _description(ctx: Ctx, shape: str, colour: str, size: str, need_size: bool) -> Description:
    match = {"category": shape, "colour": colour}
    if need_size or ctx.config.fixed_layout:
        match["size"] = size
    return Description.of(match)


def single_object(ctx: Ctx) -> Built:
    canvas = ctx.canvas()
    shape, colour, size = ctx.kind()
    target = canvas.place(shape, colour, size, ctx.uid(), protected=True)
    ctx.distract(canvas, shape, colour)
    reference = _description(ctx, shape, colour, size, need_size=False)
    question = ctx.template(QUESTIONS["single_object"], desc=reference.text)
    return Built([canvas], question, 1, (1, target), reference)


def name_object(ctx: Ctx) -> Built:
    # One object per image (distractors would make "the object" ambiguous).
    canvases = [ctx.canvas() for _ in range(ctx.n_images(1))]
    objects = [c.place(*ctx.kind(), ctx.uid(), protected=True) for c in canvases]
    k = ctx.rng.randint(1, len(canvases))
    target = objects[k - 1]
    question = ctx.template(QUESTIONS["name_object"], k=k)
    match = {"category": target.shape, "colour": target.colour, "size": target.size}
    return Built(canvases, question, k, (k, target), NamedObject(match=match))


def referring(ctx: Ctx) -> Built:
    canvases, (shape, colour, size), k, target = ctx.target_scene(1)
    for i, canvas in enumerate(canvases, 1):
        if i == k:
            ctx.distract(canvas, shape, colour)
            continue
        count = ctx.n_distractors()
        # Another image holds an object too, half the time the described kind: only the
        # image the question names decides.
        kind = (shape, colour, size) if ctx.rng.random() < 0.5 else ctx.kind()
        canvas.try_place(*kind, ctx.uid())
        ctx.fill(canvas, count)
    reference = _description(ctx, shape, colour, size, need_size=False)
    question = ctx.template(QUESTIONS["referring"], desc=reference.text, k=k)
    return Built(canvases, question, k, (k, target), reference)


def group_grounding(ctx: Ctx) -> Built:
    canvases, (shape, colour, size), k, target = ctx.target_scene(2)
    n = len(canvases)
    # A same-shape, same-colour object of the other size elsewhere makes the size word matter.
    size_trap = len(ctx.config.sizes) > 1 and n > 1 and ctx.rng.random() < 0.3
    if size_trap:
        other = ctx.rng.choice([i for i in range(1, n + 1) if i != k])
        other_size = next(z for z in ctx.config.sizes if z != size)
        canvases[other - 1].try_place(shape, colour, other_size, ctx.uid())
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
                canvas.try_place(s, c, z, ctx.uid())
        elif i != k:  # every other image holds a look-alike, so no image is empty
            canvas.try_place(*ctx.look_alike(shape, colour), ctx.uid())
        ctx.fill(canvas, ctx.n_distractors(), lambda s, c, z: (s, c) != (shape, colour))
    reference = _description(ctx, shape, colour, size, need_size=size_trap)
    question = ctx.template(QUESTIONS["group_grounding"], desc=reference.text)
    return Built(canvases, question, k, (k, target), reference)


def common_object(ctx: Ctx) -> Built:
    n = ctx.n_images(2)
    canvases = [ctx.canvas() for _ in range(n)]
    shape, colour, _ = ctx.kind()
    uid = ctx.uid()
    common = [c.place(shape, colour, ctx.size(), uid, protected=True) for c in canvases]
    for i, canvas in enumerate(canvases):
        others = [c for j, c in enumerate(canvases) if j != i]

        def allowed(s: str, c: str, z: str, canvas: Canvas = canvas, others=others) -> bool:
            # Unique within the image, and never a second object common to all images.
            kind = (s, c)
            return kind not in canvas.kinds() and not all(kind in o.kinds() for o in others)

        ctx.fill(canvas, ctx.n_distractors(), allowed)
    k = ctx.rng.randint(1, n)
    question = ctx.template(QUESTIONS["common_object"], k=k)
    reference = CommonObject(match={"category": shape, "colour": colour})
    relations = [{"type": "same_object", "object": uid, "images": list(range(1, n + 1))}]
    return Built(canvases, question, k, (k, common[k - 1]), reference, relations)


def diff(ctx: Ctx) -> Built:
    first = ctx.canvas()
    count = max(1, ctx.n_distractors()) + 1
    for _ in range(count):
        shape, colour, size = ctx.kind()
        if (shape, colour) not in first.kinds():  # protected: any of them may become the target
            first.try_place(shape, colour, size, ctx.uid(), protected=True)
    if not first.objects:
        raise NoRoom
    second = ctx.canvas(first.background)
    second.used = set(first.used)
    second.objects = [replace(o) for o in first.objects]
    change = ctx.rng.choice(("added", "removed", "changed"))
    relation: dict[str, Any] = {"type": "difference", "change": change, "images": [1, 2]}
    if change == "added":
        shape, colour, size = ctx.kind()
        where, target = 2, second.place(shape, colour, size, ctx.uid(), protected=True)
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
    question = ctx.template(QUESTIONS["diff"])
    reference = Difference(images=[1, 2], change=change)
    relations = [{"type": "same_scene", "images": [1, 2]}, relation]
    return Built([first, second], question, None, (where, target), reference, relations)


def visual_reference(ctx: Ctx) -> Built:
    n = ctx.n_images(2)
    canvases = [ctx.canvas() for _ in range(n)]
    shape, colour, size = ctx.kind()
    uid = ctx.uid()
    marked = canvases[0].place(shape, colour, size, uid, marked=True)
    same = [marked]
    for canvas in canvases[1:]:  # the same object, moved and maybe rescaled
        same.append(canvas.place(shape, colour, ctx.size(), uid, protected=True))
        canvas.try_place(*ctx.look_alike(shape, colour), ctx.uid())
    for canvas in canvases:
        ctx.fill(canvas, ctx.n_distractors(), lambda s, c, z: (s, c) != (shape, colour))
    k = ctx.rng.randint(2, n)
    question = ctx.template(QUESTIONS["visual_reference"], k=k)
    reference = MarkedObject(image=1, match={"category": shape, "colour": colour})
    relations = [{"type": "same_object", "object": uid, "images": list(range(1, n + 1))}]
    return Built(canvases, question, k, (k, same[k - 1]), reference, relations, marked)


def reasoning(ctx: Ctx) -> Built:
    n = ctx.n_images(2)
    canvases = [ctx.canvas() for _ in range(n)]
    shape, colour, size = ctx.kind()
    marked = canvases[0].place(shape, colour, size, ctx.uid(), marked=True)
    k = ctx.rng.randint(2, n)
    other_shape = ctx.rng.choice([s for s in ctx.config.shapes if s != shape])
    target = canvases[k - 1].place(other_shape, colour, ctx.size(), ctx.uid(), protected=True)
    # Traps: the marked object's shape in another colour, and maybe its exact twin.
    trap_colour = ctx.rng.choice([c for c in ctx.config.colours if c != colour])
    canvases[k - 1].try_place(shape, trap_colour, ctx.size(), ctx.uid())
    if ctx.rng.random() < 0.5:
        canvases[k - 1].try_place(shape, colour, ctx.size(), ctx.uid())
    for i, canvas in enumerate(canvases, 1):
        if i == k:  # nothing else of that colour, so one object answers
            ctx.fill(canvas, ctx.n_distractors(), lambda s, c, z: c != colour)
        else:
            ctx.fill(canvas, ctx.n_distractors())
    question = ctx.template(QUESTIONS["reasoning"], k=k)
    reference = TwoHop(image=1, match={"colour": colour}, differ={"category": shape})
    return Built(canvases, question, k, (k, target), reference, marked=marked)


def _crop_box(ctx: Ctx, source: Canvas, crops: list[PixelBox]) -> PixelBox | None:
    """A square crop of the source around one of its objects, overlapping the earlier crops
    by less than half; None after 30 tries."""
    cfg, rng, S = ctx.config, ctx.rng, ctx.config.image_size
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
        if all(overlap(box, c) < area(box) // 2 for c in crops):
            return box
        anchor = rng.choice(source.objects).box
    return None


def _crop(ctx: Ctx, source: Canvas, box: PixelBox) -> Canvas:
    """The canvas of a crop: the source's objects visible enough to name, scaled up."""
    S = ctx.config.image_size
    crop = Canvas(ctx.config, ctx.rng, source.background)
    crop.crop_of = (1, box)
    scale = S / (box[2] - box[0])
    for obj in source.objects:
        x1, y1 = max(obj.box[0], box[0]), max(obj.box[1], box[1])
        x2, y2 = min(obj.box[2], box[2]), min(obj.box[3], box[3])
        if x2 <= x1 or y2 <= y1 or (x2 - x1) * (y2 - y1) * 4 < area(obj.box):
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
    return crop


def region(ctx: Ctx) -> Built:
    n = ctx.n_images(2)
    source = ctx.canvas()
    # Enough objects that crops show something: at least one per crop.
    for _ in range(max(n - 1, ctx.n_distractors() + 1)):
        shape, colour, size = ctx.kind()
        if (shape, colour) not in source.kinds():
            source.try_place(shape, colour, size, ctx.uid())
    if not source.objects:
        raise NoRoom
    crops: list[PixelBox] = []
    for _ in range(n - 1):
        box = _crop_box(ctx, source, crops)
        if box is None:
            break
        crops.append(box)
    if not crops:
        raise NoRoom
    S = ctx.config.image_size
    canvases = [source, *(_crop(ctx, source, box) for box in crops)]
    relations = [
        {"type": "crop_of", "image": j, "source": 1, "box": [v / S for v in box]}
        for j, box in enumerate(crops, 2)
    ]
    j = ctx.rng.randint(2, len(canvases))
    question = ctx.template(QUESTIONS["region"], j=j)
    x1, y1, x2, y2 = crops[j - 2]
    box = (x1 / S, y1 / S, x2 / S, y2 / S)
    reference = Region(image=j, source=1)
    return Built(canvases, question, 1, None, reference, relations, region=box)


#: Every family by name; ``WorldConfig.families`` chooses among them.
TASK_FAMILIES: dict[str, Callable[[Ctx], Built]] = {
    "single_object": single_object,
    "common_object": common_object,
    "diff": diff,
    "visual_reference": visual_reference,
    "region": region,
    "group_grounding": group_grounding,
    "reasoning": reasoning,
    "name_object": name_object,
    "referring": referring,
}
