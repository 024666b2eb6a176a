"""Rewards drawn from a hash of each completion's text, under the core rewards' names.

A random-init model earns 0 from every real reward, so GRPO's advantages and gradients
are exactly 0 and prove nothing about their synchronisation across ranks. These give
real, completion-specific rewards; the scale tests name them by dotted path
(``--rewards hash_rewards.object_reward …``), so TRL logs them as the core ones.
"""

from __future__ import annotations

import hashlib

from mirg.core.rewards import completion_text


def _hashed(completions: list) -> list[float]:
    return [
        int(hashlib.sha256(completion_text(c).encode()).hexdigest()[:8], 16) / 2**32
        for c in completions
    ]


def object_reward(completions: list, **columns: object) -> list[float]:
    return _hashed(completions)


def image_reward(completions: list, **columns: object) -> list[float]:
    return _hashed(completions)


def format_reward(completions: list, **columns: object) -> list[float]:
    return _hashed(completions)
