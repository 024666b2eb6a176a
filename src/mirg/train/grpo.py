"""Image-aware GRPO with TRL's ``GRPOTrainer`` and the core's dual rewards.

Each reward goes to TRL as a *separate* function with ``reward_weights``, so TRL logs each
component on its own (``rewards/object_reward/mean`` …) and sums them for the advantage;
every dataset column (``target_image``, ``target_box``, ``profile``, ``input_sizes`` …)
reaches every reward. Generation, the loss, the KL term and vLLM are TRL's.
"""

from __future__ import annotations

import contextlib
from typing import Any

from mirg.train.callbacks import add_grounding_eval
from mirg.train.configs import GRPOTrainConfig
from mirg.train.data import grpo_records, to_dataset
from mirg.train.recipes import reward_function
from mirg.train.reward_checks import check_reward_columns, checked_reward
from mirg.train.setup import PreparedRun, TrainResult, prepare_run, train_and_save


def build_grpo_trainer(
    config: GRPOTrainConfig, callbacks: list | None = None, run: PreparedRun | None = None
) -> Any:
    """A ``GRPOTrainer`` ready to train, after every input check has passed (the reward
    functions' too: each scores the first training row once; ``run``: the prepared run,
    when the caller has one)."""
    from trl import GRPOTrainer, get_peft_config

    run = run or prepare_run(config, "grpo", grpo_records)
    model, processor = run.loaded.model, run.loaded.processor
    train = to_dataset(run.train_rows, config.dataset_path)
    funcs = [reward_function(name) for name in config.rewards]
    check_reward_columns(train, funcs, processor)
    funcs = [checked_reward(func) for func in funcs]  # NaN or a wrong count fails, named
    engine: contextlib.AbstractContextManager = contextlib.nullcontext()
    if config.use_vllm:
        from mirg.train import vllm_engine

        engine = vllm_engine.trl_vllm_arguments(
            vllm_engine.prepare(config, model, processor, run.train_rows + run.eval_rows)
        )
    trainer_class = GRPOTrainer
    if config.dynamic_sampling:
        from mirg.train.dynamic_sampling import DynamicSamplingGRPOTrainer as trainer_class
    with engine:
        trainer = trainer_class(
            model=model,
            reward_funcs=funcs,
            args=config,
            train_dataset=train,
            eval_dataset=to_dataset(run.eval_rows, config.eval_dataset_path)
            if run.eval_rows
            else None,
            processing_class=processor,
            peft_config=get_peft_config(config),
            callbacks=callbacks,
        )
    if run.held_out:
        profile = run.loaded.profile.name
        add_grounding_eval(trainer, config, run.held_out, profile, config.max_completion_length)
    return trainer


def run_grpo(config: GRPOTrainConfig, callbacks: list | None = None) -> TrainResult:
    """Train (resuming the same run when asked), save the final model (LoRA: merged)."""
    run = prepare_run(config, "grpo", grpo_records)
    trainer = build_grpo_trainer(config, callbacks, run)
    return train_and_save(trainer, config, run.identity, merge_lora=True)
