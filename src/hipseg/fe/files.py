"""``hipseg fe``: a label map file to FE model files and a summary (issue 14, items 2-4).

Takes one label map whose gaps are kept (NIfTI, the label table's ids); gives, in ``OUT``:
``<case>_fe.<fmt>`` for each format asked for, ``<case>_fe.json`` (the summary below),
``<case>_fe_bodies.nii.gz`` (the body map on the element grid: each voxel is the 6
tetrahedra of one body; bones keep their label ids, cartilage follows; what the QC report
draws) and ``<case>_fe_template.yaml`` (the materials and load case used, to edit and pass
back).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree

from hipseg.core.atomic import atomic_write_text
from hipseg.core.errors import InputError
from hipseg.core.labels import LabelTable
from hipseg.fe.export import write_fe_file
from hipseg.fe.model import FeModel, FeSettings, fe_model
from hipseg.fe.template import FeTemplate, save_template
from hipseg.io import read_labels, write_image
from hipseg.io.formats import case_id
from hipseg.io.guard import check_output_folder, refuse_overwriting_inputs
from hipseg.tetmesh import body_surfaces, dihedral_angles_deg, radius_ratios, tet_volumes_mm3

__all__ = ["fe_file", "fe_summary", "format_fe_summary"]

logger = logging.getLogger(__name__)


def fe_file(label_path: Path, out_dir: Path, table: LabelTable, *,
            settings: FeSettings | None = None, template: FeTemplate | None = None,
            formats: tuple[str, ...] = ("feb",)) -> dict:
    """Build the FE model of one label map and write it; returns :func:`fe_summary` plus
    ``case``, ``seconds`` per stage and ``files``.

    Raises
    ------
    InputError
        Naming ``label_path``: unreadable, not a label map of ``table``, bones of a joint
        that touch (with the pair and where), or no sacrum or femur for the load case.
    """
    label_path, out_dir = Path(label_path), Path(out_dir)
    settings, template = settings or FeSettings(), template or FeTemplate()
    check_output_folder(out_dir)
    case = case_id(label_path)
    targets = [out_dir / f"{case}_fe.{fmt}" for fmt in formats]
    summary_path = out_dir / f"{case}_fe.json"
    template_path = out_dir / f"{case}_fe_template.yaml"
    bodies_path = out_dir / f"{case}_fe_bodies.nii.gz"
    refuse_overwriting_inputs([label_path], [*targets, summary_path, template_path, bodies_path])
    seconds = {}
    started = time.perf_counter()
    volume = read_labels(label_path, table)
    try:
        model = fe_model(volume, table, settings)
    except ValueError as err:
        raise InputError(label_path, str(err)) from None
    seconds["model"] = time.perf_counter() - started
    logger.info("%s: %d bodies, %d elements, %d nodes in %.1f s", case, len(model.bodies),
                len(model.mesh.tets), len(model.mesh.nodes_mm), seconds["model"])
    started = time.perf_counter()
    summary = fe_summary(model)
    seconds["quality"] = time.perf_counter() - started
    for fmt, target in zip(formats, targets, strict=True):
        started = time.perf_counter()
        try:
            write_fe_file(model, template, target)
        except ValueError as err:  # the load case needs a sacrum and a femur
            raise InputError(label_path, str(err)) from None
        seconds[f"write_{fmt}"] = time.perf_counter() - started
        logger.info("wrote %s in %.1f s", target, seconds[f"write_{fmt}"])
    write_image(bodies_path, model.body_map.data, model.body_map.affine, dtype=np.uint8)
    save_template(template, template_path)
    report = {"case": case, "size_mm": settings.size_mm,
              "contact_gap_mm": settings.contact_gap_mm, **summary, "seconds": seconds,
              "files": [t.name for t in targets] + [bodies_path.name, template_path.name]}
    atomic_write_text(summary_path, json.dumps(report, indent=1))
    return report


def fe_summary(model: FeModel) -> dict:
    """Elements, quality, bodies (volume against the map's, closed, manifold, pieces), contact
    pairs and the smallest distance between the nodes of any two bones."""
    mesh = model.mesh
    quality = _quality(mesh.nodes_mm, mesh.tets)
    names = {b.body_id: b.name for b in model.bodies}
    kinds = {b.body_id: b.kind for b in model.bodies}
    bodies = []
    for surface in body_surfaces(mesh):
        source = model.source_volume_mm3[surface.body_id]
        bodies.append({
            "body_id": surface.body_id, "name": names[surface.body_id],
            "kind": kinds[surface.body_id],
            "elements": surface.n_tets, "volume_ml": surface.volume_mm3 / 1000.0,
            "map_volume_ml": source / 1000.0,
            "volume_error_pct": 100.0 * (surface.volume_mm3 / source - 1.0),
            "closed": surface.closed, "manifold": surface.manifold, "pieces": surface.pieces,
            "dropped_voxels": model.dropped_voxels.get(surface.body_id, 0)})
    return {
        "nodes": len(mesh.nodes_mm), "elements": len(mesh.tets),
        **quality,
        "gap_voxels_changed": model.gap_voxels_changed, "bodies": bodies,
        "contacts": [{"pair": [names[a], names[b]], "faces": len(faces)}
                     for (a, b), faces in mesh.contacts.items()],
        "min_bone_gap_mm": _min_bone_gaps(model)}


#: Elements per chunk of the quality measures: their per-element temporaries (the corner
#: coordinates, 4 face normals) cost about 300 bytes an element, 3 GB for a 10 M-element model.
QUALITY_CHUNK = 1_000_000


def _quality(nodes_mm: np.ndarray, tets: np.ndarray) -> dict:
    """Inverted elements, the range of dihedral angles (degrees) and the smallest radius
    ratio, measured chunk by chunk."""
    inverted, low, high, ratio = 0, np.inf, -np.inf, np.inf
    for start in range(0, len(tets), QUALITY_CHUNK):
        chunk = tets[start:start + QUALITY_CHUNK]
        inverted += int(np.count_nonzero(tet_volumes_mm3(nodes_mm, chunk) <= 0))
        angles = dihedral_angles_deg(nodes_mm, chunk)
        low, high = min(low, float(angles.min())), max(high, float(angles.max()))
        ratio = min(ratio, float(radius_ratios(nodes_mm, chunk).min()))
    return {"inverted": inverted, "min_dihedral_deg": low, "max_dihedral_deg": high,
            "min_radius_ratio": ratio}


#: Bones farther apart than this are not a joint; their distance is not reported.
GAP_REPORT_MM = 30.0


def _min_bone_gaps(model: FeModel) -> dict[str, float]:
    """Per pair of bones closer than :data:`GAP_REPORT_MM`, the smallest distance (mm)
    between a node of one and a node of the other."""
    bones = [b for b in model.bodies if b.kind == "bone"]
    nodes = {b.body_id: model.mesh.nodes_mm[np.unique(model.mesh.tets[model.mesh.body == b.body_id])]
             for b in bones}
    gaps = {}
    for i, a in enumerate(bones):
        tree = cKDTree(nodes[a.body_id])
        for b in bones[i + 1:]:
            distance = tree.query(nodes[b.body_id], k=1, distance_upper_bound=GAP_REPORT_MM)[0]
            if np.isfinite(distance.min()):
                gaps[f"{a.name}-{b.name}"] = float(distance.min())
    return gaps


def format_fe_summary(report: dict) -> str:
    """The summary as text: the mesh, a line per body, the contact pairs and the bone gaps."""
    lines = [(f"{report['case']}: {report['elements']} tetrahedra, {report['nodes']} nodes "
              f"(grid {report['size_mm'] or 'of the map'} mm); dihedral angles "
              f"{report['min_dihedral_deg']:.1f}-{report['max_dihedral_deg']:.1f} deg, "
              f"radius ratio >= {report['min_radius_ratio']:.2f}, {report['inverted']} inverted; "
              f"{report['gap_voxels_changed']} voxels cleared to keep the bones apart"),
             f"  {'body':<34} {'kind':<9} {'elements':>9} {'ml':>8} {'vs map':>7}  surface"]
    for body in report["bodies"]:
        shape = ", ".join(flag for flag, ok in (("closed", body["closed"]),
                                                ("manifold", body["manifold"])) if ok)
        lines.append(f"  {body['name']:<34} {body['kind']:<9} {body['elements']:9d} "
                     f"{body['volume_ml']:8.2f} {body['volume_error_pct']:+6.1f}%  "
                     f"{shape or 'open'}; {body['pieces']} piece(s)")
    for contact in report["contacts"]:
        lines.append(f"  contact {contact['pair'][0]} / {contact['pair'][1]}: "
                     f"{contact['faces']} faces")
    for pair, gap in report["min_bone_gap_mm"].items():
        lines.append(f"  min gap {pair}: {gap:.2f} mm")
    seconds = ", ".join(f"{k} {v:.1f} s" for k, v in report["seconds"].items())
    lines.append(f"  time: {seconds}")
    return "\n".join(lines)
