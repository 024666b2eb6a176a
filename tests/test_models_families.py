"""Model families as records: a family defined outside mirg builds, evaluates and trains."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("torchvision")

from mirg.cli import main
from mirg.models import ModelLoadError, detect_family, load_model_and_processor
from mirg.models.families import FAMILIES, FamilyError, get_family
from toy_data import write_toy_dataset

PLUGINS = Path(__file__).resolve().parent / "plugins"
TOY = "mirg_toys.family.FAMILY"
RECIPES = Path(__file__).resolve().parents[1] / "recipes"

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture
def toy_model(tmp_path, monkeypatch, capsys):
    """A tiny model of the toy family, built by ``mirg tiny-model --family <dotted path>``."""
    monkeypatch.syspath_prepend(str(PLUGINS))
    out = tmp_path / "toy-model"
    assert main(["tiny-model", "--family", TOY, "--out", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    return out


def test_families_resolve_by_name_or_dotted_path(monkeypatch):
    monkeypatch.syspath_prepend(str(PLUGINS))
    assert get_family("qwen3-vl") is FAMILIES["qwen3-vl"]
    toy = get_family(TOY)
    assert toy.name == "toy-qwen2.5" and toy.frame_factor == FAMILIES["qwen2.5-vl"].frame_factor
    with pytest.raises(FamilyError, match=r"qwen2-vl, qwen2\.5-vl, qwen3-vl"):
        get_family("llava")
    with pytest.raises(FamilyError, match="not a ModelFamily"):
        get_family("mirg_toys.family.LORA_TARGETS")


def test_a_family_outside_mirg_builds_evaluates_and_trains_with_its_own_settings(
    toy_model, tmp_path, capsys
):
    config = json.loads((toy_model / "config.json").read_text())
    # the same architecture as Qwen2.5-VL, so only the recorded name tells them apart
    assert config["model_type"] == "qwen2_5_vl" and config["mirg_family"] == TOY
    assert detect_family(toy_model) == "toy-qwen2.5"
    assert json.loads((toy_model / "mirg_tiny_model.json").read_text())["profile"] == "normalized"

    data = write_toy_dataset(tmp_path / "data", 4, profile="normalized", factor=28)
    out = tmp_path / "eval"
    code = main(["eval", "--model", str(toy_model), "--data", str(data / "samples.jsonl"),
                 "--out", str(out), "--max-new-tokens", "4", "--no-progress"])  # fmt: skip
    assert code == 0
    assert json.loads((out / "run.json").read_text())["profile_used"] == "normalized"

    trained = tmp_path / "sft"
    code = main(["train", "sft", "--config", str(RECIPES / "tiny" / "sft.yaml"),
                 "--model_name_or_path", str(toy_model), "--output_dir", str(trained),
                 "--dataset_path", str(data / "trajectories.jsonl"), "--max_steps", "1",
                 "--use_peft", "true", "--lora_r", "2", "--report_to", "none"])  # fmt: skip
    assert code == 0
    adapter = json.loads((trained / "adapter" / "adapter_config.json").read_text())
    assert adapter["target_modules"] == r".*language_model.*\.(q_proj|v_proj)"
    # the merged model still names its family: the next command finds it again
    assert detect_family(trained) == "toy-qwen2.5"
    capsys.readouterr()


def test_a_recorded_family_that_cannot_be_imported_is_named(toy_model, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(toy_model, broken)
    config = json.loads((broken / "config.json").read_text())
    config["mirg_family"] = "mirg_toys.nowhere.FAMILY"
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"config\.json field 'mirg_family'.*nowhere"):
        load_model_and_processor(broken)
    assert main(["tiny-model", "--family", "llava", "--out", str(tmp_path / "x")]) == 2
    assert "llava" in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_a_mistyped_family_is_named_and_an_unrecorded_record_refused():
    """A built-in's name mistyped with a dot in it gets the built-in it is closest to; a family
    record of mirg's own making that config.json could not name is refused before building."""
    from dataclasses import replace

    from mirg.errors import MirgError
    from mirg.models.tiny import build_tiny_model

    with pytest.raises(FamilyError, match=r"cannot be imported.*did you mean 'qwen2.5-vl'\?"):
        get_family("qwen2.5-v1")
    with pytest.raises(MirgError, match="name it by dotted path"):
        build_tiny_model(replace(FAMILIES["qwen2.5-vl"], name="toy"))


def test_a_processor_without_qwen_frames_is_refused_naming_it():
    """mirg's frame rule is Qwen-VL's resize: another image processor is refused, named."""
    from types import SimpleNamespace

    from mirg.models.loading import frame_rule

    class SiglipImageProcessor:  # no patch_size: frames of another kind
        image_mean = (0.5, 0.5, 0.5)

    with pytest.raises(ModelLoadError, match="SiglipImageProcessor has no patch_size"):
        frame_rule(SimpleNamespace(image_processor=SiglipImageProcessor()))
