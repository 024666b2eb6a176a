"""Faults and bad input, third round (issue 20): the output-folder rule for every command,
one writer per folder, recipes that expand without bound, rewards that misbehave, Ctrl-C.

Each test runs the command line as a user would (``mirg.cli.main``) and checks the exit
code, that the message is one line naming the file, record or field, and that what the
user had is unchanged. Ctrl-C is a real SIGINT sent to this process (``os.kill``) at a
chosen point of the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_fixtures import make_world
from mirg.cli import main
from mirg.data.synth import PRESETS
from mirg.files import LOCK_FILE

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes"


def checksums(root: Path) -> dict[str, str]:
    """Content hash of every file under ``root`` (links are not followed)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _error(capsys) -> str:
    """The command's one error line, its last (progress bars of model loading may come
    before it), asserting there is no traceback."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    line = err.splitlines()[-1] if err else ""
    assert line.startswith("mirg ") and ": error: " in line and len(line) < 1200, err
    return line


def _users_folder(folder: Path, *names: str) -> dict[str, str]:
    """A folder of the user's own files (a name ending in / is a folder with a file in it)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        if name.endswith("/"):
            (folder / name).mkdir()
            (folder / name / "mine.txt").write_text("the user's\n")
        else:
            (folder / name).write_text(f"the user's own {name}\n")
    return checksums(folder)


# ---------------------------------------------------------------------------------------
# Inputs shared by the tests: a small split to evaluate, toy training data.


@pytest.fixture(scope="module")
def eval_data(tmp_path_factory) -> Path:
    """A test split of 4 two-image items in its own folder."""
    out = tmp_path_factory.mktemp("eval-data")
    make_world(out, n=10, seed=2, config=PRESETS["starter"])
    lines = (out / "train.jsonl").read_text().splitlines(keepends=True)[:4]
    (out / "four.jsonl").write_text("".join(lines))
    return out / "four.jsonl"


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    from toy_data import write_toy_dataset

    return write_toy_dataset(tmp_path_factory.mktemp("toy") / "toy", 6)


def _eval(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "--model", str(model), "--data", str(data), "--out", str(out),
            "--no-progress", "--max-new-tokens", "6", "--batch-size", "2", *extra]  # fmt: skip


def _train(stage: str, model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", stage, "--config", str(RECIPES / "tiny" / f"{stage}.yaml"),
            "--model_name_or_path", str(model), "--dataset_path", str(data),
            "--output_dir", str(out), "--report_to", "none", "--disable_tqdm", "true",
            "--use_cpu", "true", *extra]  # fmt: skip


# ---------------------------------------------------------------------------------------
# 1. Nothing mirg did not write is replaced without --overwrite.


@pytest.mark.parametrize(
    "names",
    [
        ("report.html", "metrics.json"),
        ("predictions.jsonl",),
        ("run.json",),
        ("mcbench_results.json", "notes.txt"),
    ],
    ids=lambda names: "+".join(names),
)
def test_eval_refuses_a_folder_holding_files_it_would_replace(
    tiny_model_dir, eval_data, tmp_path, capsys, names
):
    out = tmp_path / "mine"
    before = _users_folder(out, *names)
    assert main(_eval(tiny_model_dir, eval_data, out)) == 2
    err = _error(capsys)
    assert err.startswith(f"mirg eval: error: {out}") and names[0] in err, err
    assert "--overwrite" in err
    assert checksums(out) == before  # nothing replaced, not even a lock file added
    assert not (out / LOCK_FILE).exists()


