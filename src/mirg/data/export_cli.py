"""``mirg export`` (and ``mirg trajectories``, the ``sft`` export): samples -> training
records (:mod:`mirg.data.exports`)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from mirg.cli import add_output_arguments
from mirg.core.profiles import PROFILES
from mirg.data.exports import FORMATS, KINDS, Exporter, export
from mirg.data.schema import IMAGE_CHECKS, Sample, SkipLog, read_samples
from mirg.data.trajectories import DETAILS
from mirg.models.loading import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MIN_PIXELS,
    FrameRule,
    default_frame_rule,
    frame_rule,
    load_processor,
)
from mirg.outputs import check_output


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="samples JSONL (e.g. DIR/train.jsonl)")
    parser.add_argument(
        "--profile", required=True, choices=sorted(PROFILES), help="coordinate profile"
    )
    parser.add_argument("--out", required=True, help="output file")
    parser.add_argument(
        "--root", help="folder the image paths are relative to (default: the data's)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the phrasing of trajectories")
    parser.add_argument("--detail", default="full", choices=DETAILS, help="trajectory detail")
    parser.add_argument(
        "--model",
        help="model folder whose processor will see the images: frames (input_sizes) follow "
        "its patch size and pixel caps (default: the profile family's, with the caps below)",
    )
    parser.add_argument(
        "--min-pixels", type=int, help=f"processor's min_pixels (default {DEFAULT_MIN_PIXELS})"
    )
    parser.add_argument(
        "--max-pixels", type=int, help=f"processor's max_pixels (default {DEFAULT_MAX_PIXELS})"
    )
    parser.add_argument(
        "--check-images", default="decode", choices=IMAGE_CHECKS, help="how to check image files"
    )
    add_output_arguments(parser, skipped="samples")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=FORMATS, help="record format")
    parser.add_argument("--split", default="train", help="split name recorded in verl's extra_info")
    add_common_arguments(parser)


def frame_rule_of(args: argparse.Namespace) -> FrameRule:
    """The frames the model will see: its processor's rule (caps given here override its
    saved ones, as in training), else the profile family's default."""
    if args.model:
        processor = load_processor(
            args.model, min_pixels=args.min_pixels, max_pixels=args.max_pixels
        )
        return frame_rule(processor)
    return default_frame_rule(
        args.profile, args.min_pixels or DEFAULT_MIN_PIXELS, args.max_pixels or DEFAULT_MAX_PIXELS
    )


def prepare(
    args: argparse.Namespace, fmt: str, *inputs: tuple[str, str | None]
) -> tuple[Path, SkipLog | None, list[Sample], Exporter]:
    """``--out`` checked against the inputs (``--data``, ``--model`` and ``inputs``), the
    skip log ``--skip-bad`` asks for, the samples of ``--data`` and the exporter the common
    arguments ask for."""
    out = check_output(
        args.out,
        KINDS[fmt],
        inputs=[("--data", args.data), ("--model", args.model), *inputs],
        overwrite=args.overwrite,
    )
    skips = SkipLog() if args.skip_bad else None
    samples = read_samples(args.data, root=args.root, check_images=args.check_images, skips=skips)
    exporter = Exporter(
        args.profile,
        root=Path(args.root) if args.root else Path(args.data).parent,
        seed=args.seed,
        detail=args.detail,
        frame_rule=frame_rule_of(args),
    )
    return out, skips, samples, exporter


def run(args: argparse.Namespace, fmt: str | None = None) -> int:
    """``mirg export`` (``fmt``: ``--format``), and ``mirg trajectories`` without a teacher."""
    fmt = fmt or args.format
    start = time.perf_counter()
    out, skips, samples, exporter = prepare(args, fmt)
    count = export(samples, fmt, out, exporter, split=getattr(args, "split", "train"))
    seconds = time.perf_counter() - start
    summary = f"wrote {count} {fmt} records to {out} in {seconds:.1f} s (profile {args.profile})"
    if skips is not None:
        summary += skips.write(args.skip_log or f"{out}.skipped.log")
    print(summary)
    return 0
