"""Training configuration: TRL's own config dataclasses plus the few fields mirg owns.

``SFTTrainConfig`` is TRL's ``SFTConfig`` and ``GRPOTrainConfig`` is TRL's ``GRPOConfig``,
each with mirg's model, data and LoRA fields added, so every TRL and transformers option
(learning rate, ``num_generations``, ``beta``, ``use_vllm``, ``report_to`` …) is a config
key under its usual name. Recipes are YAML files of such keys; ``--key value`` on the
command line overrides them. A key that is not a field fails before anything loads,
naming the key (and the nearest known one), because a misspelt key silently ignored is a
training run wasted.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from trl import GRPOConfig, SFTConfig

from mirg.core.rewards import DEFAULT_WEIGHTS
from mirg.errors import MirgError

# LoRA targets: the language model's linear layers only (the vision tower has its own
# q/k/v and MLP names in some families, hence the explicit language-model prefix).
DEFAULT_LORA_TARGETS = (
    r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
)

# "iou" is plain IoU, not gated by the image: the baseline of the dual-reward ablation.
REWARD_NAMES = ("object", "image", "format", "iou")
DUAL_REWARDS = ("object", "image", "format")  # the default: mirg's image-aware dual reward


class ConfigError(MirgError):
    """A recipe or override that cannot be applied (unknown key, bad value)."""


@dataclass
class MirgArguments:
    """What mirg adds to TRL's configs: which model, which data, which coordinates."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Model folder or hub name (a tiny model, an SFT output, Qwen2.5-VL…)."},
    )
    dataset_path: str | None = field(
        default=None, metadata={"help": "Training JSONL (trajectories for SFT, samples for GRPO)."}
    )
    eval_dataset_path: str | None = field(
        default=None, metadata={"help": "Optional evaluation JSONL in the same format."}
    )
    image_root: str | None = field(
        default=None,
        metadata={"help": "Folder relative image paths point into (default: the JSONL's folder)."},
    )
    profile: str | None = field(
        default=None,
        metadata={
            "help": "Coordinate profile (qwen2-vl, qwen2.5-vl, qwen3-vl, normalized); default: "
            "the model family's. Required for families mirg does not know."
        },
    )
    min_pixels: int | None = field(
        default=None, metadata={"help": "Smallest image area the processor resizes to."}
    )
    max_pixels: int | None = field(
        default=None,
        metadata={"help": "Largest image area the processor resizes to (drives memory)."},
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use only the first N training samples."}
    )
    freeze_vision_tower: bool = field(
        default=True,
        metadata={"help": "Freeze the vision encoder (published recipes do); LM trains."},
    )
    model_dtype: str = field(
        default="auto",
        metadata={"help": "dtype the weights load in: auto, bfloat16, float16, float32."},
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "eager, sdpa or flash_attention_2 (default: sdpa)."}
    )
    use_peft: bool = field(default=False, metadata={"help": "Train LoRA adapters (PEFT)."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout."})
    lora_target_modules: str | None = field(
        default=None,
        metadata={"help": f"LoRA target regex (default: {DEFAULT_LORA_TARGETS})."},
    )
    check_images: str = field(
        default="exists",
        metadata={"help": "Before training: 'decode' every image, check it 'exists', or 'none'."},
    )

    def _mirg_post_init(self) -> None:
        """Resolve environment-dependent defaults before TRL's ``__post_init__`` runs."""
        import torch

        cuda = torch.cuda.is_available()
        if not cuda:
            self.use_cpu = True  # type: ignore[attr-defined]
        if getattr(self, "bf16", None) is None:
            # bf16 where supported: TRL turns it on unconditionally, which CPUs run slowly.
            self.bf16 = bool(cuda and torch.cuda.is_bf16_supported()) and not self.fp16  # type: ignore[attr-defined]
        if getattr(self, "activation_checkpointing", None) is None:
            # transformers 5 renamed gradient_checkpointing; TRL still sets the old name
            # (on by default). Resolve it here, without the deprecation warning.
            self.activation_checkpointing = self.gradient_checkpointing  # type: ignore[attr-defined]
        if getattr(self, "report_to", None) in (None, "default"):
            has_tb = importlib.util.find_spec("tensorboard") is not None
            self.report_to = "tensorboard" if has_tb else "none"  # type: ignore[attr-defined]
        if self.check_images not in ("decode", "exists", "none"):
            raise ConfigError(
                f"check_images must be decode, exists or none, got {self.check_images!r}"
            )


@dataclass
class SFTTrainConfig(MirgArguments, SFTConfig):
    """``mirg train sft``: TRL ``SFTConfig`` + mirg's model/data fields.

    Data: trajectory JSONL (``mirg trajectories``) with ``prompt`` (question text or
    messages), ``completion`` (text or messages) and ``images``. Prompt/completion format:
    the loss covers the answer only.
    """

    report_to: str | None = field(  # a list in YAML works too
        default="default",
        metadata={"help": "Loggers: tensorboard (default when installed), wandb, none, …"},
    )
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "Truncate sequences to this many tokens (default: none; truncating a "
            "multi-image prompt cuts image tokens, which fails)."
        },
    )
    merge_lora: bool = field(
        default=True,
        metadata={
            "help": "With use_peft: write the merged full model to output_dir at the end (the "
            "adapter goes to output_dir/adapter), so GRPO and evaluation load it directly."
        },
    )

    def __post_init__(self) -> None:
        self._mirg_post_init()
        super().__post_init__()


