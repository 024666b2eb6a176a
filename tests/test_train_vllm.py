"""vLLM for GRPO, set up from the training processor, checked without vLLM (CPU): the
engine arguments (caps, limits, lengths) are built by the one function evaluation uses,
vLLM's model folder carries the training processor, and TRL's ``LLM(...)`` receives them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from mirg.errors import MirgError  # noqa: E402
from mirg.eval.generation import vllm_engine_args  # noqa: E402
from mirg.models.loading import image_tokens, load_processor, pixel_caps  # noqa: E402
from mirg.models.tiny import save_tiny_model  # noqa: E402
from mirg.train.configs import GRPOTrainConfig  # noqa: E402
from mirg.train.data import grpo_records  # noqa: E402
from mirg.train.recipes import ConfigError, load_config  # noqa: E402
from mirg.train.vllm_engine import (  # noqa: E402
    MARKER,
    VLLM_FOLDER,
    engine_args,
    longest_prompt,
    memory_need,
    write_vllm_model,
)
from toy_data import write_toy_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
#: Training caps other than the tiny model's saved ones (4-64 merged patches of 28 px).
CAPS = (28 * 28 * 4, 28 * 28 * 9)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("vllm")
    model = save_tiny_model(root / "model", "qwen2.5-vl")
    toy = write_toy_dataset(root / "toy", 6, profile="qwen2.5-vl", factor=28)
    processor = load_processor(model, min_pixels=CAPS[0], max_pixels=CAPS[1])
    return {"model": model, "toy": toy, "processor": processor}


def _rows(setup) -> list[dict]:
    from mirg.core.profiles import get_profile

    return grpo_records(
        setup["toy"] / "samples.jsonl", get_profile("qwen2.5-vl"), setup["processor"]
    )


def _config(setup, out: Path, *extra: str) -> GRPOTrainConfig:
    return load_config(
        GRPOTrainConfig,
        RECIPES / "tiny" / "grpo.yaml",
        [
            "--model_name_or_path",
            str(setup["model"]),
            "--dataset_path",
            str(setup["toy"] / "samples.jsonl"),
            "--output_dir",
            str(out),
            "--report_to",
            "none",
            "--min_pixels",
            str(CAPS[0]),
            "--max_pixels",
            str(CAPS[1]),
            "--max_completion_length",
            "24",
            "--per_device_train_batch_size",
            "4",
            "--num_generations",
            "4",
            *extra,
        ],
    )


def test_engine_args_are_one_function_for_evaluation_and_training(setup):
    processor = setup["processor"]
    args = vllm_engine_args(
        "m", processor, max_images=3, longest_prompt=200, max_new_tokens=56, tensor_parallel_size=2
    )
    assert args == {
        "model": "m",
        "limit_mm_per_prompt": {"image": 3, "video": 0},
        "mm_processor_kwargs": {"size": {"shortest_edge": CAPS[0], "longest_edge": CAPS[1]}},
        "max_model_len": 256,
        "gpu_memory_utilization": 0.9,
        "tensor_parallel_size": 2,
    }
    given = vllm_engine_args("m", processor, max_images=1, max_model_len=4096)
    assert given["max_model_len"] == 4096  # evaluation's explicit length still works
    with pytest.raises(MirgError, match="shorter than the longest prompt"):
        vllm_engine_args(
            "m", processor, max_images=1, max_model_len=100, longest_prompt=90, max_new_tokens=20
        )
    with pytest.raises(MirgError, match="max_model_len: give it"):
        vllm_engine_args("m", processor, max_images=1)


def test_longest_prompt_is_what_the_processor_makes_of_the_prompts(setup):
    from PIL import Image

    processor, rows = setup["processor"], _rows(setup)
    lengths = []
    for row in rows:
        text = processor.apply_chat_template(
            row["prompt"], tokenize=False, add_generation_prompt=True
        )
        images = [Image.open(p).convert("RGB") for p in row["images"]]
        lengths.append(
            processor(text=[text], images=[images], return_tensors="pt")["input_ids"].shape[1]
        )
    assert longest_prompt(processor, rows) == max(lengths)


def test_the_vllm_folder_serves_the_training_processor(setup, tmp_path):
    from transformers import AutoConfig, AutoProcessor

    saved = load_processor(setup["model"])
    assert pixel_caps(saved) != CAPS  # the checkpoint's own caps differ from training's
    folder = write_vllm_model(str(setup["model"]), setup["processor"], tmp_path / VLLM_FOLDER)
    reread = AutoProcessor.from_pretrained(folder)
    assert pixel_caps(reread) == CAPS
    assert image_tokens(reread, 448, 448) == image_tokens(setup["processor"], 448, 448) == 9
    assert (folder / "model.safetensors").is_symlink()  # weights linked, not copied
    assert (folder / "model.safetensors").resolve() == (
        setup["model"] / "model.safetensors"
    ).resolve()
    assert AutoConfig.from_pretrained(folder).model_type == "qwen2_5_vl"
    assert json.loads((folder / MARKER).read_text())["max_pixels"] == CAPS[1]
    write_vllm_model(str(setup["model"]), setup["processor"], folder)  # rewritable in place
    assert not list(tmp_path.glob(".*tmp*"))


def test_engine_args_of_a_run_come_from_its_processor_and_data(setup, tmp_path):
    config = _config(setup, tmp_path / "out", "--use_vllm", "true")
    rows = _rows(setup)
    args = engine_args(config, setup["processor"], rows, "folder")
    assert args["max_model_len"] == longest_prompt(setup["processor"], rows) + 24
    assert args["limit_mm_per_prompt"] == {"image": 3, "video": 0}  # the toy data: 1-3 images
    short = _config(setup, tmp_path / "out", "--use_vllm", "true", "--vllm_max_model_length", "50")
    with pytest.raises(MirgError, match="max_model_len 50 is shorter"):
        engine_args(short, setup["processor"], rows, "folder")
    huge = load_processor(setup["model"], max_pixels=28 * 28 * 5000)
    with pytest.raises(ConfigError, match="more than the 4096 tokens TRL lets vLLM batch"):
        engine_args(config, huge, rows, "folder")


def test_memory_estimate_of_a_real_size_stand_in():
    from transformers import AutoModelForImageTextToText

    from mirg.models.tiny import build_config, build_tokenizer, load_spec

    family, spec = load_spec(REPO / "benchmarks" / "stand-ins" / "qwen2.5-vl-7b.json")
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(
            build_config(family, build_tokenizer(), spec)
        )
    need = memory_need(model, max_model_len=4000, sequences=32)
    assert need["weights_gb"] == pytest.approx(16.58, abs=0.01)  # 8.29B bf16 weights
    # K and V: 28 layers x 4 KV heads x 128 x 2 bytes x 2 = 57,344 bytes per token
    assert need["one_sequence_gb"] == pytest.approx(57_344 * 4000 / 1e9)
    assert need["total_gb"] == pytest.approx(16.58 + 32 * 57_344 * 4000 / 1e9, abs=0.01)


class FakeLLM:
    """Stands in for ``vllm.LLM``: records what TRL builds it with."""

    calls: ClassVar[list[dict]] = []

    def __init__(self, *args, **kwargs) -> None:
        FakeLLM.calls.append(kwargs)


def test_trl_colocate_vllm_gets_the_training_processors_settings(setup, tmp_path, monkeypatch):
    """GRPOTrainer built with use_vllm (colocate) and vLLM replaced by a recorder."""
    from trl.generation import vllm_generation

    from mirg.train.grpo import build_grpo_trainer

    monkeypatch.setattr(vllm_generation, "is_vllm_available", lambda: True)
    monkeypatch.setattr(vllm_generation, "LLM", FakeLLM, raising=False)
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)  # TRL sets them; restored after the test
    FakeLLM.calls.clear()
    out = tmp_path / "out"
    config = _config(setup, out, "--use_vllm", "true", "--vllm_mode", "colocate")
    build_grpo_trainer(config)
    (kwargs,) = FakeLLM.calls
    rows = _rows(setup)
    assert kwargs["model"] == str(out / VLLM_FOLDER)  # not the checkpoint with its own caps
    assert kwargs["mm_processor_kwargs"] == {
        "size": {"shortest_edge": CAPS[0], "longest_edge": CAPS[1]}
    }
    assert kwargs["limit_mm_per_prompt"] == {"image": 3, "video": 0}
    assert kwargs["max_model_len"] == longest_prompt(setup["processor"], rows) + 24
    assert kwargs["gpu_memory_utilization"] == config.vllm_gpu_memory_utilization
    assert kwargs["dtype"] == "auto"  # no bf16 on the CPU; bf16 recipes give "bfloat16"
    assert vllm_generation.LLM is FakeLLM  # TRL's call is wrapped only while building
    assert pixel_caps(load_processor(out / VLLM_FOLDER)) == CAPS
