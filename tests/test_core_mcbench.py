"""MC-Bench: the reader, mirg's prompt and answers, and the published script's metrics.

The fixture ``tests/fixtures/mcbench/MC-Bench.json`` is handmade in MC-Bench's published
annotation format (its README: ``descriptions``, ``images``, ``annotations``,
``categories``), plus the two things its evaluation script reads beyond the README: each
image's ``pair_image_id`` and categories named "group 1", "group 2". ``results.json`` is a
handmade prediction file in the published results format. ``misfire.json`` and
``results-misfire.json`` are a second handmade pair, where the script's regrouping misfires.
"""

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from mirg.core import mcbench
from mirg.core.mcbench import (
    AnswerBox,
    Detection,
    box_iou,
    detections,
    evaluate,
    load_mcbench,
    parse_boxes,
    parse_mcbench,
    read_results,
    regroup,
)
from mirg.errors import MirgError

FIXTURES = Path(__file__).parent / "fixtures" / "mcbench"
BENCH = FIXTURES / "MC-Bench.json"

# The published evaluation script's numbers on the fixtures, produced by running it
# unchanged: eval_mc_bench.py of github.com/XuYunqiu/MC-Bench at commit fd43ae3 (fetched
# snapshot, run from a temporary folder, never copied here) with pycocotools 2.0.11,
# scipy 1.17.1 and numpy 2.4.6 (PyPI), in Python 3.11:
#   ap, acc = mcbench_eval("MC-Bench.json", "results.json", "all")  # printed with repr()
OFFICIAL_RESULTS = (0.7538896746817538, 0.5)
#   mcbench_eval("MC-Bench.json", "results-swapped.json", "all"): the script renames one
#   group after another, so the swap 1 <-> 2 of sample 4 puts all its boxes in group 1
OFFICIAL_SWAPPED = (0.6802560946832515, 0.5)
#   the same predictions with sample 4's groups written the right way round (nothing for
#   the script to rename): what renaming both groups at once gives
OFFICIAL_SWAP_UNDONE = (0.9081908190819081, 0.5)
#   mcbench_eval("misfire.json", "results-misfire.json", "all"): texts 1 and 3 are answered
#   with groups 1 and 2 swapped; the script visits images 201, 202, 205, 206 (set order),
#   rereading the results each time, so text 1's renaming is lost, and it renames text 3's
#   groups one after another, which puts all of them in group 1
OFFICIAL_MISFIRE = (0.29152915291529147, 0.6666666666666666)
#   the same predictions with every group written the right way round
OFFICIAL_MISFIRE_UNDONE = (0.8624862486248625, 0.6666666666666666)
#   misfire.json with its categories listed "group 2" first: the script weighs the AP of the
#   k-th smallest category id by the share of the file's k-th category
OFFICIAL_MISFIRE_REORDERED = (0.23322332233223317, 0.6666666666666666)


@pytest.fixture(scope="module")
def samples():
    return load_mcbench(BENCH)


def test_reader_builds_samples_in_the_files_order(samples):
    assert [s.id for s in samples] == list(range(1, 9))
    first = samples[0]
    assert first.style == "Referring" and first.positive and first.text.startswith("people")
    assert [img.id for img in first.images] == [101, 102]
    assert [(t.image, t.group) for t in first.targets] == [(1, 1), (2, 1)]
    assert first.targets[0].relative(first.images[0]) == pytest.approx(
        (100 / 640, 80 / 480, 160 / 640, 200 / 480)
    )
    assert not samples[2].positive and samples[2].targets == ()
    assert {t.group for t in samples[3].targets} == {1, 2} and samples[3].regrouped
    assert not samples[0].regrouped  # no "group 2" target: the script leaves it alone
    assert samples[4].targets[0].iscrowd
    assert mcbench.is_mcbench(json.loads(BENCH.read_text()))
    assert not mcbench.is_mcbench([{"task": "diff"}])


def test_official_script_numbers_are_reproduced_exactly(samples):
    found = read_results(FIXTURES / "results.json", samples)
    score = evaluate(samples, found)
    assert (score.ap50, score.accuracy) == OFFICIAL_RESULTS  # to the last bit


