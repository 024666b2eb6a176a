"""Training configuration: TRL's config dataclasses, parsed by TRL's parser, plus mirg's data.

``SFTTrainConfig`` is TRL's ``ModelConfig`` + ``SFTConfig`` and ``GRPOTrainConfig`` is
``ModelConfig`` + ``GRPOConfig``, each with the few fields mirg owns (data, coordinate
profile, pixel caps, vision-tower freezing, reward weights). Every TRL and transformers
option (``learning_rate``, ``dtype``, ``lora_r``, ``num_generations``, ``use_vllm`` …) is a
key under its usual name. Recipes are YAML files of such keys and ``--key value`` overrides
them, both read by TRL's ``TrlParser``. A key that is not a field fails before anything
loads, naming the key and the nearest known one: a misspelt key silently ignored is a
training run wasted.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import enum
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from trl import GRPOConfig, ModelConfig, SFTConfig, TrlParser

from mirg.core.rewards import DEFAULT_WEIGHTS
from mirg.errors import MirgError, shown
from mirg.registry import resolve_function

# Short reward names: ``object`` is mirg.core.rewards.object_reward, and so on. "iou" is
# plain IoU, not gated by the image: the baseline of the dual-reward ablation.
CORE_REWARDS = ("object", "image", "format", "iou")


class ConfigError(MirgError):
    """A recipe or override that cannot be applied (unknown key, bad value)."""


def reward_function(name: str) -> Callable[..., list[float]]:
    """A core reward by short name (``object``) or any function by dotted path."""
    table = {short: f"mirg.core.rewards:{short}_reward" for short in CORE_REWARDS}
    return resolve_function(
        name,
        table,
        "reward",
        ConfigError,
        "takes completions (and the dataset columns) and returns one number per completion",
    )


def _env_flag(name: str) -> bool:
    """A flag accelerate's launcher sets for the processes it starts (``true``/``True``)."""
    return os.environ.get(name, "").lower() == "true"


def _low_precision_error(config: Any, dtype: str) -> ConfigError | None:
    """Why a full fine-tune of ``dtype`` weights would not learn, or None when it would.

    The optimizer updates the weights in their own dtype unless something keeps fp32
    master weights: LoRA (PEFT trains adapters in fp32) or DeepSpeed ZeRO.
    """
    deepspeed = config.deepspeed or _env_flag("ACCELERATE_USE_DEEPSPEED")
    if dtype not in ("bfloat16", "float16") or config.use_peft or deepspeed:
        return None
    return ConfigError(
        f"a full fine-tune of {dtype} weights without fp32 master weights loses its updates: "
        "the smallest change a bfloat16 weight of 0.02 keeps is about 6e-5 (float16: about "
        "8e-6), above learning rates of 1e-6 to 5e-6, so most optimizer steps round to zero. "
        "Load the weights in float32 (dtype: float32) and keep bf16: true "
        "(the Trainer runs the compute in bf16 autocast), or train LoRA (use_peft: true), or "
        "launch under DeepSpeed ZeRO, which keeps fp32 master weights"
    )


def check_trainable_dtypes(config: Any, model: Any) -> None:
    """Refuse low-precision trainable weights without master weights (``dtype: auto``)."""
    for param in model.parameters():
        if param.requires_grad:
            error = _low_precision_error(config, str(param.dtype).removeprefix("torch."))
            if error:
                raise error


