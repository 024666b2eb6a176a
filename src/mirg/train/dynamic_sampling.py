"""Dynamic sampling (DAPO, arXiv 2503.14476) on TRL's ``GRPOTrainer``, its loss untouched.

A group whose completions all earn the same weighted total reward has advantage 0: it moves
nothing but fills the batch and the token count the loss divides by. With
``dynamic_sampling: true`` such groups are dropped after scoring, and groups of further
prompts (drawn at random, seeded from the run's seed and the process; as many as the keep
rate so far says are missing) are generated until the batch is full again, for at most
``dynamic_sampling_max_rounds`` rounds. TRL 1.16 lacks it (its issue #3708), so mirg
overrides ``_generate_and_score_completions``; the batch keeps TRL's shape and goes to TRL's
own loss.

- A batch still short after the last round is completed with dropped groups whose loss
  mask is zeroed: they add nothing to the token-level losses (``dapo``, ``bnpo``,
  ``cispo``); the per-sequence ``grpo`` loss still averages over them, so a short batch
  steps less far, by ``masked_frac``.
- Logged at each generation, over all processes: ``dynamic_sampling/dropped_frac``,
  ``/rounds``, ``/extra_completions`` (beyond the batch) and ``/masked_frac``. TRL's own
  metrics average over every round's generations, dropped groups included.
- Advantages are TRL's, per round: with ``scale_rewards`` ``group`` or ``none`` and
  ``sum_then_normalize`` a group's advantages depend on that group only, so rounds mix
  safely; the other settings are refused with dynamic sampling.

Each process keeps whole groups of its own; every process runs the same number of rounds,
as collective generation (vLLM) and reward gathering need.
"""

from __future__ import annotations

import math
from typing import Any

from trl import GRPOTrainer

from mirg.train.recipes import ConfigError

#: Batch keys padded on the left (prompt side) and on the right (completion side), with
#: the value padding takes. ``*_type_ids`` span prompt and completion: split at the
#: prompt's width.
LEFT_PADDED = {"prompt_ids": "pad", "prompt_mask": 0}
RIGHT_PADDED = {
    "completion_ids": "pad",
    "completion_mask": 0,
    "old_per_token_logps": 0.0,
    "ref_per_token_logps": 0.0,
    "sampling_per_token_logps": 0.0,
    "importance_sampling_ratio": 0.0,
    "tool_mask": 1,
}
SPANNING = ("mm_token_type_ids", "token_type_ids")


def varying_groups(rewards_per_func: Any, weights: Any, num_generations: int) -> Any:
    """A bool per group (in order): whether its weighted total reward varies. Completions
    every reward function left unscored (NaN) are left out, as TRL's baseline does."""
    import torch

    unscored = torch.isnan(rewards_per_func).all(dim=1)
    total = (rewards_per_func * weights.to(rewards_per_func.device).unsqueeze(0)).nansum(dim=1)
    high = total.masked_fill(unscored, float("-inf")).view(-1, num_generations).amax(dim=1)
    low = total.masked_fill(unscored, float("inf")).view(-1, num_generations).amin(dim=1)
    return high - low > 1e-6  # high - low: -inf where no completion was scored


def select_rows(batch: dict[str, Any], rows: list[int]) -> dict[str, Any]:
    """The given rows of a generation batch in split form (every value per row, or a
    scalar, as after TRL's ``split_pixel_values_by_grid``)."""
    import torch

    index = torch.tensor(rows, dtype=torch.long)
    out = {}
    for key, value in batch.items():
        if value is None or (isinstance(value, torch.Tensor) and value.ndim == 0):
            out[key] = value
        elif isinstance(value, torch.Tensor):
            out[key] = value[index.to(value.device)]
        else:
            out[key] = [value[i] for i in rows]
    return out


def _pad(tensor: Any, width: int, value: float, left: bool) -> Any:
    import torch.nn.functional as F

    missing = width - tensor.shape[1]
    if missing == 0:
        return tensor
    pad = (0, 0) * (tensor.ndim - 2) + ((missing, 0) if left else (0, missing))
    return F.pad(tensor, pad, value=value)


