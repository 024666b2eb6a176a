import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mirg.core.answers import (
    answer_region,
    has_canonical_format,
    parse_answer,
    parse_image_reference,
)

CANONICAL = '<think>Image-1 shows the cup; Image-3 has it too.</think><answer>{"image": 2, "bbox_2d": [10, 20, 300, 400]}</answer>'


@pytest.mark.parametrize(
    ("text", "image", "box"),
    [
        (CANONICAL, 2, (10, 20, 300, 400)),
        (
            '<answer>{"image": "Image-3", "bbox_2d": [0.1, 0.2, 0.3, 0.4]}</answer>',
            3,
            (0.1, 0.2, 0.3, 0.4),
        ),
        ('{"bbox_2d": [12, 34, 56, 78]}', None, (12, 34, 56, 78)),
        ('```json\n[{"bbox_2d": [12, 34, 56, 78], "label": "cup"}]\n```', None, (12, 34, 56, 78)),
        ("<|box_start|>(12,34),(56,78)<|box_end|>", None, (12, 34, 56, 78)),
        ("It is in the second image. <|box_start|>(12,34),(56,78)<|box_end|>", 2, (12, 34, 56, 78)),
        ("It is in the 3th image. (12, 34), (56, 78)", 3, (12, 34, 56, 78)),
        ("Found in Image-4: [0.1, 0.2, 0.3, 0.4]", 4, (0.1, 0.2, 0.3, 0.4)),
        ("image 2 <box>1 2 3 4</box>", 2, (1, 2, 3, 4)),
        ("The 2nd image, (0.1, 0.2, 0.3, 0.4)", 2, (0.1, 0.2, 0.3, 0.4)),
        ("The object from Image-1 is in Image-3: [1, 2, 3, 4]", 3, (1, 2, 3, 4)),
        ("[1, 2, 3, 4] is in the fifth image", 5, (1, 2, 3, 4)),
        ("<think>look at Image-1</think> (1,2),(3,4)", None, (1, 2, 3, 4)),
    ],
)
def test_parses_every_supported_form(text, image, box):
    parsed = parse_answer(text)
    assert parsed.ok, parsed.error
    assert parsed.image == image
    assert parsed.box == pytest.approx(box)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Image-2", 2),
        ("image 2", 2),
        ("IMAGE_7", 7),
        ("in the 2nd image", 2),
        ("the second image", 2),
        ("the Third Image", 3),
        ("the tenth picture", 10),
        ("no reference here", None),
        ("imagery 2", None),
    ],
)
def test_image_references(text, expected):
    assert parse_image_reference(text) == expected


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("", "no box"),
        ("I cannot find it.", "no box"),
        ("<answer>(1,2),(3,4)</answer><answer>(1,2),(3,4)</answer>", "2 answer blocks"),
        ("<answer>(1,2),(3,4) or (5,6),(7,8)</answer>", "several different boxes"),
        ('{"image": 0, "bbox_2d": [1, 2, 3, 4]}', "not 1-based"),
        ("[1, 2, 3]", "no box"),
    ],
)
def test_ambiguous_or_broken_answers_carry_an_error(text, error):
    parsed = parse_answer(text)
    assert not parsed.ok
    assert error in parsed.error


def test_repeated_identical_box_is_one_box():
    parsed = parse_answer("(1,2),(3,4) I repeat (1,2),(3,4)")
    assert parsed.ok and parsed.n_boxes == 1


def test_signed_numbers_are_read_as_written():
    assert parse_answer("[-5, 2, 30, 40]").box == (-5, 2, 30, 40)


def test_reasoning_images_do_not_count_when_an_answer_block_exists():
    region, n = answer_region(CANONICAL)
    assert n == 1 and "Image-3" not in region


def test_last_answer_block_is_read_when_unclosed_first():
    parsed = parse_answer(
        '<answer>draft (9,9),(9,9) <answer>{"image": 1, "bbox_2d": [1,2,3,4]}</answer>'
    )
    assert parsed.ok and parsed.n_answers == 1


@pytest.mark.parametrize("bad", [None, 12, b"(1,2),(3,4)", ["(1,2),(3,4)"]])
def test_non_string_input_never_raises(bad):
    assert parse_answer(bad).error
    assert not has_canonical_format(bad)


def test_canonical_format_rules():
    assert has_canonical_format(CANONICAL)
    assert has_canonical_format("  \n" + CANONICAL + "\n ")
    good_answer = '<answer>{"image": 1, "bbox_2d": [1, 2, 3, 4]}</answer>'
    assert not has_canonical_format(good_answer)  # no think block
    assert not has_canonical_format("<think>a</think>" + good_answer + " trailing")
    assert not has_canonical_format("pre <think>a</think>" + good_answer)
    assert not has_canonical_format("<think>a</think>x" + good_answer)  # text between
    assert not has_canonical_format("<think>a</think><think>b</think>" + good_answer)
    assert not has_canonical_format("<think>a</think>" + good_answer + good_answer)
    assert not has_canonical_format("<think>a</think><answer>none</answer>")
    assert not has_canonical_format(
        '<think>a</think><answer>{"image": 1, "bbox_2d": [1, 2, 3, 4]} or [5, 6, 7, 8]</answer>'
    )
    assert not has_canonical_format(good_answer.replace("<answer>", "") + "<think>a</think>")


ADVERSARIAL = [
    "(1," * 350_000,
    "(" * 1_000_000,
    "[1, 2, 3" * 125_000,
    "<answer>" * 125_000,
    "<think>" * 140_000 + "</answer>" * 10,
    "image " * 170_000,
    "1" * 1_000_000,
    "(1,2)," * 170_000,
    "<box>1 2 3 " * 90_000,
    " " * 1_000_000 + "(",
    "(1.1111111111111" * 60_000,
    "first image " * 80_000,
    '"image": ' * 110_000,
]


@pytest.mark.parametrize("text", ADVERSARIAL, ids=lambda t: repr(t[:12]))
def test_one_megabyte_adversarial_input_parses_fast(text):
    assert len(text) >= 900_000
    for check in (parse_answer, has_canonical_format):
        start = time.process_time()  # this process's CPU time: other jobs cannot inflate it
        check(text)
        assert time.process_time() - start < 1.0, check.__name__


@settings(max_examples=300)
@given(st.text())
def test_never_raises_on_any_text(text):
    parsed = parse_answer(text)
    assert parsed.ok == (parsed.error is None)
    has_canonical_format(text)


tokens = st.sampled_from(
    ["<think>", "</think>", "<answer>", "</answer>", "(", ")", "[", "]", ",", " ", "1", "0.5",
     "-", "Image-", "image ", "second ", "2nd ", '"image": ', '"bbox_2d": ', "<|box_start|>",
     "<|box_end|>", "<box>", "</box>", "{", "}", "é", "\n"]
)  # fmt: skip


@settings(max_examples=500)
@given(st.lists(tokens, max_size=60).map("".join))
def test_never_raises_on_answer_like_text(text):
    parsed = parse_answer(text)
    if parsed.ok:
        assert parsed.box is not None and len(parsed.box) == 4
