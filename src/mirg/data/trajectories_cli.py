"""``mirg trajectories``: reasoning trajectories and canonical answers for TRL SFT."""

from __future__ import annotations

import argparse

from mirg.data.export_cli import add_common_arguments, run_export


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return run_export(args, "sft")
