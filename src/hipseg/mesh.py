"""Bone surface meshes for finite-element modelling: extraction, smoothing, QC and writing.

One closed, outward-oriented triangle surface per bone, in scanner coordinates (mm, RAS, or
LPS on request), named as LibHip / CarGen expect (``<case>_lfemur_mm``, ...). Extraction is
scikit-image marching cubes on each bone's zero-padded binary mask (so surfaces close at the
array border); trimesh checks and repairs. Optional Taubin smoothing backs off when it would
bring two bones closer than allowed (see :func:`label_surface_meshes`).

Distances between bones use python-fcl: exact triangle-to-triangle distance, to float rounding.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import trimesh
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from hipseg.core.atomic import atomic_path, atomic_write_text
from hipseg.core.labels import LabelTable
from hipseg.core.volume import apply_affine

__all__ = [
    "LIBHIP_NAMES",
    "MESH_FORMATS",
    "NEIGHBOUR_PAIRS",
    "bone_distance",
    "label_surface_meshes",
    "libhip_bone_names",
    "mesh_file_name",
    "mesh_qc",
    "self_intersections",
    "write_mesh_qc_json",
    "write_meshes",
]

#: Class names of the default label table -> LibHip / CarGen bone names.
LIBHIP_NAMES = {"sacrum": "sacrum", "hip_left": "lpelvis", "hip_right": "rpelvis",
                "femur_left": "lfemur", "femur_right": "rfemur"}
#: Bones that meet in a joint: femur-hip each side, hip-sacrum each side, pubic symphysis.
NEIGHBOUR_PAIRS = (("lfemur", "lpelvis"), ("rfemur", "rpelvis"), ("lpelvis", "sacrum"),
                   ("rpelvis", "sacrum"), ("lpelvis", "rpelvis"))
MESH_FORMATS = ("stl", "obj", "ply", "vtk")
_TAUBIN_LAMBDA, _TAUBIN_NU = 0.5, 0.53


def libhip_bone_names(table: LabelTable) -> dict[int, str]:
    """``{class id: LibHip bone name}`` for every foreground class of ``table``.

    Raises
    ------
    ValueError
        A foreground class has no LibHip name (the names are those of ``DEFAULT_LABELS``).
    """
    unknown = [n for n in table.names[1:] if n not in LIBHIP_NAMES]
    if unknown:
        raise ValueError(f"no LibHip mesh name for classes {unknown}; meshes need the classes "
                         f"{sorted(LIBHIP_NAMES)}")
    return {i: LIBHIP_NAMES[table.names[i]] for i in table.foreground_ids}


def mesh_file_name(case: str, bone: str, fmt: str) -> str:
    """``<case>_<bone>_mm.<fmt>``, e.g. ``case_001_lfemur_mm.stl``."""
    return f"{case}_{bone}_mm.{fmt}"


def label_surface_meshes(
    labels: np.ndarray,
    affine: np.ndarray,
    table: LabelTable,
    *,
    smoothing_iterations: int = 0,
    min_gap_mm: float | None = None,
    lps: bool = False,
) -> dict[str, trimesh.Trimesh]:
    """One closed surface mesh per bone present in a label map.

    Each class's mask is cropped, padded with one background voxel on every side and meshed
    by marching cubes at level 0.5; vertices go through ``affine`` to scanner mm (faces are
    reversed when ``det(affine) < 0``, so normals point outward). Then trimesh merges
    vertices, drops degenerate and duplicate faces, fixes normals and keeps the watertight
    body of largest volume (an inner cavity surface, or a stray piece, is dropped).

    **Smoothing.** Taubin smoothing (volume-preserving, lambda 0.5, nu 0.53) with
    ``smoothing_iterations``. The unsmoothed meshes must not touch (a :class:`ValueError`
    otherwise: run :func:`hipseg.postprocess.enforce_min_gap` first). After smoothing, every
    pair of bones must be at least ``min(target, unsmoothed distance)`` apart, ``target`` being
    ``min_gap_mm`` or, by default, half the smallest voxel spacing (a label map with a
    one-voxel gap gives surfaces one voxel apart; smoothing may close half of it); and smoothing
    must not create
    self-intersections. If it fails, the iterations are halved (n, n/2, ..., 1, then 0 = no
    smoothing) for all bones together; the count used is in ``mesh.metadata``.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        Label map with the ids of ``table``. Not modified.
    affine : ndarray, shape (4, 4)
        Voxel-to-RAS affine (mm).
    table : LabelTable
        Its foreground classes must have LibHip names (:func:`libhip_bone_names`).
    smoothing_iterations : int, default 0
    min_gap_mm : float, optional
        Smallest allowed surface distance between two bones after smoothing.
    lps : bool, default False
        Vertices in LPS (x and y negated) instead of RAS.

    Returns
    -------
    dict of str to trimesh.Trimesh
        Keyed by LibHip bone name (``"lfemur"``, ...) for the classes present, in id order.
    """
    labels = np.asarray(labels)
    affine = np.asarray(affine, dtype=np.float64)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3D array (X, Y, Z), got shape {labels.shape}")
    if affine.shape != (4, 4) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError("affine must be a non-singular 4x4 matrix")
    if smoothing_iterations < 0:
        raise ValueError(f"smoothing_iterations must be >= 0, got {smoothing_iterations}")
    names = libhip_bone_names(table)
    meshes = {}
    for class_id in np.unique(labels[labels != 0]).tolist():
        if class_id not in names:
            raise ValueError(f"label id {class_id} is not in the label table")
        meshes[names[class_id]] = _class_mesh(labels == class_id, affine, lps)
    if smoothing_iterations == 0:
        return meshes
    target = float(min_gap_mm) if min_gap_mm is not None else 0.5 * float(
        np.min(np.linalg.norm(affine[:3, :3], axis=0)))
    return _smooth_with_backoff(meshes, smoothing_iterations, target)


def _class_mesh(mask: np.ndarray, affine: np.ndarray, lps: bool) -> trimesh.Trimesh:
    from skimage.measure import marching_cubes

    hits = np.argwhere(mask)
    lo, hi = hits.min(axis=0), hits.max(axis=0) + 1
    crop = np.pad(mask[tuple(slice(a, b) for a, b in zip(lo, hi))], 1).astype(np.float32)
    vertices, faces, _, _ = marching_cubes(crop, level=0.5, allow_degenerate=False)
    vertices = apply_affine(affine, vertices + lo - 1)
    if np.linalg.det(affine[:3, :3]) < 0:
        faces = faces[:, ::-1]
    if lps:
        vertices = vertices * np.array([-1.0, -1.0, 1.0])
    return _repair(trimesh.Trimesh(vertices, faces, process=True))


def _repair(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    mesh.merge_vertices()
    mesh.update_faces(mesh.nondegenerate_faces())
    mesh.update_faces(mesh.unique_faces())
    mesh.remove_unreferenced_vertices()
    trimesh.repair.fix_normals(mesh)
    bodies = mesh.split(only_watertight=True)
    if bodies:
        mesh = max(bodies, key=lambda body: abs(body.volume))
        if mesh.volume < 0:
            mesh.invert()
    return mesh


def _smooth_with_backoff(meshes: dict[str, trimesh.Trimesh], iterations: int,
                         target_mm: float) -> dict[str, trimesh.Trimesh]:
    pairs = list(itertools.combinations(meshes, 2))
    before = {pair: d for pair, (d, _, _) in _distances(meshes, pairs).items()}
    touching = [pair for pair, d in before.items() if d <= 0]
    if touching:
        raise ValueError(f"bones touch before smoothing: {touching}; enforce a gap first")
    required = {pair: min(target_mm, d) for pair, d in before.items()}
    crossing = {name: self_intersections(mesh) > 0 for name, mesh in meshes.items()}
    while iterations > 0:
        smoothed = {}
        for name, mesh in meshes.items():
            copy = mesh.copy()
            trimesh.smoothing.filter_taubin(copy, lamb=_TAUBIN_LAMBDA, nu=_TAUBIN_NU,
                                            iterations=iterations)
            smoothed[name] = copy
        after = _distances(smoothed, pairs, enough=required)
        ok = all(after[pair][0] >= required[pair] for pair in pairs)
        ok = ok and all(crossing[n] or self_intersections(m) == 0 for n, m in smoothed.items())
        if ok:
            break
        iterations //= 2
    else:
        smoothed = meshes
    for mesh in smoothed.values():
        mesh.metadata["smoothing_iterations"] = iterations
    return smoothed


def bone_distance(a: trimesh.Trimesh, b: trimesh.Trimesh) -> tuple[float, np.ndarray, np.ndarray]:
    """Minimal distance (mm) between two surfaces and the closest points on each.

    Exact, through python-fcl (0 when the surfaces intersect).

    Returns
    -------
    distance : float
    point_a, point_b : ndarray, shape (3,)
    """
    return _distances({"a": a, "b": b}, [("a", "b")])[("a", "b")]


def _distances(meshes: Mapping[str, trimesh.Trimesh], pairs: list[tuple[str, str]],
               enough: Mapping[tuple[str, str], float] | None = None) -> dict:
    """:func:`bone_distance` of each pair; a pair whose bounding boxes are at least
    ``enough[pair]`` apart gets that box distance and no points (``nan``)."""
    import fcl

    objects: dict = {}
    result = {}
    for a, b in pairs:
        if enough is not None:
            box_gap = np.maximum(meshes[a].bounds[0] - meshes[b].bounds[1],
                                 meshes[b].bounds[0] - meshes[a].bounds[1])
            box_distance = float(np.linalg.norm(np.maximum(box_gap, 0.0)))
            if box_distance >= enough[(a, b)]:
                result[(a, b)] = (box_distance, np.full(3, np.nan), np.full(3, np.nan))
                continue
        for name in (a, b):
            if name not in objects:
                objects[name] = _fcl_object(fcl, meshes[name])
        result[(a, b)] = _fcl_distance(fcl, objects[a], objects[b])
    return result


def _fcl_distance(fcl, object_a, object_b) -> tuple[float, np.ndarray, np.ndarray]:
    collision = fcl.CollisionResult()
    if fcl.collide(object_a, object_b,
                   fcl.CollisionRequest(num_max_contacts=1, enable_contact=True), collision):
        point = np.asarray(collision.contacts[0].pos, dtype=np.float64)
        return 0.0, point, point.copy()
    result = fcl.DistanceResult()
    distance = fcl.distance(object_a, object_b, fcl.DistanceRequest(enable_nearest_points=True),
                            result)
    return float(distance), *(np.asarray(p, dtype=np.float64) for p in result.nearest_points)


def _fcl_object(fcl, mesh: trimesh.Trimesh):
    model = fcl.BVHModel()
    model.beginModel(len(mesh.vertices), len(mesh.faces))
    model.addSubModel(np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int32))
    model.endModel()
    return fcl.CollisionObject(model, fcl.Transform())


def self_intersections(mesh: trimesh.Trimesh) -> int:
    """Number of intersecting face pairs of a triangle mesh.

    Pairs that share an edge count when folded flat onto each other (normals opposite); pairs
    that share only a vertex are not tested. Other pairs: an AABB broad phase (a k-d tree on
    face centroids, radius twice the largest centroid-to-vertex distance), then an exact
    segment-triangle test of each edge of one face against the other face. Coplanar
    overlapping pairs without a shared vertex are not detected.
    """
    faces, triangles = mesh.faces, mesh.triangles
    if len(faces) == 0:
        return 0
    folded = int(np.count_nonzero(mesh.face_adjacency_angles > np.pi - 1e-6))
    centroids = triangles.mean(axis=1)
    radius = float(np.max(np.linalg.norm(triangles - centroids[:, None], axis=2)))
    pairs = cKDTree(centroids).query_pairs(2 * radius, output_type="ndarray")
    lo, hi = triangles.min(axis=1), triangles.max(axis=1)
    i, j = pairs[:, 0], pairs[:, 1]
    overlap = np.all((lo[i] <= hi[j]) & (lo[j] <= hi[i]), axis=1)
    shared = (faces[i][:, :, None] == faces[j][:, None, :]).any(axis=(1, 2))
    i, j = i[overlap & ~shared], j[overlap & ~shared]
    hit = np.zeros(len(i), bool)
    for k in range(3):
        hit |= _segment_hits_triangle(triangles[i, k], triangles[i, (k + 1) % 3], triangles[j])
        hit |= _segment_hits_triangle(triangles[j, k], triangles[j, (k + 1) % 3], triangles[i])
    return folded + int(np.count_nonzero(hit))


def _segment_hits_triangle(p0: np.ndarray, p1: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Möller-Trumbore on segments ``p0 -> p1`` (N, 3) and triangles (N, 3, 3); parallel -> no."""
    e1, e2, direction = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], p1 - p0
    h = np.cross(direction, e2)
    det = np.einsum("ij,ij->i", e1, h)
    scale = np.linalg.norm(e1, axis=1) * np.linalg.norm(e2, axis=1) * np.linalg.norm(direction,
                                                                                      axis=1)
    ok = np.abs(det) > 1e-12 * scale
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    s = p0 - tri[:, 0]
    u = inv * np.einsum("ij,ij->i", s, h)
    q = np.cross(s, e1)
    v = inv * np.einsum("ij,ij->i", direction, q)
    t = inv * np.einsum("ij,ij->i", e2, q)
    return ok & (u >= 0) & (v >= 0) & (u + v <= 1) & (t >= 0) & (t <= 1)


