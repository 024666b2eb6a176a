"""``mirg demo``: the main job on the built-in synthetic world (:mod:`mirg.demo`)."""

from __future__ import annotations

import argparse
from dataclasses import replace

from mirg.demo import BASE_MODEL, QUICK, DemoPlan, run_demo


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="output folder")
    parser.add_argument("--quick", action="store_true", help="the same stages in about 2 minutes")
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "--model", help="start from this model instead of the shipped base (a real VLM wants a GPU)"
    )
    start.add_argument(
        "--from-scratch", action="store_true", help="start from a tiny model with random weights"
    )
    start.add_argument(
        "--pretrain-base",
        metavar="DIR",
        help="only retrain the shipped base model's recipe into DIR (about 16 minutes)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a folder holding files no demo wrote (summary.json, report.html …)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="cpu (default: the documented figures are CPU figures), cuda, cuda:N or auto "
        "(training and evaluation; a real VLM given with --model wants a GPU)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: a tiny model gains nothing from a second thread "
        "and slows down many times when another process competes for the cores)",
    )


def interrupted(args: argparse.Namespace) -> str:
    """What Ctrl-C left: the finished stages, which a rerun reuses."""
    return (
        f"the stages finished so far are kept in {args.out}; rerun the same command: it "
        "reuses the data and the finished evaluations, and trains again"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from mirg.models.placement import resolve_device

    device = resolve_device(args.device)
    if device == "cpu":
        torch.set_num_threads(max(1, args.threads))
    if args.pretrain_base:
        from mirg.demo_base import pretrain_base

        pretrain_base(args.pretrain_base, seed=args.seed, device=device)
        return 0
    plan = replace(QUICK if args.quick else DemoPlan(), device=device)
    if args.from_scratch:
        model = None
        plan.sft_lr = 3e-4  # measured best from random weights (docs/demo.md)
    else:
        model = args.model or str(BASE_MODEL)
    run_demo(args.out, plan, model=model, seed=args.seed, overwrite=args.overwrite)
    return 0
