"""``mirg tiny-model``: write a tiny random-init Qwen-VL model and processor, offline."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from mirg.cli import add_output_arguments, config_from_args
from mirg.errors import MirgError
from mirg.files import check_free, folder_lock, write_json
from mirg.models.families import get_family
from mirg.models.tiny import FAMILIES, TinySpec, corpus_from_files, load_spec, save_tiny_model
from mirg.outputs import TINY_MODEL, check_output

#: TinySpec fields that are command-line options (``hidden_size`` -> ``--hidden-size``).
SIZE_OPTIONS = (
    "hidden_size",
    "num_layers",
    "num_heads",
    "num_kv_heads",
    "intermediate_size",
    "vision_hidden_size",
    "vision_depth",
    "vision_heads",
    "vision_intermediate_size",
    "vocab_size",
    "min_pixels",
    "max_pixels",
    "seed",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    help = f"{' | '.join(FAMILIES)} (default: qwen3-vl) or my_pkg.module.FAMILY (a ModelFamily)"
    parser.add_argument("--family", default=None, help=help)
    parser.add_argument("--out", required=True, help="folder to write (save_pretrained layout)")
    add_output_arguments(parser, overwrite_help="replace --out even when it holds a trained model")
    for name in SIZE_OPTIONS:
        parser.add_argument(
            "--" + name.replace("_", "-"), type=int, default=getattr(TinySpec, name)
        )
    parser.add_argument(
        "--spec",
        default=None,
        metavar="FILE.json",
        help="dimensions from a stand-in spec file (e.g. benchmarks/stand-ins/qwen2.5-vl-3b.json: "
        "a real model's dimensions, random weights, for GPU measurements; billions of "
        "parameters need that much memory); overrides the size options",
    )
    parser.add_argument(
        "--dtype", default=None, help="save the weights in this dtype (e.g. bfloat16)"
    )
    parser.add_argument(
        "--corpus",
        nargs="+",
        default=None,
        help="JSONL or text files the tokenizer also learns from (e.g. the trajectories): "
        "shorter sequences, faster CPU steps",
    )


def run(args: argparse.Namespace) -> int:
    # A trained model (or anything but a tiny model) in --out is refused before any work.
    corpus_files = [("--corpus", p) for p in args.corpus or ()]
    check_free(args.out)  # a run in progress is named first
    check_output(args.out, TINY_MODEL, inputs=corpus_files, overwrite=args.overwrite, folder=True)
    family = args.family or "qwen3-vl"
    get_family(family)  # an unknown family fails before any work
    spec = config_from_args(TinySpec, args)
    if args.spec:
        family, spec = load_spec(args.spec)
        if args.family and args.family != family:
            raise MirgError(
                f"--spec {args.spec} describes a {family} model, not --family {args.family}"
            )
        spec = dataclasses.replace(spec, seed=args.seed)
    corpus = corpus_from_files(args.corpus) if args.corpus else None
    with folder_lock(args.out, f"mirg tiny-model (seed {args.seed})"):
        # checked again under the lock: another run may have written the folder meanwhile
        check_output(
            args.out, TINY_MODEL, inputs=corpus_files, overwrite=args.overwrite, folder=True
        )
        # the record first (save_tiny_model completes it last), so a rerun after a kill
        # knows the folder for its own
        write_json(Path(args.out) / "mirg_tiny_model.json", {"family": family, "complete": False})
        out = save_tiny_model(args.out, family, spec, corpus, dtype=args.dtype)
    info = json.loads((out / "mirg_tiny_model.json").read_text())
    print(
        f"wrote {family} tiny model ({info['parameters']:,} parameters, "
        f"vocabulary {info['vocab_size']:,}) to {out}"
    )
    return 0
