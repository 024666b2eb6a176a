"""verl contract: the export's schema, ``compute_score``'s signature and values, the recipe.

verl itself lives in its own environment (requirements/verl.txt). The full check through
verl's own dataset class and reward manager (scripts/verl_check.py) runs here when
``MIRG_VERL_PYTHON`` names that environment's Python; otherwise it is skipped, saying so.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mirg.core.profiles import get_profile
from mirg.integrations.verl import compute_score

REPO = Path(__file__).resolve().parents[1]
REWARD_FILE = REPO / "src" / "mirg" / "integrations" / "verl.py"
RECIPE = REPO / "recipes" / "verl" / "qwen2.5-vl-7b-grpo.yaml"
SCRIPT = REPO / "scripts" / "verl_grpo.sh"


@pytest.fixture(scope="module")
def parquet(tmp_path_factory, synth_dir):
    from mirg.cli import main

    out = tmp_path_factory.mktemp("verl") / "train.parquet"
    code = main(
        [
            "export",
            "--format",
            "verl",
            "--data",
            str(synth_dir / "train.jsonl"),
            "--profile",
            "qwen2.5-vl",
            "--out",
            str(out),
        ]
    )
    assert code == 0
    return out


@pytest.fixture(scope="module")
def rows(parquet):
    import pyarrow.parquet as pq

    return pq.read_table(parquet).to_pylist()


def _exact(targets: dict) -> str:
    """The correct answer in the record's own coordinates, as a policy would write it."""
    k = targets["target_image"] or 1
    sizes = targets.get("input_sizes")
    body = get_profile(targets["profile"]).render_answer(
        k, targets["target_box"], sizes[k - 1] if sizes else None
    )
    return f"<think>It is in Image-{k}.</think><answer>{body}</answer>"


def test_compute_score_has_verls_signature():
    params = inspect.signature(compute_score).parameters
    assert list(params)[:4] == ["data_source", "solution_str", "ground_truth", "extra_info"]
    assert params["extra_info"].default is None
    # verl calls it with keywords only
    gt = json.dumps({"target_image": 1, "target_box": [0.1, 0.1, 0.5, 0.5]})
    out = compute_score(data_source="mirg", solution_str="", ground_truth=gt)
    assert out == {"score": 0.0, "object": 0.0, "image": 0.0, "format": 0.0}


def test_export_schema_is_what_verl_reads(rows):
    assert len(rows) > 5
    for row in rows:
        assert row["data_source"] == "mirg"
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        n = row["extra_info"]["n_images"]
        assert row["prompt"][1]["content"].count("<image>") == n == len(row["images"])
        assert all(
            isinstance(img["bytes"], bytes) and img["bytes"][:4] == b"\x89PNG"
            for img in row["images"]
        )
        targets = json.loads(row["reward_model"]["ground_truth"])
        assert set(targets) == {"target_image", "target_box", "profile", "input_sizes"}
        assert targets["profile"] == "qwen2.5-vl" and len(targets["input_sizes"]) == n
        assert isinstance(row["extra_info"]["index"], int)
    assert len({r["extra_info"]["n_images"] for r in rows}) > 1  # several image counts


def test_scores_on_exported_rows_total_and_components(rows):
    from mirg.core.rewards import DEFAULT_WEIGHTS

    wrong_seen = 0
    for row in rows:
        gt, info = row["reward_model"]["ground_truth"], row["extra_info"]
        targets = json.loads(gt)
        exact = compute_score("mirg", _exact(targets), gt, info)
        assert exact == {"score": 2.5, "object": 1.0, "image": 1.0, "format": 1.0}
        if targets["target_image"] and info["n_images"] > 1:
            wrong_seen += 1
            k = targets["target_image"] % info["n_images"] + 1  # another image, same box
            frame = targets["input_sizes"][k - 1]
            body = get_profile("qwen2.5-vl").render_answer(k, targets["target_box"], frame)
            wrong = compute_score("mirg", f"<think>x</think><answer>{body}</answer>", gt, info)
            assert wrong == {"score": 0.5, "object": 0.0, "image": 0.0, "format": 1.0}
        for text in (_exact(targets), "no answer here", _exact(targets).replace("</think>", "")):
            # the total is the core's weighted sum of the components
            out = compute_score("mirg", text, gt, info)
            total = sum(DEFAULT_WEIGHTS[k] * out[k] for k in ("object", "image", "format"))
            assert out["score"] == pytest.approx(total)
    assert wrong_seen > 0


def test_shifted_box_earns_partial_object_reward():
    gt = {"target_image": 2, "target_box": [0.0, 0.0, 0.5, 0.5], "profile": "qwen3-vl"}
    text = '<think>x</think><answer>{"image": 2, "bbox_2d": [0, 0, 500, 250]}</answer>'
    out = compute_score("mirg", text, json.dumps(gt), {"n_images": 3})
    assert out["object"] == pytest.approx(0.5) and out["image"] == 1.0
    assert out["score"] == pytest.approx(0.5 + 1.0 + 0.5)
    heavier = compute_score("mirg", text, gt, {"n_images": 3}, weights={"format": 2.0})
    assert heavier["score"] == pytest.approx(0.5 + 1.0 + 2.0)  # verl's reward_kwargs
    with pytest.raises(ValueError, match="unknown reward weights"):
        compute_score("mirg", text, gt, None, weights={"iou": 1.0})


