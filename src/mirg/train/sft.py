"""SFT on reasoning trajectories with TRL's ``SFTTrainer``.

mirg prepares the model (family, profile, pixel caps, attention, frozen vision tower, LoRA)
and the data (prompt/completion records whose loss covers the answer only, several
labelled images per prompt); TRL runs the training loop, checkpointing and logging.
"""

from __future__ import annotations

from typing import Any

from mirg.eval.generation import REASONING_MAX_NEW_TOKENS
from mirg.train.callbacks import add_grounding_eval
from mirg.train.configs import SFTTrainConfig
from mirg.train.data import sft_records, to_dataset
from mirg.train.setup import PreparedRun, TrainResult, prepare_run, train_and_save


def build_sft_trainer(
    config: SFTTrainConfig, callbacks: list | None = None, run: PreparedRun | None = None
) -> Any:
    """An ``SFTTrainer`` ready to train, after every input check has passed (``run``: the
    prepared run, when the caller has one)."""
    from trl import SFTTrainer, get_peft_config

    run = run or prepare_run(config, "sft", sft_records)
    # prompt/completion records: TRL puts the loss on the answer only (completion_only_loss
    # unset means True for them); prompt tokens, labels and image tokens carry none.
    trainer = SFTTrainer(
        model=run.loaded.model,
        args=config,
        train_dataset=to_dataset(run.train_rows),
        eval_dataset=to_dataset(run.eval_rows) if run.eval_rows else None,
        processing_class=run.loaded.processor,
        peft_config=get_peft_config(config),
        callbacks=callbacks,
    )
    if run.held_out:
        profile = run.loaded.profile.name
        add_grounding_eval(trainer, config, run.held_out, profile, REASONING_MAX_NEW_TOKENS)
    return trainer


def run_sft(config: SFTTrainConfig, callbacks: list | None = None) -> TrainResult:
    """Train (resuming the same run when asked), save the final model and processor."""
    run = prepare_run(config, "sft", sft_records)
    trainer = build_sft_trainer(config, callbacks, run)
    return train_and_save(trainer, config, run.identity, merge_lora=config.merge_lora)
