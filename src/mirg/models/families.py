"""Model families: one record per family, everything mirg must know about it in one place.

A family's record names its coordinate profile (the profiles themselves stay in
``core/profiles.py``, pure, for verl), the side multiple of its frames, the default LoRA
targets, its vision tower's module names and the builder of a tiny random-init model.
Built-ins resolve by short name (``qwen2.5-vl``), a user's own by dotted path
(``my_pkg.module.FAMILY``), as rewards do. A model is of a family by its ``model_type``,
or, for a family mirg does not ship, by the ``mirg_family`` key of its ``config.json``
(which ``mirg tiny-model --family`` writes and every ``save_pretrained`` carries on).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from mirg.errors import MirgError, shown
from mirg.registry import import_attribute, resolve

#: The ``config.json`` key that names a model's family when its model_type does not.
CONFIG_KEY = "mirg_family"


class FamilyError(MirgError):
    """A family name that resolves to nothing usable (the message says why)."""


@dataclass(frozen=True)
class ModelFamily:
    """What mirg needs to know about one model family.

    ``tiny`` builds a tiny model: a function ``(family, tokenizer, spec) -> (config,
    processor)`` or its ``"module:function"`` path (imported only when a tiny model is built).
    """

    name: str
    model_types: tuple[str, ...]  # transformers ``model_type``s detected as this family
    profile: str  # the coordinate profile it answers in: a name in core.profiles.PROFILES
    frame_factor: int  # frames' side multiple (patch size x spatial merge), without a processor
    lora_targets: str | tuple[str, ...]  # LoRA's ``target_modules`` unless a recipe sets them
    vision_towers: tuple[str, ...]  # module names of its vision encoder (frozen when asked)
    tiny: str | Callable | None = None

    def tiny_builder(self) -> Callable:
        """The function that builds a tiny model of this family."""
        if self.tiny is None:
            raise FamilyError(f"family {self.name!r} has no tiny-model builder")
        if isinstance(self.tiny, str):
            return import_attribute(self.tiny, "tiny-model builder", FamilyError)  # type: ignore[return-value]
        return self.tiny


QWEN2_VL = ModelFamily(
    name="qwen2-vl",
    model_types=("qwen2_vl",),
    profile="qwen2-vl",
    frame_factor=28,
    # the language model's linear layers only: the vision tower has its own q/k/v and MLP
    # names in some families, hence the explicit language-model prefix
    lora_targets=r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)",
    vision_towers=("visual",),
    tiny="mirg.models.tiny:qwen2_vl",
)
QWEN2_5_VL = dataclasses.replace(
    QWEN2_VL,
    name="qwen2.5-vl",
    model_types=("qwen2_5_vl",),
    profile="qwen2.5-vl",
    tiny="mirg.models.tiny:qwen2_5_vl",
)
QWEN3_VL = dataclasses.replace(
    QWEN2_VL,
    name="qwen3-vl",
    model_types=("qwen3_vl", "qwen3_vl_moe"),
    profile="qwen3-vl",
    frame_factor=32,
    tiny="mirg.models.tiny:qwen3_vl",
)

#: The families mirg ships, by name; a model's ``model_type`` is looked up among these.
FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (QWEN2_VL, QWEN2_5_VL, QWEN3_VL)}
_BUILT_IN = {
    "qwen2-vl": f"{__name__}:QWEN2_VL",
    "qwen2.5-vl": f"{__name__}:QWEN2_5_VL",
    "qwen3-vl": f"{__name__}:QWEN3_VL",
}


def get_family(name: str | ModelFamily) -> ModelFamily:
    """The family called ``name`` (built-in) or at dotted path ``name`` (a record passes)."""
    if isinstance(name, ModelFamily):
        return name
    found = resolve(name, _BUILT_IN, "family name", FamilyError, example="my_pkg.module.FAMILY")
    if not isinstance(found, ModelFamily):
        raise FamilyError(
            f"family {shown(name)} is {type(found).__name__}, not a ModelFamily "
            "(mirg.models.families.ModelFamily)"
        )
    return found


def family_of_type(model_type: str | None) -> ModelFamily | None:
    """The built-in family of a transformers ``model_type``, or None."""
    return next((f for f in FAMILIES.values() if model_type in f.model_types), None)