def test_swapped_groups_are_renamed_at_once(samples):
    """Where the script's renaming one group after another merges swapped groups, mirg
    renames them together: its figure is the script's on the same boxes written with the
    right groups."""
    found = read_results(FIXTURES / "results-swapped.json", samples)
    score = evaluate(samples, found)
    assert (score.ap50, score.accuracy) == OFFICIAL_SWAP_UNDONE
    assert score.ap50 > OFFICIAL_SWAPPED[0]
    renamed = {(d.image_id, d.bbox[0]): d.group for d in regroup(samples, found)}
    assert renamed[107, 402] == 2 and renamed[107, 42] == 1  # group 1 lies on group 2


def test_metrics_per_text_style_in_percent(samples):
    found = read_results(FIXTURES / "results.json", samples)
    m = mcbench.metrics(samples, found, missing=1)
    assert list(m["tasks"]) == ["Referring", "Comparison", "Reasoning"]
    assert m["overall"] == {
        "n": 8,
        "ap50": 100 * OFFICIAL_RESULTS[0],
        "accuracy": 100 * OFFICIAL_RESULTS[1],
    }
    assert sum(r["n"] for r in m["tasks"].values()) == 8
    # the referring samples: one found target pair, and a box on the negative sample
    assert m["tasks"]["Referring"]["accuracy"] == 50.0
    style = [s for s in samples if s.style == "Reasoning"]
    assert m["tasks"]["Reasoning"]["ap50"] == 100 * evaluate(style, found).ap50
    table = mcbench.format_table(m)
    assert "overall" in table and "75.39" in table and "missing predictions" in table


def test_official_protocol_keeps_the_scripts_renaming(samples):
    for name, expected in [
        ("results.json", OFFICIAL_RESULTS),
        ("results-swapped.json", OFFICIAL_SWAPPED),
    ]:
        score = evaluate(samples, read_results(FIXTURES / name, samples), protocol="official")
        assert (score.ap50, score.accuracy) == expected  # to the last bit
    with pytest.raises(MirgError, match="protocol 'coco'"):
        evaluate(samples, [], protocol="coco")


def test_official_protocol_misfires_where_the_script_does():
    samples = load_mcbench(FIXTURES / "misfire.json")
    found = read_results(FIXTURES / "results-misfire.json", samples)
    official = evaluate(samples, found, protocol="official")
    assert (official.ap50, official.accuracy) == OFFICIAL_MISFIRE
    corrected = evaluate(samples, found)
    assert (corrected.ap50, corrected.accuracy) == OFFICIAL_MISFIRE_UNDONE
    groups = {d.image_id: set() for d in found}
    for d in mcbench.regroup_as_script(samples, found):
        groups[d.image_id].add(d.group)
    assert groups[201] == groups[202] == {1, 2}  # still swapped: its renaming was lost
    assert groups[205] == groups[206] == {1}  # the swap merged
    m = mcbench.metrics(samples, found)
    assert m["overall"]["ap50"] == 100 * OFFICIAL_MISFIRE[0] and m["official_note"] is None
    assert m["corrected"]["overall"]["ap50"] == 100 * OFFICIAL_MISFIRE_UNDONE[0]
    # per style, the script on a file of that style's samples: text 2 holds no "group 2"
    # target, where the script stops (NameError); mirg regroups nothing and says so
    alone = [s for s in samples if s.style == "Referring"]
    assert m["tasks"]["Referring"]["ap50"] == 100 * evaluate(alone, found, protocol="official").ap50
    assert mcbench.regroup_as_script(alone, found) is None
    assert "stops (NameError)" in mcbench.metrics(alone, found)["official_note"]
    table = mcbench.format_table(m)
    assert "official" in table and "corrected" in table and "29.15" in table and "86.25" in table
    assert "NameError" in mcbench.format_table(mcbench.metrics(alone, found))


def test_official_protocol_follows_the_files_category_order(tmp_path):
    path = bad_file(tmp_path, lambda r: r["categories"].reverse(), FIXTURES / "misfire.json")
    samples = load_mcbench(path)
    found = read_results(FIXTURES / "results-misfire.json", samples)
    official = evaluate(samples, found, protocol="official")
    assert (official.ap50, official.accuracy) == OFFICIAL_MISFIRE_REORDERED
    assert evaluate(samples, found).ap50 == OFFICIAL_MISFIRE_UNDONE[0]


