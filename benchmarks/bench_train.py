"""Training benchmark: mirg's GRPO against a plain TRL script, SFT steps/s, peak memory.

Same tiny model, same data, same settings, one run: ``mirg train grpo`` (config parsing,
data checks, family profile, the three reward functions) against a hand-written
``GRPOTrainer`` script over the equivalent GRPO export, with the same core reward
functions. Each measurement runs in its own process (clean peak memory), alternating
mirg / plain several times so machine load hits both alike. The goal is a step-time
ratio of at most 1.05: mirg must add no overhead that matters.

    .venv/bin/python benchmarks/bench_train.py [--steps 12 --repeats 3 --out DIR]

Prints a JSON summary (and writes it to DIR/bench_train.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

GRPO_SETTINGS = {
    "num_generations": 4,
    "per_device_train_batch_size": 8,
    "max_completion_length": 32,
    "temperature": 1.0,
    "beta": 0.04,
    "epsilon": 0.2,
    "loss_type": "grpo",
    "learning_rate": 1e-4,
    "seed": 0,
    "logging_steps": 1,
    "save_strategy": "no",
    "report_to": "none",
    "disable_tqdm": True,
    "shuffle_dataset": False,
    "bf16": False,
    "gradient_checkpointing": False,
    "dataloader_num_workers": 0,
}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timer():
    """A TrainerCallback recording the wall time of every optimizer step."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self._t = 0.0

        def on_step_begin(self, args, state, control, **kwargs):
            self._t = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            self.times.append(time.perf_counter() - self._t)

    return StepTimer()


def _result(timer, trainer, started: float) -> dict:
    steady = timer.times[1:] or timer.times  # the first step pays one-off warm-up
    tokens = [h.get("num_tokens") for h in trainer.state.log_history if "num_tokens" in h]
    return {
        "steps": len(timer.times),
        "median_step_s": statistics.median(steady),
        "mean_step_s": statistics.fmean(steady),
        "total_s": time.perf_counter() - started,
        "num_tokens": tokens[-1] if tokens else None,
        "peak_rss_mb": _peak_rss_mb(),
    }


# --------------------------------------------------------------------------- workers


def worker_mirg_grpo(model: str, samples: str, out: str, steps: int) -> dict:
    """``mirg train grpo`` as the CLI runs it (config from key/values, data checks…)."""
    from mirg.train.configs import GRPOTrainConfig
    from mirg.train.grpo import build_grpo_trainer
    from mirg.train.recipes import load_config

    started = time.perf_counter()
    overrides = [f"--{k}={v}" for k, v in GRPO_SETTINGS.items()]
    overrides += [f"--model_name_or_path={model}", f"--dataset_path={samples}"]
    overrides += [f"--output_dir={out}", f"--max_steps={steps}", "--freeze_vision_tower=false"]
    overrides += ["--use_cpu=true"]  # the plain script's use_cpu=True
    config = load_config(GRPOTrainConfig, None, overrides)
    timer = _timer()
    trainer = build_grpo_trainer(config, callbacks=[timer])
    trainer.train()
    return _result(timer, trainer, started)


def worker_plain_grpo(model: str, export: str, out: str, steps: int) -> dict:
    """The same run written directly against TRL, as a user would without mirg."""
    from datasets import Dataset, Image, List
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    from mirg.core.rewards import format_reward, image_reward, object_reward

    started = time.perf_counter()
    rows = [json.loads(line) for line in Path(export).read_text().splitlines() if line.strip()]
    for row in rows:
        for message in row["prompt"]:
            message["content"] = [
                {"type": p["type"], "text": p.get("text")} for p in message["content"]
            ]
    dataset = Dataset.from_list(rows).cast_column("images", List(Image()))
    processor = AutoProcessor.from_pretrained(model, padding_side="left")
    policy = AutoModelForImageTextToText.from_pretrained(model)
    args = GRPOConfig(
        output_dir=out,
        max_steps=steps,
        use_cpu=True,
        reward_weights=[1.0, 1.0, 0.5],
        **GRPO_SETTINGS,
    )
    timer = _timer()
    trainer = GRPOTrainer(
        model=policy,
        reward_funcs=[object_reward, image_reward, format_reward],
        args=args,
        train_dataset=dataset,
        processing_class=processor,
        callbacks=[timer],
    )
    trainer.train()
    return _result(timer, trainer, started)


