"""Helpers only the tests use: the weighted total of the default reward per completion, and
a verl record's embedded image read back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mirg.core.rewards import DEFAULT_WEIGHTS, REWARDS
from mirg.data.schema import open_image


def total_reward(
    completions: Sequence[object],
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    **columns: object,
) -> list[float]:
    """Weighted sum of the rewards named in ``weights``, as one reward per completion."""
    scores = {name: REWARDS[name].function(completions, **columns) for name in weights}
    return [sum(weights[n] * scores[n][i] for n in weights) for i in range(len(completions))]


def read_image_bytes(record_image: dict[str, Any]):
    """A verl ``images`` entry back to a PIL image as shown (for round-trip checks)."""
    return open_image(record_image["bytes"], "verl record image")
