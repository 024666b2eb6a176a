"""Data benchmarks: synthetic samples written to disk per second, trajectories per second.

Goals (issue 3): >= 100 synthetic samples/s written to disk and >= 5,000 trajectories/s
from in-memory annotations, both on one core. The process pins itself to one CPU where
the OS allows it.

    .venv/bin/python benchmarks/bench_data.py [--n 1000] [--trajectories 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

from mirg.data.exports import Exporter
from mirg.data.synth import DEFAULT_FAMILIES, PRESETS, generate_sample, write_dataset
from mirg.data.trajectories import build_trajectory


def bench_synth(n: int, preset: str) -> float:
    """Samples per second of ``write_dataset`` (rendering, PNG encoding, JSONL, manifest)."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        write_dataset(out, n, 0, PRESETS[preset], preset=preset)
        return n / (time.perf_counter() - start)


def bench_trajectories(n: int, profile: str) -> tuple[float, float]:
    """Trajectories per second from samples already in memory, and SFT records per second
    (trajectory plus prompt messages and reward columns, no file writing)."""
    config, families = PRESETS["default"], DEFAULT_FAMILIES
    samples = [
        generate_sample(config, families[i % len(families)], 0, "train", i)[0] for i in range(n)
    ]
    exporter = Exporter(profile, root=".")
    sizes = [exporter.frames(s) for s in samples]
    start = time.perf_counter()
    for s, f in zip(samples, sizes, strict=True):
        build_trajectory(s, profile, frames=f)
    trajectories = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for s in samples:
        exporter.sft(s)
    records = n / (time.perf_counter() - start)
    return trajectories, records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="synthetic samples per preset")
    parser.add_argument("--trajectories", type=int, default=5000)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"}
    for preset in ("default", "starter", "hard"):
        results[f"synth_{preset}_samples_per_s"] = round(bench_synth(args.n, preset), 1)
    for profile in ("qwen2.5-vl", "qwen3-vl"):
        traj, rec = bench_trajectories(args.trajectories, profile)
        results[f"trajectories_{profile}_per_s"] = round(traj)
        results[f"sft_records_{profile}_per_s"] = round(rec)
    for key, value in results.items():
        print(f"{key:40s} {value}")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
