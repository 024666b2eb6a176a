"""The tiny recipes run out of the box on what ``mirg synth``/``mirg trajectories`` write."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("torchvision")

from mirg.cli import main

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


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


@pytest.mark.parametrize("size", ["3b", "7b"])
def test_published_sft_recipes_update_almost_every_trainable_weight(size, tmp_path):
    """fp32 master weights, bf16 compute: at the recipes' learning rate (5e-6) updates stick.

    In pure bf16 (the recipes' former ``model_dtype: bfloat16``) the smallest change a
    weight of 0.02 keeps is about 6e-5, so most Adam updates rounded to zero.
    """
    import torch
    from safetensors.torch import load_file

    from mirg.models.tiny import save_tiny_model
    from mirg.train.configs import SFTTrainConfig
    from mirg.train.recipes import load_config
    from mirg.train.sft import run_sft
    from toy_data import write_toy_dataset

    model = save_tiny_model(tmp_path / "model", "qwen2.5-vl")
    caps = {"factor": 28, "min_pixels": 3136, "max_pixels": 401408}  # the recipes' caps
    toy = write_toy_dataset(tmp_path / "toy", 8, profile="qwen2.5-vl", **caps)
    config = load_config(
        SFTTrainConfig,
        RECIPES / f"qwen2.5-vl-{size}" / "sft.yaml",
        {
            "model_name_or_path": str(model),
            "dataset_path": str(toy / "trajectories.jsonl"),
            "output_dir": str(tmp_path / "out"),
            "max_steps": 3,
            "use_cpu": True,
            "dataloader_num_workers": 0,  # 2 cores here
            "grounding_eval_path": None,  # the recipes' held-out split is not written here
        },
    )
    assert config.bf16 and config.learning_rate == 5e-6 and config.freeze_vision_tower
    assert run_sft(config).global_step == 3
    before = load_file(model / "model.safetensors")
    after = load_file(tmp_path / "out" / "model.safetensors")
    trainable = [k for k in before if "visual" not in k]  # the recipes freeze the tower
    changed = sum(int((before[k] != after[k]).sum()) for k in trainable)
    assert changed / sum(before[k].numel() for k in trainable) > 0.95
    assert all(torch.equal(before[k], after[k]) for k in before if "visual" in k)
