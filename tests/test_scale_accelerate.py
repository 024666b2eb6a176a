"""Two real processes on CPU (gloo): ``accelerate launch … -m mirg train sft|grpo``.

Each run goes through ``tests/distcheck.py``, which adds one callback to the normal
``mirg train`` run and records, per rank, digests of gradients and parameters at every
optimizer step, the first inputs seen and the files written. The tests assert both ranks stepped, saw
different data, held identical gradients and weights after every step, and that only the
main process wrote the model and trainer state.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip("torchvision")

from distcheck import verify

REPO = Path(__file__).resolve().parents[1]
DISTCHECK = REPO / "tests" / "distcheck.py"
RECIPES = REPO / "recipes"
ACCELERATE = RECIPES / "accelerate"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from mirg.models.tiny import save_tiny_model
    from toy_data import write_toy_dataset

    root = tmp_path_factory.mktemp("scale")
    model = save_tiny_model(root / "model", "qwen3-vl")
    toy = write_toy_dataset(root / "toy", 8)  # 1, 2, 3, 1, 2, 3, 1, 2 images per sample
    return {"model": model, "toy": toy}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(config_file: Path, record: Path, mirg_args: list[str]):
    """``accelerate launch --config_file … tests/distcheck.py … -- <mirg_args>``."""
    env = dict(os.environ)
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config_file),
        "--main_process_port",
        str(_free_port()),
        str(DISTCHECK),
        "--record",
        str(record),
        "--",
        *mirg_args,
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    ranks = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
    return proc, ranks


def _common(setup, out: Path) -> list[str]:
    return [
        "--model_name_or_path",
        str(setup["model"]),
        "--output_dir",
        str(out),
        "--report_to",
        "none",
        "--disable_tqdm",
        "true",
        "--logging_steps",
        "1",
    ]


def _tiny_sft(setup, out: Path, steps: int) -> list[str]:
    """``mirg train sft`` on the toy trajectories, 2 samples per rank, a checkpoint at step 2."""
    return [
        "train",
        "sft",
        "--config",
        str(RECIPES / "tiny" / "sft.yaml"),
        "--dataset_path",
        str(setup["toy"] / "trajectories.jsonl"),
        "--max_steps",
        str(steps),
        "--save_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        *_common(setup, out),
    ]


def _assert_data_parallel(ranks: list[dict], steps: int) -> None:
    for r, rec in enumerate(ranks):
        assert rec["rank"] == r and rec["world_size"] == 2 and rec["backend"] == "gloo"
        assert [s["step"] for s in rec["steps"]] == list(range(1, steps + 1))
    # synchronised: the same (non-zero) gradients after all-reduce, the same weights
    for a, b in zip(ranks[0]["steps"], ranks[1]["steps"], strict=True):
        assert a["grads"] is not None and a["grads"] == b["grads"]
        assert a["params"] == b["params"]
    assert len({s["params"] for s in ranks[0]["steps"]}) == steps  # every step moved them
    assert len({s["grads"] for s in ranks[0]["steps"]}) == steps
    assert ranks[0]["first_input"] != ranks[1]["first_input"]  # each rank its own shard


def _assert_written_once(ranks: list[dict], out: Path, checkpoint: str) -> None:
    main, other = ranks[0]["writes"], ranks[1]["writes"]
    assert {os.path.basename(w) for w in other} == {"rng_state_1.pth"}
    assert main.count(f"{checkpoint}/model.safetensors") == 1
    assert main.count(f"{checkpoint}/trainer_state.json") == 1
    assert main.count("model.safetensors") == 1  # the final model
    assert sorted(p.name for p in (out / checkpoint).glob("rng_state_*.pth")) == [
        "rng_state_0.pth",
        "rng_state_1.pth",
    ]


def test_two_process_sft_is_data_parallel(setup, tmp_path):
    out = tmp_path / "sft"
    proc, ranks = launch(
        ACCELERATE / "cpu_ddp.yaml",
        tmp_path / "record",
        [
            *_tiny_sft(setup, out, steps=3),
        ],
    )
    assert verify(tmp_path / "record") == []
    _assert_data_parallel(ranks, 3)
    _assert_written_once(ranks, out, "checkpoint-2")
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    # 2 steps x 2 ranks x 2 samples = 4 of 8 samples per rank-pair step: half an epoch twice
    assert state["global_step"] == 2 and state["epoch"] == pytest.approx(1.0)
    summaries = [line for line in proc.stdout.splitlines() if line.startswith('{"stage"')]
    assert len(summaries) == 1 and json.loads(summaries[0])["global_step"] == 3


def test_two_process_grpo_is_data_parallel(setup, tmp_path):
    out = tmp_path / "grpo"
    _, ranks = launch(
        ACCELERATE / "cpu_ddp.yaml",
        tmp_path / "record",
        [
            "train",
            "grpo",
            "--config",
            str(RECIPES / "tiny" / "grpo.yaml"),
            "--dataset_path",
            str(setup["toy"] / "samples.jsonl"),
            "--max_steps",
            "2",
            "--save_steps",
            "2",
            "--max_completion_length",
            "8",
            "--shuffle_dataset",
            "false",
            # a random-init model earns 0 from every real reward: zero advantages, zero
            # gradients. Hashed rewards (same names) make the gradients real and rank-specific.
            "--rewards",
            "hash_rewards.object_reward",
            "hash_rewards.image_reward",
            "hash_rewards.format_reward",
            *_common(setup, out),
        ],
    )
    assert verify(tmp_path / "record") == []
    _assert_data_parallel(ranks, 2)
    _assert_written_once(ranks, out, "checkpoint-2")
    state = json.loads((out / "checkpoint-2" / "trainer_state.json").read_text())
    logged = {k for h in state["log_history"] for k in h}
    for name in ("object", "image", "format"):
        assert any(name in k and k.startswith("rewards/") for k in logged)
    # 8 completions per rank per step (2 prompts x 4): 16 per step in all
    assert state["global_step"] == 2 and state["epoch"] == pytest.approx(1.0)


def test_two_machines_rendezvous_with_the_documented_flags(setup, tmp_path):
    """Two launchers, one process each, joined by --machine_rank/--main_process_ip/port."""
    env = dict(os.environ)
    env.update(CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    port = str(_free_port())
    out, record = tmp_path / "sft", tmp_path / "record"
    procs = []
    for machine in (0, 1):
        cmd = [
            sys.executable,
            "-m",
            "accelerate.commands.launch",
            "--config_file",
            str(ACCELERATE / "cpu_ddp.yaml"),
            "--num_machines",
            "2",
            "--num_processes",
            "2",
            "--machine_rank",
            str(machine),
            "--main_process_ip",
            "127.0.0.1",
            "--main_process_port",
            port,
            str(DISTCHECK),
            "--record",
            str(record),
            "--",
            *_tiny_sft(setup, out, steps=2),
        ]
        procs.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        )
    logs = [p.communicate(timeout=600)[0].decode(errors="replace") for p in procs]
    # The machine-0 launcher must succeed. Machine 1's torchrun agent can report a closed
    # connection at its exit barrier when machine 0 (which hosts the store) exits first;
    # what machine 1's process did is checked through its record instead.
    assert procs[0].returncode == 0, logs[0][-4000:]
    assert (record / "rank1.json").is_file(), logs[1][-4000:]
    assert verify(record) == []
    ranks = [json.loads((record / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" and r["exit"] == 0 for r in ranks)
    assert (out / "checkpoint-2" / "rng_state_1.pth").is_file()


@pytest.mark.parametrize("shipped", ["deepspeed_zero2.yaml", "deepspeed_zero3.yaml"])
def test_two_process_sft_with_the_shipped_deepspeed_configs(setup, tmp_path, shipped):
    pytest.importorskip("deepspeed", reason="DeepSpeed is an extra: pip install 'mirg[deepspeed]'")
    config = yaml.safe_load((ACCELERATE / shipped).read_text())
    config.update(num_processes=2, mixed_precision="no")  # 2 CPU processes, fp32
    config_file = tmp_path / shipped
    config_file.write_text(yaml.safe_dump(config))
    out = tmp_path / "ds"
    _, ranks = launch(
        config_file,
        tmp_path / "record",
        [
            *_tiny_sft(setup, out, steps=3),
        ],
    )
    assert verify(tmp_path / "record") == []
    assert all(r["world_size"] == 2 and len(r["steps"]) == 3 for r in ranks)
    assert [s["params"] for s in ranks[0]["steps"]] == [s["params"] for s in ranks[1]["steps"]]
    shards = [w for w in ranks[1]["writes"] if "zero_pp_rank_1" in w]
    assert shards and not any(w.endswith(".safetensors") for w in ranks[1]["writes"])
    assert (out / "model.safetensors").is_file()


def test_two_process_lora_under_zero3_writes_a_whole_merged_model(setup, tmp_path):
    """Under ZeRO-3 every process holds a shard of each weight: the frozen vision tower is
    counted by full size, and the merged model is built from the gathered adapter and the
    base on disk, not from the shards in memory."""
    pytest.importorskip("deepspeed", reason="DeepSpeed is an extra: pip install 'mirg[deepspeed]'")
    import torch

    from mirg.models import load_model_and_processor

    config = yaml.safe_load((ACCELERATE / "deepspeed_zero3.yaml").read_text())
    config.update(num_processes=2, mixed_precision="no")
    config_file = tmp_path / "zero3.yaml"
    config_file.write_text(yaml.safe_dump(config))
    out = tmp_path / "lora"
    args = [*_tiny_sft(setup, out, steps=2), "--use_peft", "true", "--lora_r", "4"]
    args += ["--learning_rate", "1e-2", "--freeze_vision_tower", "true"]
    proc, _ = launch(config_file, tmp_path / "record", args)
    base = load_model_and_processor(setup["model"]).model
    tower = sum(p.numel() for n, p in base.named_parameters() if ".visual." in n)
    assert f"froze {tower:,} vision-tower parameters" in proc.stderr
    merged = load_model_and_processor(out).model.state_dict()
    from_adapter = load_model_and_processor(out / "adapter").model.state_dict()
    before = base.state_dict()
    assert merged.keys() == before.keys()
    for key, value in merged.items():
        assert value.shape == before[key].shape, key  # no empty ZeRO-3 shard was written
        torch.testing.assert_close(value, from_adapter[key])
    q = next(k for k in before if "language_model" in k and "q_proj.weight" in k)
    assert not torch.equal(merged[q], before[q])  # the trained adapter is merged in


def test_shipped_accelerate_configs_load_with_accelerate():
    from accelerate.commands.config.config_args import load_config_from_file

    expected = {
        "single_gpu.yaml": ("NO", 1, 1),
        "multi_gpu.yaml": ("MULTI_GPU", 1, 8),
        "cpu_ddp.yaml": ("MULTI_GPU", 1, 2),
        "deepspeed_zero2.yaml": ("DEEPSPEED", 1, 8),
        "deepspeed_zero3.yaml": ("DEEPSPEED", 1, 8),
        "multi_node.yaml": ("DEEPSPEED", 2, 16),
    }
    assert {p.name for p in ACCELERATE.glob("*.yaml")} == set(expected)
    for name, (kind, machines, processes) in expected.items():
        config = load_config_from_file(str(ACCELERATE / name))
        assert (str(config.distributed_type).split(".")[-1], config.num_machines) == (
            kind,
            machines,
        ), name
        assert config.num_processes == processes, name
    zero = {
        n: load_config_from_file(str(ACCELERATE / n)).deepspeed_config["zero_stage"]
        for n in ("deepspeed_zero2.yaml", "deepspeed_zero3.yaml", "multi_node.yaml")
    }
    assert zero == {"deepspeed_zero2.yaml": 2, "deepspeed_zero3.yaml": 3, "multi_node.yaml": 3}
    node = load_config_from_file(str(ACCELERATE / "multi_node.yaml"))
    assert node.main_process_ip and node.main_process_port and node.machine_rank == 0


def _record(rank: int, **changes) -> dict:
    base = {
        "rank": rank,
        "world_size": 2,
        "backend": "gloo",
        "output_dir": "/x",
        "first_input": f"in{rank}",
        "steps": [
            {"step": 1, "grads": "g1", "params": "p1"},
            {"step": 2, "grads": "g2", "params": "p2"},
        ],
        "writes": ["checkpoint-2/model.safetensors", "model.safetensors"]
        if rank == 0
        else ["checkpoint-2/rng_state_1.pth"],
        "exit": 0,
    }
    return base | changes


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({0: {"world_size": 1}, 1: None}, "single process"),
        ({1: {"steps": [{"step": 1, "grads": "g1", "params": "p1"}]}}, "different steps"),
        (
            {
                1: {
                    "steps": [
                        {"step": 1, "grads": "gX", "params": "p1"},
                        {"step": 2, "grads": "g2", "params": "p2"},
                    ]
                }
            },
            "grads differ",
        ),
        (
            {
                1: {
                    "steps": [
                        {"step": 1, "grads": "g1", "params": "pX"},
                        {"step": 2, "grads": "g2", "params": "p2"},
                    ]
                }
            },
            "params differ",
        ),
        ({1: {"first_input": "in0"}}, "not sharded"),
        ({1: {"writes": ["checkpoint-2/model.safetensors"]}}, "only the main process"),
        ({0: {"writes": ["model.safetensors", "model.safetensors"]}}, "more than once"),
        ({1: {"exit": 2}}, "exited with 2"),
    ],
)
def test_verify_names_each_way_a_run_is_not_data_parallel(tmp_path, change, message):
    assert verify(tmp_path) == [f"no rank records in {tmp_path}"]
    for rank in (0, 1):
        if rank in change and change[rank] is None:
            continue
        record = _record(rank, **(change.get(rank) or {}))
        (tmp_path / f"rank{rank}.json").write_text(json.dumps(record))
    problems = verify(tmp_path)
    assert any(message in p for p in problems), problems


def test_verify_accepts_a_good_record(tmp_path):
    for rank in (0, 1):
        (tmp_path / f"rank{rank}.json").write_text(json.dumps(_record(rank)))
    assert verify(tmp_path) == []


def _documented_commands(doc: Path) -> list[list[str]]:
    """Every command in the doc's bash blocks, continuation lines joined, comments dropped."""
    import re
    import shlex

    commands = []
    for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), flags=re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                commands.append(shlex.split(line))
    return commands


