"""RefCOCO as a benchmark: items from refer's refs + instances, Acc@0.5 per split and
pooled on fixed answers, worked out by hand below in pixels (fractions)."""

import json
import shutil
from fractions import Fraction
from pathlib import Path

import pytest

from mirg.cli import main
from mirg.core.migbench import BenchError
from mirg.core.scoring import PredictionError, read_predictions
from mirg.errors import MirgError
from mirg.eval.benchmarks import get_benchmark, load_eval_items
from mirg.eval.benchmarks.refcoco import (
    REFCOCO,
    format_refcoco,
    load_refcoco,
    score_refcoco,
)
from mirg.eval.run import EvalConfig, score_run
from mirg.eval.run import evaluate as run_eval

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FIXTURE = Path(__file__).parent / "fixtures" / "refcoco_eval"
IMAGES = FIXTURE / "train2014"
SIZES = {"val": [96, 72], "testA": [120, 90], "testB": [100, 80]}


def answer(image: int, box: list[int]) -> str:
    return f'<think>…</think><answer>{{"image": {image}, "bbox_2d": {box}}}</answer>'


# Answers in pixels of the images (profile qwen2.5-vl, each shown at its own size).
# Ground truth [x, y, w, h] -> [x, y, x + w, y + h]: the field's convention.
ANSWERS = {
    # testA, image 120x90. ref 11: person [10, 10, 30, 60] -> [10, 10, 40, 70], area 1800.
    "11:0": answer(1, [10, 10, 40, 70]),  # the box itself: IoU 1, a hit
    "11:1": answer(1, [10, 10, 40, 40]),  # its upper half: 900/1800 = 1/2 exactly, a hit
    # ref 12: person [70, 12, 40, 60]; the right box, but on an Image-2 the item lacks
    "12:0": answer(2, [70, 12, 110, 72]),  # a miss
    # testB, image 100x80. ref 21: dog; no box at all
    "21:0": "The brown dog is on the left of the picture.",  # a miss
    # ref 22: cat [60, 30, 30, 40] -> [60, 30, 90, 70], area 1200
    "22:0": answer(1, [60, 30, 90, 60]),  # inside it, 900/1200 = 3/4: a hit
    # val, image 96x72. ref 31: car [6, 6, 50, 30] -> [6, 6, 56, 36], area 1500
    "31:0": answer(1, [10, 6, 56, 36]),  # inside it, 1380/1500 = 23/25: a hit
    "31:1": answer(1, [50, 40, 90, 68]),  # the other car: no overlap, a miss
    # ref 32: car [50, 40, 40, 28] -> [50, 40, 90, 68], area 1120
    "32:0": answer(1, [50, 40, 90, 53]),  # 520/1120 = 13/28 < 1/2: a miss
    # "32:1": no prediction at all, a miss
}
HITS = {"testA": Fraction(2, 3), "testB": Fraction(1, 2), "val": Fraction(1, 4)}
POOLED = Fraction(4, 9)  # hits over sentences, not the mean of the splits (17/36)


def write_predictions(path: Path, answers: dict[str, str]) -> Path:
    items = {it.key: it for it in load_refcoco(FIXTURE / "refs.json", IMAGES)}
    with path.open("w") as fh:
        for key, response in answers.items():
            sizes = [SIZES[items[key].task]] if key in items else [[64, 48]]
            fh.write(json.dumps({"id": key, "response": response, "input_sizes": sizes}) + "\n")
    return path


def test_items_are_the_sentences_of_refs_outside_train():
    items = load_refcoco(FIXTURE / "refs.json", IMAGES)
    assert [it.key for it in items] == [
        "31:0", "31:1", "32:0", "32:1", "11:0", "11:1", "12:0", "21:0", "22:0"
    ]  # fmt: skip
    assert [it.task for it in items] == ["val"] * 4 + ["testA"] * 3 + ["testB"] * 2
    first = items[4]
    assert first.question == 'Locate "man on the left" in the image.'
    assert first.images == (str((IMAGES / "COCO_train2014_000000002001.png").resolve()),)
    assert first.target_image == 1 and first.key_field == "id"
    # [10, 10, 30, 60] on 120x90, unrounded: x2 = x + w, no pixel +1
    assert first.target_box == (10 / 120, 10 / 90, 40 / 120, 70 / 90)


def test_acc_at_05_per_split_and_pooled_as_worked_out_by_hand(tmp_path):
    items = load_refcoco(FIXTURE / "refs.json", IMAGES)
    predictions = read_predictions(write_predictions(tmp_path / "p.jsonl", ANSWERS))
    metrics = score_refcoco(items, predictions, "qwen2.5-vl")
    assert metrics["protocol"] == "refcoco" and metrics["missing"] == 1
    assert list(metrics["tasks"]) == ["val", "testA", "testB"]
    for split, share in HITS.items():
        row = metrics["tasks"][split]
        assert Fraction(row["hits"], row["n"]) == share
        assert row["acc@0.5"] == pytest.approx(float(100 * share), abs=1e-12)
    pooled = metrics["pooled"]
    assert (pooled["n"], pooled["hits"]) == (9, 4)
    assert pooled["acc@0.5"] == pytest.approx(float(100 * POOLED), abs=1e-12)
    table = format_refcoco(metrics)
    assert "testA" in table and "44.44" in table and "missing predictions" in table
    # the report's gallery counts the same hits, the pixel tie included
    html = "".join(
        body for _, body in REFCOCO.sections(items, predictions, metrics, "qwen2.5-vl", 50)
    )
    assert html.count('class="card hit"') == 4 and html.count('class="card miss"') == 5


