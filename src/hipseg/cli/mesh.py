"""``hipseg mesh``: FE-ready bone surface meshes from label maps, with QC."""

from __future__ import annotations

import argparse
from pathlib import Path

from hipseg.cli.options import add_common, add_min_gap, add_model_labels, labels_of
from hipseg.cli.values import int_in

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mesh", help="FE-ready bone surface meshes from label maps, with QC")
    p.add_argument("inputs", type=Path, nargs="+", help="label maps (NIfTI)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--format", choices=("stl", "obj", "ply", "vtk"), default="stl")
    p.add_argument("--smooth", type=int_in(0, 1000), default=0, metavar="N",
                   help="Taubin smoothing iterations, backed off so no joint space closes")
    add_min_gap(p)
    p.add_argument("--lps", action="store_true", help="write LPS coordinates instead of RAS")
    add_model_labels(p)
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.qc.meshing import format_mesh_qc, mesh_files

    reports = mesh_files(args.inputs, args.out, labels_of(args), fmt=args.format,
                         smoothing_iterations=args.smooth, min_gap_mm=args.min_gap_mm,
                         lps=args.lps)
    for report in reports:
        print(format_mesh_qc(report))
    print(f"meshes and <case>_mesh_qc.json written to {args.out}")
