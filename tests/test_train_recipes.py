"""The tiny recipes run out of the box on what ``mirg synth``/``mirg trajectories`` write."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from mirg.cli import main  # noqa: E402

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One torch thread: on a shared 2-core machine more threads spin-wait (measured 5x
    slower under load); tiny models gain little from a second thread anyway."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tiny_recipes_end_to_end_with_their_documented_paths(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(RECIPES, tmp_path / "recipes")
    # the commands the recipes' headers list, with their paths
    assert main(["tiny-model", "--family", "qwen3-vl", "--out", "runs/tiny-qwen3-vl"]) == 0
    assert main(["synth", "--out", "data/synth", "--n", "24", "--seed", "0"]) == 0
    assert (
        main(
            [
                "trajectories",
                "--data",
                "data/synth/train.jsonl",
                "--profile",
                "qwen3-vl",
                "--out",
                "data/synth/trajectories.jsonl",
            ]
        )
        == 0
    )
    capsys.readouterr()
    fast = [
        "--max_steps",
        "2",
        "--logging_steps",
        "1",
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
    ]
    assert main(["train", "sft", "--config", "recipes/tiny/sft.yaml", *fast]) == 0
    short = ["--max_completion_length", "16"]
    assert main(["train", "grpo", "--config", "recipes/tiny/grpo.yaml", *fast, *short]) == 0
    lines = [
        json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith('{"stage"')
    ]
    assert [(x["stage"], x["global_step"]) for x in lines] == [("sft", 2), ("grpo", 2)]
    for run in ("runs/tiny-sft", "runs/tiny-grpo"):
        checkpoint = tmp_path / run / "checkpoint-2"
        assert (checkpoint / "model.safetensors").is_file()
        assert (checkpoint / "trainer_state.json").is_file()
    state = json.loads((tmp_path / "runs/tiny-grpo/checkpoint-2/trainer_state.json").read_text())
    logged = state["log_history"][0]
    for component in ("object", "image", "format"):
        assert any(component in key and key.startswith("rewards/") for key in logged)