def test_eval_overwrite_replaces_only_its_files_and_a_rerun_needs_no_flag(
    tiny_model_dir, eval_data, tmp_path
):
    out = tmp_path / "mine"
    _users_folder(out, "report.html", "notes.txt", "predictions.jsonl")
    notes = (out / "notes.txt").read_bytes()
    assert main(_eval(tiny_model_dir, eval_data, out, "--overwrite")) == 0
    assert "the user's" not in (out / "report.html").read_text()
    assert (out / "notes.txt").read_bytes() == notes  # not a file eval writes: kept
    ids = [json.loads(line)["id"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(ids) == 4 == len(set(ids))  # the user's predictions were not resumed
    before = checksums(out)
    assert main(_eval(tiny_model_dir, eval_data, out)) == 0  # its own folder: resumes
    after = checksums(out)
    assert after["predictions.jsonl"] == before["predictions.jsonl"]


@pytest.mark.parametrize(
    "name",
    [
        "README.md",  # the Trainer's model card
        "tokenizer.json",
        "chat_template.jinja",
        "preprocessor_config.json",
        "special_tokens_map.json",
        "training_args.bin",
        "all_results.json",
        "model-00001-of-00002.safetensors",
        "runs/",
        "adapter/",
    ],
)
def test_training_refuses_an_output_dir_holding_files_a_run_writes(
    tiny_model_dir, toy, tmp_path, capsys, name
):
    out = tmp_path / "mine"
    before = _users_folder(out, name, "notes.txt")
    argv = _train("sft", tiny_model_dir, toy / "trajectories.jsonl", out, "--max_steps", "1")
    assert main(argv) == 2
    err = _error(capsys)
    assert f"output_dir {out} holds files a training run would replace" in err
    assert name.rstrip("/") in err and "overwrite_output_dir: true" in err
    assert checksums(out) == before


def test_training_refuses_a_file_named_like_one_of_the_models_own(
    tiny_model_dir, toy, tmp_path, capsys
):
    """The saved model repeats its processor's file names, whatever they are."""
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "extra_vocabulary.dat").write_text("tokens")
    out = tmp_path / "mine"
    before = _users_folder(out, "extra_vocabulary.dat")
    assert main(_train("sft", model, toy / "trajectories.jsonl", out)) == 2
    assert "extra_vocabulary.dat" in _error(capsys)
    assert checksums(out) == before


def test_training_output_dir_that_is_a_file_is_refused(tiny_model_dir, toy, tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("mine\n")
    assert main(_train("sft", tiny_model_dir, toy / "trajectories.jsonl", out)) == 2
    assert f"output_dir {out} is a file" in _error(capsys)
    assert out.read_text() == "mine\n"


@pytest.mark.parametrize("names", [("README.md",), ("config.json",), ("tokenizer.json", "x/")])
def test_tiny_model_refuses_a_folder_of_the_users_files(tmp_path, capsys, names):
    out = tmp_path / "mine"
    before = _users_folder(out, *names)
    assert main(["tiny-model", "--out", str(out)]) == 2
    err = _error(capsys)
    assert str(out) in err and "--overwrite" in err
    assert checksums(out) == before and not (out / LOCK_FILE).exists()


@pytest.mark.parametrize(
    "names", [("manifest.json",), ("train.jsonl",), ("images/",), (".mirg-synth.json",)]
)
def test_synth_refuses_a_folder_of_the_users_files(tmp_path, capsys, names):
    out = tmp_path / "mine"
    before = _users_folder(out, *names)
    assert main(["synth", "--out", str(out), "--n", "4", "--preset", "single"]) == 2
    err = _error(capsys)
    assert str(out) in err and "not a mirg synth dataset" in err
    assert names[0].rstrip("/") in err and "--overwrite" in err
    assert checksums(out) == before and not (out / LOCK_FILE).exists()


@pytest.mark.parametrize("names", [("report.html",), ("summary.json",), ("sft/",)])
def test_demo_refuses_a_folder_of_the_users_files(tmp_path, capsys, names):
    out = tmp_path / "mine"
    before = _users_folder(out, *names)
    assert main(["demo", "--quick", "--out", str(out)]) == 2
    err = _error(capsys)
    assert str(out) in err and names[0].rstrip("/") in err and "--overwrite" in err
    assert checksums(out) == before and not (out / LOCK_FILE).exists()


def test_a_demo_folder_is_the_demos_own_to_rerun(tmp_path, monkeypatch):
    import mirg.demo

    out = tmp_path / "demo"
    _users_folder(out, "report.html")
    (out / mirg.demo.DEMO_RECORD).write_text("{}\n")  # an earlier demo's folder: no flag

    class Claimed(Exception):
        pass

    def stages(*args):
        raise Claimed  # stop before any stage runs

    monkeypatch.setattr(mirg.demo, "_run_stages", stages)
    with pytest.raises(Claimed):
        mirg.demo.run_demo(out, mirg.demo.QUICK)


def test_a_folders_lock_file_is_emptied_so_reruns_are_byte_identical(tmp_path):
    args = ["synth", "--n", "6", "--preset", "single", "--seed", "4"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "a")]) == 0  # a rerun: no flag
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert (tmp_path / "a" / LOCK_FILE).read_bytes() == b""
    assert checksums(tmp_path / "a") == checksums(tmp_path / "b")


