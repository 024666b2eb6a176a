"""mirg eval on MC-Bench: loading, prompting, scoring, the results file and the report."""

import json
import shutil
from pathlib import Path

import pytest

from mirg.cli import main
from mirg.core import mcbench
from mirg.core.mcbench import evaluate, load_mcbench, read_results
from mirg.errors import MirgError
from mirg.eval.benchmarks import load_eval_items
from mirg.eval.benchmarks.mcbench import MCBENCH_RESULTS
from mirg.eval.report import esc
from mirg.eval.run import EvalConfig, score_run
from mirg.eval.run import evaluate as run_eval

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

FIXTURES = Path(__file__).parent / "fixtures" / "mcbench"
BENCH = FIXTURES / "MC-Bench.json"

# MC-Bench's evaluation script (github.com/XuYunqiu/MC-Bench, eval_mc_bench.py at commit
# fd43ae3, run unchanged from a temporary folder with pycocotools 2.0.11, scipy 1.17.1,
# numpy 2.4.6) on the mcbench_results.json that mirg writes from the handmade answers in
# fixtures/mcbench/predictions.jsonl (qwen3-vl coordinates):
#   mcbench_eval("MC-Bench.json", "mcbench_results.json", "all"), printed with repr()
OFFICIAL_ON_ANSWERS = (0.7114568599717115, 0.75)


