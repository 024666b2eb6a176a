"""``mirg eval``: evaluate a model on a benchmark (MIG-Bench, MC-Bench, a mirg dataset split
or one of your own, :mod:`mirg.eval.benchmarks`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mirg.cli import add_output_arguments, config_from_args
from mirg.core.scoring import PROTOCOLS
from mirg.eval.benchmarks import BENCHMARKS
from mirg.eval.generation import PROMPTS
from mirg.eval.run import BACKENDS, METRICS, PREDICTIONS, REPORT, EvalConfig, evaluate
from mirg.models.placement import add_placement_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder (or hub name)")
    parser.add_argument(
        "--data",
        required=True,
        help="MIG_data.json or MC-Bench's annotation file (both with --images), or a mirg "
        "split, e.g. DIR/test.jsonl",
    )
    parser.add_argument(
        "--bench",
        help=f"the benchmark: {', '.join(BENCHMARKS)}, or a dotted path to your own "
        "(my_pkg.my_bench.BENCH); default: the one that recognises --data",
    )
    parser.add_argument(
        "--images", help="images root (MIG-Bench, MC-Bench: the unpacked image archive)"
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="strict",
        help="MIG-Bench and mirg splits; MC-Bench is scored by its own metrics",
    )
    parser.add_argument("--prompt", choices=PROMPTS, default="reasoning")
    parser.add_argument("--backend", choices=BACKENDS, default="hf")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tasks", nargs="+", help="only these tasks")
    parser.add_argument("--limit", type=int, help="first N items of each task")
    parser.add_argument("--max-new-tokens", type=int, help="default 128 (official), 1024")
    parser.add_argument("--profile", help="coordinate profile, for models mirg cannot identify")
    parser.add_argument("--min-pixels", type=int)
    parser.add_argument("--max-pixels", type=int)
    add_placement_arguments(parser)
    vllm = parser.add_argument_group("vllm backend")
    vllm.add_argument("--tensor-parallel-size", type=int, default=1)
    vllm.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    vllm.add_argument(
        "--max-model-len", type=int, help="default: the longest prompt plus --max-new-tokens"
    )
    parser.add_argument("--out", required=True, help="output folder (a rerun resumes)")
    add_output_arguments(
        parser,
        overwrite_help="start afresh in --out when it holds another run's predictions or "
        "files mirg eval did not write (they are replaced); without it such a folder is refused",
    )
    parser.add_argument("--no-progress", action="store_true")


def run(args: argparse.Namespace) -> int:
    cfg = config_from_args(EvalConfig, args)
    metrics = evaluate(cfg, progress=not args.no_progress)
    bench = cfg.benchmark()
    print(bench.table(metrics))
    written = (PREDICTIONS, METRICS, *bench.writes, REPORT)
    print(f"wrote {args.out}/{', '.join(written)}")
    return 0


def interrupted(args: argparse.Namespace) -> str:
    """What Ctrl-C left: the predictions written so far, which a rerun resumes."""
    path = Path(args.out) / PREDICTIONS
    try:
        with path.open("rb") as handle:
            n = sum(1 for line in handle if line.endswith(b"\n") and line.strip())
    except OSError:
        n = 0
    if not n:
        return f"no predictions written yet in {args.out}; rerun the same command to start"
    return f"{n} prediction(s) kept in {path}; rerun the same command to resume"