def test_a_model_retrained_to_the_same_weights_keeps_its_fingerprint(tiny_model_dir, tmp_path):
    """Evaluations of a model resume after it is retrained identically (the demo's rerun):
    the run's own records (lock, mirg_run.json, training_args.bin) are not the model."""
    from mirg.files import fingerprint

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    before = fingerprint(model)
    (model / "mirg_run.json").write_text('{"starts": [{"at": "now"}]}')
    (model / "training_args.bin").write_bytes(b"arguments of another start")
    (model / LOCK_FILE).write_text("mirg train sft (pid 1 on here, since now)")
    assert fingerprint(model) == before
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "changed": True}))
    assert fingerprint(model) != before


# ---------------------------------------------------------------------------------------
# 2. One writer per output folder.

SLOW_SYNTH = """
import sys, time
from mirg.cli import main
from mirg.data.synth import world
original = world.generate_sample
def slow(*args, **kwargs):
    time.sleep(0.05)
    return original(*args, **kwargs)
world.generate_sample = slow
sys.exit(main(["synth", *sys.argv[1:]]))
"""


def _child(code: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO / "tests")])
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the first run never got there"
        time.sleep(0.02)


@pytest.mark.parametrize("seed", ["2", "1"], ids=["other-seed", "same-command"])
def test_a_second_synth_on_one_folder_is_refused_naming_the_first(tmp_path, capsys, seed):
    out = tmp_path / "w"
    args = ["--out", str(out), "--n", "60", "--preset", "single"]
    first = _child(SLOW_SYNTH, *args, "--seed", "1")
    try:
        lock = out / LOCK_FILE
        _wait_for(lambda: lock.is_file() and lock.read_text().strip(), first)
        assert main(["synth", *args, "--seed", seed]) == 2
        err = _error(capsys)
        assert f"{out} is in use by mirg synth (seed 1, n 60) (pid {first.pid}" in err
        stdout, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert first.returncode == 0, stderr
    assert "seed 1" in stdout
    assert json.loads((out / "manifest.json").read_text())["seed"] == 1
    samples = [json.loads(x) for s in ("train", "val", "test") for x in (out / f"{s}.jsonl").open()]
    assert len(samples) == 60 and {s["meta"]["seed"] for s in samples} == {1}


# ---------------------------------------------------------------------------------------
# 3. A recipe that expands without bound; values echoed in messages are capped.

LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n" for a, b in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (LAUGHS + "learning_rate: *i\n", "expand to more than"),
        (LAUGHS + "model_init_kwargs: {x: *i}\n", "expand to more than"),  # a mapping key
        (LAUGHS.replace("a: &a [", "a: &a [x, ", 1) + "rewards: *i\n", "expand to more than"),
        ("x: &x [1, *x]\nmax_steps: *x\n", "expand to more than"),  # an alias of itself
        ("max_steps: " + "[" * 3000 + "]" * 3000 + "\n", "nest deeper than"),
    ],
    ids=["billion-laughs", "under-a-mapping", "under-a-list-key", "recursive", "deep"],
)
def test_a_recipe_that_expands_without_bound_is_refused_in_one_line(tmp_path, capsys, body, says):
    recipe = tmp_path / "laughs.yaml"
    recipe.write_text(body)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.monotonic()
    assert main(["train", "sft", "--config", str(recipe), "--output_dir", str(tmp_path / "o")]) == 2
    assert time.monotonic() - t0 < 60
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 512 * 1024, f"memory grew by {grown_kib} KiB"
    err = _error(capsys)
    assert f"config file {recipe}: " in err and says in err
    assert not (tmp_path / "o").exists()


def test_a_huge_value_of_the_wrong_type_is_echoed_capped(tmp_path, capsys):
    recipe = tmp_path / "big.yaml"
    recipe.write_text(f"max_steps: {list(range(5000))}\n")
    assert main(["train", "sft", "--config", str(recipe), "--output_dir", str(tmp_path / "o")]) == 2
    err = _error(capsys)
    assert f"config file {recipe}: key 'max_steps': expected an integer, got [0, 1, 2" in err
    assert len(err) < 300, err


def test_echoed_values_are_bounded_whatever_their_size():
    from mirg.errors import SHOWN_CHARS, shown

    nested: list = ["lol"] * 9
    for _ in range(30):  # 9**30 leaves if walked: shown must not walk them
        nested = [nested] * 9
    for value in (nested, "x" * 10**6, {str(i): i for i in range(10**5)}, 10**4000):
        assert len(shown(value)) <= SHOWN_CHARS


def test_the_boundary_caps_any_message_keeping_its_start_and_its_advice():
    from mirg.cli import MAX_MESSAGE, user_error
    from mirg.errors import MirgError

    message = "data.jsonl:3: field 'x': got " + "[0, " * 10_000 + "; fix the field"
    line = user_error(MirgError(message))
    assert len(line) <= MAX_MESSAGE + 3
    assert line.startswith("data.jsonl:3: field 'x'") and line.endswith("; fix the field")


# ---------------------------------------------------------------------------------------
# 4. A reward that misbehaves gets a clear error before training (or at its step).

USER_REWARDS = """
import math


def raises(completions, **columns):
    return [1.0 / 0 for _ in completions]


def too_few(completions, **columns):
    return [1.0]


def one_number(completions, **columns):
    return 1.0


def text(completions, **columns):
    return ["high" for _ in completions]


def nan_always(completions, **columns):
    return [math.nan for _ in completions]


def inf_always(completions, **columns):
    return [math.inf for _ in completions]


def needs_positional(completions):
    return [0.0 for _ in completions]


def nan_from_step_1(completions, trainer_state, **columns):
    bad = trainer_state.global_step >= 1
    return [math.nan if bad else 0.5 for _ in completions]


def short_from_step_1(completions, trainer_state, **columns):
    n = len(completions) - (trainer_state.global_step >= 1)
    return [0.5] * n


def not_applicable(completions, **columns):
    return [None for _ in completions]


not_a_function = 3
"""


@pytest.fixture
def user_rewards(tmp_path, monkeypatch) -> str:
    """A user's reward module, importable by dotted path; returns its name."""
    name = f"user_rewards_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(USER_REWARDS)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _grpo(tiny_model_dir, toy, out, *extra: str) -> list[str]:
    return _train("grpo", tiny_model_dir, toy / "samples.jsonl", out,
                  "--max_completion_length", "8", "--num_generations", "2",
                  "--per_device_train_batch_size", "2", "--logging_steps", "1", *extra)  # fmt: skip


