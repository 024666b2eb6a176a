"""Evaluation throughput: batched generation versus one item at a time.

The published MIG-Bench evaluation script generates one item at a time; ``mirg eval``
batches items with the same image count (left padding). Goal (issue 5): >= 3x items/s at
batch 16 on the tiny model on CPU. Both runs use the same model, items and greedy
settings, and generate the same answers (checked).

Run: ``.venv/bin/python benchmarks/bench_eval.py [--items 64] [--new-tokens 32]``
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from mirg.data.synth import PRESETS, write_dataset
from mirg.eval.benchmarks import load_eval_items
from mirg.eval.generation import HFGenerator, batches_by_shape, eval_messages, load_images
from mirg.models.loading import load_model_and_processor
from mirg.models.tiny import save_tiny_model


def run(gen: HFGenerator, items: list, profile, batch_size: int) -> tuple[float, dict]:
    answers = {}
    t0 = time.perf_counter()
    for batch in batches_by_shape(items, batch_size, lambda it: len(it.question)):
        messages = [
            eval_messages(it.question, len(it.images), "reasoning", profile) for it in batch
        ]
        outs = gen.generate(messages, [load_images(it.images) for it in batch])
        answers.update({it.key: o for it, o in zip(batch, outs, strict=True)})
    return len(items) / (time.perf_counter() - t0), answers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--preset", default="starter", help="synthetic preset (image count per item)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_dataset(tmp / "data", args.items * 10, seed=0, config=PRESETS[args.preset])
        items = load_eval_items(tmp / "data" / "train.jsonl")[: args.items]
        loaded = load_model_and_processor(save_tiny_model(tmp / "model", "qwen3-vl"))
        gen = HFGenerator(loaded.model, loaded.processor, max_new_tokens=args.new_tokens)
        run(gen, items[:4], loaded.profile, 4)  # warm-up
        single_rate, single = run(gen, items, loaded.profile, 1)
        batched_rate, batched = run(gen, items, loaded.profile, args.batch_size)
    same = sum(single[k] == batched[k] for k in single)
    print(
        f"machine: {platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"items: {len(items)} ({args.preset} preset), {args.new_tokens} new tokens each, greedy")
    print(f"one at a time:      {single_rate:7.2f} items/s")
    print(f"batched ({args.batch_size:>2}):       {batched_rate:7.2f} items/s")
    print(f"speed-up:           {batched_rate / single_rate:7.2f}x")
    print(f"identical answers:  {same}/{len(single)}")


if __name__ == "__main__":
    main()