@dataclass
class MirgArguments:
    """What mirg adds to TRL's configs: which data, which coordinates, which images."""

    dataset_path: str | None = field(
        default=None, metadata={"help": "Training JSONL (trajectories for SFT, samples for GRPO)."}
    )
    eval_dataset_path: str | None = field(
        default=None, metadata={"help": "Optional evaluation JSONL in the same format."}
    )
    image_root: str | None = field(
        default=None,
        metadata={
            "help": "The one folder training reads images from: relative paths point into "
            "it, and a path leading outside it is refused (default: the folder above the "
            "JSONL's folder; relative paths are looked up in the JSONL's folder, then its parent)."
        },
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
    check_images: str = field(
        default="exists",
        metadata={"help": "Before training: 'decode' every image, check it 'exists', or 'none'."},
    )
    attn_implementation: str | None = field(  # TRL's ModelConfig key, with mirg's default
        default="auto",
        metadata={
            "help": "Attention: auto (flash_attention_2 where flash-attn is installed on a GPU, "
            "else sdpa), flash_attention_2, sdpa or eager. The one used is logged."
        },
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Start afresh in an output_dir that holds another run (its checkpoints are "
            "removed); without it such a folder is refused instead of silently resumed."
        },
    )
    grounding_eval_path: str | None = field(
        default=None,
        metadata={
            "help": "Held-out split (mirg JSONL or MIG_data.json) to score with the strict "
            "protocol while training: grounding/acc@0.5, miou, image_acc go to report_to."
        },
    )
    grounding_eval_image_root: str | None = field(
        default=None,
        metadata={"help": "Image folder of grounding_eval_path (needed for MIG_data.json)."},
    )
    grounding_eval_steps: int = field(
        default=100, metadata={"help": "Score the held-out split every N optimizer steps."}
    )
    grounding_eval_limit: int | None = field(
        default=None, metadata={"help": "Score only the first N held-out items of each task."}
    )
    grounding_eval_batch_size: int = field(
        default=8, metadata={"help": "Prompts per generate call while scoring the held-out split."}
    )
    grounding_eval_max_new_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Longest answer while scoring the held-out split (default: GRPO's "
            "max_completion_length, SFT's 1024)."
        },
    )

    def __post_init__(self) -> None:
        """mirg's defaults and checks, then ``ModelConfig``'s and the TRL config's own."""
        import torch

        config: Any = self  # an SFTTrainConfig or GRPOTrainConfig: TRL's fields are there
        asked_for_cpu = config.use_cpu or _env_flag("ACCELERATE_USE_CPU")
        if not asked_for_cpu and not torch.accelerator.is_available():
            raise ConfigError(
                "no GPU is available (torch finds no CUDA or other accelerator device) and "
                "use_cpu is not set: this run would train on the CPU. Set use_cpu: true "
                "(--use_cpu true) to train on the CPU on purpose, or fix the GPU setup "
                "(driver, CUDA_VISIBLE_DEVICES)"
            )
        if config.bf16 is None:
            # TRL turns bf16 on everywhere; CPUs and pre-Ampere GPUs run it slowly or not at all.
            gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
            config.bf16 = gpu_bf16 and not (config.use_cpu or config.fp16)
        if getattr(config, "activation_checkpointing", False) is None:
            # transformers 5.23 renamed gradient_checkpointing to activation_checkpointing;
            # recipes use the old name, which every supported transformers reads (TRL sets it,
            # on by default). Where the new name exists, resolve it here, without the
            # deprecation warning.
            config.activation_checkpointing = config.gradient_checkpointing
        if self.check_images not in ("decode", "exists", "none"):
            raise ConfigError(
                f"check_images must be decode, exists or none, got {shown(self.check_images)}"
            )
        from mirg.models.placement import ATTENTIONS

        if (self.attn_implementation or "auto") not in ATTENTIONS:
            raise ConfigError(
                f"attn_implementation must be one of {', '.join(ATTENTIONS)}, "
                f"got {shown(self.attn_implementation)}"
            )
        if str(self.grounding_eval_path).lower() in ("", "none"):
            self.grounding_eval_path = None  # --grounding_eval_path none: a recipe's, switched off
        if self.grounding_eval_path and self.grounding_eval_steps < 1:
            raise ConfigError(
                f"grounding_eval_steps must be at least 1, got {self.grounding_eval_steps}"
            )
        error = _low_precision_error(config, config.dtype)
        if error:
            raise error
        ModelConfig.__post_init__(config)
        super(ModelConfig, config).__post_init__()  # SFTConfig's / GRPOConfig's


@dataclass
class SFTTrainConfig(MirgArguments, ModelConfig, SFTConfig):
    """``mirg train sft``: TRL ``ModelConfig`` + ``SFTConfig`` + mirg's data fields.

    Data: trajectory JSONL (``mirg trajectories``) with ``prompt`` (question text or
    messages), ``completion`` (text or messages) and ``images``. Prompt/completion format:
    the loss covers the answer only.
    """

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


