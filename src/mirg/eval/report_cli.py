"""``mirg report DIR``: rebuild report.html from an evaluation output folder."""

from __future__ import annotations

import argparse

from mirg.eval.report import GALLERY_LIMIT, write_report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="a mirg eval --out folder")
    parser.add_argument("--gallery", type=int, default=GALLERY_LIMIT, help="samples in the gallery")


def run(args: argparse.Namespace) -> int:
    print(f"wrote {write_report(args.dir, gallery_limit=args.gallery)}")
    return 0
