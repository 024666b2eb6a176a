"""``mirg train sft|grpo --config FILE [--key value …]``.

Every key of the stage's config (TRL's ``SFTConfig``/``GRPOConfig`` plus mirg's model and
data fields) may be set in the YAML recipe and overridden on the command line. Runs under
``accelerate launch -m mirg train …`` too: TRL and accelerate pick up the processes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

STAGES = ("sft", "grpo")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Train with TRL: 'sft' on reasoning trajectories, 'grpo' with the image-aware dual "
        "rewards. Any config key can follow as --key value (e.g. --max_steps 10); "
        "'mirg train sft --list-keys' lists them."
    )
    parser.add_argument("stage", choices=STAGES, help="training stage")
    parser.add_argument("--config", default=None, help="YAML recipe (e.g. recipes/tiny/sft.yaml)")
    parser.add_argument(
        "--list-keys", action="store_true", help="print every config key with its default and exit"
    )
    parser.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        help="--key value pairs that override the recipe",
    )


def _config_class(stage: str) -> type:
    from mirg.train.configs import GRPOTrainConfig, SFTTrainConfig

    return SFTTrainConfig if stage == "sft" else GRPOTrainConfig


def list_keys(stage: str) -> str:
    """One line per config key: name, default, help (for ``--list-keys``)."""
    import dataclasses

    lines = []
    for f in dataclasses.fields(_config_class(stage)):
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


def run(args: argparse.Namespace) -> int:
    from mirg.train.configs import load_config

    overrides = list(args.overrides or [])
    # argparse leaves options given after the stage's first override in the remainder.
    if "--config" in overrides:
        i = overrides.index("--config")
        args.config = overrides[i + 1] if i + 1 < len(overrides) else None
        del overrides[i : i + 2]
    if "--list-keys" in overrides:
        args.list_keys = True
    if "-h" in overrides or "--help" in overrides:
        print(
            f"usage: mirg train {args.stage} [--config FILE] [--key value ...]\n\n"
            f"{(__doc__ or '').strip()}\n\nEvery key: mirg train {args.stage} --list-keys"
        )
        return 0
    if args.list_keys:
        print(list_keys(args.stage))
        return 0
    config = load_config(_config_class(args.stage), args.config, overrides)
    if args.stage == "sft":
        from mirg.train.sft import run_sft as train
    else:
        from mirg.train.grpo import run_grpo as train
    result = train(config)
    summary = {
        "stage": args.stage,
        "output_dir": result.output_dir,
        "global_step": result.global_step,
        "train_loss": result.train_loss,
    }
    if int(os.environ.get("RANK", "0")) == 0:  # one summary under torchrun/accelerate
        print(json.dumps(summary), file=sys.stdout)
    return 0
