"""The report's pictures: slices through the joints with overlays, and the meshes in 3D.

**Orientation.** Slices are array planes, never resampled: for each RAS axis the array axis
closest to it (:func:`nibabel.orientations.io_orientation`), flipped so the display follows
the radiological convention: axial and coronal views show the patient's right on the viewer's
left, anterior (axial) or superior (coronal, sagittal) at the top; sagittal views show
anterior on the left. Pixels have the voxel spacing's aspect ratio.

matplotlib (Agg) is imported here only, when a figure is made; the rest of hipseg does not
need it.
"""

from __future__ import annotations

import io

import nibabel as nib
import numpy as np

from hipseg.core.labels import LabelTable
from hipseg.qc.anatomy import SIDES

__all__ = ["CT_WINDOW_HU", "PALETTE", "PLANES", "class_colours", "fe_panels", "mesh_figure",
           "need_matplotlib", "overlay_rgba", "ras_view", "slice_figure", "slice_panels"]

#: CT display window for bone, HU.
CT_WINDOW_HU = (-200.0, 1200.0)
PLANES = ("axial", "coronal", "sagittal")
PALETTE = ("#e6194b", "#4363d8", "#f58231", "#3cb44b", "#ffe119", "#911eb4", "#46f0f0",
            "#f032e6", "#bcf60c", "#9a6324")
_MAX_RENDER_FACES = 40000
_PLANE_AXIS = {"axial": 2, "coronal": 1, "sagittal": 0}  # the RAS axis the plane is normal to


def class_colours(table: LabelTable) -> dict[int, str]:
    """A fixed colour per foreground class id (``#rrggbb``)."""
    return {c: PALETTE[(c - 1) % len(PALETTE)] for c in table.foreground_ids}


def need_matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("the QC report needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def ras_view(affine: np.ndarray, shape: tuple[int, ...]):
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


def overlay_rgba(codes: np.ndarray, colours: dict[int, str], alpha: float) -> np.ndarray:
    from matplotlib.colors import to_rgba
    rgba = np.zeros((*codes.shape, 4), np.float32)
    for code, colour in colours.items():
        rgba[codes == code] = (*to_rgba(colour)[:3], alpha)
    return rgba


def slice_figure(plt, title: str, panels: list[dict], legend: list[tuple[str, str]],
                  colorbar: bool = False) -> bytes:
    """One PNG: a panel per joint side; each panel dict holds ``ct``, ``extent``, ``layers``."""
    shown = [p for p in panels if p is not None]
    aspect = shown[0]["extent"][2] / shown[0]["extent"][1] if shown else 1.0  # height / width
    rows_of_legend = -(-len(legend) // 5)
    panel_in, top_in, bottom_in = 5.6, 0.8, 0.2 + 0.3 * rows_of_legend if legend else 0.15
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
        if panel["ct"] is not None:
            ax.imshow(panel["ct"], cmap="gray", vmin=CT_WINDOW_HU[0], vmax=CT_WINDOW_HU[1],
                      extent=panel["extent"], interpolation="nearest")
        else:
            ax.set_facecolor("black")
        for layer in panel["layers"]:
            image = ax.imshow(layer["data"], extent=panel["extent"], interpolation="nearest",
                              **layer.get("style", {}))
        if panel["contours"] is not None:
            rows, cols = panel["contours"].shape
            ax.contour((np.arange(cols) + 0.5) * panel["extent"][1] / cols,
                       (np.arange(rows) + 0.5) * panel["extent"][2] / rows,
                       (panel["contours"] > 0).astype(np.float32), levels=[0.5], colors="white",
                       linewidths=0.5)
        if "grid" in panel:  # element edges
            columns, rows = panel["grid"]
            ax.vlines(columns, 0, panel["extent"][2], colors="white", linewidths=0.2, alpha=0.5)
            ax.hlines(rows, 0, panel["extent"][1], colors="white", linewidths=0.2, alpha=0.5)
            ax.set_xlim(0, panel["extent"][1])
            ax.set_ylim(panel["extent"][2], 0)
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


def slice_panels(volumes: dict[str, np.ndarray], centres_ras: dict, centres_mm: dict,
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


def fe_panels(bodies_ras: np.ndarray, spacing_ras: np.ndarray, centres_ras: dict,
              centres_mm: dict, colours: dict[int, str], window_mm: float = 60.0
              ) -> list[dict | None]:
    """Coronal panels of an FE body map, ``window_mm`` wide around each hip joint centre:
    every body in its colour and the element edges (for :func:`slice_figure`).

    Parameters
    ----------
    bodies_ras : ndarray, shape (X, Y, Z), int
        The body map on the element grid, in its RAS view (:func:`ras_view`).
    spacing_ras : ndarray, shape (3,)
        Element edge along each RAS axis (mm).
    centres_ras : dict
        Per side, the joint centre as an index of ``bodies_ras`` (or None).
    centres_mm : dict
        Per side, the joint centre in scanner mm (for the title).
    colours : dict of int to str
        Colour of each body id.

    Returns
    -------
    list of dict or None
        Per side (None without a centre); each panel also holds ``codes``, the body ids it
        shows (rows top to bottom, columns left to right).
    """
    axis = _PLANE_AXIS["coronal"]
    in_plane = [a for a in range(3) if a != axis]  # display columns, rows
    panels: list[dict | None] = []
    for side in SIDES:
        centre = centres_ras[side]
        if centre is None:
            panels.append(None)
            continue
        index = int(np.clip(round(centre[axis]), 0, bodies_ras.shape[axis] - 1))
        codes = _plane(bodies_ras, "coronal", index)
        window = []
        for display_axis, ras_axis in ((1, in_plane[0]), (0, in_plane[1])):
            at = bodies_ras.shape[ras_axis] - 1 - centre[ras_axis]  # the display flips
            half = 0.5 * window_mm / spacing_ras[ras_axis]
            low = int(np.clip(round(at - half), 0, codes.shape[display_axis] - 1))
            high = int(np.clip(round(at + half) + 1, low + 1, codes.shape[display_axis]))
            window.append((low, high, at))
        (c0, c1, col), (r0, r1, row) = window
        crop = codes[r0:r1, c0:c1]
        sx, sz = spacing_ras[in_plane[0]], spacing_ras[in_plane[1]]
        panels.append({
            "ct": None, "extent": (0.0, crop.shape[1] * sx, crop.shape[0] * sz, 0.0),
            "marker": ((col - c0 + 0.5) * sx, (row - r0 + 0.5) * sz),
            "title": f"{side} hip joint, y = {centres_mm[side][axis]:.1f} mm",
            "layers": [{"data": overlay_rgba(crop, colours, 1.0)}], "contours": None,
            "grid": (np.arange(crop.shape[1] + 1) * sx, np.arange(crop.shape[0] + 1) * sz),
            "codes": crop,
            "orientation_marks": [("R", 0.02, 0.5, "left", "center"),
                                  ("L", 0.98, 0.5, "right", "center"),
                                  ("S", 0.5, 0.98, "center", "top"),
                                  ("I", 0.5, 0.02, "center", "bottom")],
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


def mesh_figure(plt, meshes: dict, colours: dict[str, str]) -> bytes:
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
