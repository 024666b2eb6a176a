"""Image-aware GRPO with TRL on tiny models: multi-image batches, reward columns, resume."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from mirg.cli import main  # noqa: E402
from mirg.models.tiny import save_tiny_model  # noqa: E402
from mirg.train import grpo  # noqa: E402
from mirg.train.configs import GRPOTrainConfig  # noqa: E402
from mirg.train.recipes import load_config  # noqa: E402
from toy_data import write_toy_dataset  # noqa: E402

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {f: save_tiny_model(root / f, f) for f in ("qwen3-vl", "qwen2.5-vl")}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    # 1, 2, 3, 1, 2, 3 … images per sample, in file order
    return write_toy_dataset(tmp_path_factory.mktemp("data") / "toy", 6)


def _config(model, data, out, *extra: str) -> GRPOTrainConfig:
    return load_config(
        GRPOTrainConfig,
        RECIPES / "tiny" / "grpo.yaml",
        [
            "--model_name_or_path",
            str(model),
            "--dataset_path",
            str(data),
            "--output_dir",
            str(out),
            "--report_to",
            "none",
            "--max_completion_length",
            "12",
            "--logging_steps",
            "1",
            "--disable_tqdm",
            "true",
            "--shuffle_dataset",
            "false",
            *extra,
        ],
    )


@pytest.fixture
def spy(monkeypatch):
    """Wrap the core rewards (keeping their names) and record what TRL passes them."""
    from mirg.core import rewards

    calls: dict[str, list[dict]] = {}
    for name in ("object_reward", "image_reward", "format_reward", "iou_reward"):
        func = getattr(rewards, name)

        @functools.wraps(func)
        def wrapper(completions, _func=func, **columns):
            calls.setdefault(_func.__name__, []).append({"completions": completions, **columns})
            return _func(completions, **columns)

        monkeypatch.setattr(rewards, name, wrapper)
    return calls


def test_grpo_steps_on_batches_mixing_image_counts_and_logs_each_reward(models, toy, tmp_path, spy):
    # 2 prompts x 4 completions per step: prompts with 1 and 2, then 3 and 1 images
    config = _config(
        models["qwen3-vl"],
        toy / "samples.jsonl",
        tmp_path / "out",
        "--max_steps",
        "2",
        "--per_device_train_batch_size",
        "8",
        "--num_generations",
        "4",
        "--save_steps",
        "2",
    )
    result = grpo.run_grpo(config)
    assert result.global_step == 2
    image_counts = [sorted({len(i) for i in call["images"]}) for call in spy["object_reward"][1:]]
    assert [1, 2] in image_counts  # one batch held prompts with different image counts
    logged = [h for h in result.log_history if "reward" in h]
    assert len(logged) == 2
    for component in ("object", "image", "format"):
        keys = [k for k in logged[0] if component in k and k.endswith("/mean")]
        assert keys == [f"rewards/{component}_reward/mean"]
    checkpoint = tmp_path / "out" / "checkpoint-2"
    assert (checkpoint / "model.safetensors").is_file()
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert "rewards/object_reward/mean" in state["log_history"][0]


def test_rewards_receive_the_target_columns_of_their_prompt(models, toy, tmp_path, spy):
    config = _config(
        models["qwen2.5-vl"],
        toy / "samples.jsonl",
        tmp_path / "out",
        "--max_steps",
        "1",
        "--per_device_train_batch_size",
        "8",
        "--num_generations",
        "4",
    )
    grpo.run_grpo(config)
    samples = {
        len(s["images"]): s
        for s in map(json.loads, (toy / "samples.jsonl").read_text().splitlines()[:2])
    }
    call = spy["object_reward"][-1]  # [0] is the pre-flight column check
    assert len(call["completions"]) == 8
    for i in range(8):
        sample = samples[len(call["images"][i])]
        assert call["target_image"][i] == sample["target_image"]
        assert call["target_box"][i] == pytest.approx(sample["target_box"])
        assert call["profile"][i] == "qwen2.5-vl"
        # the frame the model saw, from the processor's pixel caps (absolute-pixel profile)
        assert call["input_sizes"][i] == [[112, 112]] * len(sample["images"])
    assert "trainer_state" in call  # TRL's extras arrive too
    assert set(spy) == {"object_reward", "image_reward", "format_reward"}


def test_reward_choice_and_weights_reach_trl(models, toy, tmp_path):
    config = _config(
        models["qwen3-vl"],
        toy / "samples.jsonl",
        tmp_path / "out",
        "--rewards",
        "object",
        "format",
        "--format_reward_weight",
        "0.25",
        "--per_device_train_batch_size",
        "4",
        "--num_generations",
        "4",
    )
    trainer = grpo.build_grpo_trainer(config)
    assert trainer.reward_func_names == ["object_reward", "format_reward"]
    assert trainer.reward_weights.tolist() == [1.0, 0.25]


def test_grpo_resume_continues_the_step_count(models, toy, tmp_path):
    out = tmp_path / "out"
    common = ("--per_device_train_batch_size", "4", "--num_generations", "4", "--save_steps", "1")
    assert (
        grpo.run_grpo(
            _config(models["qwen3-vl"], toy / "samples.jsonl", out, "--max_steps", "1", *common)
        ).global_step
        == 1
    )
    resumed = grpo.run_grpo(
        _config(
            models["qwen3-vl"],
            toy / "samples.jsonl",
            out,
            "--max_steps",
            "2",
            "--resume_from_checkpoint",
            "auto",
            *common,
        )
    )
    assert resumed.global_step == 2
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    assert [h["step"] for h in state["log_history"] if "reward" in h] == [1, 2]


def test_missing_reward_column_fails_before_training(models, toy, tmp_path, capsys):
    rows = [json.loads(line) for line in (toy / "samples.jsonl").read_text().splitlines()]
    del rows[2]["target_image"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "images").symlink_to(toy / "images")
    code = main(
        [
            "train",
            "grpo",
            "--config",
            str(RECIPES / "tiny" / "grpo.yaml"),
            "--model_name_or_path",
            str(models["qwen3-vl"]),
            "--dataset_path",
            str(bad),
            "--output_dir",
            str(tmp_path / "never"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:3" in err and "missing column 'target_image'" in err
    assert not (tmp_path / "never").exists()


def test_unknown_family_needs_a_profile(models, toy, tmp_path, capsys):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(models["qwen3-vl"], other)
    config = json.loads((other / "config.json").read_text())
    config["model_type"] = "llava"
    (other / "config.json").write_text(json.dumps(config))
    code = main(
        [
            "train",
            "grpo",
            "--model_name_or_path",
            str(other),
            "--dataset_path",
            str(toy / "samples.jsonl"),
            "--output_dir",
            str(tmp_path / "never"),
            "--use_cpu",
            "true",
        ]
    )
    assert code == 2
    assert "pass a profile explicitly" in capsys.readouterr().err


@pytest.fixture
def loss_inputs(monkeypatch):
    """Record every batch that reaches TRL's loss."""
    from mirg.train.dynamic_sampling import DynamicSamplingGRPOTrainer

    seen: list[dict] = []
    original = DynamicSamplingGRPOTrainer._compute_loss

    def spy(self, model, inputs):
        seen.append(inputs)
        return original(self, model, inputs)

    monkeypatch.setattr(DynamicSamplingGRPOTrainer, "_compute_loss", spy)
    return seen