def mesh_qc(meshes: Mapping[str, trimesh.Trimesh]) -> dict:
    """Quality report of bone meshes, as plain JSON-ready values.

    Returns
    -------
    dict
        ``bones``: per bone ``n_vertices``, ``n_faces``, ``volume_ml``, ``watertight``,
        ``winding_consistent``, ``manifold`` (watertight and every vertex's faces form one
        fan), ``outward`` (volume > 0), ``self_intersecting`` and ``n_self_intersections``
        (:func:`self_intersections`), ``n_degenerate_faces`` (area <= 1e-12 mm^2),
        ``smoothing_iterations``. ``pairs``: per neighbouring pair present
        (:data:`NEIGHBOUR_PAIRS`) ``distance_mm`` and the closest points ``point_a_mm``,
        ``point_b_mm``. ``distance_method``: ``"fcl exact"``.
    """
    bones = {}
    for name, mesh in meshes.items():
        n_crossing = self_intersections(mesh)
        bones[name] = {
            "n_vertices": len(mesh.vertices), "n_faces": len(mesh.faces),
            "volume_ml": float(mesh.volume) / 1000.0,
            "watertight": bool(mesh.is_watertight),
            "winding_consistent": bool(mesh.is_winding_consistent),
            "manifold": bool(mesh.is_watertight and _vertex_manifold(mesh)),
            "outward": bool(mesh.volume > 0),
            "self_intersecting": n_crossing > 0, "n_self_intersections": n_crossing,
            "n_degenerate_faces": int(np.count_nonzero(mesh.area_faces <= 1e-12)),
            "smoothing_iterations": int(mesh.metadata.get("smoothing_iterations", 0)),
        }
    present = [(a, b) for a, b in NEIGHBOUR_PAIRS if a in meshes and b in meshes]
    pairs = [{"bones": [a, b], "distance_mm": distance,
              "point_a_mm": [float(x) for x in point_a],
              "point_b_mm": [float(x) for x in point_b]}
             for (a, b), (distance, point_a, point_b) in _distances(meshes, present).items()]
    return {"bones": bones, "pairs": pairs, "distance_method": "fcl exact"}


