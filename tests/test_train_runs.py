"""Output folders: another run is refused, a killed run resumes from its newest complete
checkpoint, and resuming is logged (tiny Qwen3-VL on CPU)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from mirg.cli import main  # noqa: E402
from mirg.models.tiny import save_tiny_model  # noqa: E402
from mirg.train.configs import GRPOTrainConfig, SFTTrainConfig  # noqa: E402
from mirg.train.recipes import ConfigError, load_config  # noqa: E402
from mirg.train.runs import (  # noqa: E402
    RUN_FILE,
    check_output_dir,
    checkpoint_problem,
    newest_complete_checkpoint,
)
from mirg.train.sft import run_sft  # noqa: E402
from toy_data import write_toy_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "model": save_tiny_model(root / "model", "qwen3-vl"),
        "other_model": save_tiny_model(root / "other", "qwen3-vl", spec=None, corpus=["x y z"]),
        "toy": write_toy_dataset(root / "toy", 6),
    }


def _args(setup, out: Path, *extra: str, data: Path | None = None) -> list[str]:
    return [
        "--config",
        str(RECIPES / "tiny" / "sft.yaml"),
        "--model_name_or_path",
        str(setup["model"]),
        "--dataset_path",
        str(data or setup["toy"] / "trajectories.jsonl"),
        "--output_dir",
        str(out),
        "--report_to",
        "none",
        "--logging_steps",
        "1",
        "--disable_tqdm",
        "true",
        "--per_device_train_batch_size",
        "2",
        *extra,
    ]


def _config(setup, out: Path, *extra: str, data: Path | None = None) -> SFTTrainConfig:
    return load_config(SFTTrainConfig, None, _args(setup, out, *extra, data=data))


def _record(out: Path, setup, **changes) -> None:
    """Write the run record a finished tiny SFT run would have left."""
    from mirg.train.runs import run_identity

    identity = run_identity(_config(setup, out), "sft")
    out.mkdir(parents=True, exist_ok=True)
    (out / RUN_FILE).write_text(json.dumps({**identity, **changes, "starts": []}))
    (out / "checkpoint-2").mkdir(exist_ok=True)


# --------------------------------------------------------------------------- another run


def test_the_same_run_may_resume_its_folder(setup, tmp_path):
    out = tmp_path / "out"
    _record(out, setup)
    assert check_output_dir(_config(setup, out), "sft")["stage"] == "sft"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stage": "grpo"}, r"stage 'grpo' \(this run: 'sft'\)"),
        ({"model_fingerprint": "0" * 16}, r"model .*other weights"),
        ({"dataset_fingerprint": "0" * 16}, r"dataset .*changed since"),
    ],
)
def test_a_folder_holding_another_run_is_refused_before_the_model_loads(
    setup, tmp_path, change, message
):
    out = tmp_path / "out"
    _record(out, setup, **change)
    with pytest.raises(ConfigError, match=rf"holds another run: {message}") as info:
        check_output_dir(_config(setup, out), "sft")
    assert "overwrite_output_dir: true" in str(info.value)
    assert "resume_from_checkpoint" in str(info.value)
    # on purpose: start afresh, or resume that checkpoint by name
    assert check_output_dir(_config(setup, out, "--overwrite_output_dir", "true"), "sft")
    named = _config(setup, out, "--resume_from_checkpoint", str(out / "checkpoint-2"))
    assert check_output_dir(named, "sft")


def test_an_sft_folder_given_as_grpo_output_is_refused_from_the_cli(setup, tmp_path, capsys):
    sft_out = tmp_path / "sft"
    assert main(["train", "sft", *_args(setup, sft_out, "--max_steps", "2")]) == 0
    capsys.readouterr()
    code = main(
        [
            "train",
            "grpo",
            "--config",
            str(RECIPES / "tiny" / "grpo.yaml"),
            "--model_name_or_path",
            str(sft_out),
            "--dataset_path",
            str(setup["toy"] / "samples.jsonl"),
            "--output_dir",
            str(sft_out),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert f"output_dir {sft_out} holds another run: stage 'sft' (this run: 'grpo')" in err
    # and the SFT run was not touched
    state = json.loads((sft_out / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2


def test_other_data_or_an_unrecorded_model_folder_is_refused(setup, tmp_path):
    out = tmp_path / "out"
    _record(out, setup)
    other = tmp_path / "other.jsonl"
    other.write_text((setup["toy"] / "trajectories.jsonl").read_text().splitlines()[0] + "\n")
    with pytest.raises(ConfigError, match=r"dataset .*other data"):
        check_output_dir(_config(setup, out, data=other), "sft")
    with pytest.raises(ConfigError, match=r"model .*another model"):
        check_output_dir(
            _config(setup, out, "--model_name_or_path", str(setup["other_model"])), "sft"
        )
    # a model folder as output_dir (it would be overwritten), or a stranger's checkpoints
    with pytest.raises(ConfigError, match="holds a model no mirg training run wrote"):
        check_output_dir(_config(setup, setup["model"]), "sft")
    stranger = tmp_path / "stranger"
    (stranger / "checkpoint-10").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"checkpoints no mirg run recorded \(checkpoint-10\)"):
        check_output_dir(_config(setup, stranger), "sft")
    (tmp_path / "logs-only").mkdir()
    (tmp_path / "logs-only" / "notes.txt").write_text("mine")
    assert check_output_dir(_config(setup, tmp_path / "logs-only"), "sft")  # nothing to lose


def test_overwrite_output_dir_starts_afresh_and_drops_the_old_checkpoints(setup, tmp_path):
    out = tmp_path / "out"
    run_sft(_config(setup, out, "--max_steps", "4", "--save_steps", "2"))
    run_sft(
        _config(
            setup,
            out,
            "--max_steps",
            "2",
            "--save_steps",
            "2",
            "--overwrite_output_dir",
            "true",
            data=_first_lines(setup, tmp_path, 4),
        )
    )
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    record = json.loads((out / RUN_FILE).read_text())
    assert record["dataset"].endswith("first.jsonl") and len(record["starts"]) == 1


def _first_lines(setup, tmp_path: Path, n: int) -> Path:
    data = tmp_path / "first.jsonl"
    lines = (setup["toy"] / "trajectories.jsonl").read_text().splitlines(True)[:n]
    data.write_text("".join(lines))
    (tmp_path / "images").symlink_to(setup["toy"] / "images")
    return data


# --------------------------------------------------------------------------- checkpoints


def _complete_checkpoint(folder: Path, step: int) -> Path:
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    save_file({"w": torch.ones(64)}, str(folder / "model.safetensors"))
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def test_checkpoint_completeness(tmp_path):
    good = _complete_checkpoint(tmp_path / "checkpoint-2", 2)
    assert checkpoint_problem(good) is None
    empty = tmp_path / "checkpoint-8"
    empty.mkdir()
    assert "no trainer_state.json" in checkpoint_problem(empty)
    cut = _complete_checkpoint(tmp_path / "checkpoint-4", 4)
    data = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) - 10])
    assert checkpoint_problem(cut) == "model.safetensors is cut short"
    state = _complete_checkpoint(tmp_path / "checkpoint-6", 6)
    (state / "trainer_state.json").write_text('{"global_st')
    assert checkpoint_problem(state) == "trainer_state.json is cut short"
    chosen, skipped = newest_complete_checkpoint(tmp_path)
    assert chosen == good
    assert [p.name for p, _ in skipped] == ["checkpoint-8", "checkpoint-6", "checkpoint-4"]
    sharded = _complete_checkpoint(tmp_path / "checkpoint-10", 10)
    (sharded / "model.safetensors.index.json").write_text(
        json.dumps(
            {"weight_map": {"w": "model.safetensors", "v": "model-00002-of-00002.safetensors"}}
        )
    )
    assert checkpoint_problem(sharded) == "weight shards missing: model-00002-of-00002.safetensors"


def test_resume_skips_a_damaged_checkpoint_and_says_so(setup, tmp_path, caplog):
    out = tmp_path / "out"
    run_sft(_config(setup, out, "--max_steps", "4", "--save_steps", "2"))
    weights = out / "checkpoint-4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a save cut short
    caplog.set_level(logging.INFO, logger="mirg")
    result = run_sft(_config(setup, out, "--max_steps", "6", "--save_steps", "2"))
    assert result.resumed_from == str(out / "checkpoint-2") and result.global_step == 6
    text = caplog.text
    assert "skipping incomplete checkpoint" in text and "checkpoint-4" in text
    assert f"resuming from {out / 'checkpoint-2'} (step 2)" in text
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [1, 2, 3, 4, 5, 6]
    starts = json.loads((out / RUN_FILE).read_text())["starts"]
    assert [s["resumed_from"] for s in starts] == [None, str(out / "checkpoint-2")]
    assert starts[-1]["attention"] == "sdpa"  # which attention ran is recorded


def test_explicit_checkpoint_must_be_complete(setup, tmp_path):
    out = tmp_path / "out"
    _record(out, setup)  # checkpoint-2 is an empty folder: a save killed at once
    with pytest.raises(ConfigError, match=r"checkpoint-2 is not a complete checkpoint"):
        run_sft(_config(setup, out, "--resume_from_checkpoint", str(out / "checkpoint-2")))


# --------------------------------------------------------------------------- kill -9

CHILD = """
import os, sys, time, torch
from mirg.cli import main