def test_accuracy_counts_every_prediction_and_ap_ranks_by_score(samples):
    pair = samples[0]  # targets on both images
    one = [Detection(101, 1, (100.0, 80.0, 60.0, 120.0))]
    assert evaluate([pair], one).accuracy == 0.0  # image 2 holds a target too
    both = [*one, Detection(102, 7, (0.0, 0.0, 1.0, 1.0), score=0.01)]
    assert evaluate([pair], both).accuracy == 1.0  # any box, any group, any score
    negative = samples[2]
    assert evaluate([negative], []).accuracy == 1.0
    assert evaluate([negative], [Detection(105, 1, (1.0, 1.0, 0.0, 0.0))]).accuracy == 0.0
    # a false positive ranked below both true ones costs no AP; ranked above them, a third
    hit = Detection(101, 1, (100.0, 80.0, 60.0, 120.0), score=0.5)
    target = Detection(102, 1, (300.0, 200.0, 50.0, 100.0), score=0.4)
    wrong = (400.0, 300.0, 10.0, 10.0)
    assert evaluate([pair], [hit, target, Detection(101, 1, wrong, score=0.1)]).ap50 == 1.0
    above = evaluate([pair], [hit, target, Detection(101, 1, wrong, score=0.9)]).ap50
    assert above == pytest.approx(2 / 3)


def test_iou_is_pycocotools_box_iou():
    assert box_iou((0, 0, 10, 10), (5, 0, 10, 10), False) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (0, 0, 100, 100), True) == 1.0  # crowd: over the box
    assert box_iou((0, 0, 10, 10), (10, 0, 5, 5), False) == 0.0
    assert box_iou((0, 0, 0, 0), (0, 0, 5, 5), False) == 0.0


def test_best_assignment_is_the_best_one_to_one_matching():
    rng = random.Random(0)
    for _ in range(200):
        rows, cols = rng.randint(1, 5), rng.randint(1, 5)
        w = [[rng.choice([0.0, rng.random()]) for _ in range(cols)] for _ in range(rows)]
        k = min(rows, cols)
        brute = max(
            sum(w[r][c] for r, c in zip(rs, cs, strict=True))
            for rs in itertools.combinations(range(rows), k)
            for cs in itertools.permutations(range(cols), k)
        )
        assert mcbench._best_assignment(w) == pytest.approx(brute)


def test_mean_is_numpys_pairwise_mean():
    values = [0.1 * (k % 7) + 1e-3 * k for k in range(101)]
    assert mcbench._pairwise_sum(values) == pytest.approx(sum(values))
    assert mcbench.RECALL_POINTS[35] == 0.35000000000000003  # np.linspace's, not 0.35


def bad_file(tmp_path, mutate, source=BENCH):
    raw = json.loads(source.read_text())
    mutate(raw)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r.pop("descriptions"), r"field 'descriptions': missing"),
        (lambda r: r["images"][3].update(width=0), r"images\[3\]: field 'width'"),
        (lambda r: r["images"][0].pop("file_name"), r"images\[0\]: field 'file_name'"),
        (
            lambda r: r["descriptions"][1].update(images_id=[103, 999]),
            r"descriptions\[1\] \(id 2\): field 'images_id': no image with id 999",
        ),
        (
            lambda r: r["descriptions"][1].update(images_id=[101, 104]),
            r"image 101 already belongs to description 1",
        ),
        (lambda r: r["descriptions"][0].update(text=" "), r"field 'text'"),
        (lambda r: r["annotations"][2].update(bbox=[1, 2, -3, 4]), r"annotations\[2\]: .*'bbox'"),
        (
            lambda r: r["annotations"][0].update(category_id=9),
            r"annotations\[0\]: field 'category_id': 9 is not in 'categories'",
        ),
        (lambda r: r["annotations"][1].update(image_id=4), r"no description holds image 4"),
        (lambda r: r["annotations"][1].update(iscrowd=2), r"'iscrowd': expected 0 or 1"),
    ],
)
def test_reader_names_file_record_and_field(tmp_path, mutate, message):
    path = bad_file(tmp_path, mutate)
    with pytest.raises(MirgError, match=message) as info:
        load_mcbench(path)
    assert str(path) in str(info.value)


