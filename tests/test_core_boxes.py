import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mirg.core.boxes import BOX_TOLERANCE, BoxError, clip_box, iou, validate_box

coord = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@st.composite
def boxes(draw):
    x1, x2 = sorted((draw(coord), draw(coord)))
    y1, y2 = sorted((draw(coord), draw(coord)))
    return (x1, y1, x2, y2)


any_number = st.floats(allow_nan=True, allow_infinity=True)


def box_area(box):
    """Area of a box; 0 for an inverted or degenerate box (a reference for iou's checks)."""
    x1, y1, x2, y2 = box
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def test_validate_accepts_relative_box_and_returns_floats():
    assert validate_box([0, 0.25, 1, 0.75]) == (0.0, 0.25, 1.0, 0.75)


def test_validate_tolerance_is_stated_and_applied():
    assert BOX_TOLERANCE == 0.01
    validate_box([0.0, 0.0, 1.0 + BOX_TOLERANCE, 1.0])
    with pytest.raises(BoxError, match="outside the image"):
        validate_box([0.0, 0.0, 1.0 + 2 * BOX_TOLERANCE, 1.0])
    with pytest.raises(BoxError, match="outside the image"):
        validate_box([-0.02, 0.0, 0.5, 0.5])


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([0.5, 0.1, 0.2, 0.9], "inverted"),
        ([0.1, 0.1, 0.1, 0.9], "inverted"),
        ([0.1, 0.2, 0.3], "4 numbers"),
        ("0.1 0.2 0.3 0.4", "list of 4 numbers"),
        ([0.1, float("nan"), 0.3, 0.4], "not finite"),
        ([0.1, 0.2, float("inf"), 0.4], "not finite"),
        ([0.1, "0.2", 0.3, 0.4], "expected numbers"),
        ([True, 0.2, 0.3, 0.4], "expected numbers"),
        ([100, 200, 300, 400], "outside the image"),
        (None, "list of 4 numbers"),
    ],
)
def test_validate_rejects_with_location(value, message):
    with pytest.raises(BoxError, match=message) as info:
        validate_box(value, where="train.jsonl:3: field 'target_box'")
    assert "train.jsonl:3: field 'target_box'" in str(info.value)


def test_iou_known_values():
    assert iou((0, 0, 1, 1), (0, 0, 1, 1)) == 1.0
    assert iou((0, 0, 0.5, 1), (0.5, 0, 1, 1)) == 0.0  # touching edges
    assert iou((0, 0, 0.5, 0.5), (0.25, 0.25, 0.75, 0.75)) == pytest.approx(1 / 7)
    assert iou((0, 0, 1, 1), (0, 0, 0.5, 0.5)) == pytest.approx(0.25)


@pytest.mark.parametrize(
    "bad",
    [
        (0.5, 0.5, 0.1, 0.1),  # inverted
        (0.5, 0.1, 0.1, 0.9),  # inverted in x only
        (0.2, 0.2, 0.2, 0.2),  # degenerate: empty union with itself
        (float("nan"), 0, 1, 1),
        (0, 0, float("inf"), 1),
    ],
)
def test_iou_inverted_degenerate_or_nonfinite_is_zero(bad):
    assert iou(bad, (0, 0, 1, 1)) == 0.0
    assert iou((0, 0, 1, 1), bad) == 0.0
    assert iou(bad, bad) == 0.0


@given(boxes(), boxes())
def test_iou_symmetric_and_bounded(a, b):
    v = iou(a, b)
    assert v == iou(b, a)
    assert 0.0 <= v <= 1.0


@given(boxes())
def test_iou_self_is_one_for_nonempty(b):
    if box_area(b) > 0:  # non-empty in floating point (a product that underflows is empty)
        assert iou(b, b) == pytest.approx(1.0)
    else:
        assert iou(b, b) == 0.0


@given(st.tuples(any_number, any_number, any_number, any_number),
       st.tuples(any_number, any_number, any_number, any_number))  # fmt: skip
def test_iou_never_raises_on_any_numbers(a, b):
    v = iou(a, b)
    assert 0.0 <= v <= 1.0 and not math.isnan(v)


def test_clip_and_area():
    assert clip_box((-0.1, 0.2, 1.2, 0.8)) == (0.0, 0.2, 1.0, 0.8)
    assert box_area((0.5, 0.5, 0.1, 0.1)) == 0.0
    assert box_area((0, 0, 0.5, 0.5)) == pytest.approx(0.25)
