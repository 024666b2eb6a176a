"""Training configs: YAML recipes + --key value overrides, unknown keys rejected by name."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("trl")

from mirg.cli import main
from mirg.core import rewards
from mirg.train.configs import GRPOTrainConfig, SFTTrainConfig
from mirg.train.recipes import ConfigError, load_config, reward_function

torch = pytest.importorskip("torch")
REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"
DEMO_RECIPES = REPO / "src" / "mirg" / "recipes" / "demo"
ON_CPU = ["--use_cpu", "true"]  # GPU recipes parse here as on a machine without a GPU
NO_GPU = not torch.accelerator.is_available()


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
    config = load_config(cls, RECIPES / recipe, ON_CPU)
    assert config.model_name_or_path and config.dataset_path and config.output_dir
    if cls is GRPOTrainConfig:
        assert config.rewards == ["object", "image", "format"]
        assert len(config.reward_weights) == 3


def test_published_recipe_values():
    for size in ("3b", "7b"):
        sft = load_config(SFTTrainConfig, RECIPES / f"qwen2.5-vl-{size}" / "sft.yaml", ON_CPU)
        assert sft.learning_rate == 5e-6 and sft.num_train_epochs == 1
        assert sft.freeze_vision_tower and 380_000 <= sft.max_pixels <= 420_000
        grpo = load_config(GRPOTrainConfig, RECIPES / f"qwen2.5-vl-{size}" / "grpo.yaml", ON_CPU)
        assert (grpo.num_generations, grpo.beta, grpo.epsilon) == (8, 0.04, 0.2)
        for config in (sft, grpo):  # fp32 master weights, bf16 compute
            assert config.dtype == "float32" and config.bf16 is True and not config.use_peft


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

    config = load_config(SFTTrainConfig, None, ["--gradient_checkpointing", "false", *ON_CPU])
    assert config.gradient_checkpointing is False  # the name every supported transformers has
    assert getattr(config, "activation_checkpointing", False) is False  # transformers >= 5.23
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
    assert main(["train", "grpo", "--max_steps", "1", *ON_CPU]) == 2
    assert "'model_name_or_path' is required" in capsys.readouterr().err
    assert main(["train", "grpo", "--list-keys"]) == 0
    keys = capsys.readouterr().out
    assert "num_generations = " in keys and "object_reward_weight = 1.0" in keys


@pytest.mark.skipif(not NO_GPU, reason="checks what a machine without a GPU does")
def test_a_gpu_recipe_on_a_machine_without_a_gpu_fails_instead_of_training_on_the_cpu(capsys):
    recipe = RECIPES / "qwen2.5-vl-3b" / "sft.yaml"
    with pytest.raises(ConfigError, match=r"no GPU is available.*use_cpu: true"):
        load_config(SFTTrainConfig, recipe)
    # before any model loads (the recipe names a hub model, which is not downloaded here)
    assert main(["train", "sft", "--config", str(recipe), "--max_steps", "1"]) == 2
    assert "--use_cpu true" in capsys.readouterr().err
    assert load_config(SFTTrainConfig, recipe, ON_CPU).use_cpu is True  # asked: fine


def test_full_fine_tune_of_bf16_weights_is_refused_saying_why():
    recipe = RECIPES / "qwen2.5-vl-7b" / "sft.yaml"
    for dtype in ("bfloat16", "float16"):
        with pytest.raises(ConfigError, match=rf"{dtype} weights.*loses its updates.*float32"):
            load_config(SFTTrainConfig, recipe, [*ON_CPU, "--dtype", dtype])
    # LoRA (PEFT keeps the adapters in fp32) and DeepSpeed ZeRO keep fp32 master weights
    assert load_config(SFTTrainConfig, recipe, [*ON_CPU, "--dtype", "bfloat16", "--use_peft"])


def test_rewards_by_core_name_or_dotted_path():
    config = load_config(
        GRPOTrainConfig,
        RECIPES / "tiny" / "grpo.yaml",
        ["--rewards", "object", "mirg.core.rewards.iou_reward", "--object_reward_weight", "2"],
    )
    assert config.reward_weights == [2.0, 1.0]  # a dotted path weighs 1 unless reward_weights
    assert reward_function("object") is rewards.object_reward
    assert reward_function("mirg.core.rewards.iou_reward") is rewards.iou_reward
    with pytest.raises(ConfigError, match=r"reward 'mirg.core.rewards.nothing' cannot be imported"):
        load_config(GRPOTrainConfig, None, ["--rewards", "mirg.core.rewards.nothing"])


def test_overrides_given_as_a_dict_win_and_are_checked(tmp_path):
    recipe = RECIPES / "tiny" / "sft.yaml"
    config = load_config(SFTTrainConfig, recipe, {"max_steps": 3, "output_dir": str(tmp_path)})
    assert config.max_steps == 3 and config.output_dir == str(tmp_path)
    assert config.learning_rate == 5e-4  # the recipe's
    with pytest.raises(ConfigError, match=r"'max_step' in the overrides.*'max_steps'"):
        load_config(SFTTrainConfig, recipe, {"max_step": 3})


def test_demo_recipes_hold_the_demo_settings(tmp_path):
    """The settings every tiny CPU run of ``mirg demo`` shares, shipped in the package."""
    common = {"model_name_or_path": "m", "dataset_path": "d.jsonl", "output_dir": str(tmp_path)}
    sft = load_config(SFTTrainConfig, DEMO_RECIPES / "sft.yaml", common)
    grpo = load_config(GRPOTrainConfig, DEMO_RECIPES / "grpo.yaml", common)
    for config in (sft, grpo):
        assert config.use_cpu and not config.bf16 and not config.freeze_vision_tower
        assert config.save_strategy == "no" and config.report_to == []
        assert config.lr_scheduler_type == "cosine" and config.dataloader_num_workers == 0
        assert config.gradient_checkpointing is False
    assert (sft.per_device_train_batch_size, sft.warmup_steps, sft.weight_decay) == (8, 0.05, 0)
    assert sft.logging_steps == 50 and sft.seed == 42  # TRL's default seed
    assert (grpo.temperature, grpo.beta, grpo.logging_steps) == (0.7, 0.0, 1)
    assert (grpo.num_iterations, grpo.epsilon, grpo.epsilon_high) == (2, 0.2, 0.28)
    assert grpo.dynamic_sampling
    assert grpo.rewards == ["object", "image", "format"]


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("max_steps: [1, 2]\n", "max_steps", "an integer"),
        ("learning_rate: abc\n", "learning_rate", "a number"),
        ("rewards: object\n", "rewards", "a list of text values"),
        ("bf16: maybe\n", "bf16", "true or false"),
        ("report_to: {a: 1}\n", "report_to", "text"),
    ],
)
def test_wrong_value_types_in_a_recipe_fail_naming_file_and_key(tmp_path, text, key, expected):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("use_cpu: true\n" + text)
    with pytest.raises(ConfigError, match=rf"bad\.yaml: key '{key}': expected .*{expected}"):
        load_config(GRPOTrainConfig, recipe)


def test_yaml_numbers_written_as_text_still_parse(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("use_cpu: true\nlearning_rate: 1e-4\nmax_steps: '7'\nbf16: 'false'\n")
    config = load_config(SFTTrainConfig, recipe)  # YAML reads 1e-4 as text; TRL converts it
    assert config.learning_rate == 1e-4 and config.max_steps == 7 and config.bf16 is False


def test_malformed_yaml_names_the_file_and_line(tmp_path, capsys):
    recipe = tmp_path / "broken.yaml"
    recipe.write_text("use_cpu: true\na: [1,\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: malformed YAML at line 3"):
        load_config(SFTTrainConfig, recipe)
    assert main(["train", "sft", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "broken.yaml" in err and "<unicode string>" not in err and "Traceback" not in err


def test_wrong_types_are_refused_before_any_model_loads(tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(
        "use_cpu: true\nmodel_name_or_path: /no/such/model\ndataset_path: d.jsonl\n"
        f"output_dir: {tmp_path / 'out'}\nmax_steps: [1, 2]\n"
    )
    assert main(["train", "sft", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: key 'max_steps': expected an integer, got [1, 2]" in err
    with pytest.raises(ConfigError, match=r"overrides: key 'learning_rate'"):
        load_config(SFTTrainConfig, None, {"learning_rate": "fast", "use_cpu": True})


def test_attention_defaults_to_auto_and_is_checked():
    assert load_config(SFTTrainConfig, None, ON_CPU).attn_implementation == "auto"
    with pytest.raises(ConfigError, match="attn_implementation must be one of auto"):
        load_config(SFTTrainConfig, None, [*ON_CPU, "--attn_implementation", "flash"])
    from mirg.train.setup import training_attention

    config = load_config(SFTTrainConfig, None, ON_CPU)
    assert training_attention(config) == "sdpa"  # CPU: flash_attention_2 never runs there


def test_gpu_recipes_use_vllm_colocate_sized_from_the_data_and_auto_attention():
    for family in ("qwen2.5-vl-3b", "qwen2.5-vl-7b", "qwen3-vl-4b", "qwen3-vl-8b"):
        grpo = load_config(GRPOTrainConfig, RECIPES / family / "grpo.yaml", ON_CPU)
        assert grpo.use_vllm and grpo.vllm_mode == "colocate"
        assert grpo.vllm_max_model_length is None  # computed from the processor and the data
        assert 0.2 <= grpo.vllm_gpu_memory_utilization <= 0.5
        sft = load_config(SFTTrainConfig, RECIPES / family / "sft.yaml", ON_CPU)
        for config in (sft, grpo):
            assert config.attn_implementation == "auto"
            assert config.grounding_eval_path and config.grounding_eval_steps >= 1
            assert config.dtype == "float32" and config.bf16 is True
            assert config.resume_from_checkpoint == "auto"


def test_qwen3_vl_recipes_mirror_the_qwen25_ones_at_qwen3_caps():
    for size in ("4b", "8b"):
        sft = load_config(SFTTrainConfig, RECIPES / f"qwen3-vl-{size}" / "sft.yaml", ON_CPU)
        assert sft.model_name_or_path == f"Qwen/Qwen3-VL-{size.upper()}-Instruct"
        assert (sft.min_pixels, sft.max_pixels) == (4 * 32 * 32, 512 * 32 * 32)
        assert sft.learning_rate == 5e-6 and sft.freeze_vision_tower
        grpo = load_config(GRPOTrainConfig, RECIPES / f"qwen3-vl-{size}" / "grpo.yaml", ON_CPU)
        assert grpo.model_name_or_path == f"runs/qwen3-vl-{size}-sft"
        assert (grpo.num_generations, grpo.beta, grpo.epsilon) == (8, 0.04, 0.2)
