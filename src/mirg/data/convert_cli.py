"""``mirg convert --format NAME``: published data -> mirg samples (docs/data.md, "Readers").

    mirg convert --format mgrounding --input data/MGrounding-630k.json --out mg.jsonl
    mirg convert --format llava --input rec.jsonl --images coco --profile pixels --out r.jsonl
    mirg convert --format refcoco --refs refs.json --instances instances.json \
        --images train2014 --out ref.jsonl
    mirg convert --format coco-captions --data ref.jsonl --captions captions.json --out c.jsonl

COCO-style instance files have their own command, ``mirg coco``. Images are not decoded
unless ``--check-images decode``; sizes are read from headers where a profile needs them
(or ``--image-sizes`` asks). The summary line counts what was written and what was left
out, by reason; each left-out record is in ``OUT.skipped.log`` with its reason.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

from mirg.cli import add_output_arguments, int_range
from mirg.data.outputs import SAMPLES, check_output
from mirg.data.readers.captions import (
    CaptionIndex,
    caption_samples,
    captioned,
    read_captions,
)
from mirg.data.readers.conversations import SOURCE_PROFILES, SampleIds, read_conversations
from mirg.data.readers.mgrounding import read_mgrounding
from mirg.data.readers.records import ImageFiles, Tally
from mirg.data.readers.refcoco import (
    DISTRACTORS,
    REFCOCO_FAMILIES,
    RefCoco,
    read_refs,
    refcoco_samples,
)
from mirg.data.schema import IMAGE_CHECKS, Sample, write_jsonl, write_samples
from mirg.errors import MirgError
from mirg.models.loading import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, FrameRule

FORMATS = ("mgrounding", "llava", "refcoco", "coco-captions")
#: Options each format needs.
_NEEDS = {
    "mgrounding": ("input",),
    "llava": ("input", "profile"),
    "refcoco": ("refs", "instances"),
    "coco-captions": ("data", "captions"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", required=True, choices=FORMATS, help="source format")
    parser.add_argument("--out", required=True, help="samples JSONL to write")
    parser.add_argument(
        "--input", nargs="+", help="mgrounding/llava: source files (JSON list or JSONL)"
    )
    parser.add_argument(
        "--images",
        help="folder the source's image paths are relative to (default: the input's folder; "
        "for refcoco the instances file's)",
    )
    parser.add_argument(
        "--check-images",
        default="none",
        choices=IMAGE_CHECKS,
        help="check image files: none (default), exists, or decode every pixel",
    )
    parser.add_argument(
        "--image-sizes",
        action="store_true",
        help="read each image's size from its header into image_sizes (no decoding); "
        "absolute-pixel profiles (qwen2.5-vl) need them to export",
    )
    parser.add_argument(
        "--profile", choices=SOURCE_PROFILES, help="llava: the coordinates the answers use"
    )
    parser.add_argument("--task", default="grounding", help="llava: task name of the samples")
    parser.add_argument(
        "--min-pixels",
        type=int,
        default=DEFAULT_MIN_PIXELS,
        help="llava --profile qwen2.5-vl: the source processor's min_pixels",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="llava --profile qwen2.5-vl: the source processor's max_pixels",
    )
    parser.add_argument("--refs", help="refcoco: refs as JSON, JSONL, parquet (or a pickle)")
    parser.add_argument("--instances", help="refcoco: COCO-style instances JSON")
    parser.add_argument("--split", default="train", help="refcoco: refs split, or 'all'")
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="refcoco: read a refs pickle (plain data only: every class is refused)",
    )
    parser.add_argument(
        "--families",
        default=",".join(REFCOCO_FAMILIES),
        help=f"refcoco: comma list of {', '.join(REFCOCO_FAMILIES)}",
    )
    parser.add_argument(
        "--images-per-sample", type=int_range, default=(2, 4), help="refcoco: N or MIN-MAX"
    )
    parser.add_argument(
        "--distractors",
        default="other-category",
        choices=DISTRACTORS,
        help="refcoco group_grounding: distractor images without the expression's categories "
        "(uniqueness provable, default) or with the target's category (unverified)",
    )
    parser.add_argument("--seed", type=int, default=0, help="refcoco: seed of the composition")
    parser.add_argument("--name", default="refcoco", help="refcoco: dataset name in sample ids")
    parser.add_argument(
        "--captions", help="COCO caption JSON: joined into the samples' captions (refcoco too)"
    )
    parser.add_argument("--data", help="coco-captions: the samples JSONL to caption")
    add_output_arguments(parser, skipped="records")


def _conversations(
    args: argparse.Namespace, out: Path, captions: CaptionIndex | None
) -> tuple[Tally, Path]:
    """mgrounding and llava: every input file, one stream of samples."""
    tally = Tally(unit="turns", skip_bad=args.skip_bad)
    ids = SampleIds()

    def samples() -> Iterator[Sample]:
        for path in args.input:
            files = ImageFiles(Path(args.images or Path(path).parent), args.check_images)
            if args.format == "mgrounding":
                yield from read_mgrounding(
                    path, images=files, tally=tally, record_sizes=args.image_sizes, ids=ids
                )
            else:
                yield from read_conversations(
                    path,
                    profile=args.profile,
                    images=files,
                    tally=tally,
                    task=args.task,
                    frame_rule=FrameRule(28, args.min_pixels, args.max_pixels),
                    record_sizes=args.image_sizes,
                    ids=ids,
                )

    write_samples(out, captioned(samples(), captions))
    return tally, Path(args.images or Path(args.input[0]).parent)


def _refcoco(
    args: argparse.Namespace, out: Path, captions: CaptionIndex | None
) -> tuple[Tally, Path]:
    tally = Tally(unit="expressions", skip_bad=args.skip_bad)
    root = Path(args.images) if args.images else Path(args.instances).parent
    dataset = RefCoco(args.instances, root, check_images=args.check_images)
    split = None if args.split == "all" else args.split
    refs = read_refs(args.refs, tally, split=split, allow_pickle=args.allow_pickle)
    if tally.records and not refs:
        raise MirgError(f"{args.refs}: no refs of split {args.split!r}; try --split all")
    if len(refs) < tally.records:
        tally.notes[f"refs of other splits than {args.split!r}"] = tally.records - len(refs)
    samples = refcoco_samples(
        dataset,
        refs,
        tally,
        families=tuple(f for f in args.families.split(",") if f),
        images_per_sample=args.images_per_sample,
        distractors=args.distractors,
        seed=args.seed,
        name=args.name,
        captions=captions,
    )
    write_samples(out, samples)
    return tally, root


def run(args: argparse.Namespace) -> int:
    missing = [f"--{name}" for name in _NEEDS[args.format] if not getattr(args, name)]
    if missing:
        raise MirgError(f"--format {args.format} needs {' and '.join(missing)}")
    inputs = [("--input", p) for p in args.input or []] + [
        (f"--{name}", getattr(args, name))
        for name in ("refs", "instances", "captions", "data")
        if getattr(args, name)
    ]
    out = check_output(args.out, SAMPLES, inputs=inputs, overwrite=args.overwrite)
    captions = read_captions(args.captions) if args.captions else None
    if args.format in ("mgrounding", "llava"):
        tally, root = _conversations(args, out, captions)
    elif args.format == "refcoco":
        tally, root = _refcoco(args, out, captions)
    else:  # coco-captions: the sample lines pass through, captions joined
        tally = Tally(unit="samples", skip_bad=args.skip_bad)
        root = Path(args.images or Path(args.data).parent)
        write_jsonl(out, caption_samples(args.data, captions, tally), compact=True)  # type: ignore[arg-type]
    print(tally.summary(out, args.skip_log) + f" (image paths relative to {root})")
    print(f"next: mirg export --format sft --data {out} --root {root} --profile NAME --out F")
    return 0
