"""The ``mirg`` command line. Each subcommand lives next to the code it drives.

Subcommand modules expose ``add_arguments(parser)`` and ``run(args) -> int``; they are
imported only when their subcommand runs, so ``mirg score`` never pays for torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, help). The module provides add_arguments(parser) and run(args).
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("mirg.data.synth_cli", "write the synthetic multi-image world (train/val/test)"),
    "trajectories": ("mirg.data.trajectories_cli", "reasoning trajectories for SFT from samples"),
    "export": ("mirg.data.export_cli", "export samples for TRL SFT/GRPO, verl, LLaMA-Factory"),
    "coco": ("mirg.data.coco_cli", "build multi-image grounding samples from COCO-style boxes"),
    "score": (
        "mirg.eval.score_cli",
        "score predictions on MIG-Bench (official or strict protocol)",
    ),
    "eval": ("mirg.eval.eval_cli", "evaluate a model on MIG-Bench or a mirg dataset split"),
    "predict": ("mirg.eval.predict", "ask a model about your own images; saves the drawn box"),
    "report": ("mirg.eval.report_cli", "rebuild report.html from an evaluation output folder"),
    "demo": ("mirg.demo", "run the main job end to end on the built-in synthetic world"),
    "train": ("mirg.train.cli", "train with TRL: sft on trajectories, grpo with the dual rewards"),
    "tiny-model": (
        "mirg.models.tiny_cli",
        "write a tiny random-init Qwen-VL model and processor, built offline",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mirg", description="Multi-image reasoning and grounding with reinforcement learning."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        # Arguments are declared lazily by the module itself (see main()).
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # First pass finds the command; the second parses its own arguments.
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # prints help or the "invalid choice" error and exits
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    sub = argparse.ArgumentParser(prog=f"mirg {argv[0]}", description=COMMANDS[argv[0]][1])
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        # Bad input: one clear line naming the file, item and field, no traceback.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"mirg {argv[0]}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
