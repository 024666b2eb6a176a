"""``mirg score``: score a predictions file against MIG-Bench under either protocol."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mirg.core.migbench import load_migbench
from mirg.core.profiles import PROFILES
from mirg.core.scoring import PROTOCOLS, aggregate, format_table, read_predictions, score_items


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


def run(args: argparse.Namespace) -> int:
    if args.protocol == "strict" and args.profile is None:
        raise ValueError("--protocol strict needs --profile (the responses' coordinate profile)")
    items = load_migbench(args.bench)
    predictions = read_predictions(args.predictions)
    metrics = aggregate(score_items(items, predictions, args.protocol, args.profile), args.protocol)
    print(format_table(metrics))
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {out}")
    return 0
