"""``hipseg collisions``: |E| per scan and class pair, ranked worst first, with regions to correct."""

from __future__ import annotations

import argparse
from pathlib import Path

from hipseg.cli.options import add_common, add_eps, add_model_labels, labels_of
from hipseg.cli.values import nonnegative_int, positive_int

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collisions",
                       help="|E| per scan and class pair, ranked worst first, with regions to correct")
    p.add_argument("inputs", type=Path, nargs="+", help="predicted label maps (NIfTI)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write <case>_collisions.nii.gz (pair codes) and collisions.csv to DIR")
    p.add_argument("--top", type=positive_int, default=3, help="regions listed per scan (default 3)")
    p.add_argument("--threshold", type=nonnegative_int,
                   help="say whether every scan has |E| at or below this (the loop's stop rule)")
    add_eps(p)
    add_model_labels(p)
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.qc.review import REVIEW_CSV, format_review, review_files, write_review_csv

    reviews = review_files(args.inputs, labels_of(args), eps_mm=args.eps, top_regions=args.top,
                           collisions_dir=args.out)
    print(format_review(reviews, args.threshold))
    if args.out is not None:
        write_review_csv(reviews, args.out / REVIEW_CSV)
        print(f"collision maps and {REVIEW_CSV} written to {args.out}")
