"""Model families: one record each, all mirg must know about a family in one place.

Built-ins resolve by short name (``qwen2.5-vl``), a user's own by dotted path
(``my_pkg.module.FAMILY``). A model is of the built-in family of its ``model_type``, or of
the family its ``config.json`` names under ``mirg_family`` (``mirg tiny-model --family``
writes it and every ``save_pretrained`` carries it on), so the family follows the model.
"""

from __future__ import annotations

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
    """One model family. ``tiny`` builds a tiny random-init model: a function ``(family,
    tokenizer, spec) -> (config, processor)`` or its ``"module:function"`` path."""

    name: str
    model_types: tuple[str, ...]  # transformers ``model_type``s detected as this family
    profile: str  # the coordinate profile it answers in (core.profiles.PROFILES, pure for verl)
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


#: LoRA on the language model's linear layers only: the vision tower has its own q/k/v and
#: MLP names in some families, hence the explicit language-model prefix.
LM_LINEAR = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def _qwen(name: str, model_types: tuple[str, ...], frame_factor: int) -> ModelFamily:
    """A built-in Qwen-VL family: it answers in its own profile, and its tiny builder is
    named after its first model_type."""
    tiny = f"mirg.models.tiny:{model_types[0]}"
    return ModelFamily(name, model_types, name, frame_factor, LM_LINEAR, ("visual",), tiny)


QWEN2_VL = _qwen("qwen2-vl", ("qwen2_vl",), 28)
QWEN2_5_VL = _qwen("qwen2.5-vl", ("qwen2_5_vl",), 28)
QWEN3_VL = _qwen("qwen3-vl", ("qwen3_vl", "qwen3_vl_moe"), 32)

#: The families mirg ships, by name; a model's ``model_type`` is looked up among these.
FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (QWEN2_VL, QWEN2_5_VL, QWEN3_VL)}


def get_family(name: str | ModelFamily) -> ModelFamily:
    """The family called ``name`` (built-in) or at dotted path ``name`` (a record passes)."""
    if isinstance(name, ModelFamily):
        return name
    found = resolve(name, FAMILIES, "family name", FamilyError, example="my_pkg.module.FAMILY")
    if not isinstance(found, ModelFamily):
        raise FamilyError(
            f"family {shown(name)} is {type(found).__name__}, not a ModelFamily "
            "(mirg.models.families.ModelFamily)"
        )
    return found
