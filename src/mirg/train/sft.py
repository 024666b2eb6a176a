"""SFT on reasoning trajectories with TRL's ``SFTTrainer``.

mirg prepares the model (family, profile, pixel caps, attention, frozen vision tower, LoRA)
and the data (prompt/completion records whose loss covers the answer only, several
labelled images per prompt); TRL runs the training loop, checkpointing and logging.
"""

from __future__ import annotations

from typing import Any

from mirg.train.callbacks import add_grounding_eval, grounding_items
from mirg.train.common import (
    TrainResult,
    freeze_vision_tower,
    load_for_training,
    logger,
    require,
    train_and_save,
)
from mirg.train.configs import SFTTrainConfig
from mirg.train.data import sft_records, to_dataset
from mirg.train.runs import check_output_dir

#: Longest answer while scoring the held-out split during SFT (evaluation's own default).
SFT_EVAL_MAX_NEW_TOKENS = 1024


def build_sft_trainer(config: SFTTrainConfig, callbacks: list | None = None) -> Any:
    """An ``SFTTrainer`` ready to train, after every input check has passed.

    Before any model loads: required keys, the output folder (it must not hold another
    run), the held-out grounding split when one is configured.
    """
    from trl import SFTTrainer, get_peft_config

    require(config, "model_name_or_path", "dataset_path", "output_dir")
    check_output_dir(config, "sft")
    held_out = grounding_items(config) if config.grounding_eval_path else None
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
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=loaded.processor,
        peft_config=get_peft_config(config),
        callbacks=callbacks,
    )
    if held_out:
        add_grounding_eval(trainer, config, held_out, loaded.profile.name, SFT_EVAL_MAX_NEW_TOKENS)
    return trainer


def run_sft(config: SFTTrainConfig, callbacks: list | None = None) -> TrainResult:
    """Train (resuming the same run when asked), save the final model and processor."""
    trainer = build_sft_trainer(config, callbacks)
    return train_and_save(trainer, config, "sft", merge_lora=config.merge_lora)
