"""``hipseg evaluate``: score predictions against reference labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from hipseg.cli.options import add_common, add_model_labels, add_strict, labels_of
from hipseg.core.errors import InputError

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
    add_strict(p)
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.evaluation.evaluate import (
        evaluate_folders,
        format_table,
        write_csv,
        write_summary_json,
    )
    from hipseg.io.guard import check_output_folder, refuse_overwriting_inputs

    labels = labels_of(args)
    if args.out is not None:
        if args.out.is_dir():
            raise InputError(args.out, "--out names the CSV file to write, not a folder")
        check_output_folder(args.out.parent)
        refuse_overwriting_inputs([args.labels, args.predictions],
                                  [args.out, args.out.with_suffix(".json")])
    if args.save_gap_regions is not None:
        check_output_folder(args.save_gap_regions)
    evaluation = evaluate_folders(args.labels, args.predictions, labels,
                                  gap_regions_dir=args.save_gap_regions, strict=args.strict)
    print(format_table(evaluation))
    if args.out is not None:
        write_csv(evaluation, args.out)
        summary = args.out.with_suffix(".json")
        write_summary_json(evaluation, summary)
        print(f"per-case scores written to {args.out}, summary to {summary}")
