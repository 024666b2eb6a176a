"""Benchmarks as tasks: a user's own benchmark through mirg eval and mirg report, and the
MIG-Bench module scoring exactly as the core functions do."""

import json
from pathlib import Path

import pytest

from mirg.cli import main
from mirg.core.migbench import load_migbench
from mirg.core.scoring import Prediction, aggregate, score_items
from mirg.errors import MirgError
from mirg.eval.benchmarks import get_benchmark, load_eval_items

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PLUGINS = Path(__file__).parent / "plugins"


@pytest.fixture
def toy_csv(tmp_path, monkeypatch):
    """Three single-image items of the toy benchmark (tests/plugins/mirg_toys/bench.py)."""
    from PIL import Image

    monkeypatch.syspath_prepend(str(PLUGINS))
    data = tmp_path / "toy"
    data.mkdir()
    rows = ["id,image,question,x1,y1,x2,y2"]
    for k in range(3):
        Image.new("RGB", (64, 48), (60 * k, 90, 160)).save(data / f"{k}.png")
        rows.append(f"t{k},{k}.png,Where is the blue square?,0.1,0.2,0.5,0.6")
    (data / "items.csv").write_text("\n".join(rows) + "\n")
    return data / "items.csv"


def test_a_users_benchmark_runs_through_eval_and_report(tiny_model_dir, toy_csv, tmp_path):
    out = tmp_path / "run"
    code = main(["eval", "--bench", "mirg_toys.bench.BENCH", "--model", str(tiny_model_dir),
                 "--data", str(toy_csv), "--out", str(out), "--batch-size", "3",
                 "--max-new-tokens", "8", "--no-progress"])  # fmt: skip
    assert code == 0
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in preds) == ["t0", "t1", "t2"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["tasks"]) == {"toy"} and metrics["tasks"]["toy"]["n"] == 3
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["bench"] == run["identity"]["bench"] == "mirg_toys.bench.BENCH"
    assert "toy rows answered: 3 of 3" in (out / "report.html").read_text()
    # mirg report finds the benchmark from run.json (no built-in recognises a .csv)
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert "toy rows answered: 3 of 3" in html and "benchmark toy CSV" in html
    assert html.count('class="card ') == 3


def test_benchmarks_are_named_or_recognised(toy_csv, tmp_path):
    assert get_benchmark(None, tmp_path / "test.jsonl").name == "mirg split"
    assert get_benchmark(None, tmp_path / "MIG_data.json").name == "MIG-Bench"
    assert get_benchmark("mcbench", tmp_path / "x.json").name == "MC-Bench"
    with pytest.raises(MirgError, match=r"built-in names .*migbench.* or dotted paths"):
        get_benchmark("refcocoo", toy_csv)
    with pytest.raises(MirgError, match=r"not a benchmark .*no recognises, load"):
        get_benchmark("mirg_toys.bench.csv", toy_csv)
    items = load_eval_items(toy_csv, bench="mirg_toys.bench.BENCH")
    assert [it.key for it in items] == ["t0", "t1", "t2"] and items[0].benchmark.name == "toy CSV"


@pytest.mark.parametrize("protocol", ["official", "strict"])
def test_migbench_module_scores_the_real_file_as_the_core_does(migbench_path, protocol):
    """The same items and figures as load_migbench + score_items + aggregate, for answers
    that hit, miss, name the wrong image or give no box."""
    core = load_migbench(migbench_path)
    items = load_eval_items(migbench_path, migbench_path.parent)
    assert [(it.key, it.task, it.question, it.target_box, it.target_image) for it in items] == [
        (it.index, it.task, it.question, it.target_box, it.target_image) for it in core
    ]
    assert {it.key_field for it in items} == {"index"}
    predictions = {}
    for it in core:
        x1, y1, x2, y2 = (round(v * 1000) for v in it.target_box)
        shift = (it.index % 4) * 150  # 0: the box, then ever further off
        image = (it.target_image or 1) + (it.index % 7 == 0)  # now and then the wrong image
        text = f"<|box_start|>({x1 + shift},{y1}),({x2 + shift},{y2})<|box_end|>"
        response = "no box" if it.index % 11 == 0 else f"Image-{image}: {text}"
        predictions[it.index] = Prediction(it.index, response)
    expected = aggregate(score_items(core, predictions, protocol, "qwen2-vl"), protocol)
    got = get_benchmark("migbench", migbench_path).score(
        items, predictions, protocol, "qwen2-vl", None
    )
    assert got == expected


