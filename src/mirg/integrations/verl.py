"""verl's reward entry point: the core's default reward, total and components.

Point verl at it in either way (docs/scaling.md)::

    reward.custom_reward_function.path=pkg://mirg.integrations.verl     # mirg installed
    reward.custom_reward_function.path=/path/to/mirg/src/mirg/integrations/verl.py
    reward.custom_reward_function.name=compute_score

verl decodes each response without special tokens and calls
``compute_score(data_source=…, solution_str=…, ground_truth=…, extra_info=…)``. The targets
travel in ``ground_truth``: the JSON that ``mirg export --format verl`` writes into
``reward_model.ground_truth`` (``target_image``, ``target_box``, ``profile``,
``input_sizes``); ``extra_info.n_images`` says how many images the prompt had. A dict
return makes verl use ``score`` as the reward and log every other key (the components of
the default reward in :data:`mirg.core.rewards.REWARDS`: ``object``, ``image``,
``format``) as its own metric. Only the pure core is imported: ``pip install --no-deps``
mirg in verl's environment is enough.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mirg.core.rewards import DEFAULT_WEIGHTS, REWARDS


def targets_from(ground_truth: str | Mapping[str, Any]) -> dict[str, Any]:
    """The reward targets from verl's ``ground_truth`` (JSON text or an already-decoded dict)."""
    if isinstance(ground_truth, Mapping):
        targets = dict(ground_truth)
    else:
        try:
            targets = json.loads(ground_truth)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(
                "mirg compute_score: ground_truth must be the JSON written by "
                f"'mirg export --format verl' (got {str(ground_truth)[:80]!r})"
            ) from exc
    if not isinstance(targets, dict) or "target_box" not in targets:
        raise ValueError(
            f"mirg compute_score: ground_truth has no 'target_box' (keys: {sorted(targets)})"
            if isinstance(targets, dict)
            else f"mirg compute_score: ground_truth is not an object: {targets!r}"
        )
    return targets


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: str | Mapping[str, Any],
    extra_info: Mapping[str, Any] | None = None,
    weights: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """``{"score": weighted total, "object": …, "image": …, "format": …}`` for one response.

    ``weights`` (default: :data:`~mirg.core.rewards.DEFAULT_WEIGHTS`, as in TRL training) can
    be set from verl with ``+reward.custom_reward_function.reward_kwargs.weights.format=…``.
    ``data_source`` is accepted for verl's signature; every mirg record says ``mirg``.
    """
    targets = targets_from(ground_truth)
    sizes = targets.get("input_sizes")
    n_images = (extra_info or {}).get("n_images") or (len(sizes) if sizes else None)
    w = {**DEFAULT_WEIGHTS, **(weights or {})}
    unknown = set(w) - set(DEFAULT_WEIGHTS)
    if unknown:
        raise ValueError(f"mirg compute_score: unknown reward weights {sorted(unknown)}")
    columns = {
        k: [targets.get(k)] for k in ("target_image", "target_box", "profile", "input_sizes")
    }
    columns["images"] = [[None] * n_images if n_images else None]  # read for its count only
    scores = {
        name: float(REWARDS[name].function([solution_str], **columns)[0])
        for name in DEFAULT_WEIGHTS
    }
    return {"score": sum(w[name] * score for name, score in scores.items()), **scores}
