import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirg.core.profiles import ProfileError, get_profile
from mirg.core.rewards import (
    DEFAULT_WEIGHTS,
    RewardBreakdown,
    completion_text,
    format_reward,
    image_reward,
    object_reward,
    score_completion,
)
from reward_export_helpers import total_reward

TARGET = (0.1, 0.2, 0.5, 0.6)


def answer(image, box=TARGET, profile="qwen2-vl", frame=None):
    body = get_profile(profile).render_answer(image, box, frame)
    return f"<think>The red cup is in Image-{image}.</think><answer>{body}</answer>"


def columns(n, target_image=2, profile="qwen2-vl", **extra):
    return {"target_image": [target_image] * n, "target_box": [TARGET] * n,
            "profile": [profile] * n, **extra}  # fmt: skip


def test_right_image_right_box_earns_everything():
    c = [answer(2)]
    kw = columns(1)
    assert object_reward(c, **kw) == [pytest.approx(1.0)]
    assert image_reward(c, **kw) == [1.0]
    assert format_reward(c, **kw) == [1.0]


def test_box_on_wrong_image_earns_no_object_reward():
    c = [answer(3)]
    kw = columns(1)
    assert object_reward(c, **kw) == [0.0]
    assert image_reward(c, **kw) == [0.0]
    assert format_reward(c, **kw) == [1.0]


def test_object_reward_is_continuous_iou():
    half = (0.1, 0.2, 0.3, 0.6)  # half the target's width
    assert object_reward([answer(2, half)], **columns(1)) == [pytest.approx(0.5)]


def test_object_reward_threshold_option():
    part = (0.1, 0.2, 0.34, 0.6)  # IoU 0.6
    kw = columns(2)
    assert object_reward([answer(2, part), answer(2)], **kw, iou_threshold=0.7) == [0.0, 1.0]
    assert object_reward([answer(2, part)], **columns(1), iou_threshold=0.5) == [1.0]


def test_task_without_target_image_accepts_any_image():
    kw = columns(2, target_image=None)
    assert image_reward([answer(1), answer(2)], **kw) == [1.0, 1.0]
    assert object_reward([answer(1), answer(2)], **kw) == [pytest.approx(1.0)] * 2


def test_single_image_prompt_answer_without_image_counts_as_image_1():
    native = "<|box_start|>(100,200),(500,600)<|box_end|>"
    kw = columns(1, target_image=1, images=[["a.png"]])
    assert image_reward([native], **kw) == [1.0]
    assert object_reward([native], **kw) == [pytest.approx(1.0)]
    # with several images an unnamed image is not the target
    kw2 = columns(1, target_image=1, images=[["a.png", "b.png"]])
    assert image_reward([native], **kw2) == [0.0]


def test_conversational_completions_are_read():
    conv = [{"role": "assistant", "content": answer(2)}]
    parts = [{"role": "assistant", "content": [{"type": "text", "text": answer(2)}]}]
    assert completion_text(conv) == completion_text(parts) == answer(2)
    assert image_reward([conv, parts], **columns(2)) == [1.0, 1.0]
    assert format_reward([conv, parts]) == [1.0, 1.0]


def test_absolute_pixel_profile_uses_the_named_images_frame():
    sizes = [[644, 476], [448, 336]]
    c = [answer(2, profile="qwen2.5-vl", frame=sizes[1])]
    kw = columns(1, profile="qwen2.5-vl", input_sizes=[sizes])
    assert object_reward(c, **kw) == [pytest.approx(1.0, abs=0.01)]
    with pytest.raises(ProfileError, match="input_sizes"):
        object_reward(c, **columns(1, profile="qwen2.5-vl"))


def test_scalar_columns_bound_with_partial():
    reward = functools.partial(object_reward, profile="qwen2-vl")
    assert reward([answer(2)], target_image=[2], target_box=[TARGET]) == [pytest.approx(1.0)]


def test_missing_columns_fail_with_their_name():
    with pytest.raises(KeyError, match="target_box"):
        object_reward([answer(2)], target_image=[2])
    with pytest.raises(KeyError, match="target_image"):
        image_reward([answer(2)], target_box=[TARGET])
    with pytest.raises(ValueError, match="3 entries for 2 completions"):
        image_reward([answer(2)] * 2, target_image=[2, 2, 2])


HEDGES = [
    "",
    "   ",
    "\u2603\u00e9\u4e2d\u6587 <think>\u00fc</think>",
    answer(2) + answer(2),  # repeated answers
    answer(2).replace("</answer>", "</answer><answer>(1,2),(3,4)</answer>"),
    '<think>x</think><answer>{"image": 2, "bbox_2d": [100, 200, 500, 600]} [1, 2, 3, 4]</answer>',
    '<think>x</think><answer>{"image": 2, "bbox_2d": [100, 200, 500, 600], "also": [9, 9, 99, 99]}</answer>',
    "<think>" + "Image-2 " * 50_000 + "</think>",
]


@pytest.mark.parametrize("text", HEDGES, ids=range(len(HEDGES)))
def test_adversarial_completions_earn_nothing(text):
    kw = columns(1)
    assert object_reward([text], **kw) == [0.0]
    assert image_reward([text], **kw) == [0.0]
    assert format_reward([text], **kw) == [0.0]


def test_total_is_weighted_sum():
    b = score_completion(answer(2), 2, TARGET, profile="qwen2-vl")
    assert b == RewardBreakdown(object=pytest.approx(1.0), image=1.0, format=1.0)
    assert b.total({"object": 2.0, "image": 0.5, "format": 0.0}) == pytest.approx(2.5)
    assert total_reward([answer(2), answer(3)], **columns(2)) == [
        pytest.approx(sum(DEFAULT_WEIGHTS.values())),
        pytest.approx(DEFAULT_WEIGHTS["format"]),
    ]


settle = settings(max_examples=200, deadline=None)
coords = st.integers(min_value=-50, max_value=1100)


@settle
@given(
    text=st.one_of(st.text(), st.builds(answer, st.integers(-1, 7))),
    target_image=st.one_of(st.none(), st.integers(1, 6)),
    box=st.tuples(coords, coords, coords, coords),
)
def test_rewards_stay_in_unit_interval(text, target_image, box):
    rel = tuple(v / 1000 for v in box)
    b = score_completion(text, target_image, rel, profile="qwen2-vl")
    for v in (b.object, b.image, b.format):
        assert 0.0 <= v <= 1.0


def test_iou_reward_is_not_image_aware():
    """The ablation baseline: the same box on the wrong image still earns its IoU."""
    from mirg.core.rewards import iou_reward

    kw = columns(2)
    assert iou_reward([answer(2), answer(3)], **kw) == [pytest.approx(1.0), pytest.approx(1.0)]
    assert object_reward([answer(2), answer(3)], **kw) == [pytest.approx(1.0), 0.0]
    assert iou_reward(["no box", answer(2) + answer(2)], **kw) == [0.0, 0.0]