@pytest.fixture(scope="module")
def images_root(tmp_path_factory):
    """The fixture's images, drawn at their annotated sizes, under ``MC-Bench_images/`` as
    MC-Bench's archive unpacks (the root given to --images is the folder above)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("mcbench")
    for sample in load_mcbench(BENCH):
        for k, img in enumerate(sample.images):
            path = root / "MC-Bench_images" / img.file_name
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (img.width, img.height), (40 * k, 90, 160)).save(path)
    return root


def test_items_carry_the_sample_and_resolve_images(images_root):
    items = load_eval_items(BENCH, images_root)
    assert [it.key for it in items] == list(range(1, 9))
    assert [it.key_field for it in items] == ["id"] * 8
    assert {it.task for it in items} == {"Referring", "Comparison", "Reasoning"}
    first = items[0]
    assert first.images[0] == str((images_root / "MC-Bench_images/handmade/01_1.png").resolve())
    assert first.mcbench.text == first.question and len(first.mcbench.targets) == 2
    assert items[2].target_image is None  # a negative sample
    # the image folder itself works as the root too; a limit keeps N per text style
    inner = load_eval_items(BENCH, images_root / "MC-Bench_images", limit=1)
    assert [it.task for it in inner] == ["Referring", "Comparison", "Reasoning"]
    with pytest.raises(MirgError, match="MC-Bench needs --images ROOT"):
        load_eval_items(BENCH)


def test_answers_score_as_the_official_script_scores_their_results_file(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(FIXTURES / "predictions.jsonl", out / "predictions.jsonl")
    items = load_eval_items(BENCH, tmp_path)
    metrics = score_run(out, items, "strict", "qwen3-vl")
    assert metrics["protocol"] == "mcbench"
    assert metrics["missing"] == 1 and metrics["unreadable"] == 1 and metrics["detections"] == 11
    assert metrics["overall"]["ap50"] == pytest.approx(100 * OFFICIAL_ON_ANSWERS[0], rel=1e-15)
    assert metrics["overall"]["accuracy"] == 100 * OFFICIAL_ON_ANSWERS[1]
    assert json.loads((out / "metrics.json").read_text()) == metrics
    samples = load_mcbench(BENCH)
    written = read_results(out / MCBENCH_RESULTS, samples)
    assert len(written) == 11 and {d.score for d in written} == {1.0}
    score = evaluate(samples, written)
    assert (score.ap50, score.accuracy) == OFFICIAL_ON_ANSWERS  # exactly


def test_eval_end_to_end_with_the_tiny_model(tiny_model_dir, images_root, tmp_path):
    out = tmp_path / "eval"
    code = main(["eval", "--model", str(tiny_model_dir), "--data", str(BENCH),
                 "--images", str(images_root), "--out", str(out), "--batch-size", "4",
                 "--max-new-tokens", "8", "--no-progress"])  # fmt: skip
    assert code == 0
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert sorted(p["id"] for p in preds) == list(range(1, 9))
    assert all(len(p["input_sizes"]) == 2 for p in preds)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["protocol"] == "mcbench" and metrics["missing"] == 0
    assert set(metrics["tasks"]) == {"Referring", "Comparison", "Reasoning"}
    assert metrics["overall"]["n"] == 8
    assert isinstance(json.loads((out / MCBENCH_RESULTS).read_text()), list)
    html = (out / "report.html").read_text()
    assert "MC-Bench metrics" in html and "image accuracy" in html
    assert html.count('class="card ') == 8 and html.count('class="box gt"') == 14
    assert "Beside published results" not in html
    # the report rebuilds from the folder alone
    (out / "report.html").unlink()
    assert main(["report", str(out)]) == 0
    assert "MC-Bench metrics" in (out / "report.html").read_text()


def test_report_draws_every_target_and_box(images_root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(FIXTURES / "predictions.jsonl", out / "predictions.jsonl")
    config = {"model": "handmade", "data": str(BENCH), "images": str(images_root),
              "tasks": None, "limit": None, "prompt": "reasoning"}  # fmt: skip
    (out / "run.json").write_text(json.dumps({"config": config, "profile_used": "qwen3-vl"}))
    score_run(out, load_eval_items(BENCH, images_root), "strict", "qwen3-vl")
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert html.count('class="box pred"') == 11 and html.count('class="box gt"') == 14
    assert "2 of 2 targets found (IoU ≥ 0.5), 2 boxes, images right" in html
    assert html.count('class="card hit"') == 6  # accuracy 75 %: 6 of 8


def test_refuses_the_official_prompt_and_resized_images(images_root, tiny_model_dir, tmp_path):
    cfg = EvalConfig(model=str(tiny_model_dir), data=str(BENCH), out=str(tmp_path / "a"),
                     images=str(images_root), prompt="official")  # fmt: skip
    with pytest.raises(MirgError, match="MC-Bench publishes no model prompt"):
        run_eval(cfg, progress=False)
    from PIL import Image

    resized = tmp_path / "resized"
    shutil.copytree(images_root, resized)
    Image.new("RGB", (64, 48)).save(resized / "MC-Bench_images/handmade/03_2.png")
    cfg = EvalConfig(model=str(tiny_model_dir), data=str(BENCH), out=str(tmp_path / "b"),
                     images=str(resized))  # fmt: skip
    with pytest.raises(MirgError, match=r"description 3: images\[1\] .* the file is 64x48"):
        run_eval(cfg, progress=False)


def _report_folder(out, bench, metrics, images, tasks=None):
    """A mirg eval folder holding ``metrics`` as metrics.json, for ``mirg report``."""
    out.mkdir()
    (out / "predictions.jsonl").touch()
    (out / "metrics.json").write_text(json.dumps(metrics))
    config = {"model": "handmade", "data": str(bench), "images": str(images), "tasks": tasks,
              "limit": None, "prompt": "reasoning"}  # fmt: skip
    (out / "run.json").write_text(json.dumps({"config": config, "profile_used": "qwen3-vl"}))


def test_report_and_terminal_show_both_protocols_by_name(tmp_path, monkeypatch, capsys):
    """Where the script's regrouping misfires, the report's table and mirg eval's terminal
    table show the official figures and the corrected ones, each under its name."""
    bench = FIXTURES / "misfire.json"
    samples = load_mcbench(bench)
    metrics = mcbench.metrics(samples, read_results(FIXTURES / "results-misfire.json", samples))
    official, corrected = metrics["overall"], metrics["corrected"]["overall"]
    assert f"{official['ap50']:.2f}" != f"{corrected['ap50']:.2f}"
    figures = [f"{r[k]:.2f}" for r in (official, corrected) for k in ("ap50", "accuracy")]
    _report_folder(tmp_path / "run", bench, metrics, tmp_path)
    assert main(["report", str(tmp_path / "run")]) == 0
    html = (tmp_path / "run" / "report.html").read_text()
    table = html.split("MC-Bench metrics (%)", 1)[1].split("</table>", 1)[0]
    assert '<th colspan="2">official</th><th colspan="2">corrected</th>' in table
    assert "<td>all samples</td><td>3</td>" + "".join(f"<td>{f}</td>" for f in figures) in table
    assert esc(mcbench.NO_GROUP_2) not in html  # the note only where it is set
    # mirg eval prints core/mcbench's table: both protocols by name, the same figures
    monkeypatch.setattr("mirg.eval.eval_cli.evaluate", lambda cfg, progress: metrics)
    assert main(["eval", "--model", "handmade", "--data", str(bench), "--images",
                 str(tmp_path), "--out", str(tmp_path / "eval")]) == 0  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert ["official", "corrected"] in [line.split() for line in lines]
    assert ["overall", "3", *figures] in [line.split() for line in lines]


def test_report_shows_the_note_on_the_official_figures(images_root, tmp_path):
    """Referring samples alone hold no "group 2" target: the script stops there, and the
    report says so under the official figures."""
    out = tmp_path / "run"
    _report_folder(out, BENCH, {}, images_root, tasks=["Referring"])
    shutil.copy(FIXTURES / "predictions.jsonl", out / "predictions.jsonl")
    items = load_eval_items(BENCH, images_root, tasks=["Referring"])
    metrics = score_run(out, items, "strict", "qwen3-vl")
    assert metrics["official_note"] == mcbench.NO_GROUP_2
    assert main(["report", str(out)]) == 0
    html = (out / "report.html").read_text()
    assert f'<p class="legend">{esc("official: " + mcbench.NO_GROUP_2)}</p>' in html


def test_report_names_metrics_written_before_the_corrected_protocol(tmp_path, capsys):
    """A metrics.json without ``corrected`` (an older run) is named, with what to do."""
    samples = load_mcbench(BENCH)
    metrics = mcbench.metrics(samples, [])
    del metrics["corrected"]
    _report_folder(tmp_path / "run", BENCH, metrics, tmp_path)
    assert main(["report", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "metrics.json: field 'corrected': missing" in err and "rerun mirg eval" in err
