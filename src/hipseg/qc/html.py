"""The report's page: tables of metrics and mesh QC, and the HTML around the pictures."""

from __future__ import annotations

import base64
import html
import math

from hipseg.core.labels import LabelTable
from hipseg.evaluation.evaluate import METRICS
from hipseg.mesh import LIBHIP_NAMES
from hipseg.qc.anatomy import JOINT_SHELL_MM
from hipseg.qc.figures import CT_WINDOW_HU

__all__ = ["libhip_name", "page_html"]


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


_BONE_FIELDS = {"n_vertices": int, "n_faces": int, "volume_ml": (int, float), "watertight": bool,
                "manifold": bool, "outward": bool, "n_self_intersections": int}
_PAIR_FIELDS = {"bones": list, "distance_mm": (int, float), "point_a_mm": list}


def mesh_qc_problem(qc: object) -> str | None:
    """What keeps ``qc`` from being a mesh QC report (:func:`~hipseg.mesh.mesh_qc`'s shape:
    ``bones`` by name, a list of ``pairs``), or ``None`` when it is one."""
    if not isinstance(qc, dict) or not isinstance(qc.get("bones"), dict) \
            or not isinstance(qc.get("pairs"), list):
        return "not a mesh QC report: expected an object with 'bones' (an object) and 'pairs' " \
               "(a list)"
    rows = [(f"bones.{bone}", row, _BONE_FIELDS) for bone, row in qc["bones"].items()]
    rows += [(f"pairs[{i}]", row, _PAIR_FIELDS) for i, row in enumerate(qc["pairs"])]
    for name, row, fields in rows:
        if not isinstance(row, dict):
            return f"{name} is not an object"
        for key, kind in fields.items():
            if not isinstance(row.get(key), kind):
                return f"{name}.{key} is missing or of the wrong type"
    for i, pair in enumerate(qc["pairs"]):
        if len(pair["bones"]) != 2 or len(pair["point_a_mm"]) != 3 or not all(
                isinstance(x, (int, float)) for x in pair["point_a_mm"]):
            return f"pairs[{i}] needs two bones and a 3-number point_a_mm"
    return None


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


def libhip_name(name: str) -> str:
    return LIBHIP_NAMES.get(name, name)


def page_html(case, image_path, labels_path, table, colours, notes, images, metrics_row, mesh_qc,
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
