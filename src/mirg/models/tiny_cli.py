"""``mirg tiny-model``: write a tiny random-init Qwen-VL model and processor, offline."""

from __future__ import annotations

import argparse
import dataclasses
import json

from mirg.models.tiny import FAMILIES, REAL_DIMS, TinySpec, corpus_from_files, save_tiny_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = TinySpec()
    parser.add_argument("--family", choices=FAMILIES, default="qwen3-vl")
    parser.add_argument("--out", required=True, help="folder to write (save_pretrained layout)")
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
        "--dims",
        choices=sorted(REAL_DIMS),
        default=None,
        help="random-init stand-in with a real model's dimensions (GPU measurements; "
        "billions of parameters: needs that much memory); overrides the size options",
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
    if args.dims:
        if not args.dims.startswith(args.family):
            raise ValueError(f"--dims {args.dims} needs --family {args.dims.rsplit('-', 1)[0]}")
        spec = dataclasses.replace(REAL_DIMS[args.dims], seed=args.seed)
    corpus = corpus_from_files(args.corpus) if args.corpus else None
    out = save_tiny_model(args.out, args.family, spec, corpus, dtype=args.dtype)
    info = json.loads((out / "mirg_tiny_model.json").read_text())
    print(
        f"wrote {args.family} tiny model ({info['parameters']:,} parameters, "
        f"vocabulary {info['vocab_size']:,}) to {out}"
    )
    return 0
