"""Training configs: YAML recipes + --key value overrides, unknown keys rejected by name."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")

from mirg.cli import main
from mirg.train.configs import (
    ConfigError,
    GRPOTrainConfig,
    SFTTrainConfig,
    load_config,
)

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.mark.parametrize(
    "recipe",
    sorted(
        p.relative_to(RECIPES).as_posix()
        for p in RECIPES.glob("*/*.yaml")
        if p.parent.name not in ("accelerate", "verl")  # mirg trainers only
    ),
)
def test_every_recipe_parses(recipe):
    cls = SFTTrainConfig if recipe.endswith("sft.yaml") else GRPOTrainConfig
    config = load_config(cls, RECIPES / recipe)
    assert config.model_name_or_path and config.dataset_path and config.output_dir
    if cls is GRPOTrainConfig:
        assert config.rewards == ["object", "image", "format"]
        assert len(config.reward_weights) == 3


def test_published_recipe_values():
    for size in ("3b", "7b"):
        sft = load_config(SFTTrainConfig, RECIPES / f"qwen2.5-vl-{size}" / "sft.yaml")
        assert sft.learning_rate == 5e-6 and sft.num_train_epochs == 1
        assert sft.freeze_vision_tower and 380_000 <= sft.max_pixels <= 420_000
        grpo = load_config(GRPOTrainConfig, RECIPES / f"qwen2.5-vl-{size}" / "grpo.yaml")
        assert (grpo.num_generations, grpo.beta, grpo.epsilon) == (8, 0.04, 0.2)


def test_overrides_apply_and_win_over_the_recipe():
    config = load_config(
        GRPOTrainConfig,
        RECIPES / "tiny" / "grpo.yaml",
        [
            "--max_steps",
            "7",
            "--output_dir=/tmp/somewhere",
            "--dataset_path",
            "d.jsonl",
            "--model_name_or_path",
            "m",
            "--use_peft",
            "--beta",
            "0.1",
            "--rewards",
            "object",
            "format",
            "--format_reward_weight",
            "0.25",
            "--no_freeze_vision_tower",
        ],
    )
    assert config.max_steps == 7 and config.output_dir == "/tmp/somewhere"
    assert config.dataset_path == "d.jsonl" and config.model_name_or_path == "m"
    assert config.use_peft is True and config.beta == 0.1
    assert config.rewards == ["object", "format"] and config.reward_weights == [1.0, 0.25]
    assert config.freeze_vision_tower is False
    # untouched recipe values stay
    assert config.num_generations == 4


def test_bool_values_and_cpu_defaults():
    import torch

    config = load_config(SFTTrainConfig, None, ["--activation_checkpointing", "false"])
    assert config.gradient_checkpointing is False and config.activation_checkpointing is False
    if not torch.cuda.is_available():
        assert config.bf16 is False and config.use_cpu is True  # bf16 only where supported
    assert config.completion_only_loss is None or config.completion_only_loss is True
    assert config.max_length is None  # never truncate image tokens by default


def test_unknown_keys_fail_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown config key 'max_step'.*'max_steps'"):
        load_config(SFTTrainConfig, None, ["--max_step", "3"])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("learning_rate: 1e-4\nnum_generation: 4\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'num_generation' in .*r\.yaml"):
        load_config(GRPOTrainConfig, recipe)
    with pytest.raises(ConfigError, match="rewards must be"):
        load_config(GRPOTrainConfig, None, ["--rewards", "giou"])
    with pytest.raises(ConfigError, match="reward_weights has 1 entries"):
        load_config(GRPOTrainConfig, None, ["--reward_weights", "1.0"])
    with pytest.raises(ConfigError, match="max_steps"):
        load_config(SFTTrainConfig, None, ["--max_steps", "many"])


def test_cli_reports_bad_config_without_traceback(tmp_path, capsys):
    assert main(["train", "sft", "--max_step", "3"]) == 2
    assert "unknown config key 'max_step'" in capsys.readouterr().err
    assert main(["train", "grpo", "--config", str(tmp_path / "missing.yaml")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["train", "grpo", "--max_steps", "1"]) == 2
    assert "'model_name_or_path' is required" in capsys.readouterr().err
    assert main(["train", "grpo", "--list-keys"]) == 0
    keys = capsys.readouterr().out
    assert "num_generations = " in keys and "object_reward_weight = 1.0" in keys
