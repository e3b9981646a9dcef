"""``hipseg report``: HTML QC page of one scan: overlays, collisions, meshes, tables."""

from __future__ import annotations

import argparse
from pathlib import Path

from hipseg.cli.options import add_common, add_eps, add_model_labels, labels_of
from hipseg.core.errors import InputError

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="HTML QC page of one scan: overlays, collisions, meshes, tables")
    p.add_argument("image", type=Path, help="CT image (NIfTI)")
    p.add_argument("labels", type=Path, help="its label map (a prediction)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--reference", type=Path, help="reference label map: adds a metrics table")
    p.add_argument("--uncertainty", type=Path, help="view-disagreement map (predict --save-uncertainty)")
    p.add_argument("--mesh-qc", type=Path, help="<case>_mesh_qc.json to show (default: computed)")
    p.add_argument("--fe", type=Path, metavar="FE_JSON",
                   help="<case>_fe.json of hipseg fe: adds the FE model's picture (its "
                        "<case>_fe_bodies.nii.gz is read from the same folder)")
    add_eps(p)
    add_model_labels(p)
    add_common(p)


def run(args: argparse.Namespace) -> None:
    import json

    from hipseg.qc.html import mesh_qc_problem
    from hipseg.qc.report import write_case_report

    mesh_qc = None
    if args.mesh_qc is not None:
        try:
            mesh_qc = json.loads(args.mesh_qc.read_text())
        except (OSError, ValueError) as err:
            raise InputError(args.mesh_qc, f"cannot read mesh QC JSON ({err})") from None
        problem = mesh_qc_problem(mesh_qc)
        if problem is not None:
            raise InputError(args.mesh_qc, problem)
    fe = {}
    if args.fe is not None:
        try:
            summary = json.loads(args.fe.read_text())
            bodies = args.fe.parent / f"{summary['case']}_fe_bodies.nii.gz"
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise InputError(args.fe, f"cannot read an FE summary ({err!r})") from None
        if not bodies.is_file():
            raise InputError(args.fe, f"its body map {bodies.name} is missing beside it")
        fe = {"fe_bodies_path": bodies, "fe_summary": summary}
    page = write_case_report(args.image, args.labels, args.out, labels_of(args),
                             uncertainty_path=args.uncertainty, reference_labels_path=args.reference,
                             mesh_qc=mesh_qc, eps_mm=args.eps, **fe)
    print(f"report written to {page}")