def test_bad_ground_truth_names_the_problem():
    with pytest.raises(ValueError, match="mirg export --format verl"):
        compute_score("mirg", "x", "not json")
    with pytest.raises(ValueError, match="target_box"):
        compute_score("mirg", "x", json.dumps({"target_image": 1}))


def test_loads_by_file_path_like_verl_and_imports_no_heavy_package():
    # verl's load_extern_object: spec_from_file_location on the configured path
    spec = importlib.util.spec_from_file_location("custom_module_mirg", REWARD_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    gt = json.dumps({"target_image": None, "target_box": [0, 0, 1, 1], "profile": "normalized"})
    text = '<think>a</think><answer>{"image": 1, "bbox_2d": [0, 0, 1, 1]}</answer>'
    assert module.compute_score("mirg", text, gt, {"n_images": 2})["score"] == 2.5
    code = (
        "import sys, mirg.integrations.verl; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'torch', 'transformers', 'trl', 'datasets', 'PIL', 'numpy', 'yaml'}))"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"  # loads in verl's environment with mirg.core only


def test_recipe_and_launch_script_wire_the_reward_and_limits():
    recipe = yaml.safe_load(RECIPE.read_text())
    assert recipe["defaults"] == ["ppo_trainer", "_self_"]
    assert recipe["hydra"]["searchpath"] == ["pkg://verl.trainer.config"]
    assert recipe["algorithm"]["adv_estimator"] == "grpo"
    assert recipe["reward"]["custom_reward_function"] == {
        "path": "pkg://mirg.integrations.verl",
        "name": "compute_score",
    }
    rollout = recipe["actor_rollout_ref"]["rollout"]
    assert rollout["name"] == "vllm" and rollout["n"] == 8 and rollout["limit_images"] >= 4
    actor = recipe["actor_rollout_ref"]["actor"]
    assert actor["kl_loss_coef"] == 0.04 and actor["clip_ratio"] == 0.2  # the TRL recipe's
    assert recipe["data"]["image_key"] == "images"
    text = SCRIPT.read_text()
    assert os.access(SCRIPT, os.X_OK)
    for piece in (
        "-m verl.trainer.main_ppo",
        "algorithm.adv_estimator=grpo",
        'reward.custom_reward_function.path="$REWARD"',
        "reward.custom_reward_function.name=compute_score",
        "src/mirg/integrations/verl.py",
        'actor_rollout_ref.rollout.limit_images="$MAX_IMAGES"',
        'trainer.nnodes="$NNODES"',
    ):
        assert piece in text, piece
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_verl_reads_our_parquet_and_calls_our_reward(tmp_path, parquet):
    """Only with verl installed: ``MIRG_VERL_PYTHON=/path/to/verl-env/bin/python``."""
    python = os.environ.get("MIRG_VERL_PYTHON")
    if not python:
        pytest.skip("verl lives in its own environment; set MIRG_VERL_PYTHON to run this")
    from mirg.models.tiny import save_tiny_model

    model = save_tiny_model(tmp_path / "model", "qwen2.5-vl")
    summary = tmp_path / "summary.json"
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run(
        [
            python,
            str(REPO / "scripts" / "verl_check.py"),
            "--parquet",
            str(parquet),
            "--model",
            str(model),
            "--out",
            str(summary),
            "--max-rows",
            "8",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(summary.read_text())
    assert result["problems"] == [] and result["rows"] > 5
    cases = {(r["case"], r["score"]) for r in result["rewards"]}
    assert {("exact", 2.5), ("wrong_image", 0.5), ("free_text", 0.0)} <= cases  # 112-px frames
    # a frame mismatch is caught: one image far above the tiny processor's pixel cap,
    # with input_sizes computed for the recipes' larger cap (401,408 pixels)
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from mirg.core.profiles import smart_resize

    row = next(r for r in pq.read_table(parquet).to_pylist() if r["extra_info"]["n_images"] > 1)
    buf = io.BytesIO()
    Image.new("RGB", (1600, 1200), (90, 120, 200)).save(buf, "PNG")
    row["images"][0] = {"bytes": buf.getvalue(), "path": None}
    targets = json.loads(row["reward_model"]["ground_truth"])
    h, w = smart_resize(1200, 1600, 28, 3136, 401408)
    targets["input_sizes"][0] = [w, h]
    row["reward_model"]["ground_truth"] = json.dumps(targets)
    pq.write_table(pa.Table.from_pylist([row]), tmp_path / "big.parquet")
    check = [python, str(REPO / "scripts" / "verl_check.py"), "--model", str(model)]
    bad = subprocess.run(
        [*check, "--parquet", str(tmp_path / "big.parquet"), "--out", str(tmp_path / "bad.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert bad.returncode == 1
    problems = json.loads((tmp_path / "bad.json").read_text())["problems"]
    assert any("[728, 532]" in p and "verl shows the model frames" in p for p in problems)
    # the same composition through verl's own entry point, no GPU needed
    cfg = subprocess.run(
        [str(SCRIPT), "--cfg", "job"], capture_output=True, text=True, env=env | {"PYTHON": python}
    )
    assert cfg.returncode == 0, cfg.stderr[-3000:]
    job = yaml.safe_load(cfg.stdout)
    assert job["reward"]["custom_reward_function"]["path"] == str(REWARD_FILE)
    assert job["actor_rollout_ref"]["rollout"]["limit_images"] == 4
