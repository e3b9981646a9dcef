"""``hipseg evaluate``: score predictions against reference labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from hipseg.cli.options import add_common, add_model_labels, labels_of

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score predictions against reference labels")
    p.add_argument("--labels", type=Path, required=True,
                   help="folder of reference label maps, or a dataset folder (any layout)")
    p.add_argument("--predictions", type=Path, required=True, help="folder of predicted label maps")
    add_model_labels(p)
    p.add_argument("--out", type=Path, help="per-case CSV to write (a JSON summary goes beside it)")
    p.add_argument("--save-gap-regions", type=Path, metavar="DIR",
                   help="write each reference's gap region G (d1 + d2 < 10 voxels) as NIfTI to DIR")
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.evaluation.evaluate import (
        evaluate_folders,
        format_table,
        write_csv,
        write_summary_json,
    )

    labels = labels_of(args)
    evaluation = evaluate_folders(args.labels, args.predictions, labels,
                                  gap_regions_dir=args.save_gap_regions)
    print(format_table(evaluation))
    if args.out is not None:
        write_csv(evaluation, args.out)
        summary = args.out.with_suffix(".json")
        write_summary_json(evaluation, summary)
        print(f"per-case scores written to {args.out}, summary to {summary}")
