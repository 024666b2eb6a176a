"""Tiny offline Qwen-VL models and model/processor loading (CPU, seconds)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from PIL import Image  # noqa: E402

from mirg.cli import main  # noqa: E402
from mirg.core.prompts import build_messages  # noqa: E402
from mirg.models import (  # noqa: E402
    ModelLoadError,
    detect_family,
    frame_size,
    generation_inputs,
    load_model_and_processor,
    load_processor,
)
from mirg.models.loading import image_tokens  # noqa: E402
from mirg.models.tiny import FAMILIES, save_tiny_model  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {family: save_tiny_model(root / family, family) for family in FAMILIES}


def _images():
    return [Image.new("RGB", (112, 112), (200, 30, 30)), Image.new("RGB", (150, 90), "blue")]


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_model_reloads_with_auto_classes_and_runs_on_two_images(tiny_models, family):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = tiny_models[family]
    model = AutoModelForImageTextToText.from_pretrained(path)
    processor = AutoProcessor.from_pretrained(path)
    tokenizer = processor.tokenizer
    # the config's vision token ids are the tokenizer's
    assert model.config.image_token_id == tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert model.config.vision_start_token_id == tokenizer.convert_tokens_to_ids("<|vision_start|>")
    assert tokenizer.eos_token == "<|im_end|>" and tokenizer.pad_token == "<|endoftext|>"
    # Qwen's pre-tokenizer survives the reload: digits are split one by one
    assert tokenizer.tokenize("[123, 45]")[1:4] == ["1", "2", "3"]
    assert sum(p.numel() for p in model.parameters()) < 1_000_000

    messages = build_messages("Where is the red square?", 2, family)
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    assert text.count("<|image_pad|>") == 2 and "Image-2:" in text
    inputs = processor(text=[text], images=[_images()], return_tensors="pt")
    n_image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_image_tokens == sum(image_tokens(processor, *im.size) for im in _images())
    with torch.no_grad():
        logits = model(**inputs).logits
    assert logits.shape[-1] == model.config.get_text_config().vocab_size
    assert json.loads((path / "mirg_tiny_model.json").read_text())["family"] == family


def test_112px_image_is_16_tokens_for_qwen25(tiny_models):
    processor = load_processor(tiny_models["qwen2.5-vl"])
    assert image_tokens(processor, 112, 112) == 16
    assert frame_size(processor, 112, 112) == (112, 112)


def test_loader_detects_family_profile_and_pads_left(tiny_models):
    for family, path in tiny_models.items():
        assert detect_family(path) == family
    loaded = load_model_and_processor(tiny_models["qwen2.5-vl"], max_pixels=56 * 56 * 4)
    assert loaded.family == "qwen2.5-vl" and loaded.profile.name == "qwen2.5-vl"
    assert loaded.processor.tokenizer.padding_side == "left"
    assert loaded.pixel_caps[1] == 56 * 56 * 4
    # the frame the model sees follows the caps: input_sizes for absolute-pixel profiles
    assert loaded.input_sizes([(448, 448)]) == [[112, 112]]
    image = Image.new("RGB", (448, 448))
    grid = loaded.processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"]
    assert grid.tolist() == [[1, 8, 8]]  # 112 px / 14 px patches
    explicit = load_model_and_processor(tiny_models["qwen3-vl"], profile="normalized")
    assert explicit.profile.name == "normalized"


def test_loader_errors_name_the_problem(tiny_models, tmp_path, monkeypatch):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model_and_processor(tmp_path / "nowhere")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(ModelLoadError, match="does not exist"):  # a typo, not a hub name
        load_model_and_processor("runs/tiny-sftt")
    no_processor = tmp_path / "no-processor"
    shutil.copytree(tiny_models["qwen3-vl"], no_processor)
    (no_processor / "processor_config.json").unlink()
    with pytest.raises(ModelLoadError, match="no processor"):
        load_model_and_processor(no_processor)
    unknown = tmp_path / "unknown-family"
    shutil.copytree(tiny_models["qwen3-vl"], unknown)
    config = json.loads((unknown / "config.json").read_text())
    config["model_type"] = "llava"
    (unknown / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match="pass a profile explicitly"):
        load_model_and_processor(unknown)


def test_batched_generation_matches_one_at_a_time(tiny_models):
    """Left padding + every processor field: batching changes nothing under greedy."""
    loaded = load_model_and_processor(tiny_models["qwen3-vl"])
    model, processor = loaded.model, loaded.processor
    prompts = [build_messages("Where is it?", 1, "qwen3-vl"), build_messages("And?", 2, "qwen3-vl")]
    images = [_images()[:1], _images()]
    batch = generation_inputs(processor, prompts, images)
    assert "mm_token_type_ids" in batch
    with torch.no_grad():
        # next-token logits of each prompt agree batched (left-padded) and alone
        last = model(**batch).logits[:, -1]
        for i in range(2):
            one = generation_inputs(processor, prompts[i : i + 1], images[i : i + 1])
            torch.testing.assert_close(model(**one).logits[0, -1], last[i], atol=1e-4, rtol=1e-4)
        out = model.generate(**batch, max_new_tokens=6, do_sample=False)
        batched = out[:, batch["input_ids"].shape[1] :].tolist()
        for i in range(2):
            one = generation_inputs(processor, prompts[i : i + 1], images[i : i + 1])
            single = model.generate(**one, max_new_tokens=6, do_sample=False)
            assert single[0, one["input_ids"].shape[1] :].tolist() == batched[i]


def test_tiny_model_cli(tmp_path, capsys):
    out = tmp_path / "m"
    assert (
        main(["tiny-model", "--family", "qwen2-vl", "--out", str(out), "--hidden-size", "32"]) == 0
    )
    assert "parameters" in capsys.readouterr().out
    assert detect_family(out) == "qwen2-vl"
    assert json.loads((out / "config.json").read_text())["text_config"]["hidden_size"] == 32


def test_tokenizer_corpus_shortens_domain_text(tmp_path):
    from mirg.models.tiny import build_tokenizer, corpus_from_files

    text = "zyxwvutsrq zyxwvutsrq zyxwvutsrq"
    data = tmp_path / "t.jsonl"
    data.write_text(json.dumps({"completion": text, "images": ["a.png"]}) + "\n")
    corpus = corpus_from_files([data])
    assert corpus == [text]  # image paths are not text to learn
    plain = build_tokenizer(4096)
    trained = build_tokenizer(4096, corpus=corpus * 50)
    assert len(trained.tokenize(text)) < len(plain.tokenize(text))


STAND_INS = sorted((REPO / "benchmarks" / "stand-ins").glob("*.json"))


@pytest.mark.parametrize("path", STAND_INS, ids=lambda p: p.stem)
def test_real_dimension_stand_ins_match_the_checkpoints_size(path):
    """Built on the meta device: the parameter count of the real model, no memory used."""
    from transformers import AutoModelForImageTextToText

    from mirg.models.tiny import build_config, build_tokenizer, load_spec

    family, spec = load_spec(path)
    config = build_config(family, build_tokenizer(), spec)
    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(config)
    n = sum(p.numel() for p in model.parameters())
    published = json.loads(path.read_text())["published_parameters"]
    assert abs(n / published - 1) < 0.01, (n, published)
    vision = config.vision_config
    if family == "qwen2.5-vl":
        assert vision.fullatt_block_indexes == [7, 15, 23, 31]
    else:  # Qwen3-VL: wide heads, fixed position grid, DeepStack taps, interleaved M-RoPE
        text = config.get_text_config()
        assert text.head_dim == spec.head_dim == 128  # 4B: not hidden_size / num_heads (80)
        assert vision.num_position_embeddings == 2304
        assert vision.deepstack_visual_indexes == list(spec.deepstack_visual_indexes)
        assert text.rope_parameters["mrope_section"] == [24, 20, 20]
        assert text.rope_parameters["mrope_interleaved"] is True


def test_stand_ins_cover_both_families_and_three_qwen3_sizes():
    names = {p.stem for p in STAND_INS}
    assert {"qwen2.5-vl-3b", "qwen2.5-vl-7b", "qwen3-vl-2b", "qwen3-vl-4b", "qwen3-vl-8b"} <= names


def test_tiny_model_cli_builds_from_a_spec_file(tmp_path, capsys):
    spec = tmp_path / "small.json"
    spec.write_text(
        json.dumps(
            {
                "family": "qwen3-vl",
                "spec": {
                    "hidden_size": 48,
                    "num_heads": 2,
                    "num_kv_heads": 1,
                    "head_dim": 32,
                    "mrope_section": [6, 5, 5],
                    "deepstack_visual_indexes": [0],
                },
            }
        )
    )
    out = tmp_path / "m"
    assert main(["tiny-model", "--spec", str(spec), "--out", str(out)]) == 0
    text = json.loads((out / "config.json").read_text())["text_config"]
    assert text["head_dim"] == 32 and text["hidden_size"] == 48
    model = load_model_and_processor(out).model  # loads and runs at the odd head width
    with torch.no_grad():
        assert model(input_ids=torch.tensor([[5, 6, 7]])).logits.shape[:2] == (1, 3)
    capsys.readouterr()
    assert main(["tiny-model", "--spec", str(spec), "--family", "qwen2-vl", "--out", str(out)]) == 2
    assert "describes a qwen3-vl model" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"family": "qwen3-vl", "spec": {"hidden_sise": 64}}))
    assert main(["tiny-model", "--spec", str(bad), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "bad.json" in err and "'spec.hidden_sise'" in err and "'hidden_size'" in err
