"""A self-contained HTML QC report per case (``hipseg report``, ``hipseg predict --report``).

The page ``OUT/<case>_report.html`` inlines every image as a base64 PNG, so it can be mailed
or archived alone; each image is also written as ``OUT/<case>_<name>.png``. It shows:

* axial, coronal and sagittal slices through each hip joint centre with the label overlay,
  the collision map (:func:`~hipseg.collisions.collision_map`) and, when given, the
  view-disagreement map;
* an off-screen 3D rendering of the bone meshes (given, or extracted with
  :func:`~hipseg.mesh.label_surface_meshes`);
* when an FE model was built (``hipseg fe``, ``predict --fe``): coronal slices of its body map
  through each hip joint, every body in its colour, with the element edges;
* the metrics against reference labels (:func:`~hipseg.evaluation.evaluate.evaluate_case`) and
  the mesh QC (:func:`~hipseg.mesh.mesh_qc`) as tables.

Where the slices are cut: :mod:`hipseg.qc.anatomy` (joint centres); the pictures:
:mod:`hipseg.qc.figures`; the page: :mod:`hipseg.qc.html`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hipseg.collisions import collision_map, default_eps_mm
from hipseg.core.atomic import atomic_path, atomic_write_text
from hipseg.core.labels import LabelTable
from hipseg.core.volume import apply_affine
from hipseg.evaluation.evaluate import evaluate_case
from hipseg.io import PredictionFiles, case_id, read_image, read_labels, read_map
from hipseg.io.guard import check_output_folder, refuse_overwriting_inputs
from hipseg.mesh import label_surface_meshes
from hipseg.mesh import mesh_qc as compute_mesh_qc
from hipseg.qc.anatomy import joint_centres
from hipseg.qc.figures import (
    PALETTE,
    PLANES,
    class_colours,
    fe_panels,
    mesh_figure,
    need_matplotlib,
    overlay_rgba,
    ras_view,
    slice_figure,
    slice_panels,
)
from hipseg.qc.html import libhip_name, page_html

__all__ = ["write_case_report"]

logger = logging.getLogger(__name__)


def write_case_report(image_path: Path, labels_path: Path, out_dir: Path, table: LabelTable, *,
                      uncertainty_path: Path | None = None,
                      reference_labels_path: Path | None = None, mesh_qc: dict | None = None,
                      meshes: dict | None = None, eps_mm: float | None = None,
                      fe_bodies_path: Path | None = None, fe_summary: dict | None = None) -> Path:
    """Write ``OUT/<case>_report.html`` (images inlined) and its PNGs ``OUT/<case>_<name>.png``.

    Parameters
    ----------
    image_path, labels_path : Path
        CT image and label map (prediction) on the same grid; ``<case>`` is the image's id.
    out_dir : Path
    table : LabelTable
    uncertainty_path : Path, optional
        View-disagreement map (``<case>_uncertainty.nii.gz``) on the same grid.
    reference_labels_path : Path, optional
        Reference labels: adds the metrics table.
    mesh_qc : dict, optional
        A :func:`~hipseg.mesh.mesh_qc` report (e.g. ``<case>_mesh_qc.json``); computed from the
        meshes when not given.
    meshes : dict of str to trimesh.Trimesh, optional
        Bone meshes (RAS mm); extracted from the labels when not given.
    eps_mm : float, optional
        Collision distance; default :func:`~hipseg.collisions.default_eps_mm` of the spacing.
    fe_bodies_path, fe_summary : Path and dict, optional
        An FE model's ``<case>_fe_bodies.nii.gz`` and ``<case>_fe.json`` content (both or
        neither): adds its picture.

    Returns
    -------
    Path
        The HTML file. Every write is atomic.
    """
    plt = need_matplotlib()
    inputs = [p for p in (image_path, labels_path, uncertainty_path, reference_labels_path)
              if p is not None]
    check_output_folder(out_dir)
    refuse_overwriting_inputs(inputs, [PredictionFiles(Path(out_dir), case_id(Path(image_path)))
                                       .report(Path(out_dir))])
    image = read_image(image_path)
    labels = read_labels(labels_path, table, reference=image)
    case, out_dir = case_id(Path(image_path)), Path(out_dir)
    spacing = image.spacing_mm
    eps_mm = default_eps_mm(spacing) if eps_mm is None else float(eps_mm)
    centres, notes = joint_centres(labels.data, spacing, table)
    to_ras, index_to_ras, axis_of = ras_view(image.affine, image.shape)
    spacing_ras = spacing[axis_of]
    centres_ras = {s: None if c is None else index_to_ras(c) for s, c in centres.items()}
    centres_mm = {s: None if c is None else apply_affine(image.affine, c) for s, c in centres.items()}
    centre_text = "; ".join(f"{s} hip joint centre at RAS ({', '.join(f'{x:.1f}' for x in c)}) mm"
                            for s, c in centres_mm.items() if c is not None)
    codes, pairs = collision_map(labels.data, spacing, eps_mm)
    volumes = {"ct": to_ras(image.data), "labels": to_ras(labels.data), "collisions": to_ras(codes)}
    colours = class_colours(table)
    pair_colours = {code: PALETTE[(code - 1) % len(PALETTE)] for code in np.unique(codes) if code}
    class_legend = [(table.names[c], colours[c]) for c in table.foreground_ids]
    pair_legend = [(f"{table.names[pairs[c - 1][0]]} / {table.names[pairs[c - 1][1]]}", col)
                   for c, col in pair_colours.items()]
    n_collisions = int(np.count_nonzero(codes))

    kinds = {"labels": (lambda get: [{"data": overlay_rgba(get("labels"), colours, 0.45)}],
                        class_legend, "label overlay", False)}
    kinds["collisions"] = (lambda get: [{"data": overlay_rgba(get("collisions"), pair_colours, 0.9)}],
                           pair_legend, f"collision map (eps {eps_mm:.2f} mm, |E| = {n_collisions})",
                           False)
    if uncertainty_path is not None:
        volumes["disagreement"] = to_ras(read_map(Path(uncertainty_path), image).data)
        kinds["disagreement"] = (lambda get: [{"data": np.ma.masked_less_equal(get("disagreement"), 0),
                                               "style": {"cmap": "magma", "vmin": 0, "vmax": 1,
                                                         "alpha": 0.8}}],
                                 [], "view disagreement", True)
    images: list[tuple[str, str, bytes]] = []  # (name, caption, png)
    for kind, (layers, legend, caption, colorbar) in kinds.items():
        for plane in PLANES:
            panels = slice_panels(volumes, centres_ras, centres_mm, spacing_ras, plane, layers,
                                   contours=kind != "labels")
            png = slice_figure(plt, f"{case}: {caption}, {plane}", panels, legend, colorbar)
            images.append((f"{kind}_{plane}", f"{caption}, {plane}", png))
    if (fe_bodies_path is None) != (fe_summary is None):
        raise ValueError("an FE model needs both its body map and its summary")
    if fe_bodies_path is not None:
        images.append(_fe_image(plt, case, fe_bodies_path, fe_summary, centres_mm, colours))
    if meshes is None:
        try:
            meshes = label_surface_meshes(labels.data, labels.affine, table)
        except ValueError as err:
            meshes = {}
            notes.append(f"no meshes: {err}")
    if meshes:
        mesh_colours = {}
        for name in meshes:
            ids = [c for c in table.foreground_ids if name in (table.names[c], libhip_name(table.names[c]))]
            mesh_colours[name] = colours[ids[0]] if ids else "#aaaaaa"
        images.append(("meshes", "bone meshes", mesh_figure(plt, meshes, mesh_colours)))
        if mesh_qc is None:
            mesh_qc = compute_mesh_qc(meshes)
    metrics_row = None
    if reference_labels_path is not None:
        reference = read_labels(reference_labels_path, table, reference=image)
        metrics_row = evaluate_case(labels.data, reference.data, spacing, table)

    # The page is made before any file is written, so a bad report leaves nothing behind.
    page = page_html(case, image_path, labels_path, table, colours, notes, images, metrics_row,
                     mesh_qc, eps_mm, centre_text)
    for name, _, png in images:
        with atomic_path(out_dir / f"{case}_{name}.png") as tmp:
            tmp.write_bytes(png)
    path = PredictionFiles(out_dir, case).report(out_dir)
    atomic_write_text(path, page)
    logger.info("wrote %s (%d images)", path, len(images))
    return path


def _fe_image(plt, case: str, bodies_path: Path, summary: dict, centres_mm: dict,
              colours: dict[int, str]) -> tuple[str, str, bytes]:
    """The FE model's picture: its bodies and elements around each hip joint centre."""
    volume = read_image(bodies_path)
    to_ras, index_to_ras, axis_of = ras_view(volume.affine, volume.shape)
    inverse = np.linalg.inv(volume.affine)
    centres_ras = {s: None if c is None else index_to_ras(apply_affine(inverse, c))
                   for s, c in centres_mm.items()}
    body_colours, legend = {}, []
    cartilage = iter(PALETTE[5:] + PALETTE[:5])
    for body in summary["bodies"]:
        colour = colours.get(body["body_id"]) if body["kind"] == "bone" else next(cartilage)
        body_colours[body["body_id"]] = colour
        legend.append((body["name"], colour))
    panels = fe_panels(np.rint(to_ras(volume.data)).astype(np.int64), volume.spacing_mm[axis_of],
                       centres_ras, centres_mm, body_colours)
    caption = (f"FE model: {summary['elements']} tetrahedra on a {summary['size_mm']} mm grid "
               f"(6 per voxel), coronal")
    return "fe_coronal", caption, slice_figure(plt, f"{case}: {caption}", panels, legend)
