"""The knobs of the world and its named presets."""

from __future__ import annotations

from dataclasses import dataclass, replace

from mirg.data.synth.canvas import BACKGROUNDS, COLOURS, SHAPES, SIZES
from mirg.data.synth.families import TASK_FAMILIES
from mirg.errors import MirgError

#: The MIG-Bench-like default mix. ``referring`` (a pre-training family, the demo base's)
#: stays out of it so that default datasets keep their bytes.
DEFAULT_FAMILIES: tuple[str, ...] = (
    "common_object",
    "diff",
    "visual_reference",
    "region",
    "group_grounding",
    "reasoning",
    "single_object",
    "name_object",
)


@dataclass(frozen=True)
class WorldConfig:
    """The knobs of the world. ``cell`` > 0 aligns objects to a grid of that many pixels
    (28 for Qwen2/2.5-VL merged patches, 32 for Qwen3-VL): a small object fills one cell
    less a margin, a large one 2x2 cells. ``cell`` = 0 places objects freely with sides
    from ``min_object`` to ``max_object`` pixels."""

    families: tuple[str, ...] = DEFAULT_FAMILIES
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
        """Raise MirgError naming the knob that cannot work."""
        unknown = [f for f in self.families if f not in TASK_FAMILIES]
        if not self.families or unknown:
            raise MirgError(f"unknown families {unknown}; known: {', '.join(TASK_FAMILIES)}")
        if self.weights is not None and (
            len(self.weights) != len(self.families) or any(w < 0 for w in self.weights)
        ):
            raise MirgError("weights: one non-negative weight per family")
        if not 1 <= self.images[0] <= self.images[1] <= 6:
            raise MirgError(f"images: need 1 <= min <= max <= 6, got {self.images}")
        if not 0 <= self.distractors[0] <= self.distractors[1]:
            raise MirgError(f"distractors: need 0 <= min <= max, got {self.distractors}")
        if self.image_size < 32:
            raise MirgError(f"image_size {self.image_size} is below 32 pixels")
        if self.cell:
            if self.image_size % self.cell or self.image_size // self.cell < 2:
                raise MirgError(
                    f"cell {self.cell} must divide image_size {self.image_size} at least twice"
                )
            if "large" in self.sizes and self.image_size // self.cell < 3:
                raise MirgError("large objects (2x2 cells) need a grid of at least 3x3 cells")
        elif not 8 <= self.min_object < self.max_object <= self.image_size // 2:
            raise MirgError(
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
                raise MirgError(f"{name}: choose from {', '.join(known)}, got {values}")
        if len(self.shapes) < 2 or len(self.colours) < 2:
            raise MirgError("need at least two shapes and two colours for look-alikes")
        if not self.look_alike_changes or any(
            a not in ("colour", "shape") for a in self.look_alike_changes
        ):
            raise MirgError(
                f"look_alike_changes: choose from colour, shape, got {self.look_alike_changes}"
            )
        for name in ("occlusion", "same_place_look_alike"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise MirgError(f"{name} is a probability, got {getattr(self, name)}")
        if not 0 <= self.filler_words[0] <= self.filler_words[1]:
            raise MirgError(f"filler_words: need 0 <= min <= max, got {self.filler_words}")
        return self


#: The small world of the presets that tiny models learn on CPU: 84-px images, one object
#: per image on a 3x3 grid of 28-px cells, one question template per family.
SMALL_WORLD = WorldConfig(
    image_size=84, distractors=(0, 0), sizes=("small",), backgrounds=("flat",), fixed_layout=True
)

#: Named presets, from single-image localisation upwards: ``single``, one image with one
#: object; ``starter``, the easiest cross-image variant (two such images, the same object in
#: both, the question names the image); ``binding``, which image holds the described object
#: (one object per image, the other image holds a look-alike).
PRESETS: dict[str, WorldConfig] = {
    "single": replace(SMALL_WORLD, families=("single_object",), images=(1, 1)),
    "starter": replace(SMALL_WORLD, families=("common_object",), images=(2, 2)),
    "binding": replace(SMALL_WORLD, families=("group_grounding",), images=(2, 2)),
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
