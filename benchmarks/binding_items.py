"""Fresh binding items for the RL benchmarks: the demo world's binding family, drawn from
a world seed the demo never trains on, so a figure measures the skill and not recall.

Shared by ``bench_sampling.py`` (the sampling probe) and ``bench_binding.py`` (the reward
ablation). A binding item is ``group_grounding``: "Find the small red circle in one of the
images." over two images, the other image holding a look-alike of another colour; on a
*same-place* item the look-alike sits exactly where the target sits, so a box on the wrong
image overlaps the target fully (plain IoU pays for it, the image-gated reward does not).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

#: World seeds kept apart from every training world (the demo trains on seed 0, its GRPO
#: prompts on seed 1): fresh items come from here.
FRESH_SEED = 777


def binding_world(same_place: float | None = None) -> Any:
    """The demo's world restricted to binding questions (``same_place``: the share of
    look-alikes at the target's place; default the demo's)."""
    from mirg.demo import DEMO_WORLD

    world = replace(DEMO_WORLD, families=("group_grounding",), weights=None)
    return world if same_place is None else replace(world, same_place_look_alike=same_place)


def fresh_binding_items(folder: Path, n: int, seed: int = FRESH_SEED, world: Any = None) -> list:
    """``n`` binding items of a world written once into ``folder`` (reused when there)."""
    from mirg.data.synth import write_dataset
    from mirg.eval.benchmarks import load_eval_items

    world = world or binding_world()
    split = folder / "train.jsonl"
    items = load_eval_items(split, tasks=["group_grounding"], limit=n) if split.is_file() else []
    if len(items) < n:  # sample i depends on (seed, split, i) only: a larger world extends it
        write_dataset(folder, int(n / 0.8) + 1, seed, world, overwrite=True)  # train: 80%
        items = load_eval_items(split, tasks=["group_grounding"], limit=n)
    return items


def same_place_ids(split: Path) -> set[str]:
    """Ids of the binding samples of a split whose look-alike sits where the target sits."""
    ids = set()
    for line in split.read_text(encoding="utf-8").splitlines():
        s = json.loads(line)
        if s["task"] != "group_grounding":
            continue
        target = s["objects"][s["target_image"] - 1][s["target"]["object"]]["box"]
        others = [
            o["box"]
            for i, objs in enumerate(s["objects"], 1)
            if i != s["target_image"]
            for o in objs
        ]
        if target in others:
            ids.add(s["id"])
    return ids
