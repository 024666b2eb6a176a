"""Grounding metrics while training: strict Acc@0.5 curves beside the loss (tiny, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from mirg.models.tiny import save_tiny_model  # noqa: E402
from mirg.train.configs import GRPOTrainConfig, SFTTrainConfig  # noqa: E402
from mirg.train.grpo import run_grpo  # noqa: E402
from mirg.train.recipes import ConfigError, load_config  # noqa: E402
from mirg.train.sft import run_sft  # noqa: E402
from toy_data import write_toy_dataset  # noqa: E402

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
METRICS = ("grounding/acc@0.5", "grounding/miou", "grounding/image_acc")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("grounding")
    return {
        "model": save_tiny_model(root / "model", "qwen3-vl"),
        "toy": write_toy_dataset(root / "toy", 6),
        "held_out": write_toy_dataset(root / "held-out", 4, seed=9),
    }


def _common(setup, out: Path) -> dict:
    return {
        "model_name_or_path": str(setup["model"]),
        "output_dir": str(out),
        "logging_steps": 1,
        "disable_tqdm": True,
        "grounding_eval_path": str(setup["held_out"] / "samples.jsonl"),
        "grounding_eval_limit": 3,
        "grounding_eval_max_new_tokens": 8,
    }


def _curve(log_history: list[dict]) -> list[tuple[int, dict]]:
    return [(h["step"], h) for h in log_history if "grounding/acc@0.5" in h]


def test_sft_logs_grounding_curves_to_report_to_beside_the_loss(setup, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "sft"
    config = load_config(
        SFTTrainConfig,
        RECIPES / "tiny" / "sft.yaml",
        {
            **_common(setup, out),
            "dataset_path": str(setup["toy"] / "trajectories.jsonl"),
            "max_steps": 3,
            "grounding_eval_steps": 2,
            "report_to": "tensorboard",
        },
    )
    result = run_sft(config)
    curve = _curve(result.log_history)
    assert [step for step, _ in curve] == [2, 3]  # every 2 steps, and the last one
    for _, entry in curve:
        assert set(METRICS) <= set(entry) and 0 <= entry["grounding/acc@0.5"] <= 100
    # the regular logs are whole: a loss for every step
    assert [h["step"] for h in result.log_history if "loss" in h] == [1, 2, 3]
    events = EventAccumulator(str(next((out / "runs").iterdir())))
    events.Reload()
    assert {"train/grounding/acc@0.5", "train/loss"} <= set(events.Tags()["scalars"])


def test_grpo_logs_grounding_curves_without_taking_the_rewards_from_the_step(setup, tmp_path):
    out = tmp_path / "grpo"
    config = load_config(
        GRPOTrainConfig,
        RECIPES / "tiny" / "grpo.yaml",
        {
            **_common(setup, out),
            "dataset_path": str(setup["toy"] / "samples.jsonl"),
            "max_steps": 2,
            "grounding_eval_steps": 1,
            "report_to": "none",
            "max_completion_length": 8,
            "per_device_train_batch_size": 4,
            "num_generations": 4,
        },
    )
    result = run_grpo(config)
    assert [step for step, _ in _curve(result.log_history)] == [1, 2]
    rewarded = [h for h in result.log_history if "rewards/object_reward/mean" in h]
    assert [h["step"] for h in rewarded] == [1, 2]  # TRL's reward metrics stay in their entries
    assert not any("reward" in k for _, h in _curve(result.log_history) for k in h)


def test_a_missing_held_out_split_fails_before_the_model_loads(setup, tmp_path):
    from mirg.train.sft import build_sft_trainer

    config = load_config(
        SFTTrainConfig,
        RECIPES / "tiny" / "sft.yaml",
        {
            **_common(setup, tmp_path / "out"),
            "dataset_path": str(setup["toy"] / "trajectories.jsonl"),
            "grounding_eval_path": str(tmp_path / "nowhere.jsonl"),
        },
    )
    with pytest.raises((OSError, ValueError), match=r"nowhere\.jsonl"):
        build_sft_trainer(config)
    recipe = RECIPES / "qwen2.5-vl-3b" / "sft.yaml"  # sets a held-out split; switched off:
    off = load_config(
        SFTTrainConfig, recipe, ["--use_cpu", "true", "--grounding_eval_path", "none"]
    )
    assert off.grounding_eval_path is None
    with pytest.raises(ConfigError, match="grounding_eval_steps must be at least 1"):
        load_config(
            SFTTrainConfig,
            RECIPES / "tiny" / "sft.yaml",
            {**_common(setup, tmp_path / "out"), "grounding_eval_steps": 0},
        )
