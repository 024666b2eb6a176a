"""``mirg tiny-model``: write a tiny random-init Qwen-VL model and processor, offline."""

from __future__ import annotations

import argparse
import dataclasses
import json

from mirg.data.outputs import TINY_MODEL, check_output
from mirg.errors import MirgError
from mirg.models.tiny import FAMILIES, TinySpec, corpus_from_files, load_spec, save_tiny_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TinySpec()
    parser.add_argument("--family", choices=FAMILIES, default=None, help="default: qwen3-vl")
    parser.add_argument("--out", required=True, help="folder to write (save_pretrained layout)")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace --out even when it holds a trained model"
    )
    parser.add_argument("--hidden-size", type=int, default=d.hidden_size)
    parser.add_argument("--num-layers", type=int, default=d.num_layers)
    parser.add_argument("--num-heads", type=int, default=d.num_heads)
    parser.add_argument("--num-kv-heads", type=int, default=d.num_kv_heads)
    parser.add_argument("--intermediate-size", type=int, default=d.intermediate_size)
    parser.add_argument("--vision-hidden-size", type=int, default=d.vision_hidden_size)
    parser.add_argument("--vision-depth", type=int, default=d.vision_depth)
    parser.add_argument("--vision-heads", type=int, default=d.vision_heads)
    parser.add_argument("--vision-intermediate-size", type=int, default=d.vision_intermediate_size)
    parser.add_argument("--vocab-size", type=int, default=d.vocab_size)
    parser.add_argument("--min-pixels", type=int, default=None)
    parser.add_argument("--max-pixels", type=int, default=None)
    parser.add_argument("--seed", type=int, default=d.seed)
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
    check_output(args.out, TINY_MODEL, inputs=corpus_files, overwrite=args.overwrite, folder=True)
    family = args.family or "qwen3-vl"
    spec = TinySpec(
        hidden_size=args.hidden_size,
        num_layers=args.num_layers,
        num_heads=args.num_heads,
        num_kv_heads=args.num_kv_heads,
        intermediate_size=args.intermediate_size,
        vision_hidden_size=args.vision_hidden_size,
        vision_depth=args.vision_depth,
        vision_heads=args.vision_heads,
        vision_intermediate_size=args.vision_intermediate_size,
        vocab_size=args.vocab_size,
        min_pixels=args.min_pixels,
        max_pixels=args.max_pixels,
        seed=args.seed,
    )
    if args.spec:
        family, spec = load_spec(args.spec)
        if args.family and args.family != family:
            raise MirgError(
                f"--spec {args.spec} describes a {family} model, not --family {args.family}"
            )
        spec = dataclasses.replace(spec, seed=args.seed)
    corpus = corpus_from_files(args.corpus) if args.corpus else None
    out = save_tiny_model(args.out, family, spec, corpus, dtype=args.dtype)
    info = json.loads((out / "mirg_tiny_model.json").read_text())
    print(
        f"wrote {family} tiny model ({info['parameters']:,} parameters, "
        f"vocabulary {info['vocab_size']:,}) to {out}"
    )
    return 0
