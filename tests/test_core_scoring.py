import json

import pytest

from mirg.core.migbench import MigBenchItem
from mirg.core.profiles import ProfileError
from mirg.core.scoring import (
    Prediction,
    aggregate,
    format_table,
    official_box,
    read_predictions,
    score_items,
)


@pytest.mark.parametrize(
    ("response", "box"),
    [
        # (1) integer pairs, spaces after commas allowed; single match: v >= 1 divided by 1000
        ("<|box_start|>(100,200),(500,600)<|box_end|>", (0.1, 0.2, 0.5, 0.6)),
        ("(100, 200), (500, 600)", (0.1, 0.2, 0.5, 0.6)),
        ("(0,200),(1,600)", (0.0, 0.2, 0.001, 0.6)),  # a lone 1 becomes 0.001
        # (2) decimal lists
        ("[0.1, 0.2, 0.5, 0.6]", (0.1, 0.2, 0.5, 0.6)),
        # (3) decimal pairs, no whitespace at all
        ("(0.1,0.2),(0.5,0.6)", (0.1, 0.2, 0.5, 0.6)),
        # (4) decimal 4-tuples
        ("(0.1, 0.2, 0.5, 0.6)", (0.1, 0.2, 0.5, 0.6)),
        # (5) integer lists
        ('{"bbox_2d": [100, 200, 500, 600]}', (0.1, 0.2, 0.5, 0.6)),
        # (6) <box> integers
        ("<box>100 200 500 600</box>", (0.1, 0.2, 0.5, 0.6)),
        # pattern order beats position: (1) wins although (5) comes first in the text
        ("[1, 2, 3, 4] then (100,200),(500,600)", (0.1, 0.2, 0.5, 0.6)),
        # several matches: first match, only v > 1 divided
        ("(1,200),(500,600) or (7,8),(9,10)", (1.0, 0.2, 0.5, 0.6)),
        # a minus sign breaks the match
        ("(-100,200),(500,600)", None),
        # decimals with spaces inside pairs are pattern (3)? no: (3) allows no whitespace
        ("(0.1, 0.2),(0.5, 0.6)", None),
        ("[0.1, 2, 0.5, 0.6]", None),  # (2) needs all decimals, (5) all integers
        ("no box", None),
    ],
)
def test_official_box_patterns(response, box):
    got = official_box(response)
    if box is None:
        assert got is None
    else:
        assert got == pytest.approx(box)


def item(key, task="region", target=2, answer=(0.1, 0.2, 0.5, 0.6), n_images=3):
    return MigBenchItem(key, task, tuple(f"{i}.jpg" for i in range(n_images)), "q", answer,
                        target_image=target)  # fmt: skip


def preds(**responses):
    return {int(k[1:]): Prediction(int(k[1:]), v) for k, v in responses.items()}


def test_official_ignores_image_strict_requires_it():
    items = [item(0), item(1), item(2)]
    p = preds(
        i0="It is in the second image. (100,200),(500,600)",
        i1="It is in the third image. (100,200),(500,600)",
        i2="(100,200),(500,600)",
    )
    off = [s.iou for s in score_items(items, p, "official")]
    strict = [s.iou for s in score_items(items, p, "strict", "qwen2-vl")]
    assert off == pytest.approx([1, 1, 1])
    assert strict == pytest.approx([1, 0, 0])


def test_strict_task_without_target_image_accepts_any_image():
    items = [item(0, task="diff", target=None, n_images=2)]
    p = preds(i0="Image-2 (100,200),(500,600)")
    assert score_items(items, p, "strict", "qwen2-vl")[0].iou == pytest.approx(1.0)


def test_inverted_answer_scores_zero_in_both_protocols():
    items = [item(0, answer=(0.5, 0.6, 0.1, 0.2))]
    p = preds(i0="Image-2 (100,200),(500,600)")
    assert score_items(items, p, "official")[0].iou == 0.0
    assert score_items(items, p, "strict", "qwen2-vl")[0].iou == 0.0