def test_a_pixel_tie_is_a_hit_though_relative_coordinates_round_it_below_half(tmp_path):
    from mirg.core.scoring import score_items

    items = [it for it in load_refcoco(FIXTURE / "refs.json", IMAGES) if it.key == "11:1"]
    predictions = read_predictions(
        write_predictions(tmp_path / "p.jsonl", {"11:1": ANSWERS["11:1"]})
    )
    (score,) = score_items(items, predictions, "strict", "qwen2.5-vl")
    assert score.iou < 0.5  # 0.49999999999999994: the tie, rounded
    assert score_refcoco(items, predictions, "qwen2.5-vl")["pooled"]["hits"] == 1


def test_a_prediction_for_a_train_ref_is_refused(tmp_path):
    items = load_refcoco(FIXTURE / "refs.json", IMAGES)
    predictions = read_predictions(write_predictions(tmp_path / "p.jsonl", {"41:0": "x"}))
    with pytest.raises(PredictionError, match="41:0"):
        score_refcoco(items, predictions, "qwen2.5-vl")


def test_bad_input_is_named(tmp_path):
    with pytest.raises(BenchError, match="needs --images ROOT"):
        load_refcoco(FIXTURE / "refs.json", None)
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(FIXTURE / "refs.json", alone / "refs.json")
    with pytest.raises(BenchError, match=r"instances\.json is not there"):
        load_refcoco(alone / "refs.json", IMAGES)
    refs = json.loads((FIXTURE / "refs.json").read_text())
    refs[3]["ann_id"] = 999
    (alone / "refs.json").write_text(json.dumps(refs))
    with pytest.raises(
        BenchError, match=r"refs\.json:1 \(item 3\) \(ref 21\): field 'ann_id'.* 999"
    ):
        load_refcoco(alone / "refs.json", IMAGES, instances=FIXTURE / "instances.json")


def test_recognised_by_refers_layout_and_filtered_like_any_benchmark():
    assert get_benchmark(None, FIXTURE / "refs.json") is REFCOCO
    assert get_benchmark(None, FIXTURE / "instances.json") is not REFCOCO
    items = load_eval_items(FIXTURE / "refs.json", IMAGES, tasks=["testA", "val"], limit=2)
    assert [it.key for it in items] == ["31:0", "31:1", "11:0", "11:1"]
    assert all(it.benchmark is REFCOCO for it in items)


def test_mirg_score_and_a_run_folder_give_the_hand_worked_figures(tmp_path, capsys):
    preds = write_predictions(tmp_path / "predictions.jsonl", ANSWERS)
    code = main(["score", "--bench", str(FIXTURE / "refs.json"), "--benchmark", "refcoco",
                 "--predictions", str(preds), "--profile", "qwen2.5-vl"])  # fmt: skip
    assert code == 0
    table = capsys.readouterr().out
    assert "testA" in table and "66.67" in table and "44.44" in table
    items = load_eval_items(FIXTURE / "refs.json", IMAGES, bench="refcoco")
    metrics = score_run(tmp_path, items, "official", "qwen2.5-vl")  # --protocol does not apply
    assert metrics["protocol"] == "refcoco" and metrics["truncated"] == 0
    assert (metrics["pooled"]["n"], metrics["pooled"]["hits"]) == (9, 4)
    assert json.loads((tmp_path / "metrics.json").read_text()) == metrics


def test_mirg_eval_runs_on_the_fixture_and_refuses_the_official_prompt(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    code = main(["eval", "--bench", "refcoco", "--model", str(tiny_model_dir),
                 "--data", str(FIXTURE / "refs.json"), "--images", str(IMAGES),
                 "--out", str(out), "--batch-size", "4", "--max-new-tokens", "8",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    lines = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in lines) == sorted(it.key for it in load_refcoco(
        FIXTURE / "refs.json", IMAGES))  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["tasks"]) == ["val", "testA", "testB"] and metrics["pooled"]["n"] == 9
    html = (out / "report.html").read_text()
    assert "RefCOCO Acc@0.5" in html and html.count('class="card') == 9
    cfg = EvalConfig(model=str(tiny_model_dir), data=str(FIXTURE / "refs.json"),
                     out=str(tmp_path / "b"), images=str(IMAGES), prompt="official")  # fmt: skip
    with pytest.raises(MirgError, match=r"RefCOCO has no published prompt.*--prompt reasoning"):
        run_eval(cfg, progress=False)


def test_a_refs_pickle_is_refused_with_a_command_that_makes_json_of_it(tmp_path):
    import pickle
    import subprocess
    import sys

    from mirg.eval.benchmarks.refcoco import PICKLE_TO_JSON

    folder = tmp_path / "refcoco"
    folder.mkdir()
    shutil.copy(FIXTURE / "instances.json", folder / "instances.json")
    refs = json.loads((FIXTURE / "refs.json").read_text())
    (folder / "refs(unc).p").write_bytes(pickle.dumps(refs))
    with pytest.raises(BenchError, match=r"refs\(unc\)\.p: a pickle.*python -c") as caught:
        load_refcoco(folder / "refs(unc).p", IMAGES)
    assert PICKLE_TO_JSON in str(caught.value)
    command = PICKLE_TO_JSON.replace("python", sys.executable, 1)
    subprocess.run(f"{command} '{folder / 'refs(unc).p'}' {folder / 'refs.json'}", shell=True,
                   check=True)  # fmt: skip
    assert json.loads((folder / "refs.json").read_text()) == refs
    assert len(load_refcoco(folder / "refs.json", IMAGES)) == 9