def worker_mirg_sft(model: str, trajectories: str, out: str, steps: int) -> dict:
    """``mirg train sft`` with the tiny recipe's settings."""
    from mirg.train.configs import SFTTrainConfig
    from mirg.train.recipes import load_config
    from mirg.train.sft import build_sft_trainer

    started = time.perf_counter()
    config = load_config(
        SFTTrainConfig,
        ROOT / "recipes" / "tiny" / "sft.yaml",
        [
            f"--model_name_or_path={model}",
            f"--dataset_path={trajectories}",
            f"--output_dir={out}",
            f"--max_steps={steps}",
            "--save_strategy=no",
            "--report_to=none",
            "--disable_tqdm=true",
            "--resume_from_checkpoint=none",
        ],
    )
    timer = _timer()
    trainer = build_sft_trainer(config, callbacks=[timer])
    trainer.train()
    result = _result(timer, trainer, started)
    result["steps_per_s"] = 1.0 / result["median_step_s"]
    result["batch_size"] = config.per_device_train_batch_size
    return result


WORKERS = {"mirg_grpo": worker_mirg_grpo, "plain_grpo": worker_plain_grpo, "sft": worker_mirg_sft}


# --------------------------------------------------------------------------- driver


def prepare(workdir: Path, n: int) -> dict[str, str]:
    """Tiny Qwen3-VL model, synthetic samples, trajectories and the GRPO export."""
    from mirg.cli import main

    model = workdir / "tiny-qwen3-vl"
    data = workdir / "synth"
    if not model.exists():
        assert main(["tiny-model", "--family", "qwen3-vl", "--out", str(model)]) == 0
    if not (data / "train.jsonl").exists():
        assert main(["synth", "--out", str(data), "--n", str(n), "--seed", "0"]) == 0
    for fmt, name in (("sft", "trajectories.jsonl"), ("grpo", "grpo.jsonl")):
        if not (data / name).exists():
            args = ["export", "--format", fmt, "--data", str(data / "train.jsonl")]
            args += ["--profile", "qwen3-vl", "--out", str(data / name)]
            assert main(args) == 0
    return {
        "model": str(model),
        "samples": str(data / "train.jsonl"),
        "export": str(data / "grpo.jsonl"),
        "trajectories": str(data / "trajectories.jsonl"),
    }


def run_worker(name: str, *args: str, threads: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, __file__, "--worker", name, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/bench_train")
    parser.add_argument("--n", type=int, default=120, help="synthetic samples to generate")
    parser.add_argument("--steps", type=int, default=12, help="GRPO steps per run")
    parser.add_argument("--sft-steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3, help="alternating mirg/plain pairs")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
        # heavy libraries load before any timer starts, for both workers alike
        import datasets  # noqa: F401
        import transformers  # noqa: F401
        import trl  # noqa: F401

        model, data, out, steps = args.args
        print(json.dumps(WORKERS[args.worker](model, data, out, int(steps))))
        return 0

    workdir = Path(args.out)
    workdir.mkdir(parents=True, exist_ok=True)
    paths = prepare(workdir, args.n)
    mirg_runs, plain_runs = [], []
    for r in range(args.repeats):
        pair = [
            ("mirg_grpo", paths["samples"], mirg_runs),
            ("plain_grpo", paths["export"], plain_runs),
        ]
        for name, data, sink in pair if r % 2 == 0 else reversed(pair):
            out = str(workdir / f"{name}-{r}")
            sink.append(
                run_worker(name, paths["model"], data, out, str(args.steps), threads=args.threads)
            )
            print(f"{name} run {r + 1}: {sink[-1]['median_step_s']:.3f} s/step", file=sys.stderr)
    sft = run_worker(
        "sft",
        paths["model"],
        paths["trajectories"],
        str(workdir / "sft"),
        str(args.sft_steps),
        threads=args.threads,
    )

    def med(runs, key):
        return statistics.median(run[key] for run in runs)

    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, "
        f"python {platform.python_version()}",
        "threads": args.threads,
        "grpo_settings": {**GRPO_SETTINGS, "max_steps": args.steps},
        "grpo_mirg_median_step_s": med(mirg_runs, "median_step_s"),
        "grpo_plain_median_step_s": med(plain_runs, "median_step_s"),
        "grpo_step_ratio_mirg_over_plain": med(mirg_runs, "median_step_s")
        / med(plain_runs, "median_step_s"),
        "grpo_mirg_total_s": med(mirg_runs, "total_s"),
        "grpo_plain_total_s": med(plain_runs, "total_s"),
        "grpo_same_tokens": [r["num_tokens"] for r in mirg_runs]
        == [r["num_tokens"] for r in plain_runs],
        "grpo_mirg_peak_rss_mb": med(mirg_runs, "peak_rss_mb"),
        "grpo_plain_peak_rss_mb": med(plain_runs, "peak_rss_mb"),
        "sft_steps_per_s": sft["steps_per_s"],
        "sft_batch_size": sft["batch_size"],
        "sft_peak_rss_mb": sft["peak_rss_mb"],
        "runs": {"mirg": mirg_runs, "plain": plain_runs, "sft": sft},
    }
    (workdir / "bench_train.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