@dataclass
class GRPOTrainConfig(MirgArguments, GRPOConfig):
    """``mirg train grpo``: TRL ``GRPOConfig`` + mirg's model/data fields and reward weights.

    Data: sample JSONL (``mirg synth`` splits) or a GRPO export: ``question`` or
    ``prompt``, ``images``, ``target_image``, ``target_box``. Rewards: the core's object,
    image and format rewards as separate functions, weighted, each logged on its own.
    """

    report_to: str | None = field(  # a list in YAML works too
        default="default",
        metadata={"help": "Loggers: tensorboard (default when installed), wandb, none, …"},
    )
    rewards: list[str] = field(
        default_factory=lambda: list(DUAL_REWARDS),
        metadata={"help": "Reward functions, from object, image, format (each logged on its own)."},
    )
    object_reward_weight: float = field(
        default=DEFAULT_WEIGHTS["object"], metadata={"help": "Weight of the object (IoU) reward."}
    )
    image_reward_weight: float = field(
        default=DEFAULT_WEIGHTS["image"], metadata={"help": "Weight of the image reward."}
    )
    iou_reward_weight: float = field(
        default=1.0, metadata={"help": "Weight of the plain IoU reward (ablation baseline)."}
    )
    format_reward_weight: float = field(
        default=DEFAULT_WEIGHTS["format"], metadata={"help": "Weight of the format reward."}
    )

    def __post_init__(self) -> None:
        self._mirg_post_init()
        unknown = [r for r in self.rewards if r not in REWARD_NAMES]
        if unknown or not self.rewards:
            raise ConfigError(
                f"rewards must be a non-empty list from {', '.join(REWARD_NAMES)}, "
                f"got {self.rewards}"
            )
        if self.reward_weights is None:
            self.reward_weights = [float(getattr(self, f"{r}_reward_weight")) for r in self.rewards]
        elif len(self.reward_weights) != len(self.rewards):
            raise ConfigError(
                f"reward_weights has {len(self.reward_weights)} entries for rewards "
                f"{self.rewards}; "
                "set object_reward_weight / image_reward_weight / format_reward_weight instead"
            )
        super().__post_init__()


C = TypeVar("C")


def config_fields(cls: type) -> list[str]:
    """Keys a recipe may set for this config class."""
    return [f.name for f in dataclasses.fields(cls) if f.init]


def _unknown_key(key: str, cls: type, where: str) -> ConfigError:
    close = difflib.get_close_matches(key, config_fields(cls), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown config key {key!r} {where} for {cls.__name__}{hint}")


def read_recipe(path: str | Path, cls: type) -> dict[str, Any]:
    """A YAML recipe as a dict, every key checked against the config class."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file {p} does not exist")
    data = yaml.safe_load(p.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {p} must hold a mapping of keys to values")
    known = set(config_fields(cls))
    for key in data:
        if key not in known:
            raise _unknown_key(str(key), cls, f"in {p}")
    return data


def parse_overrides(overrides: list[str], cls: type) -> dict[str, Any]:
    """``--key value`` / ``--key=value`` / bare ``--flag`` pairs, typed by the config class.

    Values are parsed by transformers' ``HfArgumentParser`` for the same dataclass, so
    types (bools, lists, optional ints, JSON dicts) mean on the command line what they mean
    to every other TRL script.
    """
    from transformers import HfArgumentParser

    known = set(config_fields(cls))
    keys = []
    for token in overrides:
        if token.startswith("--"):
            key = token[2:].split("=", 1)[0]
            if key.startswith("no_") and key[3:] in known:
                key = key[3:]
            if key not in known:
                raise _unknown_key(key, cls, "on the command line")
            keys.append(key)
        elif not keys:
            raise ConfigError(f"expected --key value pairs, got {token!r}")
    if not keys:
        return {}
    parser = HfArgumentParser(cls, allow_abbrev=False)

    def error(message: str) -> None:
        raise ConfigError(f"command-line overrides: {message}")

    parser.error = error  # type: ignore[method-assign]
    # Parse into a namespace only (no dataclass yet): defaults are a sentinel so that
    # only keys given on the command line come back.
    sentinel = object()
    for action in parser._actions:
        action.default = sentinel
        action.required = False
    namespace, rest = parser.parse_known_args(overrides)
    if rest:
        raise ConfigError(f"cannot parse command-line overrides {rest}")
    return {k: v for k, v in vars(namespace).items() if v is not sentinel}


def load_config(
    cls: type[C], config: str | Path | None = None, overrides: list[str] | None = None
) -> C:
    """Build ``cls`` from a YAML recipe and command-line overrides (overrides win)."""
    values = read_recipe(config, cls) if config else {}
    values.update(parse_overrides(list(overrides or []), cls))
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {cls.__name__}: {exc}") from exc
