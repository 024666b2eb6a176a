"""SFT on reasoning trajectories with TRL's ``SFTTrainer``.

mirg prepares the model (family, profile, pixel caps, frozen vision tower, LoRA) and the
data (prompt/completion records whose loss covers the answer only, several labelled
images per prompt); TRL runs the training loop, checkpointing and logging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mirg.train.common import (
    freeze_vision_tower,
    load_for_training,
    logger,
    require,
    resume_checkpoint,
    save_final,
)
from mirg.train.configs import SFTTrainConfig
from mirg.train.data import sft_records, to_dataset


@dataclass
class TrainResult:
    """What a run did: where it wrote, how many steps, its log history."""

    output_dir: str
    global_step: int
    log_history: list[dict]
    train_loss: float | None


def build_sft_trainer(config: SFTTrainConfig, callbacks: list | None = None) -> Any:
    """An ``SFTTrainer`` ready to train, after every input check has passed."""
    from trl import SFTTrainer, get_peft_config

    require(config, "model_name_or_path", "dataset_path", "output_dir")
    loaded = load_for_training(config)
    common = {
        "image_root": config.image_root,
        "check_images": config.check_images,
    }
    train = to_dataset(
        sft_records(
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
            sft_records(config.eval_dataset_path, loaded.profile, loaded.processor, **common)
        )
    # prompt/completion records: TRL puts the loss on the answer only (completion_only_loss
    # unset means True for them); prompt tokens, labels and image tokens carry none.
    model = loaded.model
    if config.freeze_vision_tower:
        frozen = freeze_vision_tower(model)
        logger.info("froze %s vision-tower parameters", f"{frozen:,}")
    return SFTTrainer(
        model=model,
        args=config,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=loaded.processor,
        peft_config=get_peft_config(config),
        callbacks=callbacks,
    )


def run_sft(config: SFTTrainConfig, callbacks: list | None = None) -> TrainResult:
    """Train (resuming when asked), save the final model and processor, return the result."""
    trainer = build_sft_trainer(config, callbacks)
    output = trainer.train(resume_from_checkpoint=resume_checkpoint(config))
    save_final(trainer, config, merge_lora=config.merge_lora)
    return TrainResult(
        output_dir=str(config.output_dir),
        global_step=trainer.state.global_step,
        log_history=list(trainer.state.log_history),
        train_loss=getattr(output, "training_loss", None),
    )
