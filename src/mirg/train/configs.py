"""Training configuration: TRL's ``ModelConfig`` + ``SFTConfig``/``GRPOConfig`` with the few
fields mirg owns (data, coordinate profile, pixel caps, vision-tower freezing, rewards).
Every TRL and transformers option is a key under its usual name, in recipes read and
checked by :mod:`mirg.train.recipes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trl import GRPOConfig, ModelConfig, SFTConfig

from mirg.core.rewards import DEFAULT_WEIGHTS, REWARDS
from mirg.errors import shown
from mirg.train.precision import check_precision, env_flag
from mirg.train.recipes import ConfigError, reward_function


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
    grounding_eval_bench: str | None = field(
        default=None,
        metadata={
            "help": "Which benchmark grounding_eval_path is: a name or dotted path, as mirg "
            "eval's --bench (default: recognised from the file)."
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
        asked_for_cpu = config.use_cpu or env_flag("ACCELERATE_USE_CPU")
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
        check_precision(config, config.dtype)
        ModelConfig.__post_init__(config)
        super(ModelConfig, config).__post_init__()  # SFTConfig's / GRPOConfig's


@dataclass
class SFTTrainConfig(MirgArguments, ModelConfig, SFTConfig):
    """``mirg train sft``: TRL ``ModelConfig`` + ``SFTConfig`` + mirg's data fields, on
    trajectory JSONL (prompt/completion: the loss covers the answer only)."""

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
    """``mirg train grpo``: TRL ``ModelConfig`` + ``GRPOConfig`` + mirg's data fields and
    rewards, on sample JSONL (``mirg synth`` splits or a GRPO export)."""

    rewards: list[str] = field(
        default_factory=lambda: list(DEFAULT_WEIGHTS),
        metadata={
            "help": f"Rewards, each logged on its own: {', '.join(REWARDS)} or a dotted path."
        },
    )
    # Recipe keys for weights (TRL's reward_weights when unset); defaults: the registry's.
    object_reward_weight: float = field(
        default=REWARDS["object"].weight, metadata={"help": "Weight of the object (IoU) reward."}
    )
    image_reward_weight: float = field(
        default=REWARDS["image"].weight, metadata={"help": "Weight of the image reward."}
    )
    iou_reward_weight: float = field(
        default=REWARDS["iou"].weight,
        metadata={"help": "Weight of the plain IoU reward (ablation baseline)."},
    )
    format_reward_weight: float = field(
        default=REWARDS["format"].weight, metadata={"help": "Weight of the format reward."}
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
                float(getattr(self, f"{r}_reward_weight", REWARDS[r].weight if r in REWARDS else 1))
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