def test_reader_refuses_what_is_not_mc_bench(tmp_path):
    with pytest.raises(MirgError, match="expected a JSON object"):
        parse_mcbench([], "x.json")
    path = tmp_path / "broken.json"
    path.write_text("{")
    with pytest.raises(MirgError, match=r"not valid JSON \(line 1"):
        load_mcbench(path)


def test_results_reader_names_result_and_field(tmp_path, samples):
    path = tmp_path / "r.json"
    for content, message in [
        ({"image_id": 1}, "expected a JSON list"),
        ([{"image_id": 5, "category_id": 1, "bbox": [0, 0, 1, 1]}], "no image 5"),
        ([{"image_id": 101, "category_id": 1, "bbox": [0, 0, 1]}], r"result 0: field 'bbox'"),
        (
            [{"image_id": 101, "category_id": 1, "bbox": [0, 0, 1, 1], "score": "x"}],
            "field 'score'",
        ),
    ]:
        path.write_text(json.dumps(content))
        with pytest.raises(MirgError, match=message):
            read_results(path, samples)


@pytest.mark.parametrize(
    ("text", "boxes", "error"),
    [
        (
            '<think>two</think><answer>[{"image": 1, "bbox_2d": [1, 2, 3, 4]}, '
            '{"image": 2, "bbox_2d": [5, 6, 7, 8], "group": 2}]</answer>',
            [AnswerBox(1, (1, 2, 3, 4)), AnswerBox(2, (5, 6, 7, 8), 2)],
            None,
        ),
        ("<think>none</think><answer>[]</answer>", [], None),
        (
            '<answer>{"image": 2, "bbox_2d": [5, 6, 7, 8]}</answer>',
            [AnswerBox(2, (5, 6, 7, 8))],
            None,
        ),
        (  # not JSON (a trailing comma): the entries are still read
            '<answer>[{"image": 1, "bbox_2d": [1, 2, 3, 4]},]</answer>',
            [AnswerBox(1, (1, 2, 3, 4))],
            None,
        ),
        ('<answer>[{"image": "one", "bbox_2d": [1, 2]}]</answer>', [], "no entry"),
        ("<answer>[]</answer><answer>[]</answer>", [], "2 answer blocks"),
        ("I cannot tell", [], "no box list"),
        (None, [], "not text"),
    ],
)
def test_answers_list_boxes(text, boxes, error):
    got, why = parse_boxes(text)
    assert got == boxes
    assert (why is None) if error is None else (error in why)


def test_answers_become_pixel_detections(samples):
    sample = samples[0]  # 640 x 480
    text = (
        '<think>x</think><answer>[{"image": 2, "bbox_2d": [500, 250, 750, 500]}, '
        '{"image": 3, "bbox_2d": [0, 0, 10, 10]}]</answer>'
    )
    found, error = detections(sample, text, "qwen3-vl")
    assert error is None
    assert found == [Detection(102, 1, pytest.approx((320.0, 120.0, 160.0, 120.0)), 1.0)]
    # absolute pixels of the frame the model saw (qwen2.5-vl): 320 x 240 frames
    text = '<answer>[{"image": 1, "bbox_2d": [32, 24, 64, 48]}]</answer>'
    found, _ = detections(sample, text, "qwen2.5-vl", [[320, 240], [320, 240]])
    assert found[0].bbox == pytest.approx((64.0, 48.0, 64.0, 48.0))
    with pytest.raises(MirgError, match="input size"):
        detections(sample, text, "qwen2.5-vl")


def test_prompt_follows_the_text_style(samples):
    questions = {s.style: mcbench.question(s) for s in samples}
    assert len(set(questions.values())) == 3
    assert "Compare the images" in questions["Comparison"]
    assert all(s.text in mcbench.question(s) for s in samples)
    msgs = mcbench.messages(samples[0], "qwen3-vl")
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    assert [p["type"] for p in user].count("image") == 2
    assert user[0]["text"] == "Image-1:" and "0 to 1000" in msgs[0]["content"][0]["text"]
    assert "Answer []" in mcbench.system_prompt("normalized")


def test_core_module_imports_nothing_heavy():
    code = (
        "import sys, mirg.core.mcbench; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'transformers', 'PIL', 'numpy', 'scipy', 'pycocotools'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
