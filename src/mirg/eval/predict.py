"""``mirg predict``: ask a model about your own images, see the box it draws.

Prints the parsed answer (the image and the box in pixels of the image as shown: a photo's
EXIF orientation applied, as everywhere in mirg) and the reasoning, and saves a picture: the
images side by side, the box on the chosen image.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mirg.cli import add_output_arguments
from mirg.core.answers import ParsedAnswer, parse_answer
from mirg.core.judge import answer_box, resolved_image
from mirg.core.profiles import ProfileError
from mirg.core.prompts import check_prompt_text
from mirg.data.outputs import PICTURE, PICTURE_TAG, SOFTWARE_TAG, check_output
from mirg.data.schema import check_image
from mirg.eval.generation import (
    REASONING_MAX_NEW_TOKENS,
    HFGenerator,
    eval_messages,
    load_images,
)
from mirg.files import atomic_write
from mirg.models.loading import load_model_and_processor
from mirg.models.placement import add_placement_arguments, placement_kwargs


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", help='e.g. "find the red mug from Image-1 in Image-2"')
    parser.add_argument("--model", required=True)
    parser.add_argument("--image", action="append", required=True, help="repeat, in order")
    parser.add_argument("--save", default="prediction.png", help="where to save the picture")
    add_output_arguments(
        parser,
        overwrite_help="replace --save even when it is an input image or a picture "
        "mirg did not draw",
    )
    parser.add_argument("--profile", help="coordinate profile for models mirg cannot identify")
    parser.add_argument("--max-new-tokens", type=int, default=REASONING_MAX_NEW_TOKENS)
    add_placement_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # The question can go into a prompt, every image decodes within the data pipeline's
    # pixel limit, and the picture can be saved, before the model loads. The --image paths
    # are the user's own choice, so they are not confined to a root.
    check_prompt_text(args.question)
    for k, path in enumerate(args.image, 1):
        check_image(Path(path), f"--image (Image-{k})", "decode")
    if args.save:
        inputs = [("--image", p) for p in args.image]
        check_output(args.save, PICTURE, inputs=inputs, overwrite=args.overwrite, flag="--save")
    loaded = load_model_and_processor(
        args.model,
        profile=args.profile,
        **placement_kwargs(args.device, args.dtype, args.attention),
    )
    result = predict(
        loaded, args.image, args.question, save=args.save, max_new_tokens=args.max_new_tokens
    )
    reasoning = result.response
    if "<think>" in reasoning and "</think>" in reasoning:
        reasoning = reasoning.split("<think>", 1)[1].split("</think>", 1)[0].strip()
    print(f"reasoning: {reasoning}")
    if result.box_pixels is None:
        print(f"answer: none parsed ({result.parsed.error or 'no image named'})")
    else:
        print(
            f"answer: Image-{result.image}, box {list(result.box_pixels)} "
            "(pixels of the image as shown)"
        )
    if result.picture:
        print(f"saved {result.picture}")
    return 0
