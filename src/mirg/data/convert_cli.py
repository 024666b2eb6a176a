"""``mirg convert --format NAME``: published data -> mirg samples (docs/data.md, "Readers",
has an example per format).

Every format is a :class:`~mirg.data.readers.Reader`: a built-in of
``mirg.data.readers.READERS``, or a user's own by dotted path. Images are not decoded
unless ``--check-images decode``; sizes are read from headers where a profile needs them
(or ``--image-sizes`` asks). The summary line counts what was written and what was left
out, by reason; each left-out record is in ``OUT.skipped.log`` with its reason.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from pathlib import Path

from mirg.cli import add_output_arguments, int_range, key_value
from mirg.data.readers import READERS, Reader, get_reader
from mirg.data.readers.captions import CaptionIndex, add_captions, read_captions
from mirg.data.readers.conversations import SOURCE_PROFILES
from mirg.data.readers.records import Tally
from mirg.data.readers.refcoco import DISTRACTORS, REFCOCO_FAMILIES
from mirg.data.schema import IMAGE_CHECKS, Sample, write_jsonl
from mirg.errors import MirgError
from mirg.models.loading import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS
from mirg.outputs import SAMPLES, check_output


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        required=True,
        help=f"source format: {', '.join(READERS)}, or a reader by dotted path (my_pkg.mod.READER)",
    )
    parser.add_argument(
        "--option",
        dest="options",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the reader's own (repeatable), for readers named by dotted path",
    )
    parser.add_argument("--out", required=True, help="samples JSONL to write")
    parser.add_argument(
        "--input", nargs="+", help="mgrounding/llava/migbench: source files (JSON list or JSONL)"
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


def _root(args: argparse.Namespace, reader: Reader) -> Path:
    """Where the samples' image paths start: --images, else beside the reader's source."""
    source = getattr(args, reader.images_beside, None)
    source = source[0] if isinstance(source, list) else source
    return Path(args.images or Path(source or ".").parent)


def _records(samples: Iterable[Sample | dict], captions: CaptionIndex | None) -> Iterator[dict]:
    """Sample lines to write; samples get the captions of ``--captions``."""
    for sample in samples:
        if isinstance(sample, Sample):
            if captions is not None:
                add_captions(sample, captions)
            sample = sample.to_json()
        yield sample


def run(args: argparse.Namespace) -> int:
    reader = get_reader(args.format)
    args.options = dict(args.options)
    missing = [  # convert's own options, or the reader's --option keys
        f"--{name}" if hasattr(args, name) else f"--option {name}=…"
        for name in reader.needs
        if not (getattr(args, name, None) or args.options.get(name))
    ]
    if missing:
        raise MirgError(f"--format {args.format} needs {' and '.join(missing)}")
    unknown = sorted(set(args.options) - set(reader.options))
    if unknown:
        takes = ", ".join(reader.options) or "none"
        raise MirgError(
            f"--format {args.format} takes no --option {', '.join(unknown)} (its options: {takes})"
        )
    sources = ("refs", "instances", "captions", "data")  # beside --input: never overwritten
    inputs = [("--input", p) for p in args.input or []] + [
        (f"--{name}", getattr(args, name)) for name in sources if getattr(args, name)
    ]
    out = check_output(args.out, SAMPLES, inputs=inputs, overwrite=args.overwrite)
    # A reader that needs the caption file (coco-captions) reads it itself.
    joins = args.captions and "captions" not in reader.needs
    captions = read_captions(args.captions) if joins else None
    tally = Tally(unit=reader.unit, skip_bad=args.skip_bad)
    write_jsonl(out, _records(reader.read(args, tally), captions), compact=True)
    root = _root(args, reader)
    print(tally.summary(out, args.skip_log) + f" (image paths relative to {root})")
    print(f"next: mirg export --format sft --data {out} --root {root} --profile NAME --out F")
    return 0
