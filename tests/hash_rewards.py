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


def varies_unless_one_image(completions: list, images: list, **columns: object) -> list[float]:
    """Hashed rewards for prompts with several images, the same reward for every
    completion of a one-image prompt: those groups carry no signal."""
    hashed = _hashed(completions)
    return [0.5 if len(imgs) == 1 else h for imgs, h in zip(images, hashed, strict=True)]


def never_varies(completions: list, **columns: object) -> list[float]:
    return [1.0 for _ in completions]