def test_metrics_shape_thresholds_average_and_missing():
    items = [item(0, "region"), item(1, "region"), item(2, "diff", None), item(3, "diff", None)]
    p = {
        0: Prediction(0, "(100,200),(500,600)"),  # IoU 1
        1: Prediction(1, "(100,200),(340,600)"),  # IoU 0.6
        2: Prediction(2, "(100,200),(260,600)"),  # IoU 0.4
    }  # item 3 missing
    m = aggregate(score_items(items, p, "official"), "official")
    assert set(m) == {"protocol", "tasks", "average", "missing"}
    assert m["missing"] == 1
    assert set(m["tasks"]) == {"region", "diff"}
    assert set(m["tasks"]["region"]) == {"n", "acc@0.3", "acc@0.5", "acc@0.7", "miou"}
    r, d = m["tasks"]["region"], m["tasks"]["diff"]
    assert (r["n"], r["acc@0.3"], r["acc@0.5"], r["acc@0.7"]) == (2, 100.0, 100.0, 50.0)
    assert r["miou"] == pytest.approx(0.8)
    assert (d["acc@0.3"], d["acc@0.5"], d["miou"]) == (50.0, 0.0, pytest.approx(0.2))
    assert m["average"]["acc@0.3"] == pytest.approx(75.0)  # unweighted over tasks
    assert list(m["tasks"]) == ["diff", "region"]  # published column order
    table = format_table(m)
    assert "average" in table and "missing predictions (scored as misses): 1" in table


def test_unknown_prediction_index_is_an_error():
    with pytest.raises(ValueError, match="unknown items: \\[9\\]"):
        score_items([item(0)], {9: Prediction(9, "x")}, "official")


def test_strict_needs_profile_and_frames_for_absolute_profiles():
    with pytest.raises(ValueError, match="profile"):
        score_items([item(0)], preds(i0="x"), "strict")
    with pytest.raises(ProfileError, match="input_sizes"):
        score_items([item(0)], preds(i0="x"), "strict", "qwen2.5-vl")
    p = {
        0: Prediction(
            0, '{"image": 2, "bbox_2d": [64, 96, 320, 288]}', ((10, 10), (640, 480), (5, 5))
        )
    }
    assert score_items([item(0)], p, "strict", "qwen2.5-vl")[0].iou == pytest.approx(1.0)


def test_oracle_on_real_file_scores_full_except_stored_inverted_answers(migbench_items):
    names = ["first", "second", "third", "fourth", "fifth", "sixth"]
    p = {}
    for it in migbench_items:
        b = [round(v * 1000) for v in it.target_box]
        text = f"It is in the {names[(it.target_image or 1) - 1]} image. ({b[0]},{b[1]}),({b[2]},{b[3]})"
        p[it.index] = Prediction(it.index, text)
    for protocol in ("official", "strict"):
        m = aggregate(score_items(migbench_items, p, protocol, "qwen2-vl"), protocol)
        assert m["missing"] == 0
        for task, row in m["tasks"].items():
            expected = 100 * (1 - 5 / 816) if task == "common_object" else 100.0
            assert row["acc@0.5"] == pytest.approx(expected), task
    # naming another image: official unchanged, strict keeps only the diff task (no target)
    wrong = {}
    for it in migbench_items:
        other = (it.target_image or 1) % len(it.images) + 1
        wrong[it.index] = Prediction(
            it.index, f"Image-{other}: " + p[it.index].response.split(". ")[1]
        )
    assert aggregate(score_items(migbench_items, wrong, "official"), "official")["average"][
        "acc@0.5"
    ] == pytest.approx(
        aggregate(score_items(migbench_items, p, "official"), "official")["average"]["acc@0.5"]
    )
    m = aggregate(score_items(migbench_items, wrong, "strict", "qwen2-vl"), "strict")
    assert m["tasks"]["diff"]["acc@0.5"] == 100.0
    assert all(row["acc@0.5"] == 0.0 for task, row in m["tasks"].items() if task != "diff")


def write_lines(tmp_path, lines):
    p = tmp_path / "predictions.jsonl"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_read_predictions_ok_and_blank_lines(tmp_path):
    p = write_lines(tmp_path, [json.dumps({"index": 0, "response": "a"}), "",
                               json.dumps({"index": 1, "response": "b", "input_sizes": [[10, 20]]})])  # fmt: skip
    got = read_predictions(p)
    assert got[0].response == "a" and got[1].input_sizes == ((10, 20),)
    q = write_lines(tmp_path, [json.dumps({"id": "synth-3", "response": "a"})])
    assert "synth-3" in read_predictions(q)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", ":2: not valid JSON"),
        ("[1, 2]", ":2: expected a JSON object"),
        ('{"response": "a"}', ":2: missing field 'index'"),
        ('{"index": "0", "response": "a"}', ":2: field 'index'"),
        ('{"index": 1, "response": null}', ":2: field 'response'"),
        ('{"index": 0, "response": "again"}', ":2: duplicate prediction for item 0"),
        ('{"index": 1, "response": "a", "input_sizes": [[10]]}', ":2: field 'input_sizes'"),
    ],
)
def test_read_predictions_errors_name_file_line_and_field(tmp_path, line, message):
    p = write_lines(tmp_path, [json.dumps({"index": 0, "response": "a"}), line])
    with pytest.raises(ValueError) as info:
        read_predictions(p)
    assert str(p) + message in str(info.value)
