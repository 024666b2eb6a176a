import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirg.core.boxes import iou
from mirg.core.profiles import PROFILES, ProfileError, get_profile, smart_resize


@st.composite
def rel_boxes(draw):
    c = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
    x1, x2 = sorted((draw(c), draw(c)))
    y1, y2 = sorted((draw(c), draw(c)))
    return (x1, y1, x2, y2)


frames = st.tuples(st.integers(28, 4000), st.integers(28, 4000))


def test_known_profiles():
    assert set(PROFILES) == {"qwen2-vl", "qwen2.5-vl", "qwen3-vl", "normalized"}
    with pytest.raises(ProfileError, match=r"unknown coordinate profile 'llava'.*qwen2-vl"):
        get_profile("llava")


def test_qwen2_vl_integers_relative_1000_and_box_tokens():
    p = get_profile("qwen2-vl")
    assert p.from_relative((0.1, 0.2, 0.5, 0.6)) == (100, 200, 500, 600)
    assert p.to_relative((100, 200, 500, 600)) == pytest.approx((0.1, 0.2, 0.5, 0.6))
    assert p.render_native((0.1, 0.2, 0.5, 0.6)) == "<|box_start|>(100,200),(500,600)<|box_end|>"
    assert p.render_box((0.1, 0.2, 0.5, 0.6)) == "[100, 200, 500, 600]"


def test_qwen3_vl_integers_relative_1000_json():
    p = get_profile("qwen3-vl")
    assert p.from_relative((0.1234, 0.5, 0.9996, 1.0)) == (123, 500, 1000, 1000)
    assert json.loads(p.render_native((0.1, 0.2, 0.5, 0.6))) == {"bbox_2d": [100, 200, 500, 600]}


def test_qwen25_vl_absolute_pixels_of_resized_frame():
    p = get_profile("qwen2.5-vl")
    assert p.needs_frame
    h, w = smart_resize(480, 640)  # the frame the model saw for a 640x480 photo
    assert (w, h) == (644, 476)
    box = (0.25, 0.5, 0.75, 1.0)
    assert p.from_relative(box, (w, h)) == (161, 238, 483, 476)
    assert p.to_relative((161, 238, 483, 476), (w, h)) == pytest.approx(
        (161 / 644, 238 / 476, 483 / 644, 1.0)
    )
    assert json.loads(p.render_answer(2, box, (w, h))) == {
        "image": 2,
        "bbox_2d": [161, 238, 483, 476],
    }
    with pytest.raises(ProfileError, match="input_sizes"):
        p.to_relative((1, 2, 3, 4))
    with pytest.raises(ProfileError, match="positive"):
        p.to_relative((1, 2, 3, 4), (0, 10))


def test_normalized_three_decimals():
    p = get_profile("normalized")
    assert p.from_relative((0.12345, 0.5, 0.99999, 1.2)) == (0.123, 0.5, 1.0, 1.0)
    assert (
        p.render_answer(1, (0.1, 0.2, 0.5, 0.6)) == '{"image": 1, "bbox_2d": [0.1, 0.2, 0.5, 0.6]}'
    )


@pytest.mark.parametrize("name", sorted(PROFILES))
@given(box=rel_boxes(), frame=frames)
def test_round_trip_within_quantisation(name, box, frame):
    p = get_profile(name)
    f = frame if p.needs_frame else None
    back = p.to_relative(p.from_relative(box, f), f)
    step = 1.0 / min(frame) if p.needs_frame else (1 / p.scale if p.scale > 1 else 0.001)
    assert all(abs(a - b) <= step / 2 + 1e-9 for a, b in zip(box, back, strict=True))


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_rendered_answer_parses_back_to_same_box(name):
    from mirg.core.answers import parse_answer

    p = get_profile(name)
    frame = (644, 476) if p.needs_frame else None
    box = (0.2, 0.3, 0.6, 0.7)
    parsed = parse_answer(f"<think>t</think><answer>{p.render_answer(3, box, frame)}</answer>")
    assert parsed.ok and parsed.image == 3
    assert iou(p.to_relative(parsed.box, frame), box) > 0.99


@pytest.mark.parametrize(
    ("h", "w", "factor", "expected"),
    [
        (480, 640, 28, (476, 644)),
        (28, 28, 28, (56, 56)),  # raised to min_pixels
        (10, 10, 28, (56, 56)),
        (4000, 6000, 28, None),  # capped by max_pixels
        (480, 640, 32, (480, 640)),  # Qwen3-VL: multiples of 32
    ],
)
def test_smart_resize(h, w, factor, expected):
    rh, rw = smart_resize(h, w, factor=factor)
    assert rh % factor == 0 and rw % factor == 0
    assert 56 * 56 <= rh * rw <= 28 * 28 * 1280
    if expected:
        assert (rh, rw) == expected
    else:
        assert abs(rw / rh - w / h) < 0.05


def test_smart_resize_rejects_extreme_aspect_and_nonpositive():
    with pytest.raises(ProfileError, match="aspect"):
        smart_resize(10, 5000)
    with pytest.raises(ProfileError, match="positive"):
        smart_resize(0, 10)
