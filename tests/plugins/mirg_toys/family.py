"""A model family mirg does not ship: Qwen2.5-VL renamed, answering in relative 0..1 floats
and putting LoRA on the attention's q and v projections only."""

import dataclasses

from mirg.models.families import QWEN2_5_VL

LORA_TARGETS = r".*language_model.*\.(q_proj|v_proj)"

FAMILY = dataclasses.replace(
    QWEN2_5_VL, name="toy-qwen2.5", profile="normalized", lora_targets=LORA_TARGETS
)
