"""``mirg coco``: turn COCO-style box annotations into multi-image grounding samples."""

from __future__ import annotations

import argparse

from mirg.cli import add_output_arguments, int_range
from mirg.data.readers.captions import add_captions, read_captions
from mirg.data.readers.coco import COCO_FAMILIES, coco_samples, read_coco
from mirg.data.schema import IMAGE_CHECKS, SkipLog, write_samples
from mirg.errors import MirgError
from mirg.outputs import SAMPLES, check_output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--annotations", required=True, help="COCO-style instances JSON")
    parser.add_argument(
        "--images", required=True, help="folder the file_name paths are relative to"
    )
    parser.add_argument("--out", required=True, help="samples JSONL to write")
    parser.add_argument("--n", type=int, required=True, help="samples to make")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--families",
        default=",".join(COCO_FAMILIES),
        help=f"comma list of {', '.join(COCO_FAMILIES)}",
    )
    parser.add_argument("--images-per-sample", type=int_range, default=(2, 4), help="N or MIN-MAX")
    parser.add_argument(
        "--min-area", type=float, default=0.01, help="smallest target (relative area)"
    )
    parser.add_argument("--check-images", default="decode", choices=IMAGE_CHECKS)
    parser.add_argument(
        "--captions",
        help="COCO caption JSON (captions_train2017.json): each image's first caption joins "
        "the samples as an image-level fact",
    )
    add_output_arguments(parser, skipped="entries")


def run(args: argparse.Namespace) -> int:
    if args.n < 1:
        raise MirgError(f"--n must be at least 1, got {args.n}")
    out = check_output(
        args.out,
        SAMPLES,
        inputs=[("--annotations", args.annotations), ("--captions", args.captions)],
        overwrite=args.overwrite,
    )
    captions = read_captions(args.captions) if args.captions else None
    skips = SkipLog() if args.skip_bad else None
    images = read_coco(args.annotations, args.images, check_images=args.check_images, skips=skips)
    samples = coco_samples(
        images,
        args.n,
        seed=args.seed,
        families=tuple(f for f in args.families.split(",") if f),
        images_per_sample=args.images_per_sample,
        min_area=args.min_area,
    )
    captioned = sum(bool(add_captions(s, captions)) for s in samples) if captions else 0
    write_samples(out, samples)
    summary = f"wrote {len(samples)} samples to {out} (image paths relative to {args.images})"
    if len(samples) < args.n:
        summary += f"; asked for {args.n}, the annotations allowed no more"
    if captions is not None:
        summary += f"; {captioned} samples captioned from {args.captions}"
    if skips is not None:
        summary += skips.write(args.skip_log or f"{out}.skipped.log", "entries")
    print(summary)
    print(f"next: mirg trajectories --data {out} --root {args.images} --profile NAME --out FILE")
    return 0
