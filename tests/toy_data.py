"""A toy multi-image grounding set drawn with PIL, for tests and benchmarks.

Independent of ``mirg synth`` on purpose: training tests need a few samples in a known
layout (1 to 3 images per prompt, one coloured square to find) written in a second, not
a synthetic world. Files follow the data contract of ``mirg synth`` and
``mirg trajectories``, so the trainers read them exactly like the real thing.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from mirg.core.profiles import get_profile, smart_resize

COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (40, 70, 220)}


def write_toy_dataset(
    out: str | Path,
    n: int = 8,
    *,
    seed: int = 0,
    size: int = 112,
    max_images: int = 3,
    profile: str = "qwen3-vl",
    factor: int = 32,
    min_pixels: int = 32 * 32 * 4,
    max_pixels: int = 32 * 32 * 64,
) -> Path:
    """Write ``out/samples.jsonl``, ``out/trajectories.jsonl`` and ``out/images/``.

    Samples carry ``question``, ``images``, ``target_image``, ``target_box``; trajectories
    carry ``prompt`` (the question), ``completion`` (think/answer in ``profile``'s
    coordinates, for frames computed with ``factor`` and the pixel caps) and ``images``.
    """
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    out = Path(out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    prof = get_profile(profile)
    samples, trajectories = [], []
    for i in range(n):
        k = 1 + i % max_images
        colour = rng.choice(sorted(COLOURS))
        target = rng.randint(1, k)
        paths, sizes = [], []
        for j in range(1, k + 1):
            image = Image.new("RGB", (size, size), (235, 235, 235))
            draw = ImageDraw.Draw(image)
            if j == target:
                s = rng.randint(size // 5, size // 3)
                x, y = rng.randint(0, size - s), rng.randint(0, size - s)
                draw.rectangle([x, y, x + s - 1, y + s - 1], fill=COLOURS[colour])
                box = [x / size, y / size, (x + s) / size, (y + s) / size]
            rel = f"images/{i:04d}_{j}.png"
            image.save(out / rel)
            paths.append(rel)
            h, w = smart_resize(size, size, factor, min_pixels, max_pixels)
            sizes.append([w, h])
        question = f"Which image shows the {colour} square, and where is it?"
        frame = sizes[target - 1]
        answer = prof.render_answer(target, box, frame if prof.needs_frame else None)
        completion = (
            f"<think>The {colour} square is in Image-{target}.</think><answer>{answer}</answer>"
        )
        sample_id = f"toy-{i:04d}"
        samples.append(
            {
                "id": sample_id,
                "task": "toy",
                "images": paths,
                "question": question,
                "target_image": target,
                "target_box": [round(v, 4) for v in box],
            }
        )
        trajectories.append(
            {"id": sample_id, "prompt": question, "completion": completion, "images": paths}
        )
    for name, rows in (("samples.jsonl", samples), ("trajectories.jsonl", trajectories)):
        with (out / name).open("w") as handle:
            for row in rows:
                handle.write(json.dumps(row) + "\n")
    return out
