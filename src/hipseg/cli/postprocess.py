"""``hipseg postprocess``: symmetric connected components on existing label maps."""

from __future__ import annotations

import argparse
from pathlib import Path

from hipseg.cli.options import add_common, add_connectivity, add_model_labels, labels_of

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("postprocess", help="symmetric connected components on existing label maps")
    p.add_argument("inputs", type=Path, nargs="+", help="label maps (NIfTI)")
    p.add_argument("--out", type=Path, required=True, help="output folder (same file names)")
    add_connectivity(p)
    add_model_labels(p)
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.inference.postprocessing import postprocess_files

    reports = postprocess_files(args.inputs, labels_of(args), args.out,
                                connectivity=args.connectivity)
    for path, report in zip(args.inputs, reports):
        print(f"{path.name}: moved {report.total_moved} voxels to the other side, "
              f"removed {report.total_removed}")
