"""Property tests: any valid knob setting gives samples that validate and trajectories that
earn the full reward."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_fixtures import frames
from mirg.core.rewards import score_completion
from mirg.data.schema import sample_from_json
from mirg.data.synth import DEFAULT_FAMILIES, SIZES, WorldConfig, generate_sample
from mirg.data.trajectories import build_trajectory


@st.composite
def configs(draw) -> WorldConfig:
    cell = draw(st.sampled_from([0, 28, 32]))
    size = cell * draw(st.integers(3, 5)) if cell else draw(st.integers(64, 160))
    lo = draw(st.integers(1, 4))
    hi = draw(st.integers(lo, 6))
    d_lo = draw(st.integers(0, 3))
    return WorldConfig(
        image_size=size,
        cell=cell,
        images=(lo, hi),
        distractors=(d_lo, draw(st.integers(d_lo, 4))),
        min_object=12,
        max_object=max(13, size // 3),
        sizes=draw(st.sampled_from([SIZES, ("small",), ("large",)])),
        occlusion=draw(st.sampled_from([0.0, 0.5])),
        fixed_layout=draw(st.booleans()),
    ).validate()


@settings(max_examples=40, deadline=None)
@given(
    config=configs(),
    family=st.sampled_from(DEFAULT_FAMILIES),
    seed=st.integers(0, 10**6),
    profile=st.sampled_from(["qwen2-vl", "qwen2.5-vl", "qwen3-vl", "normalized"]),
)
def test_any_world_validates_and_its_trajectories_earn_full_reward(config, family, seed, profile):
    sample, images = generate_sample(config, family, seed, "train", 0)
    assert len(images) == sample.n_images
    again = sample_from_json(sample.to_json(), "generated", check_images="none")
    assert again == sample
    sizes = frames(sample)
    text = build_trajectory(sample, profile, frames=sizes)
    reward = score_completion(
        text,
        sample.target_image,
        sample.target_box,
        profile=profile,
        input_sizes=sizes,
        n_images=sample.n_images,
    )
    assert (reward.image, reward.format) == (1.0, 1.0)
    # Only the profile's rounding separates the box from the target: each edge moves by at
    # most half a step (a pixel of the frame, or 1/1000), so width and height change by at
    # most one step, which bounds the IoU from below.
    if profile == "qwen2.5-vl":
        w, h = sizes[sample.answer_image() - 1]
        step_x, step_y = 1.0 / w, 1.0 / h
    else:
        step_x = step_y = 0.001
    x1, y1, x2, y2 = sample.target_box
    bw, bh = x2 - x1, y2 - y1
    bound = max(0.0, bw - step_x) * max(0.0, bh - step_y) / ((bw + step_x) * (bh + step_y))
    assert reward.object >= bound - 1e-9
    assert reward.object == pytest.approx(1.0, abs=0.3)
