"""Grounding metrics while training: strict Acc@0.5 and image accuracy on held-out items.

Loss and reward curves do not say whether the model grounds better; this callback greedy-
decodes a held-out split every ``every`` steps and logs the strict protocol's figures
through the trainer's own ``log`` (so they reach ``report_to`` beside the loss), as TRL's
own callbacks do. Each process decodes its share of the items; ZeRO-3 weights are gathered
for generation by TRL's ``unwrap_model_for_generation``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from transformers import TrainerCallback

PREFIX = "grounding"


class GroundingEvalCallback(TrainerCallback):
    """Log ``grounding/acc@0.5``, ``grounding/miou`` and ``grounding/image_acc`` (strict
    protocol) on ``items`` every ``every`` optimizer steps and at the end of training."""

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
            raise ValueError(f"grounding evaluation every {every} steps: need at least 1")
        self.trainer = trainer
        self.items = list(items)
        self.profile = profile
        self.every = every
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.history: list[dict[str, float]] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.every == 0:
            self.evaluate(state.global_step)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step % self.every:
            self.evaluate(state.global_step)

    def evaluate(self, step: int) -> dict[str, float]:
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
        gathered = accelerator.gather_object(predictions)
        scores = score_items(self.items, {p.key: p for p in gathered}, "strict", self.profile)
        average = aggregate(scores, "strict")["average"]
        logs = {
            f"{PREFIX}/{k}": float(v)
            for k, v in average.items()
            if k in ("acc@0.5", "miou", "image_acc")
        }
        self.history.append({"step": float(step), **logs})
        self.trainer.log(logs)
        return logs