def _vertex_manifold(mesh: trimesh.Trimesh) -> bool:
    """True if the faces around every used vertex form a single edge-connected fan."""
    faces = mesh.faces
    n_faces = len(faces)
    if n_faces == 0:
        return True
    # Nodes are (face, corner) incidences; two incidences of one vertex are linked when their
    # faces share an edge through that vertex. One component per used vertex means manifold.
    f1, f2 = mesh.face_adjacency.T
    rows, cols = [], []
    for v in mesh.face_adjacency_edges.T:
        rows.append(3 * f1 + np.argmax(faces[f1] == v[:, None], axis=1))
        cols.append(3 * f2 + np.argmax(faces[f2] == v[:, None], axis=1))
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(3 * n_faces, 3 * n_faces))
    n_fans = connected_components(graph, directed=False)[0]
    return n_fans == len(np.unique(faces))


def write_meshes(meshes: Mapping[str, trimesh.Trimesh], out_dir: Path, case: str,
                 fmt: str = "stl") -> list[Path]:
    """Write each mesh as ``OUT/<case>_<bone>_mm.<fmt>`` (atomic); return the paths.

    ``fmt`` is ``stl`` (binary), ``obj``, ``ply`` (binary) or ``vtk`` (legacy, via meshio).
    """
    if fmt not in MESH_FORMATS:
        raise ValueError(f"mesh format must be one of {MESH_FORMATS}, got {fmt!r}")
    paths = []
    for bone, mesh in meshes.items():
        path = Path(out_dir) / mesh_file_name(case, bone, fmt)
        with atomic_path(path) as tmp:
            if fmt == "vtk":
                try:
                    import meshio
                except ImportError:
                    raise ImportError("VTK output needs meshio: pip install meshio") from None
                meshio.write(tmp, meshio.Mesh(np.asarray(mesh.vertices),
                                              [("triangle", np.asarray(mesh.faces))]),
                             file_format="vtk", binary=False)
            else:
                mesh.export(tmp, file_type=fmt)
        paths.append(path)
    return paths


def write_mesh_qc_json(path: Path, qc: dict) -> None:
    """Write a :func:`mesh_qc` report (with any extra keys) as indented JSON, atomically."""
    atomic_write_text(Path(path), json.dumps(qc, indent=2) + "\n")
