"""Bone surface meshes from label maps (``hipseg mesh``, ``hipseg predict --meshes``)."""

from __future__ import annotations

import logging
from pathlib import Path

from hipseg.core.labels import LabelTable
from hipseg.io import PredictionFiles, read_labels
from hipseg.io.guard import check_output_folder, refuse_name_clashes, refuse_overwriting_inputs
from hipseg.mesh import label_surface_meshes, mesh_qc, write_mesh_qc_json, write_meshes
from hipseg.postprocess import enforce_min_gap

__all__ = ["format_mesh_qc", "mesh_files"]

logger = logging.getLogger(__name__)


def mesh_files(label_paths: list[Path], out_dir: Path, table: LabelTable, *, fmt: str = "stl",
               smoothing_iterations: int = 0, min_gap_mm: float | None = None,
               lps: bool = False) -> list[dict]:
    """Gap-enforced bone meshes and a QC report for each label map.

    For each map: :func:`~hipseg.postprocess.enforce_min_gap` (``min_gap_mm``, default one
    voxel), :func:`~hipseg.mesh.label_surface_meshes` (the same ``min_gap_mm`` bounds how far
    smoothing may close a joint space), then ``OUT/<case>_<bone>_mm.<fmt>`` and
    ``OUT/<case>_mesh_qc.json``.

    Returns
    -------
    list of dict
        Per map, :func:`~hipseg.mesh.mesh_qc` plus ``case``, ``gap_voxels_changed``,
        ``coordinates`` (``"RAS"`` or ``"LPS"``) and ``files``.
    """
    check_output_folder(out_dir)
    qc_files = [PredictionFiles.beside(path).mesh_qc(out_dir) for path in label_paths]
    refuse_overwriting_inputs(label_paths, qc_files)
    refuse_name_clashes(zip(label_paths, qc_files))
    reports = []
    for path in label_paths:
        volume = read_labels(path, table)
        labels, changed = enforce_min_gap(volume.data, volume.spacing_mm, min_gap_mm=min_gap_mm)
        meshes = label_surface_meshes(labels, volume.affine, table,
                                      smoothing_iterations=smoothing_iterations,
                                      min_gap_mm=min_gap_mm, lps=lps)
        outputs = PredictionFiles.beside(path)
        case = outputs.case
        files = write_meshes(meshes, out_dir, case, fmt)
        qc = {"case": case, "gap_voxels_changed": changed, "coordinates": "LPS" if lps else "RAS",
              **mesh_qc(meshes), "files": [f.name for f in files]}
        write_mesh_qc_json(outputs.mesh_qc(out_dir), qc)
        logger.info("wrote %d meshes for %s to %s", len(files), case, out_dir)
        reports.append(qc)
    return reports


def format_mesh_qc(qc: dict) -> str:
    """The mesh QC of one case as text: a line per bone, then the distance of each neighbour pair."""
    lines = [(f"{qc['case']}: {len(qc['bones'])} meshes ({qc['coordinates']}), "
             f"{qc['gap_voxels_changed']} voxels cleared to keep the bones apart")]
    for bone, row in qc["bones"].items():
        flags = [name for name, bad in (("not watertight", not row["watertight"]),
                                        ("not manifold", not row["manifold"]),
                                        ("inward", not row["outward"]),
                                        ("self-intersecting", row["self_intersecting"])) if bad]
        lines.append(f"  {bone:<8} {row['n_vertices']:7d} vertices {row['n_faces']:7d} faces "
                     f"{row['volume_ml']:8.1f} ml  {', '.join(flags) or 'closed, manifold, outward'}")
    for pair in qc["pairs"]:
        point = ", ".join(f"{x:.1f}" for x in pair["point_a_mm"])
        lines.append(f"  {pair['bones'][0]}-{pair['bones'][1]}: min distance "
                     f"{pair['distance_mm']:.2f} mm at ({point}) mm")
    return "\n".join(lines)
