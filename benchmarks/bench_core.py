"""Throughput of answer parsing and the three rewards on realistic completions.

Goal (issue 2): >= 100,000 completions per second on one core, so that rewards stay under
1% of a GRPO step. Run: ``.venv/bin/python benchmarks/bench_core.py [--n 20000]``.
It times, per completion, what a GRPO step does: TRL calls the object, image and format
reward functions one after another on the same completions.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time

from mirg.core.answers import clear_memo, parse_answer
from mirg.core.rewards import format_reward, image_reward, object_reward


def realistic_completions(n: int, seed: int = 0) -> list[str]:
    """~300-character think/answer completions with varied numbers, images and errors."""
    rng = random.Random(seed)
    colours = ["red", "blue", "green", "yellow", "purple"]
    shapes = ["circle", "square", "triangle", "star"]
    out = []
    for i in range(n):
        k = rng.randint(1, 4)
        b = sorted(rng.sample(range(1000), 2)) + sorted(rng.sample(range(1000), 2))
        box = [b[0], b[2], b[1], b[3]]
        think = (
            f"The reference is the {rng.choice(colours)} {rng.choice(shapes)} marked in Image-1. "
            f"Image-{k} holds a {rng.choice(colours)} {rng.choice(shapes)} at {box[:2]} and a "
            f"{rng.choice(colours)} one further right; only the first matches the colour and "
            f"the shape of the reference, so the target is in Image-{k}."
        )
        answer = json.dumps({"image": k, "bbox_2d": box})
        if i % 10 == 9:  # some malformed ones, as early in training
            out.append(f"<think>{think}</think> The answer is {box}")
        else:
            out.append(f"<think>{think}</think><answer>{answer}</answer>")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch", type=int, default=256, help="completions per GRPO reward call")
    args = parser.parse_args()
    completions = realistic_completions(args.n)
    rng = random.Random(1)
    columns = {
        "target_image": [rng.randint(1, 4) for _ in completions],
        "target_box": [(0.1, 0.1, 0.6, 0.6)] * args.n,
        "profile": ["qwen2-vl"] * args.n,
    }
    mean_chars = sum(map(len, completions)) / len(completions)

    def best(fn) -> float:
        times = []
        for _ in range(args.repeats):
            clear_memo()  # every repeat parses cold
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return args.n / min(times)

    parse_rate = best(lambda: [parse_answer(c) for c in completions])

    def grpo_reward_calls() -> None:
        # TRL calls each reward function once per batch of completions.
        for start in range(0, args.n, args.batch):
            batch = completions[start : start + args.batch]
            cols = {k: v[start : start + args.batch] for k, v in columns.items()}
            object_reward(batch, **cols)
            image_reward(batch, **cols)
            format_reward(batch, **cols)

    reward_rate = best(grpo_reward_calls)
    ordinals = ["first", "second", "third", "fourth"]
    free_text = [
        f"It is in the {ordinals[i % 4]} image. <|box_start|>({i % 900},{i % 700}),"
        f"({i % 900 + 50},{i % 700 + 80})<|box_end|>"
        for i in range(args.n)
    ]
    free_rate = best(lambda: [parse_answer(c) for c in free_text])
    print(
        f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}"
    )
    print(f"completions: {args.n} in batches of {args.batch}, mean length {mean_chars:.0f} chars")
    print(f"parse_answer:                 {parse_rate:12,.0f} completions/s")
    print(f"parse_answer, Migician-style: {free_rate:12,.0f} completions/s")
    print(
        f"object+image+format rewards:  {reward_rate:12,.0f} completions/s "
        "(all three per completion)"
    )


if __name__ == "__main__":
    main()
