"""Image-aware GRPO with TRL's ``GRPOTrainer`` and the core's dual rewards.

The object reward (IoU, earned only on the right image), the image reward and the format
reward (or any reward named by dotted path) go to TRL as *separate* reward functions with
``reward_weights``, so TRL logs each component on its own (``rewards/object_reward/mean``
…) and sums them for the advantage. The dataset carries the columns they read
(``target_image``, ``target_box``, ``profile``, ``input_sizes``); TRL hands every column
to every reward function, one entry per completion. Generation, the GRPO loss, the KL term
and vLLM are TRL's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mirg.train.common import (
    freeze_vision_tower,
    load_for_training,
    logger,
    require,
    resume_checkpoint,
    save_final,
)
from mirg.train.configs import GRPOTrainConfig, reward_function
from mirg.train.data import grpo_records, to_dataset
from mirg.train.sft import TrainResult


def check_reward_columns(dataset: Any, funcs: list[Callable[..., list[float]]]) -> None:
    """Call each reward once on the first row, so a missing column fails before training."""
    row = dataset[0]
    columns = {k: [v] for k, v in row.items() if k != "prompt"}
    for func in funcs:
        try:
            func(["<think></think><answer>{}</answer>"], **columns)
        except KeyError as exc:
            raise KeyError(f"reward {func.__name__}: {exc.args[0]}") from None


def build_grpo_trainer(config: GRPOTrainConfig, callbacks: list | None = None) -> Any:
    """A ``GRPOTrainer`` ready to train, after every input check has passed."""
    from trl import GRPOTrainer, get_peft_config

    require(config, "model_name_or_path", "dataset_path", "output_dir")
    loaded = load_for_training(config)
    common = {"image_root": config.image_root, "check_images": config.check_images}
    train = to_dataset(
        grpo_records(
            config.dataset_path,  # type: ignore[arg-type]
            loaded.profile,
            loaded.processor,
            max_samples=config.max_train_samples,
            **common,
        )
    )
    evaluation = None
    if config.eval_dataset_path:
        evaluation = to_dataset(
            grpo_records(config.eval_dataset_path, loaded.profile, loaded.processor, **common)
        )
    funcs = [reward_function(name) for name in config.rewards]
    check_reward_columns(train, funcs)
    model = loaded.model
    if config.freeze_vision_tower:
        frozen = freeze_vision_tower(model)
        logger.info("froze %s vision-tower parameters", f"{frozen:,}")
    return GRPOTrainer(
        model=model,
        reward_funcs=funcs,
        args=config,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=loaded.processor,
        peft_config=get_peft_config(config),
        callbacks=callbacks,
    )


def run_grpo(config: GRPOTrainConfig, callbacks: list | None = None) -> TrainResult:
    """Train (resuming when asked), save the final model and processor, return the result."""
    trainer = build_grpo_trainer(config, callbacks)
    output = trainer.train(resume_from_checkpoint=resume_checkpoint(config))
    save_final(trainer, config, merge_lora=True)
    return TrainResult(
        output_dir=str(config.output_dir),
        global_step=trainer.state.global_step,
        log_history=list(trainer.state.log_history),
        train_loss=getattr(output, "training_loss", None),
    )
