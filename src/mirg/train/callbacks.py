"""Grounding metrics while training, on held-out items.

Loss and reward curves do not say whether the model grounds better; this callback greedy-
decodes a held-out split and logs its benchmark's figures through the Trainer's logging (so
they reach ``report_to`` beside the loss). Each process decodes its share of the items;
ZeRO-3 weights are gathered for generation by TRL's ``unwrap_model_for_generation``.
``mirg train`` adds it when the recipe sets ``grounding_eval_path``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import Trainer, TrainerCallback

from mirg.core.scoring import Prediction
from mirg.eval.benchmarks import load_eval_items
from mirg.eval.generation import HFGenerator, answer_batch
from mirg.train.recipes import ConfigError


@dataclass(eq=False)
class GroundingEvalCallback(TrainerCallback):
    """Log ``grounding/<figure>`` for each figure of the items' benchmark over all of them
    (``acc@0.5``, ``miou``, ``image_acc``… under the strict protocol) every ``every``
    optimizer steps (checked at least 1 by the config) and at the last step."""

    trainer: Any
    items: Sequence[Any]
    profile: str
    every: int
    batch_size: int
    max_new_tokens: int
    history: list[dict[str, float]] = field(default_factory=list)

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self.measure(state.global_step)

    def measure(self, step: int) -> dict[str, float]:
        from accelerate.utils import gather_object
        from trl.models import unwrap_model_for_generation

        accelerator = self.trainer.accelerator
        processor = self.trainer.processing_class
        bench = self.items[0].benchmark
        mine = self.items[accelerator.process_index :: accelerator.num_processes]
        records = []
        with unwrap_model_for_generation(self.trainer.model_wrapped, accelerator) as model:
            was_training = model.training
            generator = HFGenerator(model, processor, self.max_new_tokens)
            for start in range(0, len(mine), self.batch_size):
                batch = mine[start : start + self.batch_size]
                messages = [bench.messages(it, "reasoning", self.profile) for it in batch]
                records += answer_batch(generator, processor, batch, messages)
            model.train(was_training)
        predictions = {}
        for r in gather_object(records):
            key = r.get("index", r.get("id"))
            sizes = tuple(tuple(s) for s in r["input_sizes"])
            predictions[key] = Prediction(key, r["response"], sizes)  # type: ignore[arg-type]
        metrics = bench.score(self.items, predictions, "strict", self.profile, None)
        logs = {
            f"grounding/{k}": float(v)
            for k, v in metrics[bench.summary].items()
            if k != "n" and isinstance(v, (int, float))
        }
        self.history.append({"step": float(step), **logs})
        # The Trainer's own log, not TRL's override: SFTTrainer and GRPOTrainer.log() flush
        # their running metrics (rewards, token accuracy) into whatever is logged, which
        # would take them from the step's regular log entry. Logging also clears the
        # step's should_log flag, which the regular entry (the loss) still needs.
        should_log = self.trainer.control.should_log
        Trainer.log(self.trainer, logs)
        self.trainer.control.should_log = should_log
        return logs


def add_grounding_eval(
    trainer: Any, config: Any, items: Sequence[Any], profile: str, max_new_tokens: int
) -> GroundingEvalCallback:
    """Add the grounding evaluation a config asks for (``grounding_eval_*`` keys)."""
    callback = GroundingEvalCallback(
        trainer,
        items,
        profile,
        config.grounding_eval_steps,
        config.grounding_eval_batch_size,
        config.grounding_eval_max_new_tokens or max_new_tokens,
    )
    trainer.add_callback(callback)
    return callback


def grounding_items(config: Any) -> list[Any]:
    """The held-out items of ``grounding_eval_path``, read before any model loads."""
    items = load_eval_items(
        config.grounding_eval_path,
        config.grounding_eval_image_root,
        limit=config.grounding_eval_limit,
        bench=config.grounding_eval_bench,
    )
    if not items:
        raise ConfigError(f"grounding_eval_path {config.grounding_eval_path} holds no items")
    return items