@pytest.mark.parametrize(
    ("reward", "says"),
    [
        ("raises", "raised ZeroDivisionError before training"),
        ("too_few", "returned 1 values for 12 completions before training"),
        ("one_number", "returned float 1.0 before training"),
        ("text", "returned 'high' for completion 0 before training"),
        ("nan_always", "returned nan for completion 0 before training"),
        ("inf_always", "returned inf for completion 0 before training"),
        ("needs_positional", "raised TypeError before training"),
    ],
)
def test_a_reward_that_misbehaves_is_refused_before_training(
    tiny_model_dir, toy, tmp_path, capsys, user_rewards, reward, says
):
    out = tmp_path / "out"
    argv = _grpo(tiny_model_dir, toy, out, "--rewards", f"{user_rewards}.{reward}", "format")
    assert main(argv) == 2
    err = _error(capsys)
    assert f"reward {reward} {says}" in err, err
    if reward == "raises":
        assert f"{user_rewards}.py:" in err  # where in the user's file
    assert not list(out.glob("checkpoint-*")) and not (out / "mirg_run.json").exists()


@pytest.mark.parametrize(
    ("reward", "says"),
    [
        ("nan_from_step_1", "returned nan for completion 0 at step 1"),
        ("short_from_step_1", "returned 1 values for 2 completions at step 1"),
    ],
)
def test_a_reward_that_turns_bad_mid_training_stops_it_naming_the_step(
    tiny_model_dir, toy, tmp_path, capsys, user_rewards, reward, says
):
    out = tmp_path / "out"
    argv = _grpo(tiny_model_dir, toy, out, "--rewards", f"{user_rewards}.{reward}",
                 "--max_steps", "3", "--save_steps", "1")  # fmt: skip
    assert main(argv) == 2
    err = _error(capsys)
    assert f"reward {reward} {says}" in err, err
    assert (out / "checkpoint-1").is_dir()  # what was trained before is kept


def test_a_reward_that_is_not_a_function_is_refused_with_the_config(
    tiny_model_dir, toy, tmp_path, capsys, user_rewards
):
    out = tmp_path / "out"
    name = f"{user_rewards}.not_a_function"
    assert main(_grpo(tiny_model_dir, toy, out, "--rewards", name)) == 2
    err = _error(capsys)
    assert f"reward '{name}' is int 3, not a function" in err
    assert not out.exists()


def test_check_reward_columns_passes_rewards_that_do_not_apply(user_rewards):
    """None is TRL's "does not apply": allowed, before training and during it."""
    import importlib

    from mirg.train.reward_checks import check_reward_columns, checked_reward

    module = importlib.import_module(user_rewards)
    rows = [{"prompt": [{"role": "user", "content": "q"}], "target_box": [0, 0, 1, 1]}] * 2
    check_reward_columns(rows, [module.not_applicable])
    wrapped = checked_reward(module.not_applicable)
    assert wrapped.__name__ == "not_applicable"
    assert wrapped(completions=["a", "b"], trainer_state=None) == [None, None]


# ---------------------------------------------------------------------------------------
# 5. Ctrl-C: one line saying what was kept, exit 130, and the rerun resumes.


@pytest.fixture
def sigint_interrupts():
    """Python's own SIGINT handler during a Ctrl-C test: a shell starts a background job
    with SIGINT ignored, and a suite run that way would otherwise never see the Ctrl-C."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def _ctrl_c() -> None:
    """The user's Ctrl-C: a real SIGINT to this process."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(1)  # the handler runs at once; this never completes


@pytest.mark.usefixtures("sigint_interrupts")
def test_ctrl_c_during_synth_says_what_was_kept_and_the_rerun_completes(
    tmp_path, monkeypatch, capsys
):
    from mirg.data.synth import world

    calls = {"n": 0}
    original = world.generate_sample

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            _ctrl_c()
        return original(*args, **kwargs)

    out = tmp_path / "w"
    args = ["synth", "--out", str(out), "--n", "10", "--preset", "single"]
    monkeypatch.setattr(world, "generate_sample", interrupted)
    assert main(args) == 130
    err = capsys.readouterr().err.strip()
    assert err == (
        f"mirg synth: interrupted; {out} holds a partly written dataset (marked by "
        ".mirg-synth.json); rerun the same command to finish it in place"
    )
    monkeypatch.setattr(world, "generate_sample", original)
    assert main(args) == 0
    fresh = tmp_path / "fresh"
    assert main([*args[:2], str(fresh), *args[3:]]) == 0
    assert checksums(out) == checksums(fresh)


