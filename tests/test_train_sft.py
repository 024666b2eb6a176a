"""SFT with TRL on a tiny Qwen3-VL model (CPU, seconds per test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from safetensors.torch import load_file  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

from mirg.cli import main  # noqa: E402
from mirg.models import load_model_and_processor  # noqa: E402
from mirg.models.tiny import save_tiny_model  # noqa: E402
from mirg.train.configs import SFTTrainConfig  # noqa: E402
from mirg.train.recipes import load_config  # noqa: E402
from mirg.train.sft import build_sft_trainer, run_sft  # noqa: E402
from toy_data import write_toy_dataset  # noqa: E402

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("model") / "tiny-qwen3-vl", "qwen3-vl")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("data") / "toy", 6, profile="qwen3-vl")


def _config(model_dir, data, out, *extra: str) -> SFTTrainConfig:
    return load_config(
        SFTTrainConfig,
        RECIPES / "tiny" / "sft.yaml",
        [
            "--model_name_or_path",
            str(model_dir),
            "--dataset_path",
            str(data),
            "--output_dir",
            str(out),
            "--report_to",
            "none",
            "--logging_steps",
            "1",
            "--disable_tqdm",
            "true",
            *extra,
        ],
    )


class StepCounter(TrainerCallback):
    def __init__(self) -> None:
        self.steps = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.steps += 1


def test_sft_lowers_loss_and_changes_language_weights_not_the_frozen_tower(
    model_dir, toy, tmp_path
):
    two = tmp_path / "two.jsonl"  # a repeated batch: the same two samples every step
    two.write_text("".join((toy / "trajectories.jsonl").read_text().splitlines(True)[:2]))
    (tmp_path / "images").symlink_to(toy / "images")
    config = _config(
        model_dir,
        two,
        tmp_path / "out",
        "--max_steps",
        "20",
        "--learning_rate",
        "2e-3",
        "--per_device_train_batch_size",
        "2",
        "--freeze_vision_tower",
        "true",
        "--lr_scheduler_type",
        "constant",
        "--save_steps",
        "20",
    )
    result = run_sft(config)
    losses = [h["loss"] for h in result.log_history if "loss" in h]
    assert len(losses) == 20
    assert sum(losses[-3:]) / 3 < 0.7 * losses[0]
    before = load_file(model_dir / "model.safetensors")
    after = load_file(tmp_path / "out" / "model.safetensors")
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert any("language_model" in k for k in changed)
    assert not any(".visual." in k for k in changed)  # the vision tower stayed frozen
    checkpoint = tmp_path / "out" / "checkpoint-20"
    assert (checkpoint / "model.safetensors").is_file()
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == 20


def test_loss_covers_the_answer_only(model_dir, toy, tmp_path):
    trainer = build_sft_trainer(_config(model_dir, toy / "trajectories.jsonl", tmp_path / "o"))
    batch = next(iter(trainer.get_train_dataloader()))
    tokenizer = trainer.processing_class.tokenizer
    for ids, labels in zip(batch["input_ids"], batch["labels"], strict=True):
        supervised = tokenizer.decode(ids[labels != -100])
        assert supervised.startswith("<think>") and "</answer>" in supervised
        assert "Image-1:" not in supervised and "<|image_pad|>" not in supervised
        assert "<|image_pad|>" in tokenizer.decode(ids)
    assert "mm_token_type_ids" in batch and "pixel_values" in batch


def test_resume_continues_the_step_count(model_dir, toy, tmp_path):
    out = tmp_path / "out"
    data = toy / "trajectories.jsonl"
    first = run_sft(_config(model_dir, data, out, "--max_steps", "4", "--save_steps", "2"))
    assert first.global_step == 4
    counter = StepCounter()
    second = run_sft(
        _config(
            model_dir,
            data,
            out,
            "--max_steps",
            "6",
            "--save_steps",
            "2",
            "--resume_from_checkpoint",
            "auto",
        ),
        callbacks=[counter],
    )
    assert second.global_step == 6 and counter.steps == 2  # steps 5 and 6 only
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3, 4, 5, 6]


def test_lora_sft_writes_a_merged_model(model_dir, toy, tmp_path):
    out = tmp_path / "lora"
    run_sft(
        _config(
            model_dir,
            toy / "trajectories.jsonl",
            out,
            "--max_steps",
            "3",
            "--use_peft",
            "true",
            "--learning_rate",
            "1e-2",
            "--lora_r",
            "4",
        )
    )
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert not (out / "adapter_config.json").exists()
    loaded = load_model_and_processor(out)
    assert loaded.family == "qwen3-vl"
    before = load_file(model_dir / "model.safetensors")
    after = loaded.model.state_dict()
    key = next(k for k in before if "language_model" in k and "q_proj.weight" in k)
    assert not torch.equal(before[key], after[key])  # the adapter is merged in
    adapter = load_model_and_processor(out / "adapter")  # adapter folders load too
    torch.testing.assert_close(adapter.model.state_dict()[key], after[key])


def test_tiny_recipe_runs_from_the_cli(model_dir, toy, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(
        [
            "train",
            "sft",
            "--config",
            str(RECIPES / "tiny" / "sft.yaml"),
            "--model_name_or_path",
            str(model_dir),
            "--dataset_path",
            str(toy / "trajectories.jsonl"),
            "--output_dir",
            str(out),
            "--max_steps",
            "2",
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["global_step"] == 2
    assert (out / "checkpoint-2" / "trainer_state.json").is_file()
    assert (out / "model.safetensors").is_file() and (out / "processor_config.json").is_file()
    assert list((out / "runs").glob("**/events.out.tfevents.*"))  # tensorboard by default


def test_bad_data_fails_before_training(model_dir, toy, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    row = json.loads((toy / "trajectories.jsonl").read_text().splitlines()[1])
    row["images"] = row["images"][:1]  # the question's prompt gets 1 image; fine
    row["prompt"] = [
        {
            "role": "user",
            "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "where?"}],
        }
    ]
    bad.write_text(json.dumps(row) + "\n")
    (tmp_path / "images").symlink_to(toy / "images")
    code = main(
        [
            "train",
            "sft",
            "--model_name_or_path",
            str(model_dir),
            "--dataset_path",
            str(bad),
            "--output_dir",
            str(tmp_path / "never"),
            "--use_cpu",
            "true",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err  # the data layer's wording: "2 image placeholders for 1 images"
    assert "2 image placeholders" in err and "1 images" in err
    assert not (tmp_path / "never").exists()


def test_freezing_counts_zero3_partitioned_weights_by_their_full_size():
    """Under ZeRO-3 each process holds an empty shard (numel 0) of every weight."""
    from torch import nn

    from mirg.train.setup import freeze_vision_tower

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = nn.Linear(4, 4)
            self.language_model = nn.Linear(4, 4)

    model = Model()
    for p in model.parameters():
        p.ds_numel = p.numel()  # what DeepSpeed records before it empties the tensor
        p.data = torch.empty(0)
    assert freeze_vision_tower(model) == 20
    assert not any(p.requires_grad for p in model.visual.parameters())
    assert all(p.requires_grad for p in model.language_model.parameters())


def test_adapter_merge_reloads_the_base_so_sharded_training_weights_do_not_matter(
    model_dir, toy, tmp_path
):
    """save_final merges from the saved adapter and the base on disk, never from the
    training model in memory (a ZeRO-3 shard on each process)."""
    from mirg.train.setup import merge_adapter

    out = tmp_path / "lora"
    config = _config(
        model_dir,
        toy / "trajectories.jsonl",
        out,
        "--max_steps",
        "2",
        "--use_peft",
        "true",
        "--learning_rate",
        "1e-2",
        "--lora_r",
        "4",
    )
    trainer = build_sft_trainer(config)
    trainer.train()
    trainer.save_model(str(out / "adapter"))
    expected = {
        k.replace("base_model.model.", ""): v.detach().clone()
        for k, v in trainer.model.merge_and_unload().state_dict().items()
    }
    with torch.no_grad():  # what a ZeRO-3 process holds in memory: not the weights
        for p in trainer.model.parameters():
            p.zero_()
    merge_adapter(out / "adapter", out / "merged")
    merged = load_model_and_processor(out / "merged")
    for key, value in merged.model.state_dict().items():
        torch.testing.assert_close(value, expected[key])
    assert not (out / "merged" / "adapter_config.json").exists()