marker = os.environ.get("MIRG_TEST_SAVE_MARKER")
if marker:
    save = torch.save
    def slow_save(obj, f, *args, **kwargs):
        # the weights of checkpoint-4 are on disk; stop before its optimizer state
        if "checkpoint-4" in str(f):
            open(marker, "w").close()
            time.sleep(600)
        return save(obj, f, *args, **kwargs)
    torch.save = slow_save
sys.exit(main(["train", "sft", *sys.argv[1:]]))
"""


def _child(args: list[str], marker: Path | None) -> subprocess.Popen:
    env = dict(
        os.environ, OMP_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", TOKENIZERS_PARALLELISM="false"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), env.get("PYTHONPATH", "")])
    if marker:
        env["MIRG_TEST_SAVE_MARKER"] = str(marker)
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before the kill: {proc.stderr.read().decode()[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the run never reached the checkpoint to kill it in")
        time.sleep(0.005)


def _kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    proc.stderr.close()


def _assert_each_step_once(out: Path, steps: int) -> None:
    state = json.loads((out / f"checkpoint-{steps}" / "trainer_state.json").read_text())
    assert state["global_step"] == steps
    assert [h["step"] for h in state["log_history"] if "loss" in h] == list(range(1, steps + 1))
    assert all(checkpoint_problem(c) is None for c in out.glob("checkpoint-*"))
    assert (out / "model.safetensors").is_file()


def test_kill_9_during_a_checkpoint_save_then_the_rerun_completes(setup, tmp_path, caplog):
    out = tmp_path / "out"
    marker = tmp_path / "saving"
    args = _args(setup, out, "--max_steps", "6", "--save_steps", "2")
    proc = _child(args, marker)
    _wait_for(marker.exists, proc)
    _kill(proc)  # mid-save: checkpoint-4 has its weights, not its optimizer or state
    broken = out / "checkpoint-4"
    assert (broken / "model.safetensors").is_file() and checkpoint_problem(broken)
    caplog.set_level(logging.INFO, logger="mirg")
    result = run_sft(_config(setup, out, "--max_steps", "6", "--save_steps", "2"))
    assert result.global_step == 6 and result.resumed_from == str(out / "checkpoint-2")
    assert f"resuming from {out / 'checkpoint-2'}" in caplog.text
    _assert_each_step_once(out, 6)


def test_kill_9_as_a_checkpoint_appears_then_the_rerun_completes(setup, tmp_path):
    """No help from the child: killed the moment a checkpoint folder shows up, wherever
    the save happens to be (timing varies from machine to machine)."""
    out = tmp_path / "out"
    args = _args(setup, out, "--max_steps", "6", "--save_steps", "2")
    proc = _child(args, None)
    _wait_for(lambda: (out / "checkpoint-4").exists(), proc)
    _kill(proc)
    expected, _ = newest_complete_checkpoint(out)
    result = run_sft(_config(setup, out, "--max_steps", "6", "--save_steps", "2"))
    assert result.global_step == 6
    assert result.resumed_from == (str(expected) if expected else None)
    _assert_each_step_once(out, 6)


def test_grpo_refuses_an_sft_run_folder(setup, tmp_path):
    out = tmp_path / "out"
    _record(out, setup)
    config = load_config(
        GRPOTrainConfig,
        RECIPES / "tiny" / "grpo.yaml",
        {
            "model_name_or_path": str(setup["model"]),
            "dataset_path": str(setup["toy"] / "trajectories.jsonl"),
            "output_dir": str(out),
        },
    )
    with pytest.raises(ConfigError, match="stage 'sft'"):
        check_output_dir(config, "grpo")
