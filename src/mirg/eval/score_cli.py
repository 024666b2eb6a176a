"""``mirg score``: score a predictions file against MIG-Bench under either protocol."""

from __future__ import annotations

import argparse

from mirg.cli import add_output_arguments
from mirg.core.migbench import load_migbench
from mirg.core.profiles import PROFILES
from mirg.core.scoring import (
    PROTOCOLS,
    PredictionError,
    aggregate,
    format_table,
    read_predictions,
    score_items,
)
from mirg.data.outputs import METRICS, check_output
from mirg.files import write_json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bench", required=True, help="MIG-Bench annotation file (MIG_data.json)")
    parser.add_argument(
        "--predictions", required=True, help="JSONL: {index, response[, input_sizes]}"
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, default="official")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="coordinate profile of the responses (strict protocol only)",
    )
    parser.add_argument("--out", help="write the metrics JSON here")
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    if args.protocol == "strict" and args.profile is None:
        raise PredictionError(
            "--protocol strict needs --profile (the responses' coordinate profile)"
        )
    if args.out:
        inputs = [("--bench", args.bench), ("--predictions", args.predictions)]
        check_output(args.out, METRICS, inputs=inputs, overwrite=args.overwrite)
    items = load_migbench(args.bench)
    predictions = read_predictions(args.predictions)
    metrics = aggregate(score_items(items, predictions, args.protocol, args.profile), args.protocol)
    print(format_table(metrics))
    if args.out:
        write_json(args.out, metrics)
        print(f"wrote {args.out}")
    return 0
