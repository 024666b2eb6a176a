"""``mirg predict``: ask a model about your own images, see the box it draws.

Prints the parsed answer (the image and the box in pixels of the image as shown: a photo's
EXIF orientation applied, as everywhere in mirg) and the reasoning, and saves a picture: the
images side by side, the box on the chosen image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirg.core.answers import ParsedAnswer, parse_answer
from mirg.core.judge import answer_box, resolved_image
from mirg.core.profiles import ProfileError
from mirg.eval.generation import (
    REASONING_MAX_NEW_TOKENS,
    HFGenerator,
    eval_messages,
    load_images,
)
from mirg.files import atomic_write
from mirg.outputs import PICTURE_TAG, SOFTWARE_TAG


@dataclass
class PredictResult:
    response: str
    parsed: ParsedAnswer
    image: int | None
    box_pixels: tuple[int, int, int, int] | None  # in pixels of the image as shown
    picture: Path | None


def predict(
    loaded: Any,
    image_paths: list[str],
    question: str,
    *,
    save: str | Path | None = None,
    max_new_tokens: int = REASONING_MAX_NEW_TOKENS,
) -> PredictResult:
    images = load_images(image_paths)
    messages = eval_messages(question, len(images), "reasoning", loaded.profile)
    response = (
        HFGenerator(loaded.model, loaded.processor, max_new_tokens)
        .generate([messages], [images])[0]
        .text
    )
    parsed = parse_answer(response)
    k = resolved_image(parsed, len(images))
    box_px = None
    if k is not None and 1 <= k <= len(images):
        try:
            rel = answer_box(parsed, loaded.profile, loaded.input_sizes(images), len(images))
        except ProfileError:
            rel = None
        if rel is not None:
            w, h = images[k - 1].size
            box_px = (round(rel[0] * w), round(rel[1] * h), round(rel[2] * w), round(rel[3] * h))
    picture = draw_answer(images, k, box_px, save) if save else None
    return PredictResult(response, parsed, k, box_px, picture)


def draw_answer(
    images: list[Any], k: int | None, box: tuple[int, int, int, int] | None, path: str | Path
) -> Path:
    """Images side by side (labelled), the box drawn on image ``k``: the images as
    :func:`~mirg.eval.generation.load_images` opened them (turned as shown), so the box
    lands where the model saw the object."""
    from PIL import Image, ImageDraw

    height = max(im.height for im in images)
    gap = 8
    canvas = Image.new(
        "RGB", (sum(im.width for im in images) + gap * (len(images) - 1), height + 16), "white"
    )
    draw = ImageDraw.Draw(canvas)
    x = 0
    for i, im in enumerate(images, 1):
        canvas.paste(im, (x, 16))
        draw.text((x + 2, 2), f"Image-{i}" + (" (answer)" if i == k else ""), fill="black")
        if i == k and box is not None:
            x1, y1, x2, y2 = box
            draw.rectangle(
                [x + x1, 16 + y1, x + x2, 16 + y2], outline="red", width=max(2, height // 100)
            )
        x += im.width + gap
    path = Path(path)
    fmt = Image.registered_extensions().get(path.suffix.lower(), "PNG")
    exif = Image.Exif()
    exif[SOFTWARE_TAG] = PICTURE_TAG  # how a rerun knows the picture is ours to replace
    with atomic_write(path, "wb") as handle:
        canvas.save(handle, format=fmt, exif=exif)
    return path