def test_held_out_items_while_training_are_scored_by_their_benchmark(tmp_path):
    """A held-out MC-Bench file goes through MC-Bench's metrics (every target, AP50), not the
    one-box judge on its first target."""
    from types import SimpleNamespace

    from mirg.train.callbacks import grounding_items

    bench_file = Path(__file__).parent / "fixtures" / "mcbench" / "MC-Bench.json"
    config = SimpleNamespace(
        grounding_eval_path=str(bench_file),
        grounding_eval_image_root=str(tmp_path),
        grounding_eval_limit=None,
        grounding_eval_bench=None,
    )
    items = grounding_items(config)
    bench = items[0].benchmark
    assert bench.name == "MC-Bench" and len(items) == 8
    metrics = bench.score(items, {}, "strict", "qwen3-vl", None)
    assert metrics[bench.summary] == {"n": 8, "ap50": 0.0, "accuracy": 25.0}  # 2 negatives


def test_score_takes_another_benchmark(tmp_path, capsys):
    """mirg score --benchmark mcbench: the figures MC-Bench's own script gives the same
    answers (OFFICIAL_ON_ANSWERS in test_eval_mcbench.py)."""
    fixtures = Path(__file__).parent / "fixtures" / "mcbench"
    out = tmp_path / "metrics.json"
    code = main(["score", "--bench", str(fixtures / "MC-Bench.json"), "--benchmark", "mcbench",
                 "--predictions", str(fixtures / "predictions.jsonl"), "--protocol", "strict",
                 "--profile", "qwen3-vl", "--out", str(out)])  # fmt: skip
    assert code == 0 and "MC-Bench (image-level accuracy" in capsys.readouterr().out
    overall = json.loads(out.read_text())["overall"]
    assert overall["ap50"] == pytest.approx(100 * 0.7114568599717115, rel=1e-15)
    assert overall["accuracy"] == 75.0


def test_score_of_another_benchmark_asks_for_the_profile_its_boxes_are_in(capsys):
    """Only MIG-Bench's official protocol reads boxes without the model's profile: another
    benchmark without --profile is refused in one line, naming the option."""
    fixtures = Path(__file__).parent / "fixtures" / "mcbench"
    code = main(["score", "--bench", str(fixtures / "MC-Bench.json"), "--benchmark", "mcbench",
                 "--predictions", str(fixtures / "predictions.jsonl")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert "--benchmark mcbench needs --profile" in err and "Traceback" not in err


def test_held_out_items_while_training_can_be_a_users_benchmark(toy_csv):
    """grounding_eval_bench names a benchmark no built-in rule recognises, by dotted path."""
    from mirg.train.callbacks import grounding_items
    from mirg.train.configs import SFTTrainConfig

    config = SFTTrainConfig(
        output_dir=str(toy_csv.parent / "run"),
        use_cpu=True,
        grounding_eval_path=str(toy_csv),
        grounding_eval_bench="mirg_toys.bench.BENCH",
    )
    items = grounding_items(config)
    assert [it.key for it in items] == ["t0", "t1", "t2"]
    assert {it.benchmark.name for it in items} == {"toy CSV"}


def test_recognition_asks_every_benchmark_before_the_migbench_fallback(toy_csv, monkeypatch):
    """A benchmark added at the end of BENCHMARKS is still asked; a class named instead of its
    instance is used; RefCOCO refs in JSONL beside instances.json are not taken for a split."""
    import mirg.eval.benchmarks as benchmarks

    monkeypatch.setitem(benchmarks.BENCHMARKS, "toy", "mirg_toys.bench:BENCH")
    assert get_benchmark(None, toy_csv).name == "toy CSV"
    assert get_benchmark("mirg_toys.bench.ToyBench", toy_csv).name == "toy CSV"
    refs = toy_csv.parent / "refs.jsonl"
    refs.write_text("")
    (toy_csv.parent / "instances.json").write_text("{}")
    assert get_benchmark(None, refs).name == get_benchmark("refcoco", refs).name
    assert get_benchmark(None, toy_csv.parent / "other.jsonl").name == "mirg split"
