import json
import subprocess
import sys

import pytest

from mirg.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mirg", *args], capture_output=True, text=True)


@pytest.fixture
def oracle_predictions(migbench_items, tmp_path):
    path = tmp_path / "predictions.jsonl"
    with path.open("w") as fh:
        for it in migbench_items[:-10]:  # the last 10 items are missing
            b = [round(v * 1000) for v in it.target_box]
            response = f"Image-{it.target_image or 1}: <|box_start|>({b[0]},{b[1]}),({b[2]},{b[3]})<|box_end|>"
            fh.write(json.dumps({"index": it.index, "response": response}) + "\n")
    return path


def test_score_cli_writes_metrics_json(migbench_path, oracle_predictions, tmp_path, capsys):
    out = tmp_path / "m" / "metrics.json"
    code = main(["score", "--bench", str(migbench_path), "--predictions", str(oracle_predictions),
                 "--protocol", "strict", "--profile", "qwen2-vl", "--out", str(out)])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "group_grounding" in printed and "Acc@0.5" in printed and "missing" in printed
    m = json.loads(out.read_text())
    assert m["protocol"] == "strict" and m["missing"] == 10
    assert set(m["tasks"]) == {"diff", "view_diff", "common_object", "object_tracking", "multi_view",
                               "region", "refer_grounding", "group_grounding", "reasoning",
                               "correspondence"}  # fmt: skip
    assert sum(r["n"] for r in m["tasks"].values()) == 4295
    assert m["tasks"]["region"]["acc@0.5"] == 100.0
    assert 0 <= m["average"]["miou"] <= 1


def test_python_dash_m_is_the_same_cli_and_errors_are_one_line(migbench_path, tmp_path):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"index": 0, "response": "a"}\n{"index": 0, "response": "b"}\n')
    r = run_cli("score", "--bench", str(migbench_path), "--predictions", str(bad))
    assert r.returncode == 2
    assert f"{bad}:2: duplicate prediction for item 0" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli(
        "score", "--bench", str(migbench_path), "--predictions", str(bad), "--protocol", "strict"
    )
    assert r.returncode == 2 and "--profile" in r.stderr


def test_help_lists_commands():
    r = run_cli("--help")
    assert r.returncode == 0 and "score" in r.stdout


def test_core_imports_no_torch_or_model_code():
    code = (
        "import sys, mirg.core.boxes, mirg.core.profiles, mirg.core.answers, mirg.core.rewards, "
        "mirg.core.prompts, mirg.core.migbench, mirg.core.scoring, mirg.eval.score_cli; "
        "heavy = [m for m in ('torch', 'transformers', 'trl', 'PIL', 'numpy') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_score_reads_no_image_so_no_folder_confines_the_items_paths(tmp_path, capsys):
    """Scoring opens no image: a MIG-Bench folder that is a link elsewhere, or an item path
    leading out of the file's folder, is scored (mirg eval, which opens them, refuses both);
    a file with no items is refused in one line; --data is --bench's other name."""
    real = tmp_path / "disk" / "MIG-Bench"
    real.mkdir(parents=True)
    data = tmp_path / "data"
    data.mkdir()
    (data / "MIG-Bench").symlink_to(real)
    item = {"task": "region", "question": "Find it.", "answer": [0.1, 0.1, 0.5, 0.5]}
    items = [item | {"images": ["./MIG-Bench/a.png", "../elsewhere/b.png"]}]
    (data / "MIG_data.json").write_text(json.dumps(items))
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"index": 0, "response": "Image-1: [0.1, 0.1, 0.5, 0.5]"}) + "\n")
    assert main(["score", "--data", str(data / "MIG_data.json"), "--predictions", str(preds)]) == 0
    assert "region" in capsys.readouterr().out
    (data / "empty.json").write_text("[]")
    assert main(["score", "--bench", str(data / "empty.json"), "--predictions", str(preds)]) == 2
    assert "empty.json: no items to score" in capsys.readouterr().err
