import json
from collections import Counter

import pytest

from mirg.core.migbench import (
    TASKS,
    BenchError,
    derive_target_image,
    load_migbench,
    reference_boxes,
)


def test_real_file_items_tasks_and_counts(migbench_items):
    assert len(migbench_items) == 4295
    assert [it.index for it in migbench_items] == list(range(4295))
    counts = Counter(it.task for it in migbench_items)
    assert counts == {
        "region": 1203, "common_object": 816, "object_tracking": 550, "diff": 528,
        "group_grounding": 499, "multi_view": 288, "correspondence": 117, "reasoning": 101,
        "refer_grounding": 99, "view_diff": 94,
    }  # fmt: skip
    assert set(counts) == set(TASKS)


def test_real_file_target_images_follow_the_task_rules(migbench_items):
    for it in migbench_items:
        if it.task == "diff":
            assert it.target_image is None
        else:
            assert 1 <= it.target_image <= len(it.images)
        if it.task == "region":
            assert it.target_image == 1
        if it.task in {"correspondence", "view_diff", "refer_grounding", "reasoning"}:
            assert it.target_image == 2
        if it.task in {"multi_view", "object_tracking"}:
            assert it.target_image >= 2  # image 1 holds the marked reference
            assert len(it.reference_boxes) == 1
    by_task = Counter((it.task, it.target_image) for it in migbench_items)
    assert by_task["common_object", 5] == 58
    assert by_task["group_grounding", 1] == 127


def test_real_file_known_examples(migbench_items):
    it = migbench_items[1960]
    assert it.task == "multi_view" and it.target_image == 2
    assert it.reference_boxes == ((0.451, 0.265, 0.519, 0.388),)
    gg = migbench_items[1461]
    assert gg.task == "group_grounding" and gg.target_image == 1 and not gg.need_format
    # inverted answers are kept as stored (the official protocol scores them as stored)
    assert migbench_items[7].target_box == (0.027, 0.18, 0.143, 0.051)


@pytest.mark.parametrize(
    ("task", "question", "info", "expected"),
    [
        ("common_object", "Recognize and locate this object in the 3th image. ", "", 3),
        ("multi_view", "marked in the first image(...). locate it in the 4th image.", "", 4),
        ("region", "locate the 2th region picture in the source image.", "", 1),
        ("reasoning", "Find it in Image-2.", "", 2),
        (
            "group_grounding",
            "find <|object_ref_start|>x<|object_ref_end|>",
            "It is in the fourth image. ",
            4,
        ),
        ("diff", "give me the coordinates of their difference", "", None),
    ],
)
def test_derive_target_image(task, question, info, expected):
    assert derive_target_image(task, question, info) == expected


def test_reference_boxes():
    q = "the red box (<|box_start|>(139,305),(495,743)<|box_end|>) and <|box_start|>(1,2),(3,4)<|box_end|>"
    assert reference_boxes(q) == ((0.139, 0.305, 0.495, 0.743), (0.001, 0.002, 0.003, 0.004))


def write(tmp_path, data, raw=False):
    p = tmp_path / "MIG_data.json"
    p.write_text(data if raw else json.dumps(data))
    return p


GOOD = {"task": "region", "images": ["a.jpg", "b.jpg"], "question": "q", "answer": [0.1, 0.1, 0.2, 0.2],
        "additional_info": "", "need_format": True}  # fmt: skip


@pytest.mark.parametrize(
    ("item", "field", "why"),
    [
        ({**GOOD, "task": "counting"}, "task", "unknown task 'counting'"),
        ({**GOOD, "answer": [0.1, 0.2, 0.3]}, "answer", "4 finite numbers"),
        ({**GOOD, "answer": "0.1,0.2,0.3,0.4"}, "answer", "4 finite numbers"),
        ({**GOOD, "answer": [0.1, None, 0.3, 0.4]}, "answer", "4 finite numbers"),
        ({k: v for k, v in GOOD.items() if k != "images"}, "images", "missing"),
        ({**GOOD, "images": []}, "images", "non-empty"),
        ({**GOOD, "task": "common_object", "question": "find it"}, "question", "names no target"),
        (
            {**GOOD, "task": "common_object", "question": "in the 7th image"},
            "question",
            "has 2 images",
        ),
        (
            {**GOOD, "task": "group_grounding", "additional_info": "somewhere"},
            "additional_info",
            "names no",
        ),
    ],
)
def test_bad_items_name_file_item_and_field(tmp_path, item, field, why):
    path = write(tmp_path, [GOOD, item])
    with pytest.raises(BenchError) as info:
        load_migbench(path)
    message = str(info.value)
    assert str(path) in message and "item 1" in message and f"field {field!r}" in message
    assert why in message


def test_malformed_json_names_line(tmp_path):
    path = write(tmp_path, '[\n{"task": "region",\n  oops}\n]', raw=True)
    with pytest.raises(BenchError, match=r"MIG_data.json: not valid JSON \(line 3"):
        load_migbench(path)


def test_missing_file_and_wrong_top_level(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_migbench(tmp_path / "nope.json")
    with pytest.raises(BenchError, match="expected a JSON list"):
        load_migbench(write(tmp_path, {"items": []}))
