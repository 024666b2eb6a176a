"""Helpers for the data tests: small synthetic worlds and a COCO-style fixture on disk."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

from mirg.data.schema import Sample
from mirg.data.synth import PRESETS, WorldConfig, write_dataset
from mirg.models.loading import FrameRule


def make_world(out: Path, n: int = 70, seed: int = 0, config: WorldConfig | None = None) -> Path:
    """A synthetic world with every family (default preset) written under ``out``."""
    write_dataset(out, n, seed, config or PRESETS["default"])
    return out


def frames(sample: Sample) -> list[list[int]]:
    """The frames a Qwen2/2.5-VL processor with default pixel caps shows the images at."""
    return FrameRule().frames(sample.image_sizes)


def sample_line(**overrides: object) -> dict:
    """A valid sample JSON object pointing at ``images/a.png`` (see ``write_png``)."""
    line = {
        "id": "s1",
        "task": "single_object",
        "images": ["images/a.png"],
        "question": "Locate the red square in Image-1.",
        "target_image": 1,
        "target_box": [0.25, 0.25, 0.5, 0.5],
        "objects": [
            [
                {
                    "box": [0.25, 0.25, 0.5, 0.5],
                    "category": "square",
                    "attributes": {"colour": "red"},
                }
            ]
        ],
        "relations": [],
        "image_sizes": [[64, 64]],
    }
    line.update(overrides)
    return line


def write_png(path: Path, size: tuple[int, int] = (64, 64), colour=(120, 120, 120)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def write_bomb_png(path: Path, width: int = 200_000, height: int = 200_000) -> Path:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 16)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def write_jsonl(path: Path, lines: list[object]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


#: The COCO fixture: (file, size, [(category, colour, [x, y, w, h])]).
COCO_SCENES = [
    (
        "img0.png",
        (100, 80),
        [("dog", (200, 40, 40), [10, 10, 40, 30]), ("cat", (40, 200, 40), [60, 40, 30, 30])],
    ),
    (
        "img1.png",
        (100, 80),
        [("dog", (200, 40, 40), [50, 20, 45, 50]), ("bird", (40, 40, 200), [5, 5, 20, 20])],
    ),
    (
        "img2.png",
        (120, 90),
        [("dog", (200, 40, 40), [5, 30, 8, 8]), ("car", (200, 200, 40), [40, 10, 70, 60])],
    ),
    (
        "img3.png",
        (100, 80),
        [("cat", (40, 200, 40), [20, 20, 50, 40]), ("car", (200, 200, 40), [75, 50, 20, 20])],
    ),
]
COCO_CATEGORIES = [{"id": i + 1, "name": n} for i, n in enumerate(["dog", "cat", "bird", "car"])]


def write_coco(root: Path) -> tuple[Path, Path]:
    """Images with filled rectangles where the boxes are, and their instances JSON."""
    image_dir = root / "images"
    image_dir.mkdir(parents=True, exist_ok=True)
    ids = {c["name"]: c["id"] for c in COCO_CATEGORIES}
    images, annotations = [], []
    for i, (name, (w, h), objects) in enumerate(COCO_SCENES):
        image = Image.new("RGB", (w, h), (128, 128, 128))
        draw = ImageDraw.Draw(image)
        for category, colour, (x, y, bw, bh) in objects:
            draw.rectangle((x, y, x + bw - 1, y + bh - 1), fill=colour)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": ids[category],
                    "bbox": [x, y, bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
        image.save(image_dir / name)
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
    path = root / "instances.json"
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": COCO_CATEGORIES}),
        encoding="utf-8",
    )
    return path, image_dir