@dataclass
class GRPOTrainConfig(MirgArguments, ModelConfig, GRPOConfig):
    """``mirg train grpo``: TRL ``ModelConfig`` + ``GRPOConfig`` + mirg's data and rewards.

    Data: sample JSONL (``mirg synth`` splits) or a GRPO export: ``question`` or
    ``prompt``, ``images``, ``target_image``, ``target_box``. Rewards: the core's object,
    image and format rewards as separate functions, weighted, each logged on its own.
    """

    rewards: list[str] = field(
        default_factory=lambda: ["object", "image", "format"],
        metadata={
            "help": "Reward functions, each logged on its own: object, image, format, iou "
            "(mirg.core.rewards) or a dotted path (my_pkg.rewards.my_reward)."
        },
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
    dynamic_sampling: bool = field(
        default=False,
        metadata={
            "help": "DAPO's dynamic sampling: drop groups whose rewards do not vary (they "
            "carry no advantage) and refill the batch with groups of further prompts "
            "(mirg.train.dynamic_sampling); the share dropped and the extra completions are "
            "logged under dynamic_sampling/."
        },
    )
    dynamic_sampling_max_rounds: int = field(
        default=4,
        metadata={
            "help": "With dynamic_sampling: most generation rounds per batch, the first "
            "included; a batch still short then is completed with dropped groups masked out "
            "of the loss."
        },
    )

    def __post_init__(self) -> None:
        if self.dynamic_sampling_max_rounds < 1:
            raise ConfigError(
                "dynamic_sampling_max_rounds must be at least 1, got "
                f"{self.dynamic_sampling_max_rounds}"
            )
        if not self.rewards:
            raise ConfigError("rewards must be a non-empty list")
        for name in self.rewards:
            reward_function(name)  # fails here, naming the reward, not after the model loads
        if self.reward_weights is None:
            self.reward_weights = [
                float(getattr(self, f"{r}_reward_weight")) if r in CORE_REWARDS else 1.0
                for r in self.rewards
            ]
        elif len(self.reward_weights) != len(self.rewards):
            raise ConfigError(
                f"reward_weights has {len(self.reward_weights)} entries for rewards "
                f"{self.rewards}; "
                "set object_reward_weight / image_reward_weight / format_reward_weight instead"
            )
        super().__post_init__()
        per_process = self.per_device_train_batch_size * self.steps_per_generation
        if self.dynamic_sampling and (
            self.scale_rewards == "batch"
            or self.multi_objective_aggregation != "sum_then_normalize"
        ):
            raise ConfigError(
                "dynamic_sampling keeps groups from several generation rounds in one batch, so "
                "each group's advantages must depend on that group only: use scale_rewards "
                "group or none with multi_objective_aggregation sum_then_normalize (got "
                f"{self.scale_rewards}, {self.multi_objective_aggregation})"
            )
        if self.dynamic_sampling and per_process % self.num_generations:
            raise ConfigError(
                "dynamic_sampling keeps whole groups on each process: per_device_train_batch_size"
                f" x steps_per_generation ({per_process}) must be a multiple of num_generations "
                f"({self.num_generations})"
            )


C = TypeVar("C")


def _reject_unknown(keys: Sequence[str], cls: type, where: str) -> None:
    known = {f.name for f in dataclasses.fields(cls) if f.init}
    for key in keys:
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown config key {shown(key)} {where} for {cls.__name__}{hint}")


def _describe(hint: Any) -> str:
    """A field type in words, for error messages."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(dict.fromkeys(_describe(a) for a in typing.get_args(hint)))
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(hint))
    if origin in (list, tuple) or hint in (list, tuple):
        args = typing.get_args(hint)
        return f"a list of {_describe(args[0])} values" if args else "a list"
    if origin is dict or hint is dict:
        return "a mapping"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(repr(e.value) for e in hint)
    words = {int: "an integer", float: "a number", bool: "true or false", str: "text"}
    return "null" if hint is type(None) else words.get(hint, getattr(hint, "__name__", str(hint)))


def _fits(hint: Any, value: Any) -> bool:
    """Whether a recipe value can become a field of type ``hint``, as TRL's parser would
    convert it (a string holding a number fits a number: YAML reads ``1e-4`` as text)."""
    origin = typing.get_origin(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_fits(a, value) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if origin in (list, tuple) or hint in (list, tuple):
        args = typing.get_args(hint)
        return isinstance(value, list) and (not args or all(_fits(args[0], v) for v in value))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is bool:
        words = ("true", "false", "yes", "no", "t", "f", "y", "n", "1", "0")
        return isinstance(value, bool) or (isinstance(value, str) and value.lower() in words)
    if hint in (int, float):
        if isinstance(value, bool):
            return False
        if isinstance(value, str):
            try:
                hint(value)
            except ValueError:
                return False
            return True
        return isinstance(value, int) or (hint is float and isinstance(value, float))
    if hint is str:
        return isinstance(value, (str, int, float, bool))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return value in {e.value for e in hint} or isinstance(value, hint)
    return True  # a type YAML cannot write (ParallelismConfig …): its own class checks it


def _check_values(values: Mapping[str, Any], cls: type, where: str) -> None:
    """Every value of the right type for its key, before anything loads: ``max_steps: [1, 2]``
    would otherwise fail inside transformers after the model has loaded."""
    hints = typing.get_type_hints(cls)
    for key, value in values.items():
        hint = hints.get(key, Any)
        if not _fits(hint, value):
            raise ConfigError(
                f"{where}: key {key!r}: expected {_describe(hint)}, got {shown(value)}"
            )


#: What a recipe may hold: its size on disk, and its values as nodes (scalars, lists,
#: mappings) counted with every alias expanded, and how deeply they nest. A recipe is a
#: few dozen keys; nested aliases ("billion laughs") expand exponentially and must fail
#: before anything walks, copies or prints them.
MAX_RECIPE_BYTES = 1 << 20
MAX_RECIPE_NODES = 10_000
MAX_RECIPE_DEPTH = 32


def _recipe_extent(root: Any) -> tuple[int, int]:
    """(nodes, depth) of a composed YAML document with aliases expanded, each shared node
    measured once; stops counting past the limits. A node that contains itself (a
    recursive alias) counts as too large."""
    import yaml

    measured: dict[int, tuple[int, int]] = {}
    open_nodes: set[int] = set()
    too_big = (MAX_RECIPE_NODES + 1, MAX_RECIPE_DEPTH + 1)

    def measure(node: Any, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in measured:
            return measured[key]
        if key in open_nodes or depth > MAX_RECIPE_DEPTH:
            return too_big
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        open_nodes.add(key)
        nodes, deepest = 1, 0
        for child in children:
            n, d = measure(child, depth + 1)
            nodes, deepest = nodes + n, max(deepest, d)
            if nodes > MAX_RECIPE_NODES or deepest > MAX_RECIPE_DEPTH:
                break
        open_nodes.discard(key)
        measured[key] = (nodes, deepest + 1)
        return measured[key]

    return measure(root, 1)


def read_recipe(recipe: str | Path) -> dict[str, Any]:
    """The keys and values of a YAML recipe; malformed YAML fails naming the file and line,
    and so does a recipe that would expand past :data:`MAX_RECIPE_NODES` values (nested
    aliases) or nest deeper than :data:`MAX_RECIPE_DEPTH`."""
    import yaml

    path = Path(recipe)
    if not path.is_file():
        raise FileNotFoundError(f"config file {recipe} does not exist")
    size = path.stat().st_size
    if size > MAX_RECIPE_BYTES:
        raise ConfigError(
            f"config file {recipe}: {size:,} bytes; a recipe holds at most "
            f"{MAX_RECIPE_BYTES:,} (is this the right file?)"
        )
    text = path.read_text(encoding="utf-8")
    too_deep = ConfigError(
        f"config file {recipe}: its values nest deeper than {MAX_RECIPE_DEPTH} levels; "
        "a recipe is a mapping of keys to plain values"
    )
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        if node is None:
            return {}
        nodes, depth = _recipe_extent(node)
        if nodes > MAX_RECIPE_NODES:
            raise ConfigError(
                f"config file {recipe}: its values expand to more than {MAX_RECIPE_NODES:,} "
                "entries (nested YAML aliases?); write the values out plainly"
            )
        if depth > MAX_RECIPE_DEPTH:
            raise too_deep
        loader = yaml.SafeLoader("")
        try:
            values = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"config file {recipe}: malformed YAML{at}: {problem}") from None
    except RecursionError:  # the YAML parser's own recursion, before any node is measured
        raise too_deep from None
    if not values:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"config file {recipe} must hold a mapping of keys to values")
    return values


def load_config(
    cls: type[C],
    recipe: str | Path | None = None,
    overrides: Mapping[str, Any] | Sequence[str] | None = None,
) -> C:
    """Build ``cls`` from a YAML recipe and overrides, parsed by TRL's ``TrlParser``.

    ``overrides`` is a dict of typed values (``{"max_steps": 40}``) or command-line tokens
    (``["--max_steps", "40"]``, where ``--config FILE`` names the recipe, as in TRL's
    scripts); either wins over the recipe. Every key is checked before the config is
    built: an unknown one fails naming the file or the command line, and the nearest key.
    """
    tokens = [] if overrides is None or isinstance(overrides, Mapping) else list(overrides)
    if "--config" in tokens:
        at = tokens.index("--config")
        recipe = tokens[at + 1] if at + 1 < len(tokens) else ""
        del tokens[at : at + 2]
    values: dict[str, Any] = {}
    if recipe is not None:
        values = read_recipe(recipe)
        _reject_unknown([str(k) for k in values], cls, f"in {recipe}")
        _check_values(values, cls, f"config file {recipe}")
    if isinstance(overrides, Mapping):
        _reject_unknown(list(overrides), cls, "in the overrides")
        _check_values(overrides, cls, "overrides")
        values.update(overrides)
    parser = TrlParser(cls, allow_abbrev=False, exit_on_error=False)
    parser.set_defaults_with_config(**values)
    try:
        namespace, rest = parser.parse_known_args(tokens)
    except argparse.ArgumentError as exc:
        raise ConfigError(f"invalid value: {exc}") from None
    flags = [t[2:].split("=", 1)[0] for t in rest if t.startswith("--")]
    _reject_unknown(flags, cls, "on the command line")
    if rest:
        raise ConfigError(f"expected --key value pairs on the command line, got {rest}")
    try:
        return cls(**vars(namespace))
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid {cls.__name__}: {exc}") from exc
