"""mirg eval on the tiny model: end to end, resume, refusing to mix, preflight, predict."""

import json

import pytest

from mirg.cli import main
from mirg.eval.benchmarks import EvalItem, load_eval_items
from mirg.eval.benchmarks.migbench import _migbench_image
from mirg.eval.run import EvalConfig, evaluate, preflight, repair_predictions

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def finished(tiny_model_dir, synth_dir, tmp_path_factory):
    """One complete evaluation of the synthetic test split."""
    out = tmp_path_factory.mktemp("eval") / "run"
    code = main(["eval", "--model", str(tiny_model_dir), "--data", str(synth_dir / "test.jsonl"),
                 "--out", str(out), "--batch-size", "4", "--max-new-tokens", "12",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    return out


def test_eval_end_to_end_writes_predictions_metrics_report(finished, synth_dir):
    samples = [json.loads(line) for line in (synth_dir / "test.jsonl").read_text().splitlines()]
    preds = lines(finished / "predictions.jsonl")
    assert sorted(p["id"] for p in preds) == sorted(s["id"] for s in samples)
    for p in preds:
        assert isinstance(p["response"], str)
        n_images = len(next(s for s in samples if s["id"] == p["id"])["images"])
        assert len(p["input_sizes"]) == n_images and all(
            w > 0 and h > 0 for w, h in p["input_sizes"]
        )
    metrics = json.loads((finished / "metrics.json").read_text())
    assert set(metrics) == {"protocol", "tasks", "average", "missing", "truncated"}
    assert metrics["protocol"] == "strict" and metrics["missing"] == 0
    assert sum(t["n"] for t in metrics["tasks"].values()) == len(samples)
    assert set(metrics["tasks"]) == {s["task"] for s in samples}
    html = (finished / "report.html").read_text()
    assert "<table" in html and 'class="card' in html


def test_rerun_resumes_after_a_kill_mid_write(finished, tiny_model_dir, synth_dir, tmp_path):
    out = tmp_path / "resumed"
    out.mkdir()
    full = (finished / "predictions.jsonl").read_text().splitlines(keepends=True)
    (out / "run.json").write_text((finished / "run.json").read_text())
    # a killed run: three whole lines, then half of the fourth
    (out / "predictions.jsonl").write_text("".join(full[:3]) + full[3][: len(full[3]) // 2])
    cfg = EvalConfig(model=str(tiny_model_dir), data=str(synth_dir / "test.jsonl"), out=str(out),
                     batch_size=4, max_new_tokens=12)  # fmt: skip
    evaluate(cfg, progress=False)
    got = lines(out / "predictions.jsonl")
    ids = [p["id"] for p in got]
    assert len(ids) == len(set(ids)) == len(full)
    assert {p["id"]: p["response"] for p in got} == {
        p["id"]: p["response"] for p in lines(finished / "predictions.jsonl")
    }
    run = json.loads((out / "run.json").read_text())
    assert run["last_run"]["resumed_from"] == 3 and run["last_run"]["predicted"] == len(full) - 3
    # a second rerun has nothing left to do and changes nothing
    before = (out / "predictions.jsonl").read_text()
    evaluate(cfg, progress=False)
    assert (out / "predictions.jsonl").read_text() == before


def test_interrupted_run_then_rerun_predicts_each_item_once(
    tiny_model_dir, synth_dir, tmp_path, monkeypatch
):
    from mirg.eval import generation

    calls = {"n": 0}
    original = generation.HFGenerator.generate

    def dying(self, messages, images):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt  # killed during the third batch
        return original(self, messages, images)

    monkeypatch.setattr(generation.HFGenerator, "generate", dying)
    cfg = EvalConfig(model=str(tiny_model_dir), data=str(synth_dir / "test.jsonl"), out=str(tmp_path / "o"),
                     batch_size=2, max_new_tokens=6)  # fmt: skip
    with pytest.raises(KeyboardInterrupt):
        evaluate(cfg, progress=False)
    assert len(lines(tmp_path / "o" / "predictions.jsonl")) == 4
    monkeypatch.setattr(generation.HFGenerator, "generate", original)
    evaluate(cfg, progress=False)
    ids = [p["id"] for p in lines(tmp_path / "o" / "predictions.jsonl")]
    assert len(ids) == len(set(ids)) == len(load_eval_items(synth_dir / "test.jsonl"))


def test_refuses_to_mix_runs(finished, tiny_model_dir, synth_dir):
    cfg = EvalConfig(model=str(tiny_model_dir), data=str(synth_dir / "test.jsonl"), out=str(finished),
                     prompt="official", max_new_tokens=12)  # fmt: skip
    with pytest.raises(
        ValueError, match=r"another run .*prompt: 'reasoning' before, 'official' now"
    ):
        evaluate(cfg, progress=False)


def test_repair_drops_only_a_partial_last_line(tmp_path):
    p = tmp_path / "p.jsonl"
    p.write_text('{"id": "a", "response": "x"}\n{"id": "b", "re')
    assert repair_predictions(p) == len('{"id": "b", "re')
    assert p.read_text() == '{"id": "a", "response": "x"}\n'
    assert repair_predictions(p) == 0


def test_preflight_names_missing_and_corrupt_images(tmp_path):
    good = tmp_path / "ok.png"
    from PIL import Image

    Image.new("RGB", (8, 8)).save(good)
    bad = tmp_path / "corrupt.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n broken")
    items = [
        EvalItem(0, "t", (str(good), str(tmp_path / "gone.png"), str(bad)), "q", (0, 0, 1, 1), 1)
    ]
    with pytest.raises(FileNotFoundError) as info:
        preflight(items)
    message = str(info.value)
    assert "2 of 3 images are missing or unreadable" in message
    assert "gone.png (missing)" in message and "corrupt.png (cannot be read" in message
    assert preflight([EvalItem(0, "t", (str(good),), "q", (0, 0, 1, 1), 1)]) == {str(good): (8, 8)}


def test_migbench_items_need_an_images_root_and_resolve_paths(migbench_path, tmp_path):
    with pytest.raises(ValueError, match="--images ROOT"):
        load_eval_items(migbench_path)
    items = load_eval_items(migbench_path, images_root=tmp_path, tasks=["reasoning"], limit=3)
    assert [it.key for it in items] == [4194, 4195, 4196]
    assert all(it.target_image == 2 for it in items)
    assert items[0].images[0] == str(
        (tmp_path / "MIG-Bench/images/reasoning/case001_r.png").resolve()
    )
    # a root that is the MIG-Bench folder itself works too
    inner = tmp_path / "MIG-Bench" / "images" / "x.jpg"
    inner.parent.mkdir(parents=True)
    inner.write_bytes(b"")
    assert (
        _migbench_image(tmp_path / "MIG-Bench", "./MIG-Bench/images/x.jpg")
        == tmp_path / "MIG-Bench/images/x.jpg"
    )
    with pytest.raises(FileNotFoundError, match="6 of 6 images are missing"):
        preflight(items)
    with pytest.raises(ValueError, match="no items of task"):
        load_eval_items(migbench_path, images_root=tmp_path, tasks=["counting"])


def test_predict_prints_answer_and_saves_picture(tiny_model_dir, synth_dir, tmp_path, capsys):
    sample = json.loads((synth_dir / "test.jsonl").read_text().splitlines()[0])
    images = [str(synth_dir / p) for p in sample["images"]]
    save = tmp_path / "pic.png"
    code = main(["predict", "--model", str(tiny_model_dir), *[arg for p in images for arg in ("--image", p)],
                 "--save", str(save), "--max-new-tokens", "8", sample["question"]])  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert "reasoning:" in out and "answer:" in out and f"saved {save}" in out
    from PIL import Image

    with Image.open(save) as pic:
        widths = [Image.open(p).width for p in images]
        assert pic.width == sum(widths) + 8 * (len(images) - 1)
