"""A reward of a user's own, outside mirg: it reads sample columns mirg's rewards never use.

GRPO hands every dataset column to every reward, as TRL does; the nested sample fields
(``objects``, ``meta`` …) arrive as JSON text, one entry per completion.
"""

from __future__ import annotations

import json

from mirg.core.rewards import completion_text

#: What each call saw, one ``(id, meta, objects)`` per completion, decoded (tests read it).
SEEN: list[tuple[str, dict, list]] = []


def colour_reward(completions, id, meta, objects, **columns) -> list[float]:
    """1 when the completion names the colour the sample's ``meta`` records, else 0."""
    out = []
    for completion, sample_id, meta_text, objects_text in zip(
        completions, id, meta, objects, strict=True
    ):
        meta_value, objects_value = json.loads(meta_text), json.loads(objects_text)
        SEEN.append((sample_id, meta_value, objects_value))
        out.append(1.0 if meta_value["colour"] in completion_text(completion) else 0.0)
    return out
