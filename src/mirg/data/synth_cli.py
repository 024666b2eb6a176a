"""``mirg synth``: write the synthetic multi-image world (train/val/test, images, manifest)."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

from mirg.cli import add_output_arguments, int_range
from mirg.data.synth import PRESETS, TASK_FAMILIES, write_dataset
from mirg.errors import MirgError, shown


def _families(values: list[str]) -> tuple[tuple[str, ...], tuple[float, ...] | None]:
    """'a b' or 'a,b' or 'a:2,b:1' -> names and weights (None when none given)."""
    names, weights, weighted = [], [], False
    for value in values:
        for entry in filter(None, value.split(",")):
            name, _, weight = entry.partition(":")
            if name not in TASK_FAMILIES:
                raise MirgError(
                    f"--families: unknown family {shown(name)}; known: {', '.join(TASK_FAMILIES)}"
                )
            names.append(name)
            try:
                weights.append(float(weight) if weight else 1.0)
            except ValueError:
                raise MirgError(
                    f"--families: weight of {shown(name)} is not a number: {shown(weight)}"
                ) from None
            weighted |= bool(weight)
    return tuple(names), (tuple(weights) if weighted else None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--n", type=int, required=True, help="samples in all splits together")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--preset",
        default="default",
        choices=sorted(PRESETS),
        help="named knob set (default: default)",
    )
    parser.add_argument(
        "--families",
        nargs="+",
        help="families, optionally weighted (common_object:2,diff:1); known: "
        + ", ".join(TASK_FAMILIES),
    )
    parser.add_argument("--image-size", type=int, help="image side in pixels")
    parser.add_argument("--images", type=int_range, help="images per sample, N or MIN-MAX (1..6)")
    parser.add_argument(
        "--distractors", type=int_range, help="extra objects per image, N or MIN-MAX"
    )
    parser.add_argument(
        "--cell", type=int, help="align objects to cells of this many pixels (0: free)"
    )
    parser.add_argument("--min-object", type=int, help="smallest object side (free placement)")
    parser.add_argument("--max-object", type=int, help="largest object side (free placement)")
    parser.add_argument("--occlusion", type=float, help="chance a distractor partly covers another")
    parser.add_argument(
        "--look-alikes",
        nargs="+",
        choices=("colour", "shape"),
        help="what a look-alike may change (default: colour shape, one of them at random)",
    )
    parser.add_argument(
        "--fixed-layout",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="one question template per family, full descriptions",
    )
    parser.add_argument(
        "--split", default="0.8,0.1,0.1", help="train,val,test fractions (default 0.8,0.1,0.1)"
    )
    add_output_arguments(
        parser,
        overwrite_help="replace another dataset (or other files) in --out; without it mirg "
        "synth refuses, and only rewrites the same dataset",
    )


def run(args: argparse.Namespace) -> int:
    config = PRESETS[args.preset]
    knobs = ("image_size", "images", "distractors", "cell", "min_object", "max_object")
    overrides = {k: getattr(args, k) for k in (*knobs, "occlusion", "fixed_layout")}
    overrides["look_alike_changes"] = tuple(args.look_alikes) if args.look_alikes else None
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if args.families:
        names, weights = _families(args.families)
        config = replace(config, families=names, weights=weights)
    try:
        fractions = tuple(float(v) for v in args.split.split(","))
    except ValueError:
        raise MirgError(
            f"--split: expected three numbers like 0.8,0.1,0.1, got {shown(args.split)}"
        ) from None
    start = time.perf_counter()
    manifest = write_dataset(
        args.out,
        args.n,
        args.seed,
        config,
        fractions=fractions,
        preset=args.preset,
        overwrite=args.overwrite,
    )
    seconds = time.perf_counter() - start
    print(
        f"wrote {args.n} samples to {args.out} in {seconds:.1f} s "
        f"(seed {args.seed}, preset {args.preset})"
    )
    for split, counts in manifest["counts"].items():
        detail = ", ".join(f"{family} {count}" for family, count in counts.items())
        print(f"  {split:5s} {manifest['splits'][split]:6d}  {detail}")
    if manifest["test_layouts_seen_in_train"]:
        print(
            f"  note: {manifest['test_layouts_seen_in_train']} test samples repeat a train "
            "sample's question and layout (small worlds repeat)"
        )
    return 0


def interrupted(args: argparse.Namespace) -> str:
    """What Ctrl-C left in ``--out``: a dataset being written, which the same command
    finishes in place (the files written so far are whole; the marker names the dataset)."""
    from mirg.data.synth.world import IN_PROGRESS

    out = Path(args.out)
    if (out / IN_PROGRESS).is_file():
        return (
            f"{out} holds a partly written dataset (marked by {IN_PROGRESS}); rerun the same "
            "command to finish it in place"
        )
    return f"no dataset was started in {out}"
