"""Training data: records become TRL datasets; bad records fail naming the problem."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torchvision")

from mirg.core.profiles import get_profile
from mirg.core.prompts import build_messages
from mirg.data.schema import DataError
from mirg.models import load_processor
from mirg.models.tiny import save_tiny_model
from mirg.train.data import grpo_records, sft_records, to_dataset
from toy_data import write_toy_dataset


@pytest.fixture(scope="module")
def processor(tmp_path_factory):
    return load_processor(save_tiny_model(tmp_path_factory.mktemp("m") / "q25", "qwen2.5-vl"))


@pytest.fixture
def toy(tmp_path):
    return write_toy_dataset(
        tmp_path / "toy",
        6,
        profile="qwen2.5-vl",
        factor=28,
        min_pixels=28 * 28 * 4,
        max_pixels=28 * 28 * 64,
    )


def _rewrite(path, change):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    change(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_sft_records_build_the_core_prompt_and_completion(toy, processor):
    profile = get_profile("qwen2.5-vl")
    rows = sft_records(toy / "trajectories.jsonl", profile, processor)
    assert len(rows) == 6
    first = json.loads((toy / "trajectories.jsonl").read_text().splitlines()[1])
    expected = build_messages(first["prompt"], 2, profile)
    assert [m["role"] for m in rows[1]["prompt"]] == [m["role"] for m in expected]
    texts = [p.get("text") for p in rows[1]["prompt"][1]["content"]]
    assert texts == [p.get("text") for p in expected[1]["content"]]  # Image-1: <image> Image-2: …
    assert rows[1]["completion"][0]["role"] == "assistant"
    assert all(p.startswith("/") for p in rows[1]["images"])  # resolved, absolute
    assert len(sft_records(toy / "trajectories.jsonl", profile, processor, max_samples=2)) == 2
    dataset = to_dataset(rows)
    assert dataset[1]["images"][0].size == (112, 112)  # decoded lazily to PIL


def test_prompts_given_as_messages_are_kept(toy, processor):
    def to_messages(rows):
        for r in rows:
            r["prompt"] = build_messages(r["prompt"], len(r["images"]), "qwen2.5-vl")

    _rewrite(toy / "trajectories.jsonl", to_messages)
    rows = sft_records(toy / "trajectories.jsonl", get_profile("qwen2.5-vl"), processor)
    assert sum(p["type"] == "image" for p in rows[2]["prompt"][1]["content"]) == 3


def test_placeholder_and_image_count_mismatch_fails(toy, processor):
    def drop_image(rows):
        rows[1]["prompt"] = build_messages(rows[1]["prompt"], 1, "qwen2.5-vl")

    _rewrite(toy / "trajectories.jsonl", drop_image)
    with pytest.raises(DataError, match=r":2: sample 'toy-0001'.*1 image placeholders.*2 images"):
        sft_records(toy / "trajectories.jsonl", get_profile("qwen2.5-vl"), processor)


def test_missing_image_and_text_placeholders_fail(toy, processor):
    (toy / "images" / "0002_3.png").unlink()
    with pytest.raises(DataError, match=r"images\[2\].*0002_3.png.*not found"):
        grpo_records(toy / "samples.jsonl", get_profile("qwen2.5-vl"), processor)

    def placeholder(rows):
        rows[0]["prompt"] = "<image> where is it?"

    _rewrite(toy / "trajectories.jsonl", placeholder)
    with pytest.raises(DataError, match="placeholders in text"):
        sft_records(toy / "trajectories.jsonl", get_profile("qwen2.5-vl"), processor)


def test_grpo_records_carry_reward_columns_and_frames(toy, processor):
    rows = grpo_records(toy / "samples.jsonl", get_profile("qwen2.5-vl"), processor)
    samples = [json.loads(line) for line in (toy / "samples.jsonl").read_text().splitlines()]
    for row, sample in zip(rows, samples, strict=True):
        assert row["target_image"] == sample["target_image"]
        assert row["target_box"] == sample["target_box"]
        assert row["profile"] == "qwen2.5-vl"
        assert row["input_sizes"] == [[112, 112]] * len(sample["images"])


def test_grpo_missing_reward_column_fails(toy, processor):
    def drop(rows):
        del rows[3]["target_box"]

    _rewrite(toy / "samples.jsonl", drop)
    with pytest.raises(DataError, match="missing column 'target_box'"):
        grpo_records(toy / "samples.jsonl", get_profile("qwen2.5-vl"), processor)


def test_data_for_another_profile_or_other_pixel_caps_fails(toy, processor):
    def other_profile(rows):
        rows[0]["profile"] = "qwen3-vl"

    _rewrite(toy / "samples.jsonl", other_profile)
    with pytest.raises(DataError, match=r"written for 'qwen3-vl'.*answers in 'qwen2\.5-vl'"):
        grpo_records(toy / "samples.jsonl", get_profile("qwen2.5-vl"), processor)

    def other_frames(rows):
        rows[0]["input_sizes"] = [[224, 224] for _ in rows[0]["images"]]

    _rewrite(toy / "trajectories.jsonl", other_frames)
    with pytest.raises(DataError, match="same min_pixels/max_pixels"):
        sft_records(toy / "trajectories.jsonl", get_profile("qwen2.5-vl"), processor)


def test_image_root_resolves_paths_from_elsewhere(toy, processor, tmp_path):
    elsewhere = tmp_path / "elsewhere" / "deeper"
    elsewhere.mkdir(parents=True)
    (elsewhere / "t.jsonl").write_text((toy / "trajectories.jsonl").read_text())
    with pytest.raises(DataError, match="set image_root"):
        sft_records(elsewhere / "t.jsonl", get_profile("qwen2.5-vl"), processor)
    rows = sft_records(elsewhere / "t.jsonl", get_profile("qwen2.5-vl"), processor, image_root=toy)
    assert len(rows) == 6
