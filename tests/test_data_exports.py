"""Exports round-trip: TRL SFT/GRPO JSONL, verl parquet, LLaMA-Factory ShareGPT."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data_fixtures import make_world
from mirg.cli import main
from mirg.core.answers import parse_answer
from mirg.core.profiles import get_profile
from mirg.core.prompts import count_image_placeholders
from mirg.core.rewards import format_reward, image_reward, object_reward, score_completion
from mirg.data.exports import Exporter, export
from mirg.data.schema import DataError, check_placeholders, read_samples
from mirg.integrations.verl import compute_score
from mirg.train.data import grpo_records, sft_records, to_dataset
from reward_export_helpers import read_image_bytes


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return make_world(tmp_path_factory.mktemp("world"), n=28, seed=9)


@pytest.fixture(scope="module")
def samples(world):
    return read_samples(world / "train.jsonl")


def test_trajectories_cli_contract(world, tmp_path, capsys):
    out = tmp_path / "traj.jsonl"
    args = ["--data", str(world / "train.jsonl"), "--profile", "qwen2.5-vl", "--out", str(out)]
    assert main(["trajectories", *args]) == 0
    assert "wrote 22 sft records" in capsys.readouterr().out
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    samples = {s.id: s for s in read_samples(world / "train.jsonl")}
    assert len(lines) == len(samples)
    for line in lines:
        assert {"id", "prompt", "completion", "images"} <= set(line)
        s = samples[line["id"]]
        assert [Path(p) for p in line["images"]] == [(world / p).resolve() for p in s.images]
        assert count_image_placeholders(line["prompt"]) == len(line["images"])
        user = line["prompt"][-1]["content"]
        assert user[0] == {"type": "text", "text": "Image-1:"} and user[-1]["text"] == s.question
        text = line["completion"][0]["content"][0]["text"]
        assert text.startswith("<think>") and text.endswith("</answer>")
        reward = score_completion(
            text, s.target_image, s.target_box, profile="qwen2.5-vl",
            input_sizes=line["input_sizes"], n_images=s.n_images,
        )  # fmt: skip
        assert (reward.image, reward.format) == (1.0, 1.0) and reward.object > 0.97


def test_sft_export_loads_as_a_trl_dataset(world, samples, tmp_path):
    out = tmp_path / "sft.jsonl"
    export(samples, "sft", out, Exporter("qwen3-vl", root=world))
    dataset = to_dataset(sft_records(out, get_profile("qwen3-vl")))
    assert len(dataset) == len(samples)
    row = dataset[0]
    assert row["completion"][0]["role"] == "assistant"
    assert len(row["images"]) == samples[0].n_images
    assert row["images"][0].size == (112, 112)  # decoded PIL images, ready for the processor
    assert count_image_placeholders(row["prompt"]) == len(row["images"])
    text = row["completion"][0]["content"][0]["text"]
    assert parse_answer(text).ok


def test_grpo_export_feeds_the_core_rewards(world, samples, tmp_path):
    out = tmp_path / "grpo.jsonl"
    export(samples, "grpo", out, Exporter("qwen2.5-vl", root=world))
    dataset = to_dataset(grpo_records(out, get_profile("qwen2.5-vl")))
    assert {"prompt", "images", "target_image", "target_box", "profile", "input_sizes"} <= set(
        dataset.column_names
    )
    assert "completion" not in dataset.column_names
    columns = {name: dataset[name] for name in dataset.column_names if name != "prompt"}
    exporter = Exporter("qwen2.5-vl", root=world)
    completions = [[{"role": "assistant", "content": exporter.completion(s)}] for s in samples]
    assert object_reward(completions, **columns) == pytest.approx([1.0] * len(samples), abs=0.03)
    assert image_reward(completions, **columns) == [1.0] * len(samples)
    assert format_reward(completions, **columns) == [1.0] * len(samples)
    wrong = [
        [{"role": "assistant", "content": "<think>x</think><answer>"
          + '{"image": 9, "bbox_2d": [0, 0, 10, 10]}</answer>'}]
        for _ in samples
    ]  # fmt: skip
    assert image_reward(wrong, **columns) == [
        1.0 if s.target_image is None else 0.0 for s in samples
    ]


def test_verl_parquet_round_trip(world, samples, tmp_path):
    import pyarrow.parquet as pq

    out = tmp_path / "train.parquet"
    exporter = Exporter("qwen2-vl", root=world)
    assert export(samples, "verl", out, exporter) == len(samples)
    rows = pq.read_table(out).to_pylist()
    for row, s in zip(rows, samples, strict=True):
        user = row["prompt"][-1]["content"]
        assert user.count("<image>") == len(row["images"]) == s.n_images
        assert user.startswith("Image-1: <image>") and user.endswith(s.question)
        assert read_image_bytes(row["images"][0]).size == (112, 112)
        assert row["reward_model"]["style"] == "rule"
        assert row["extra_info"]["id"] == s.id
        truth = json.loads(row["reward_model"]["ground_truth"])
        assert truth["target_box"] == list(s.target_box) and truth["profile"] == "qwen2-vl"
        completion = exporter.completion(s)
        score = compute_score("mirg", completion, row["reward_model"]["ground_truth"])["score"]
        assert score == pytest.approx(2.5, abs=0.03)  # object 1 + image 1 + format 0.5
        assert compute_score("mirg", "no answer", truth)["score"] == 0.0


def test_sharegpt_round_trip(world, samples, tmp_path):
    out = tmp_path / "mirg_sft.json"
    export(samples, "sharegpt", out, Exporter("normalized", root=world))
    records = json.loads(out.read_text())
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert info["mirg_sft"]["file_name"] == "mirg_sft.json"
    assert info["mirg_sft"]["formatting"] == "sharegpt"
    for record, s in zip(records, samples, strict=True):
        user, assistant = record["messages"]
        assert user["role"] == "user" and assistant["role"] == "assistant"
        assert user["content"].count("<image>") == len(record["images"]) == s.n_images
        assert all(Path(p).is_file() for p in record["images"])
        parsed = parse_answer(assistant["content"])
        assert parsed.ok and parsed.image == s.answer_image()


def test_placeholder_mismatch_is_an_error(world, samples, tmp_path):
    with pytest.raises(DataError, match="3 image placeholders but the record has 2 images"):
        check_placeholders(3, ["a", "b"], "sample 'x'")
    out = tmp_path / "bad.jsonl"
    export(samples[:2], "grpo", out, Exporter("qwen3-vl", root=world))
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    lines[1]["images"] = lines[1]["images"][:-1]
    out.write_text("".join(json.dumps(x) + "\n" for x in lines))
    with pytest.raises(DataError, match=r"bad\.jsonl:2: sample .*image placeholders but"):
        grpo_records(out, get_profile("qwen3-vl"))


def test_export_cli_every_format(world, tmp_path, capsys):
    for fmt, name in (
        ("sft", "a.jsonl"),
        ("grpo", "b.jsonl"),
        ("verl", "c.parquet"),
        ("sharegpt", "d.json"),
    ):
        args = [
            "export",
            "--format",
            fmt,
            "--data",
            str(world / "val.jsonl"),
            "--profile",
            "qwen3-vl",
        ]
        assert main([*args, "--out", str(tmp_path / name)]) == 0
        assert (tmp_path / name).stat().st_size > 0
        assert f"{fmt} records" in capsys.readouterr().out


def test_export_frames_are_those_of_the_processor_that_will_see_the_images(
    world, samples, tmp_path, tiny_model_dir
):
    """Qwen3-VL frames have 32-px sides (patch 16 x merge 2): by the family's default, or
    exactly the processor's own with ``--model`` (its caps, here overridden as in training)."""
    pytest.importorskip("torchvision")
    from mirg.models.loading import frame_rule, load_processor

    assert Exporter("qwen3-vl", root=world).frames(samples[0]) == [[128, 128]] * samples[0].n_images
    processor = load_processor(tiny_model_dir, max_pixels=96 * 96)
    out = tmp_path / "grpo.jsonl"
    args = ["export", "--format", "grpo", "--data", str(world / "val.jsonl"), "--out", str(out)]
    options = ["--profile", "qwen3-vl", "--model", str(tiny_model_dir), "--max-pixels", "9216"]
    assert main([*args, *options]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    expected = [
        frame_rule(processor).frames(s.image_sizes) for s in read_samples(world / "val.jsonl")
    ]
    assert [r["input_sizes"] for r in rows] == expected and expected[0][0] == [96, 96]
    assert grpo_records(out, get_profile("qwen3-vl"), processor)[0]["input_sizes"] == expected[0]
