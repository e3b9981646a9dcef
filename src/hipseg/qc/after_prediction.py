"""What ``predict --meshes --report`` adds after the label maps: meshes with their QC and one
HTML page per scan, under ``OUT/meshes`` and ``OUT/reports`` (with the FE model's picture when
``predict --fe`` wrote one under ``OUT/fe``)."""

from __future__ import annotations

import json
from pathlib import Path

from hipseg.core.labels import LabelTable
from hipseg.inference.files import PredictionSummary
from hipseg.io import PredictionFiles, case_id
from hipseg.qc.meshing import mesh_files
from hipseg.qc.report import write_case_report

__all__ = ["meshes_and_reports"]


def meshes_and_reports(summaries: list[PredictionSummary], inputs: list[Path], out_dir: Path,
                       table: LabelTable, *, meshes: bool, reports: bool,
                       min_gap_mm: float | None = None, eps_mm: float | None = None,
                       fe_dir: Path | None = None) -> tuple[Path | None, Path | None]:
    """Write the meshes (``OUT/meshes``) and/or reports (``OUT/reports``) of the predictions.

    The report of a scan shows its view disagreement from the uncertainty map beside its label
    map (in the label map's format), the mesh QC when meshes were made, and the FE model in
    ``fe_dir`` (``<case>_fe_bodies.nii.gz``, ``<case>_fe.json``) when given.

    Returns
    -------
    meshes_dir, reports_dir : Path or None
        Where they went; ``None`` for what was not asked (or nothing was predicted).
    """
    if not summaries:
        return None, None
    out_dir = Path(out_dir)
    mesh_dir = out_dir / "meshes" if meshes else None
    qc_by_case = {}
    if mesh_dir is not None:
        qc = mesh_files([s.path for s in summaries], mesh_dir, table, min_gap_mm=min_gap_mm)
        qc_by_case = {report["case"]: report for report in qc}
    report_dir = out_dir / "reports" if reports else None
    if report_dir is not None:
        images = {case_id(path): path for path in inputs}
        for s in summaries:
            fe = {}
            if fe_dir is not None:
                fe = {"fe_bodies_path": Path(fe_dir) / f"{s.case_id}_fe_bodies.nii.gz",
                      "fe_summary": json.loads((Path(fe_dir) / f"{s.case_id}_fe.json")
                                               .read_text())}
            write_case_report(images[s.case_id], s.path, report_dir, table,
                              uncertainty_path=PredictionFiles.beside(s.path).uncertainty,
                              mesh_qc=qc_by_case.get(s.case_id), eps_mm=eps_mm, **fe)
    return mesh_dir, report_dir