def test_dynamic_sampling_keeps_groups_without_signal_out_of_the_loss(
    models, toy, tmp_path, loss_inputs
):
    # one prompt in three has one image, and its completions all earn the same reward
    config = _config(
        models["qwen3-vl"],
        toy / "samples.jsonl",
        tmp_path / "out",
        "--max_steps", "3",
        "--per_device_train_batch_size", "8",
        "--num_generations", "4",
        "--rewards", "hash_rewards.varies_unless_one_image",
        "--dynamic_sampling", "true",
        "--dynamic_sampling_max_rounds", "6",
    )  # fmt: skip
    result = grpo.run_grpo(config)
    assert result.global_step == 3 and len(loss_inputs) == 3
    for inputs in loss_inputs:
        assert inputs["completion_ids"].shape[0] == 8  # the batch is refilled to its size
        counted = inputs["completion_mask"].sum(dim=1) > 0
        assert 1 not in [n for n, c in zip(inputs["num_images"], counted, strict=True) if c]
        assert int(inputs["num_items_in_batch"]) == int(inputs["completion_mask"].sum())
        # rows are shuffled after the batch is built: check each counted row, not groups
        assert (inputs["advantages"][counted] != 0).all()
    logged = [h for h in result.log_history if "dynamic_sampling/dropped_frac" in h]
    assert len(logged) == 3
    dropped = sum(h["dynamic_sampling/dropped_frac"] for h in logged)
    assert dropped > 0  # the toy prompts have 1, 2, 3, 1, 2, 3 images: one in three drops
    rounds = [h["dynamic_sampling/rounds"] for h in logged]
    extra = [h["dynamic_sampling/extra_completions"] for h in logged]
    # refills come only when a round fell short, at most a batch's worth each
    assert all((e > 0) == (r > 1) and e <= (r - 1) * 8 for r, e in zip(rounds, extra, strict=True))
    assert all(h["dynamic_sampling/masked_frac"] == 0 for h in logged)


def test_dynamic_sampling_masks_a_batch_it_cannot_fill(models, toy, tmp_path, loss_inputs):
    config = _config(
        models["qwen3-vl"],
        toy / "samples.jsonl",
        tmp_path / "out",
        "--max_steps", "1",
        "--per_device_train_batch_size", "8",
        "--num_generations", "4",
        "--rewards", "hash_rewards.never_varies",
        "--dynamic_sampling", "true",
        "--dynamic_sampling_max_rounds", "2",
    )  # fmt: skip
    result = grpo.run_grpo(config)
    (inputs,) = loss_inputs
    assert inputs["completion_ids"].shape[0] == 8
    assert int(inputs["completion_mask"].sum()) == 0 and int(inputs["num_items_in_batch"]) == 0
    (logged,) = [h for h in result.log_history if "dynamic_sampling/masked_frac" in h]
    assert logged["dynamic_sampling/masked_frac"] == 1.0
    assert logged["dynamic_sampling/dropped_frac"] == 1.0
    assert logged["dynamic_sampling/rounds"] == 2.0


@pytest.mark.parametrize(
    "setting",
    [("--scale_rewards", "batch"), ("--multi_objective_aggregation", "normalize_then_sum")],
)
def test_dynamic_sampling_refuses_advantages_normalised_over_a_round(
    models, toy, tmp_path, setting
):
    from mirg.train.recipes import ConfigError

    with pytest.raises(ConfigError, match="depend on that group only"):
        _config(models["qwen3-vl"], toy / "samples.jsonl", tmp_path / "out",
                "--dynamic_sampling", "true", *setting)  # fmt: skip
