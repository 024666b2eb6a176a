"""``mirg trajectories``: the ``sft`` export, its completions the template trajectories
(``mirg.data.trajectories``) or, with ``--teacher MODEL``, a model's own reasoning where one
of its answers earns full rewards (``mirg.data.teacher``)."""

from __future__ import annotations

import argparse
import time

from mirg.cli import config_from_args
from mirg.data.export_cli import add_common_arguments, prepare
from mirg.data.export_cli import run as run_export
from mirg.data.teacher import (
    BACKENDS,
    TeacherConfig,
    format_summary,
    summary_path,
    teacher_trajectories,
)
from mirg.models.placement import add_placement_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_common_arguments(parser)
    teacher = parser.add_argument_group(
        "teacher (rejection sampling)",
        "draw answers from a model; keep one with full image and format rewards and IoU >= "
        "--iou, else the template. Writes OUT.teacher.json (acceptance per task).",
    )
    teacher.add_argument("--teacher", metavar="MODEL", help="teacher model folder or hub name")
    teacher.add_argument("--samples", type=int, default=4, help="answers drawn per sample")
    teacher.add_argument("--iou", type=float, default=0.5, help="IoU an answer needs (0.5)")
    teacher.add_argument("--temperature", type=float, default=1.0)
    teacher.add_argument("--top-p", type=float, default=1.0)
    teacher.add_argument(
        "--teacher-facts",
        action="store_true",
        help="add the annotated object and image facts to the teacher's prompt",
    )
    teacher.add_argument("--backend", choices=BACKENDS, default="hf")
    teacher.add_argument("--batch-size", type=int, default=4, help="prompts per batch (hf)")
    teacher.add_argument("--max-new-tokens", type=int, default=1024)
    teacher.add_argument("--tensor-parallel-size", type=int, default=1, help="vllm")
    teacher.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vllm")
    teacher.add_argument("--no-progress", action="store_true")
    add_placement_arguments(teacher)


def run(args: argparse.Namespace) -> int:
    if not args.teacher:
        return run_export(args, "sft")
    cfg = config_from_args(TeacherConfig, args, model=args.teacher, facts=args.teacher_facts)
    start = time.perf_counter()
    out, skips, samples, exporter = prepare(args, "sft", ("--teacher", args.teacher))
    summary = teacher_trajectories(samples, exporter, cfg, out, progress=not args.no_progress)
    print(format_summary(summary))
    line = (
        f"wrote {len(samples)} sft records to {out} ({summary['overall']['from_teacher']} from "
        f"the teacher) and {summary_path(out)} in {time.perf_counter() - start:.1f} s "
        f"(profile {args.profile})"
    )
    if skips is not None:
        line += skips.write(args.skip_log or f"{out}.skipped.log")
    print(line)
    return 0
