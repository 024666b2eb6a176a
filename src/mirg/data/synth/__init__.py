"""The synthetic multi-image world: procedural grounding tasks that need nothing downloaded.

Each image is a background (flat, gradient or noise) with coloured shapes, every object
annotated; the task families mirror MIG-Bench, plus single-image localisation (the list
and their rules: ``families``, docs/data.md). Everything is deterministic given the seed:
sample ``i`` of a split draws from its own generator seeded by (seed, split, i, family), so
the same seed writes the same bytes and one sample never depends on how many others were
made. Small models on a CPU can learn it: small images, objects optionally aligned to the
vision tower's merged-patch cells, a fixed-length question layout, presets from
single-image localisation upwards.

Modules, in the order a sample is made: ``config`` (knobs, presets), ``families`` (one
function per family), ``canvas`` (placement and pixels), ``world`` (samples, datasets).
"""

from mirg.data.synth.canvas import COLOURS, MARKER_RGB, SIZES
from mirg.data.synth.config import DEFAULT_FAMILIES, PRESETS, SMALL_WORLD, WorldConfig
from mirg.data.synth.families import TASK_FAMILIES
from mirg.data.synth.world import (
    family_counts,
    generate_sample,
    layout_key,
    split_sizes,
    write_dataset,
)

__all__ = [
    "COLOURS",
    "DEFAULT_FAMILIES",
    "MARKER_RGB",
    "PRESETS",
    "SIZES",
    "SMALL_WORLD",
    "TASK_FAMILIES",
    "WorldConfig",
    "family_counts",
    "generate_sample",
    "layout_key",
    "split_sizes",
    "write_dataset",
]
