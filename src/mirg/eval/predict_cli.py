"""``mirg predict``: ask a model about your own images (:mod:`mirg.eval.predict`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from mirg.cli import add_output_arguments
from mirg.core.prompts import check_prompt_text
from mirg.data.schema import check_image
from mirg.eval.generation import REASONING_MAX_NEW_TOKENS
from mirg.eval.predict import predict
from mirg.models.loading import load_model_and_processor
from mirg.models.placement import add_placement_arguments, placement_kwargs
from mirg.outputs import PICTURE, check_output


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
