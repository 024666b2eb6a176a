"""``mirg train sft|grpo [--config FILE] [--key value …]``.

Every key of the stage's config (TRL's ``ModelConfig`` and ``SFTConfig``/``GRPOConfig`` plus
mirg's data fields) may be set in the YAML recipe and overridden on the command line. Runs
under ``accelerate launch -m mirg train …`` too: TRL and accelerate pick up the processes.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from typing import Any

#: The config of the run in progress, for the line Ctrl-C prints (:func:`interrupted`).
_running: dict[str, Any] = {}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Train with TRL: 'sft' on reasoning trajectories, 'grpo' with the image-aware dual "
        "rewards. Any config key can follow as --key value (e.g. --max_steps 10); "
        "'mirg train sft --list-keys' lists them."
    )
    parser.add_argument("stage", choices=("sft", "grpo"), help="training stage")
    parser.add_argument(
        "options",
        nargs=argparse.REMAINDER,
        help="--config FILE (a YAML recipe, e.g. recipes/tiny/sft.yaml), --key value pairs "
        "that override it, or --list-keys (every key with its default)",
    )


def config_class(stage: str) -> type:
    from mirg.train.configs import GRPOTrainConfig, SFTTrainConfig

    return SFTTrainConfig if stage == "sft" else GRPOTrainConfig


def list_keys(stage: str) -> str:
    """One line per config key: name, default, help (for ``--list-keys``)."""
    lines = []
    for f in dataclasses.fields(config_class(stage)):
        if not f.init:
            continue
        default = (
            f.default_factory()  # type: ignore[misc]
            if f.default_factory is not dataclasses.MISSING
            else f.default
        )
        doc = " ".join(str(f.metadata.get("help", "")).split())[:100]
        lines.append(f"{f.name} = {default!r}  # {doc}")
    return "\n".join(lines)


def show_progress_log() -> None:
    """Print mirg's training log (attention used, resumption, vLLM settings) on stderr, from
    the main process only, unless the application configured logging itself."""
    from mirg.train.runs import is_main_process

    log = logging.getLogger("mirg")
    if log.handlers or logging.getLogger().handlers or not is_main_process():
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("[mirg] %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def train(stage: str, options: list[str], callbacks: list[Any] | None = None) -> int:
    """Build the stage's config from ``options``, train, print a one-line JSON summary."""
    from mirg.train.recipes import load_config
    from mirg.train.runs import is_main_process

    show_progress_log()
    config = load_config(config_class(stage), None, options)
    _running["config"] = config
    if stage == "sft":
        from mirg.train.sft import run_sft as run_stage
    else:
        from mirg.train.grpo import run_grpo as run_stage
    result = run_stage(config, callbacks)
    summary = {
        "stage": stage,
        "output_dir": result.output_dir,
        "global_step": result.global_step,
        "train_loss": result.train_loss,
    }
    if is_main_process():  # one summary under torchrun/accelerate
        print(json.dumps(summary), flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    options = list(args.options or [])
    if "-h" in options or "--help" in options:
        print(
            f"usage: mirg train {args.stage} [--config FILE] [--key value ...]\n\n"
            f"{(__doc__ or '').strip()}\n\nEvery key: mirg train {args.stage} --list-keys"
        )
        return 0
    if "--list-keys" in options:
        print(list_keys(args.stage))
        return 0
    return train(args.stage, options)


def interrupted(args: argparse.Namespace) -> str | None:
    """What Ctrl-C left: the newest complete checkpoint, which a rerun resumes (said once,
    by the main process, under torchrun or accelerate)."""
    from mirg.train.runs import is_main_process, kept

    if not is_main_process():
        return None
    config = _running.get("config")
    return "nothing was written" if config is None else kept(config)