def test_documented_mirg_train_commands_use_real_keys():
    from mirg.train.configs import GRPOTrainConfig, SFTTrainConfig
    from mirg.train.recipes import load_config

    seen = 0
    for cmd in _documented_commands(REPO / "docs" / "scaling.md"):
        if "-m" in cmd and cmd[cmd.index("-m") + 1] == "mirg" and "train" in cmd:
            i = cmd.index("train")
            stage, rest = cmd[i + 1], cmd[i + 2 :]
            config = rest[rest.index("--config") + 1]
            overrides = rest[: rest.index("--config")] + rest[rest.index("--config") + 2 :]
            assert (REPO / config).is_file(), config
            cls = SFTTrainConfig if stage == "sft" else GRPOTrainConfig
            # unknown keys raise; GPU recipes parse here as on a CPU machine
            loaded = load_config(cls, REPO / config, [*overrides, "--use_cpu", "true"])
            if "--use_vllm" in overrides:
                assert loaded.use_vllm and loaded.vllm_mode in ("colocate", "server")
            seen += 1
        if "--config_file" in cmd:
            assert (REPO / cmd[cmd.index("--config_file") + 1]).is_file()
    assert seen >= 7  # DeepSpeed SFT/GRPO, 2 nodes, CPU, vLLM colocate and server
