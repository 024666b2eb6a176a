"""GRPO hands every dataset column to the rewards, as TRL does, a user's own reward too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("torchvision")

from data_fixtures import make_world
from mirg.cli import main
from mirg.core.profiles import get_profile
from mirg.models.tiny import save_tiny_model
from mirg.train.data import grpo_records, to_dataset
from toy_data import write_toy_dataset

REPO = Path(__file__).resolve().parents[1]


def test_every_sample_column_reaches_the_dataset_nested_ones_as_json(tmp_path):
    world = make_world(tmp_path / "world", n=28, seed=9)
    lines = (world / "train.jsonl").read_text().splitlines()
    samples = [json.loads(line) for line in lines]
    samples[-1]["difficulty"] = "hard"  # a column only the last record holds
    for i, sample in enumerate(samples[::2]):  # meta of another shape in every other sample
        sample["meta"] |= {"source": {"shard": i, "tags": ["a", 1]}}
    (world / "train.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    # the nested fields vary in shape, which one Arrow schema could not hold as values
    assert len({tuple(sorted(s["meta"])) for s in samples}) > 1
    assert len({len(s["objects"]) for s in samples}) > 1

    dataset = to_dataset(grpo_records(world / "train.jsonl", get_profile("qwen2-vl")))
    assert len(dataset) == len(samples)
    for name in ("objects", "relations", "meta", "reference", "target"):
        assert [json.loads(v) for v in dataset[name]] == [s.get(name) for s in samples]
    assert dataset["id"] == [s["id"] for s in samples]
    assert dataset["question"] == [s["question"] for s in samples]
    assert dataset["image_sizes"] == [s["image_sizes"] for s in samples]
    assert dataset["difficulty"] == [None] * (len(samples) - 1) + ["hard"]
    # mirg's own columns win over the record's: absolute images, the training profile
    assert all(Path(p).is_absolute() for row in dataset["images"] for p in [row[0].filename])
    assert set(dataset["profile"]) == {"qwen2-vl"}


def test_a_column_trl_names_itself_or_of_mixed_types_is_refused_naming_it(tmp_path):
    """Before training starts: a column named as one of TRL's reward arguments would clash
    with it; a column holding an int in one record and text in another cannot be one Arrow
    column. Each is one DataError naming the file and the column."""
    from mirg.data.schema import DataError

    world = make_world(tmp_path / "world", n=6, seed=3)
    path = world / "train.jsonl"
    samples = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps(s | {"completions": 1}) + "\n" for s in samples))
    with pytest.raises(DataError, match=r"train.jsonl:1: .*column 'completions' is a name TRL"):
        grpo_records(path, get_profile("qwen2-vl"))
    mixed = [s | {"level": 3 if i % 2 else "hard"} for i, s in enumerate(samples)]
    path.write_text("".join(json.dumps(s) + "\n" for s in mixed))
    rows = grpo_records(path, get_profile("qwen2-vl"))
    with pytest.raises(DataError, match=r"train.jsonl: column 'level' holds values of different"):
        to_dataset(rows, str(path))


def test_a_reward_outside_mirg_reads_passed_through_columns_through_the_cli(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.syspath_prepend(str(REPO / "tests" / "plugins"))
    from mirg_toys import reward

    data = write_toy_dataset(tmp_path / "toy", 6)
    samples = [json.loads(line) for line in (data / "samples.jsonl").read_text().splitlines()]
    for i, sample in enumerate(samples):  # objects and meta whose shape varies by sample
        colour = sample["question"].split("the ")[1].split(" square")[0]
        sample["meta"] = {"colour": colour, "seed": i} if i % 2 else {"colour": colour}
        sample["objects"] = [
            [{"box": sample["target_box"], "category": "square", "attributes": {"rank": i}}]
            if k + 1 == sample["target_image"]
            else []
            for k in range(len(sample["images"]))
        ]
    (data / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))
    model = save_tiny_model(tmp_path / "model", "qwen3-vl")
    reward.SEEN.clear()
    args = ["--config", str(REPO / "recipes" / "tiny" / "grpo.yaml")]
    args += ["--model_name_or_path", str(model), "--dataset_path", str(data / "samples.jsonl")]
    args += ["--output_dir", str(tmp_path / "out"), "--max_steps", "1", "--report_to", "none"]
    args += ["--max_completion_length", "8", "--disable_tqdm", "true", "--logging_steps", "1"]
    args += ["--rewards", "format", "mirg_toys.reward.colour_reward"]
    assert main(["train", "grpo", *args]) == 0, capsys.readouterr().err

    by_id = {s["id"]: s for s in samples}
    assert len(reward.SEEN) >= 8 + 4  # the check before training, then one step's 8
    for sample_id, meta, objects in reward.SEEN:
        assert meta == by_id[sample_id]["meta"]
        assert objects == by_id[sample_id]["objects"]
    assert {len(meta) for _, meta, _ in reward.SEEN} == {1, 2}  # both shapes arrived
    state = json.loads(next((tmp_path / "out").glob("checkpoint-*/trainer_state.json")).read_text())
    assert "rewards/colour_reward/mean" in state["log_history"][0]


def test_a_built_in_reward_is_one_registry_entry(monkeypatch):
    """A built-in without a ``*_reward_weight`` key resolves and weighs the registry's weight."""
    from mirg.core import rewards
    from mirg.train.configs import GRPOTrainConfig
    from mirg.train.recipes import load_config, reward_function

    monkeypatch.setitem(rewards.REWARDS, "plain", rewards.Reward(rewards.iou_reward, 0.3, False))
    config = load_config(
        GRPOTrainConfig, None, ["--use_cpu", "true", "--rewards", "plain", "image"]
    )
    assert config.reward_weights == [0.3, rewards.REWARDS["image"].weight]
    assert reward_function("plain") is rewards.iou_reward