@pytest.mark.usefixtures("sigint_interrupts")
def test_ctrl_c_during_eval_says_how_many_predictions_were_kept(
    tiny_model_dir, eval_data, tmp_path, monkeypatch, capsys
):
    from mirg.eval import generation

    calls = {"n": 0}
    original = generation.HFGenerator.generate

    def interrupted(self, messages, images):
        calls["n"] += 1
        if calls["n"] == 2:
            _ctrl_c()
        return original(self, messages, images)

    out = tmp_path / "o"
    monkeypatch.setattr(generation.HFGenerator, "generate", interrupted)
    assert main(_eval(tiny_model_dir, eval_data, out)) == 130
    err = capsys.readouterr().err.strip()
    predictions = out / "predictions.jsonl"
    assert err.splitlines()[-1] == (
        f"mirg eval: interrupted; 2 prediction(s) kept in {predictions}; rerun the same "
        "command to resume"
    )
    assert "Traceback" not in err
    monkeypatch.setattr(generation.HFGenerator, "generate", original)
    assert main(_eval(tiny_model_dir, eval_data, out)) == 0
    run = json.loads((out / "run.json").read_text())
    assert run["last_run"]["resumed_from"] == 2 and run["last_run"]["predicted"] == 2


@pytest.mark.usefixtures("sigint_interrupts")
def test_ctrl_c_during_training_names_the_checkpoint_a_rerun_resumes(
    tiny_model_dir, toy, tmp_path, monkeypatch, capsys
):
    from transformers import Trainer

    calls = {"n": 0}
    original = Trainer.training_step

    def interrupted(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:  # after checkpoint-2 was saved
            _ctrl_c()
        return original(self, *args, **kwargs)

    out = tmp_path / "out"
    argv = _train("sft", tiny_model_dir, toy / "trajectories.jsonl", out,
                  "--max_steps", "4", "--save_steps", "2", "--per_device_train_batch_size", "2",
                  "--logging_steps", "1")  # fmt: skip
    monkeypatch.setattr(Trainer, "training_step", interrupted)
    assert main(argv) == 130
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == (
        f"mirg train: interrupted; {out / 'checkpoint-2'} kept; rerun the same command to "
        "resume from it"
    )
    assert "Traceback" not in err
    monkeypatch.setattr(Trainer, "training_step", original)
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["global_step"] == 4
    record = json.loads((out / "mirg_run.json").read_text())
    assert record["starts"][-1]["resumed_from"] == str(out / "checkpoint-2")


@pytest.mark.usefixtures("sigint_interrupts")
def test_ctrl_c_during_a_one_file_command_keeps_the_previous_output(tmp_path, monkeypatch, capsys):
    from mirg.data import exports

    world = make_world(tmp_path / "w", n=10, seed=3, config=PRESETS["single"])
    out = tmp_path / "t.jsonl"
    args = ["trajectories", "--profile", "qwen2-vl", "--data", str(world / "train.jsonl")]
    assert main([*args, "--out", str(out)]) == 0
    before = out.read_bytes()
    calls = {"n": 0}
    original = exports.Exporter.sft

    def interrupted(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 3:
            _ctrl_c()
        return original(self, *a, **k)

    monkeypatch.setattr(exports.Exporter, "sft", interrupted)
    assert main([*args, "--out", str(out), "--seed", "5"]) == 130
    err = capsys.readouterr().err.strip()
    assert err.startswith("mirg trajectories: interrupted; each output is written whole")
    assert "\n" not in err
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.jsonl", "w"]  # no temporary file