def concat_batches(batches: list[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """One generation batch (split form) from several, padding each padded key as TRL
    padded it (prompts on the left, completions on the right)."""
    import torch

    prompt_width = max(b["prompt_ids"].shape[1] for b in batches)
    completion_width = max(b["completion_ids"].shape[1] for b in batches)
    out: dict[str, Any] = {}
    for key, value in batches[0].items():
        values = [b[key] for b in batches]
        if value is None or (isinstance(value, torch.Tensor) and value.ndim == 0):
            out[key] = value  # num_items_in_batch: recounted by the caller
        elif not isinstance(value, torch.Tensor):
            out[key] = [row for v in values for row in v]
        elif value.ndim == 1:
            out[key] = torch.cat(values)
        elif key in LEFT_PADDED or key in RIGHT_PADDED:
            left = key in LEFT_PADDED
            fill = (LEFT_PADDED if left else RIGHT_PADDED)[key]
            fill = pad_token_id if fill == "pad" else fill
            width = prompt_width if left else completion_width
            if key == "importance_sampling_ratio" and value.shape[1] == 1:
                width = 1  # sequence-level ratios
            out[key] = torch.cat([_pad(v, width, fill, left) for v in values])
        elif key in SPANNING:  # prompt part left-padded, completion part right-padded
            parts = []
            for b, v in zip(batches, values, strict=True):
                p = b["prompt_ids"].shape[1]
                prompt = _pad(v[:, :p], prompt_width, 0, True)
                parts.append(torch.cat([prompt, _pad(v[:, p:], completion_width, 0, False)], 1))
            out[key] = torch.cat(parts)
        elif len({v.shape[1:] for v in values}) == 1:
            out[key] = torch.cat(values)
        else:
            raise ConfigError(
                f"dynamic sampling cannot merge the batch key {key!r} (widths "
                f"{[tuple(v.shape) for v in values]}); switch dynamic_sampling off for this model"
            )
    return out


class DynamicSamplingGRPOTrainer(GRPOTrainer):
    """``GRPOTrainer`` that keeps only groups whose rewards vary and refills the batch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        import torch

        self._refill_generator = torch.Generator().manual_seed(
            int(self.args.seed) * 1009 + 7919 * (self.accelerator.process_index + 1)
        )
        self._rewards_per_func: Any = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._rewards_per_func = rewards  # gathered over processes: every process sees all
        return rewards

    def _refill_inputs(self, prompts: int) -> list[dict[str, Any]]:
        import torch

        # distinct prompts within a round (a repeated prompt would be a correlated group)
        picks = torch.randperm(len(self.train_dataset), generator=self._refill_generator)
        rows = [self.train_dataset[int(i)] for i in picks[:prompts]]
        return [dict(row) for row in rows for _ in range(self.num_generations)]

    def _local_groups(self, local_rows: int) -> list[bool]:
        varies = varying_groups(self._rewards_per_func, self.reward_weights, self.num_generations)
        per_process = local_rows // self.num_generations
        start = self.accelerator.process_index * per_process
        return varies[start : start + per_process].tolist()

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        import torch
        from trl.trainer.utils import split_pixel_values_by_grid, unsplit_pixel_values_by_grid

        g = self.num_generations
        wanted = len(inputs) // g
        kept: list[dict[str, Any]] = []
        dropped: list[dict[str, Any]] = []
        n_kept = n_spare = n_generated = n_dropped = rounds = 0
        batch = inputs
        while True:
            rounds += 1
            out = split_pixel_values_by_grid(super()._generate_and_score_completions(batch))
            varies = self._local_groups(len(batch))
            n_generated += len(varies)
            n_dropped += varies.count(False)
            keep = [k for k, v in enumerate(varies) if v][: max(0, wanted - n_kept)]
            drop = [k for k, v in enumerate(varies) if not v]
            if keep:
                kept.append(select_rows(out, [k * g + j for k in keep for j in range(g)]))
                n_kept += len(keep)
            if drop and n_spare < wanted:  # kept in case the rounds run out
                dropped.append(select_rows(out, [k * g + j for k in drop for j in range(g)]))
                n_spare += len(drop)
            # as many prompts as the groups still missing need at this step's keep rate
            # (the most any process needs: every process generates the same number)
            keep_rate = max(n_generated - n_dropped, 1) / n_generated
            need = math.ceil(max(wanted - n_kept, 0) / keep_rate)
            need = torch.tensor([min(need, wanted)], device=self.accelerator.device)
            need = int(self.accelerator.gather(need).max().item())
            if need == 0 or rounds >= self.args.dynamic_sampling_max_rounds:
                break
            batch = self._refill_inputs(need)
        masked = 0
        if n_kept < wanted:  # complete the batch with dropped groups, out of the loss
            filler = select_rows(
                concat_batches(dropped, self._tokenizer.pad_token_id),
                list(range((wanted - n_kept) * g)),
            )
            filler["completion_mask"] = torch.zeros_like(filler["completion_mask"])
            if filler.get("tool_mask") is not None:
                filler["tool_mask"] = torch.zeros_like(filler["tool_mask"])
            kept.append(filler)
            masked = wanted - n_kept
        merged = concat_batches(kept, self._tokenizer.pad_token_id)
        loss_mask = merged["completion_mask"]
        if merged.get("tool_mask") is not None:
            loss_mask = loss_mask * merged["tool_mask"]
        merged["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
        counts = torch.tensor(
            [n_dropped, n_generated, masked, wanted], device=self.accelerator.device
        )
        n_dropped, n_generated, masked, wanted = self.accelerator.gather(counts).view(-1, 4).sum(0)
        metrics = self._metrics["train"]  # over every process
        metrics["dynamic_sampling/dropped_frac"].append(float(n_dropped / n_generated))
        metrics["dynamic_sampling/rounds"].append(float(rounds))
        metrics["dynamic_sampling/extra_completions"].append(float((n_generated - wanted) * g))
        metrics["dynamic_sampling/masked_frac"].append(float(masked / wanted))
        return unsplit_pixel_values_by_grid(merged)
