"""A self-contained HTML QC report per case (``hipseg report``, ``hipseg predict --report``).

The page ``OUT/<case>_report.html`` inlines every image as a base64 PNG, so it can be mailed
or archived alone; each image is also written as ``OUT/<case>_<name>.png``. It shows:

* axial, coronal and sagittal slices through each hip joint centre with the label overlay,
  the collision map (:func:`~hipseg.collisions.collision_map`) and, when given, the
  view-disagreement map;
* an off-screen 3D rendering of the bone meshes (given, or extracted with
  :func:`~hipseg.mesh.label_surface_meshes`);
* the metrics against reference labels (:func:`~hipseg.workflows.evaluate.evaluate_case`) and
  the mesh QC (:func:`~hipseg.mesh.mesh_qc`) as tables.

**Joint centre.** Per side, the centroid of the femoral-head voxels facing the acetabulum:
the voxels of ``femur_<side>`` whose distance (mm) to ``hip_<side>`` is at most
:data:`JOINT_SHELL_MM` more than the femur's smallest distance to it. When the femur or the
hip bone of a side is missing, the centroid of the one present is used, and the page says so.

**Orientation.** Slices are array planes, never resampled: for each RAS axis the array axis
closest to it (:func:`nibabel.orientations.io_orientation`), flipped so the display follows
the radiological convention: axial and coronal views show the patient's right on the viewer's
left, anterior (axial) or superior (coronal, sagittal) at the top; sagittal views show
anterior on the left. Pixels have the voxel spacing's aspect ratio.

matplotlib (Agg) is imported here only; the rest of hipseg does not need it.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
from pathlib import Path

import edt
import nibabel as nib
import numpy as np

from hipseg.collisions import collision_map, default_eps_mm
from hipseg.core.atomic import atomic_path, atomic_write_text
from hipseg.core.errors import InputError
from hipseg.core.labels import LabelTable
from hipseg.core.volume import apply_affine
from hipseg.io import case_id, read_image, read_labels
from hipseg.mesh import LIBHIP_NAMES, label_surface_meshes
from hipseg.mesh import mesh_qc as compute_mesh_qc
from hipseg.workflows.evaluate import METRICS, evaluate_case

__all__ = ["CT_WINDOW_HU", "JOINT_SHELL_MM", "PLANES", "class_colours", "joint_centres",
           "write_case_report"]

logger = logging.getLogger(__name__)

#: CT display window for bone, HU.
CT_WINDOW_HU = (-200.0, 1200.0)
#: Femur voxels up to this much farther from the hip bone than the closest ones count as the
#: joint-facing part of the femoral head (mm).
JOINT_SHELL_MM = 15.0
PLANES = ("axial", "coronal", "sagittal")
SIDES = ("right", "left")
_PALETTE = ("#e6194b", "#4363d8", "#f58231", "#3cb44b", "#ffe119", "#911eb4", "#46f0f0",
            "#f032e6", "#bcf60c", "#9a6324")
_MAX_RENDER_FACES = 40000
_PLANE_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}  # the RAS axis the plane is normal to


def class_colours(table: LabelTable) -> dict[int, str]:
    """A fixed colour per foreground class id (``#rrggbb``)."""
    return {c: _PALETTE[(c - 1) % len(_PALETTE)] for c in table.foreground_ids}


def _need_matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the QC report needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def joint_centres(labels: np.ndarray, spacing_mm: np.ndarray,
                  table: LabelTable) -> tuple[dict[str, np.ndarray | None], list[str]]:
    """Voxel index (float, shape (3,)) of each hip joint centre, and notes on fallbacks.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), uint8
    spacing_mm : ndarray, shape (3,)
    table : LabelTable
        Classes ``femur_right``, ``femur_left``, ``hip_right``, ``hip_left`` are looked up by
        name; a missing one (in the table or the map) triggers the fallback.

    Returns
    -------
    centres : dict
        ``{"right": ijk or None, "left": ijk or None}``; ``None`` when neither bone is there.
    notes : list of str
    """
    centres, notes = {}, []
    for side in SIDES:
        masks = {}
        for bone in ("femur", "hip"):
            name = f"{bone}_{side}"
            present = name in table.names and np.any(labels == table.id_of(name))
            masks[bone] = (labels == table.id_of(name)) if present else None
        femur, hip = masks["femur"], masks["hip"]
        if femur is not None and hip is not None:
            distance = edt.edt(np.ascontiguousarray(~hip), anisotropy=tuple(map(float, spacing_mm)),
                               black_border=False)
            to_hip = distance[femur]
            shell = np.argwhere(femur)[to_hip <= to_hip.min() + JOINT_SHELL_MM]
            centres[side] = shell.mean(axis=0)
            continue
        present = [f"{b}_{side}" for b, m in masks.items() if m is not None]
        missing = [f"{b}_{side}" for b, m in masks.items() if m is None]
        if present:
            centres[side] = np.argwhere(masks[present[0].split("_")[0]]).mean(axis=0)
            notes.append(f"{side} hip joint: {', '.join(missing)} missing; slices go through the "
                         f"centroid of {present[0]} instead of the joint centre.")
        else:
            centres[side] = None
            notes.append(f"{side} hip joint: {' and '.join(missing)} missing; no slices.")
    return centres, notes


def _ras_view(affine: np.ndarray, shape: tuple[int, ...]):
    """Array axis closest to each RAS axis and whether it runs against it."""
    ornt = nib.orientations.io_orientation(affine)
    axis_of = [int(np.flatnonzero(ornt[:, 0] == r)[0]) for r in range(3)]
    flipped = [bool(ornt[axis_of[r], 1] < 0) for r in range(3)]

    def to_ras(array: np.ndarray) -> np.ndarray:
        out = np.transpose(array, axis_of)
        return out[tuple(slice(None, None, -1) if f else slice(None) for f in flipped)]

    def index_to_ras(ijk: np.ndarray) -> np.ndarray:
        return np.array([shape[axis_of[r]] - 1 - ijk[axis_of[r]] if flipped[r] else ijk[axis_of[r]]
                         for r in range(3)])

    return to_ras, index_to_ras, axis_of


def _plane(volume_ras: np.ndarray, plane: str, index: int) -> np.ndarray:
    """A display slice: rows top to bottom, columns left to right (see the module docstring)."""
    taken = np.take(volume_ras, index, axis=_PLANE_AXIS[plane])  # (x, y), (x, z) or (y, z)
    return taken.T[::-1, ::-1]  # +y / +z up; +x (patient's right) or +y (anterior) on the left


def _overlay_rgba(codes: np.ndarray, colours: dict[int, str], alpha: float) -> np.ndarray:
    from matplotlib.colors import to_rgba
    rgba = np.zeros((*codes.shape, 4), np.float32)
    for code, colour in colours.items():
        rgba[codes == code] = (*to_rgba(colour)[:3], alpha)
    return rgba


def _slice_figure(plt, title: str, panels: list[dict], legend: list[tuple[str, str]],
                  colorbar: bool = False) -> bytes:
    """One PNG: a panel per joint side; each panel dict holds ``ct``, ``extent``, ``layers``."""
    shown = [p for p in panels if p is not None]
    aspect = shown[0]["extent"][2] / shown[0]["extent"][1] if shown else 1.0  # height / width
    panel_in, top_in, bottom_in = 5.6, 0.8, 0.5 if legend else 0.15
    right_in = 1.1 if colorbar else 0.1
    width_in = len(panels) * panel_in + 0.3 * (len(panels) - 1) + right_in + 0.1
    height_in = panel_in * aspect + top_in + bottom_in
    fig, axes = plt.subplots(1, len(panels), figsize=(width_in, height_in), squeeze=False)
    fig.subplots_adjust(left=0.1 / width_in, right=1 - right_in / width_in,
                        top=1 - top_in / height_in, bottom=bottom_in / height_in,
                        wspace=0.3 / panel_in)
    image = None
    for ax, panel in zip(axes[0], panels, strict=True):
        ax.set_xticks([])
        ax.set_yticks([])
        if panel is None:
            ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.imshow(panel["ct"], cmap="gray", vmin=CT_WINDOW_HU[0], vmax=CT_WINDOW_HU[1],
                  extent=panel["extent"], interpolation="nearest")
        for layer in panel["layers"]:
            image = ax.imshow(layer["data"], extent=panel["extent"], interpolation="nearest",
                              **layer.get("style", {}))
        if panel["contours"] is not None:
            rows, cols = panel["contours"].shape
            ax.contour((np.arange(cols) + 0.5) * panel["extent"][1] / cols,
                       (np.arange(rows) + 0.5) * panel["extent"][2] / rows,
                       (panel["contours"] > 0).astype(np.float32), levels=[0.5], colors="white",
                       linewidths=0.5)
        ax.plot(*panel["marker"], "+", color="yellow", markersize=12, markeredgewidth=1.2)
        ax.set_title(panel["title"], fontsize=10)
        for text, x, y, ha, va in panel["orientation_marks"]:
            ax.text(x, y, text, color="yellow", fontsize=11, fontweight="bold", ha=ha, va=va,
                    transform=ax.transAxes)
    if colorbar and image is not None:
        bar = fig.add_axes((1 - (right_in - 0.2) / width_in, bottom_in / height_in,
                            0.2 / width_in, 1 - (top_in + bottom_in) / height_in))
        fig.colorbar(image, cax=bar, label="fraction of views disagreeing")
    if legend:
        from matplotlib.patches import Patch
        fig.legend(handles=[Patch(color=c, label=n) for n, c in legend], loc="lower center",
                   ncol=min(len(legend), 5), fontsize=11, frameon=False)
    fig.suptitle(title, fontsize=13)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


_MARKS = {"axial": ("R", "L", "A", "P"), "coronal": ("R", "L", "S", "I"),
          "sagittal": ("A", "P", "S", "I")}


def _slice_panels(volumes: dict[str, np.ndarray], centres_ras: dict, centres_mm: dict,
                  spacing_ras: np.ndarray, plane: str, layers, contours: bool) -> list[dict | None]:
    panels = []
    axis = _PLANE_AXIS[plane]
    in_plane = [a for a in range(3) if a != axis]  # display columns, rows
    for side in SIDES:
        centre = centres_ras[side]
        if centre is None:
            panels.append(None)
            continue
        index = int(np.clip(round(centre[axis]), 0, volumes["ct"].shape[axis] - 1))
        ct = _plane(volumes["ct"], plane, index)
        width = ct.shape[1] * spacing_ras[in_plane[0]]
        height = ct.shape[0] * spacing_ras[in_plane[1]]
        col = (volumes["ct"].shape[in_plane[0]] - 0.5 - centre[in_plane[0]]) * spacing_ras[in_plane[0]]
        row = (volumes["ct"].shape[in_plane[1]] - 0.5 - centre[in_plane[1]]) * spacing_ras[in_plane[1]]
        left, right, top, bottom = _MARKS[plane]
        panels.append({
            "ct": ct, "extent": (0.0, width, height, 0.0), "marker": (col, row),
            "title": f"{side} hip joint, {'xyz'[axis]} = {centres_mm[side][axis]:.1f} mm",
            "layers": layers(lambda name, _i=index: _plane(volumes[name], plane, _i)),
            "contours": _plane(volumes["labels"], plane, index) if contours else None,
            "orientation_marks": [(left, 0.02, 0.5, "left", "center"),
                                  (right, 0.98, 0.5, "right", "center"),
                                  (top, 0.5, 0.98, "center", "top"),
                                  (bottom, 0.5, 0.02, "center", "bottom")],
        })
    return panels


def _decimate(vertices: np.ndarray, faces: np.ndarray, cell_mm: float):
    """Vertex clustering: merge vertices in the same ``cell_mm`` cube, drop collapsed faces."""
    keys = np.floor(vertices / cell_mm).astype(np.int64)
    _, cluster = np.unique(keys, axis=0, return_inverse=True)
    cluster = cluster.ravel()
    merged = np.zeros((cluster.max() + 1, 3))
    np.add.at(merged, cluster, vertices)
    merged /= np.bincount(cluster)[:, None]
    new_faces = cluster[faces]
    keep = ((new_faces[:, 0] != new_faces[:, 1]) & (new_faces[:, 1] != new_faces[:, 2])
            & (new_faces[:, 0] != new_faces[:, 2]))
    return merged, new_faces[keep]


def _mesh_figure(plt, meshes: dict, colours: dict[str, str]) -> bytes:
    from matplotlib.colors import to_rgb
    from mpl_toolkits.mplot3d.art3d import Poly3DCollection
    total = sum(len(m.faces) for m in meshes.values())
    cell_mm = 1.0
    decimated = {}
    while True:
        decimated = {n: _decimate(np.asarray(m.vertices), np.asarray(m.faces), cell_mm)
                     for n, m in meshes.items()}
        if sum(len(f) for _, f in decimated.values()) <= _MAX_RENDER_FACES or total == 0:
            break
        cell_mm *= 1.5
    light = np.array([0.3, 0.8, 0.5]) / np.linalg.norm([0.3, 0.8, 0.5])
    triangles = np.concatenate([v[f] for v, f in decimated.values()])
    base = np.concatenate([np.tile(to_rgb(colours[n]), (len(f), 1))
                           for n, (_, f) in decimated.items()])
    normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    facecolors = np.clip(base * (0.35 + 0.65 * np.abs(normals @ light))[:, None], 0, 1)
    fig = plt.figure(figsize=(13, 6.5))
    fig.subplots_adjust(left=0, right=1, bottom=0.06, top=0.9, wspace=0)
    points = np.concatenate([v for v, _ in decimated.values()])
    lo, hi = points.min(axis=0), points.max(axis=0)
    views = (("anterior view (patient's right on the left)", 10, 90),
             ("oblique view from the patient's right, front and above", 25, 35))
    for k, (title, elev, azim) in enumerate(views, 1):
        ax = fig.add_subplot(1, 2, k, projection="3d")
        # One collection for all bones: mplot3d depth-sorts faces within a collection only.
        ax.add_collection3d(Poly3DCollection(triangles, facecolors=facecolors, linewidths=0))
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_zlim(lo[2], hi[2])
        ax.set_box_aspect(hi - lo, zoom=1.1)
        ax.set_proj_type("ortho")
        ax.view_init(elev=elev, azim=azim)
        ax.set_axis_off()
        ax.set_title(title, fontsize=10)
    from matplotlib.patches import Patch
    fig.legend(handles=[Patch(color=c, label=n) for n, c in colours.items() if n in meshes],
               loc="lower center", ncol=5, fontsize=11, frameon=False)
    fig.suptitle(f"bone meshes (RAS mm; drawn with vertices merged in {cell_mm:.1f} mm cells)",
                 fontsize=13)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _number(value: float, digits: int = 4) -> str:
    return "n/a" if math.isnan(value) else ("inf" if math.isinf(value) else f"{value:.{digits}f}")


def _metrics_html(row: dict, table: LabelTable) -> str:
    names = [*(table.names[c] for c in table.foreground_ids), "mean"]
    return _html_table(["class", "Dice", "GapDice", "HD (mm)", "HD95 (mm)", "ASSD (mm)"],
                       [[n, *(_number(row[f"{m}_{n}"]) for m in METRICS)] for n in names])


def _mesh_qc_html(qc: dict) -> str:
    def flag(ok: bool) -> str:
        return "yes" if ok else "NO"
    bones = _html_table(
        ["bone", "vertices", "faces", "volume (ml)", "watertight", "manifold", "outward",
         "self-intersections", "degenerate faces"],
        [[b, str(r["n_vertices"]), str(r["n_faces"]), f"{r['volume_ml']:.1f}",
          flag(r["watertight"]), flag(r["manifold"]), flag(r["outward"]),
          str(r["n_self_intersections"]), str(r.get("n_degenerate_faces", ""))]
         for b, r in qc["bones"].items()])
    pairs = _html_table(
        ["pair", "min distance (mm)", "closest point on first bone (RAS mm)"],
        [[f"{p['bones'][0]} - {p['bones'][1]}",
          f"{p['distance_mm']:.2f}" + (" (TOUCHING)" if p["distance_mm"] <= 0 else ""),
          ", ".join(f"{x:.1f}" for x in p["point_a_mm"])] for p in qc["pairs"]])
    extra = [f"{k}: {qc[k]}" for k in ("gap_voxels_changed", "coordinates", "distance_method")
             if k in qc]
    return bones + pairs + (f"<p>{html.escape('; '.join(extra))}</p>" if extra else "")


_CSS = ("body{font-family:sans-serif;margin:1.5em;max-width:1300px}img{max-width:100%;"
        "border:1px solid #ccc;margin:4px 0}table{border-collapse:collapse;margin:0.5em 0}"
        "td,th{border:1px solid #bbb;padding:2px 8px;text-align:right}th{background:#eee}"
        ".swatch{display:inline-block;width:1em;height:1em;margin:0 4px 0 12px;"
        "vertical-align:middle}.note{color:#a40}")


def write_case_report(image_path: Path, labels_path: Path, out_dir: Path, table: LabelTable, *,
                      uncertainty_path: Path | None = None,
                      reference_labels_path: Path | None = None, mesh_qc: dict | None = None,
                      meshes: dict | None = None, eps_mm: float | None = None) -> Path:
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

    Returns
    -------
    Path
        The HTML file. Every write is atomic.
    """
    plt = _need_matplotlib()
    image = read_image(image_path)
    labels = read_labels(labels_path, table, reference=image)
    case, out_dir = case_id(Path(image_path)), Path(out_dir)
    spacing = image.spacing_mm
    eps_mm = default_eps_mm(spacing) if eps_mm is None else float(eps_mm)
    centres, notes = joint_centres(labels.data, spacing, table)
    to_ras, index_to_ras, axis_of = _ras_view(image.affine, image.shape)
    spacing_ras = spacing[axis_of]
    centres_ras = {s: None if c is None else index_to_ras(c) for s, c in centres.items()}
    centres_mm = {s: None if c is None else apply_affine(image.affine, c) for s, c in centres.items()}
    centre_text = "; ".join(f"{s} hip joint centre at RAS ({', '.join(f'{x:.1f}' for x in c)}) mm"
                            for s, c in centres_mm.items() if c is not None)
    codes, pairs = collision_map(labels.data, spacing, eps_mm)
    volumes = {"ct": to_ras(image.data), "labels": to_ras(labels.data), "collisions": to_ras(codes)}
    colours = class_colours(table)
    pair_colours = {code: _PALETTE[(code - 1) % len(_PALETTE)] for code in np.unique(codes) if code}
    class_legend = [(table.names[c], colours[c]) for c in table.foreground_ids]
    pair_legend = [(f"{table.names[pairs[c - 1][0]]} / {table.names[pairs[c - 1][1]]}", col)
                   for c, col in pair_colours.items()]
    n_collisions = int(np.count_nonzero(codes))

    kinds = {"labels": (lambda get: [{"data": _overlay_rgba(get("labels"), colours, 0.45)}],
                        class_legend, "label overlay", False)}
    kinds["collisions"] = (lambda get: [{"data": _overlay_rgba(get("collisions"), pair_colours, 0.9)}],
                           pair_legend, f"collision map (eps {eps_mm:.2f} mm, |E| = {n_collisions})",
                           False)
    if uncertainty_path is not None:
        volumes["disagreement"] = to_ras(_read_map(Path(uncertainty_path), image.shape))
        kinds["disagreement"] = (lambda get: [{"data": np.ma.masked_less_equal(get("disagreement"), 0),
                                               "style": {"cmap": "magma", "vmin": 0, "vmax": 1,
                                                         "alpha": 0.8}}],
                                 [], "view disagreement", True)
    images: list[tuple[str, str, bytes]] = []  # (name, caption, png)
    for kind, (layers, legend, caption, colorbar) in kinds.items():
        for plane in PLANES:
            panels = _slice_panels(volumes, centres_ras, centres_mm, spacing_ras, plane, layers,
                                   contours=kind != "labels")
            png = _slice_figure(plt, f"{case}: {caption}, {plane}", panels, legend, colorbar)
            images.append((f"{kind}_{plane}", f"{caption}, {plane}", png))
    if meshes is None:
        try:
            meshes = label_surface_meshes(labels.data, labels.affine, table)
        except ValueError as err:
            meshes = {}
            notes.append(f"no meshes: {err}")
    if meshes:
        mesh_colours = {}
        for name in meshes:
            ids = [c for c in table.foreground_ids if name in (table.names[c], _libhip(table.names[c]))]
            mesh_colours[name] = colours[ids[0]] if ids else "#aaaaaa"
        images.append(("meshes", "bone meshes", _mesh_figure(plt, meshes, mesh_colours)))
        if mesh_qc is None:
            mesh_qc = compute_mesh_qc(meshes)
    metrics_row = None
    if reference_labels_path is not None:
        reference = read_labels(reference_labels_path, table, reference=image)
        metrics_row = evaluate_case(labels.data, reference.data, spacing, table)

    for name, _, png in images:
        with atomic_path(out_dir / f"{case}_{name}.png") as tmp:
            tmp.write_bytes(png)
    page = _page(case, image_path, labels_path, table, colours, notes, images, metrics_row,
                 mesh_qc, eps_mm, centre_text)
    path = out_dir / f"{case}_report.html"
    atomic_write_text(path, page)
    logger.info("wrote %s (%d images)", path, len(images))
    return path


def _libhip(name: str) -> str:
    return LIBHIP_NAMES.get(name, name)


def _read_map(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A float map on the image grid (a constant map is fine, unlike :func:`read_image`)."""
    try:
        data = np.asarray(nib.load(path).dataobj, dtype=np.float32)
    except (OSError, ValueError, nib.filebasedimages.ImageFileError) as err:
        raise InputError(path, f"unreadable NIfTI ({err})") from None
    data = data[..., 0] if data.ndim == 4 and data.shape[3] == 1 else data
    if data.shape != tuple(shape):
        raise InputError(path, f"shape {data.shape} differs from the image's {tuple(shape)}")
    return data


def _page(case, image_path, labels_path, table, colours, notes, images, metrics_row, mesh_qc,
          eps_mm, centre_text) -> str:
    esc = html.escape
    legend = "".join(f'<span class="swatch" style="background:{colours[c]}"></span>'
                     f"{esc(table.names[c])}" for c in table.foreground_ids)
    parts = [(f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{esc(case)} QC report"
              f"</title><style>{_CSS}</style></head><body><h1>hipseg QC report: {esc(case)}</h1>"),
             f"<p>image: {esc(str(image_path))}<br>labels: {esc(str(labels_path))}</p>",
             f"<p><b>Legend</b> (label overlay):{legend}</p>",
             ("<p>Orientation: radiological convention. Axial and coronal slices show the "
             "patient's right on the viewer's left (R/L marks), anterior (axial) or superior "
             "(coronal) at the top; sagittal slices show anterior on the left and superior at the "
             "top. Slices are planes of the scan's own array (the axis closest to each RAS axis, "
             "not resampled), drawn with the voxel spacing's aspect ratio. CT window "
             f"[{CT_WINDOW_HU[0]:g}, {CT_WINDOW_HU[1]:g}] HU. The yellow + marks the hip joint "
             "centre: the centroid of the femur voxels within "
             f"{JOINT_SHELL_MM:g} mm of the femur's closest approach to the hip bone of the same "
             f"side. Collisions: voxels within eps = {eps_mm:.2f} mm of another bone.</p>"),
             f"<p>{esc(centre_text)}.</p>" if centre_text else ""]
    parts += [f'<p class="note">Note: {esc(n)}</p>' for n in notes]
    section = None
    for name, caption, png in images:
        kind = name.split("_")[0]
        if kind != section:
            parts.append(f"<h2>{esc(caption.rsplit(',', 1)[0])}</h2>")
            section = kind
        data = base64.b64encode(png).decode("ascii")
        parts.append(f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{data}">'
                     f"<figcaption>{esc(case)}_{esc(name)}.png</figcaption></figure>")
    if metrics_row is not None:
        parts += ["<h2>Metrics against the reference labels</h2>",
                  _metrics_html(metrics_row, table)]
    if mesh_qc is not None:
        parts += ["<h2>Mesh QC</h2>", _mesh_qc_html(mesh_qc)]
    parts.append("</body></html>")
    return "\n".join(parts)
