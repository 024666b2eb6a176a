"""``mirg score``: score a predictions file against a benchmark file (MIG-Bench under either
protocol by default; ``--benchmark`` names another, as ``mirg eval --bench`` does)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mirg.cli import add_output_arguments
from mirg.core.profiles import PROFILES
from mirg.core.scoring import PROTOCOLS, PredictionError, read_predictions
from mirg.eval.benchmarks import BENCHMARKS, load_eval_items
from mirg.files import write_json
from mirg.outputs import METRICS, check_output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        "--bench",
        dest="bench",
        required=True,
        help="the benchmark's file (MIG-Bench: MIG_data.json), as mirg eval's --data",
    )
    parser.add_argument(
        "--benchmark",
        default="migbench",
        help=f"which benchmark --data is: {', '.join(BENCHMARKS)} or a dotted path",
    )
    parser.add_argument(
        "--predictions", required=True, help="JSONL: {index, response[, input_sizes]}"
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, default="official")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="coordinate profile of the responses (not needed for MIG-Bench's official protocol)",
    )
    parser.add_argument("--out", help="write the metrics JSON here")
    add_output_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # MIG-Bench's official protocol alone reads boxes without knowing the model's profile.
    if args.profile is None and (args.protocol == "strict" or args.benchmark != "migbench"):
        needs = (
            "--protocol strict" if args.protocol == "strict" else f"--benchmark {args.benchmark}"
        )
        raise PredictionError(f"{needs} needs --profile (the responses' coordinate profile)")
    if args.out:
        inputs = [("--bench", args.bench), ("--predictions", args.predictions)]
        check_output(args.out, METRICS, inputs=inputs, overwrite=args.overwrite)
    # Scoring opens no image, so no folder confines the items' paths: the filesystem root.
    root = Path(Path(args.bench).resolve().anchor)
    items = load_eval_items(args.bench, root, bench=args.benchmark)
    if not items:
        raise PredictionError(f"{args.bench}: no items to score")
    predictions = read_predictions(args.predictions)
    bench = items[0].benchmark
    metrics = bench.score(items, predictions, args.protocol, args.profile, None)
    print(bench.table(metrics))
    if args.out:
        write_json(args.out, metrics)
        print(f"wrote {args.out}")
    return 0
