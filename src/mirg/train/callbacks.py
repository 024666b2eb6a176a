"""Grounding metrics while training: strict Acc@0.5 and image accuracy on held-out items.

Loss and reward curves do not say whether the model grounds better; this callback greedy-
decodes a held-out split every ``every`` steps (and at the last step) and logs the strict
protocol's figures through the Trainer's logging (so they reach ``report_to`` beside the
loss). Each process decodes its share of the items; ZeRO-3 weights are gathered for
generation by TRL's ``unwrap_model_for_generation``. ``mirg train`` adds it when the recipe
sets ``grounding_eval_path`` (:func:`add_grounding_eval`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import Trainer, TrainerCallback

from mirg.errors import MirgError


class GroundingEvalCallback(TrainerCallback):
    """Log ``grounding/acc@0.5``, ``grounding/miou`` and ``grounding/image_acc`` (strict
    protocol) on ``items`` every ``every`` optimizer steps and at the last step."""

    def __init__(
        self,
        trainer: Any,
        items: Sequence[Any],
        profile: str,
        every: int,
        *,
        batch_size: int = 8,
        max_new_tokens: int = 256,
    ) -> None:
        if every < 1:
            raise MirgError(f"grounding evaluation every {every} steps: need at least 1")
        self.trainer = trainer
        self.items = list(items)
        self.profile = profile
        self.every = every
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.history: list[dict[str, float]] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.every == 0 or state.global_step == state.max_steps:
            self.evaluate(state.global_step)

    def evaluate(self, step: int) -> dict[str, float]:
        from accelerate.utils import gather_object
        from trl.models import unwrap_model_for_generation

        from mirg.core.scoring import Prediction, aggregate, score_items
        from mirg.eval.generation import HFGenerator, eval_messages, load_images
        from mirg.models.loading import input_sizes

        accelerator = self.trainer.accelerator
        processor = self.trainer.processing_class
        mine = self.items[accelerator.process_index :: accelerator.num_processes]
        predictions = []
        with unwrap_model_for_generation(self.trainer.model_wrapped, accelerator) as model:
            was_training = model.training
            generator = HFGenerator(model, processor, self.max_new_tokens)
            for start in range(0, len(mine), self.batch_size):
                batch = mine[start : start + self.batch_size]
                images = [load_images(it.images) for it in batch]
                messages = [
                    eval_messages(it.question, len(it.images), "reasoning", self.profile)
                    for it in batch
                ]
                for it, imgs, answer in zip(
                    batch, images, generator.generate(messages, images), strict=True
                ):
                    sizes = tuple(tuple(s) for s in input_sizes(processor, imgs))
                    predictions.append(Prediction(it.key, answer.text, sizes))  # type: ignore[arg-type]
            model.train(was_training)
        gathered = gather_object(predictions)
        scores = score_items(self.items, {p.key: p for p in gathered}, "strict", self.profile)
        average = aggregate(scores, "strict")["average"]
        logs = {
            f"grounding/{k}": float(v)
            for k, v in average.items()
            if k in ("acc@0.5", "miou", "image_acc")
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
        batch_size=config.grounding_eval_batch_size,
        max_new_tokens=config.grounding_eval_max_new_tokens or max_new_tokens,
    )
    trainer.add_callback(callback)
    return callback


def grounding_items(config: Any) -> list[Any]:
    """The held-out items of ``grounding_eval_path``, read before any model loads."""
    from mirg.eval.items import load_eval_items

    items = load_eval_items(
        config.grounding_eval_path,
        config.grounding_eval_image_root,
        limit=config.grounding_eval_limit,
    )
    if not items:
        from mirg.train.recipes import ConfigError

        raise ConfigError(f"grounding_eval_path {config.grounding_eval_path} holds no items")
    return items
