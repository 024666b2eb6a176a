"""Models: offline tiny Qwen-VL builders and model/processor loading with family profiles.

Imports are light (no torch at import time); the heavy modules load on first use.
"""

from mirg.models.loading import (
    LoadedModel,
    ModelLoadError,
    detect_family,
    frame_size,
    generation_inputs,
    input_sizes,
    load_model_and_processor,
    load_processor,
    pixel_caps,
    resolve_profile,
    set_pixel_caps,
)

__all__ = [
    "LoadedModel",
    "ModelLoadError",
    "detect_family",
    "frame_size",
    "generation_inputs",
    "input_sizes",
    "load_model_and_processor",
    "load_processor",
    "pixel_caps",
    "resolve_profile",
    "set_pixel_caps",
]
