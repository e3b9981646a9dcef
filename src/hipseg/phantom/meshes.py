"""A phantom case from real closed bone surface meshes (STL, OBJ, ... in mm)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from hipseg.core.errors import InputError
from hipseg.core.labels import DEFAULT_LABELS, LabelTable
from hipseg.core.volume import Volume
from hipseg.phantom.coarse import fill_joint_spaces
from hipseg.phantom.intensities import labels_to_ct
from hipseg.phantom.procedural import PhantomCase
from hipseg.phantom.shapes import LEFT_X_SIGN
from hipseg.phantom.voxelize import voxelize_closed_mesh
from hipseg.postprocess import enforce_min_gap

logger = logging.getLogger(__name__)

__all__ = ["MESH_COARSE_MARGIN_MM", "classify_mesh_name", "make_case_from_meshes"]

#: The coarse labels close gaps up to the measured femur-hip gap plus this (mm); real joint
#: spaces vary over the joint, so the margin is wider than the procedural one.
MESH_COARSE_MARGIN_MM = 4.0

_KINDS = (("sacrum", ("sacrum",)), ("femur", ("femur",)), ("hip", ("pelvis", "hip")))


def classify_mesh_name(path: str | Path) -> tuple[str, str | None]:
    """Bone kind and side from a mesh's file name.

    ``'sacrum'`` in the name gives the sacrum; ``'femur'`` a femur; ``'pelvis'`` or ``'hip'`` a
    hip bone. The side comes from the words ``left`` / ``right`` or a leading ``l`` / ``r``
    (``lfemur.stl``, ``r_pelvis.obj``, ``femur_right.stl``).

    Returns
    -------
    kind : str
        ``"sacrum"``, ``"femur"`` or ``"hip"``.
    side : str or None
        ``"left"``, ``"right"``; None for the sacrum.

    Raises
    ------
    InputError
        The name gives no known bone, or no (or both) sides for a femur or hip bone.
    """
    path = Path(path)
    stem = path.name.split(".")[0].lower()
    for kind, words in _KINDS:
        word = next((w for w in words if w in stem), None)
        if word is None:
            continue
        if kind == "sacrum":
            return kind, None
        sides = {s for s in ("left", "right") if s in stem}
        leading = re.match(rf"^([lr])[\W_]*{word}", stem)
        if leading:
            sides.add("left" if leading.group(1) == "l" else "right")
        if len(sides) != 1:
            raise InputError(
                path,
                f"cannot tell the side of this {kind} from its name "
                "(use a leading l/r or the word left/right)",
            )
        return kind, sides.pop()
    raise InputError(
        path, "cannot tell the bone from the file name (expected sacrum, femur, pelvis or hip)"
    )


def make_case_from_meshes(
    mesh_paths: Sequence[Path],
    rng: np.random.Generator,
    *,
    spacing_mm: tuple[float, float, float] = (1.5, 1.5, 1.5),
    mirror: bool = False,
    margin_mm: float = 20.0,
    noise_hu: float = 25.0,
    labels: LabelTable = DEFAULT_LABELS,
) -> PhantomCase:
    """Voxelise closed bone meshes into a phantom case with accurate and coarse labels.

    The class of each mesh comes from its file name (:func:`classify_mesh_name`). The meshes'
    y axis must point anteriorly and z superiorly; which way x points is read from the data:
    if the meshes named left lie on the side of the sacrum that this project calls right (the
    CarGen meshes are stored that way), x is negated, so that in the returned volumes left
    bones lie where :func:`hipseg.core.volume.patient_side_of_voxels` says left. Voxel centres
    inside each mesh get its class (an exact ray-parity test); where meshes overlap, the lower
    class id wins. Then :func:`~hipseg.postprocess.enforce_min_gap`, synthetic intensities and
    coarse labels with the joint spaces closed.

    Parameters
    ----------
    mesh_paths : sequence of Path
        Closed (watertight) triangle meshes, coordinates in mm.
    rng : numpy.random.Generator
        The only source of randomness (image intensities and noise).
    spacing_mm : (float, float, float)
        Voxel spacing of the grid.
    mirror : bool
        Mirror every one-sided mesh whose counterpart is missing through the plane
        ``x = x of the sacrum's centroid`` to make the other side (needs a sacrum mesh).
    margin_mm : float
        Space between the meshes' bounding box and the grid's border.
    noise_hu : float
        Standard deviation of the image noise, HU.
    labels : LabelTable
        Must have classes ``sacrum``, ``femur_left``, ``femur_right``, ``hip_left``,
        ``hip_right`` for the meshes given.

    Returns
    -------
    PhantomCase
        On an axis-aligned grid, affine ``diag(spacing)`` with origin at the bounding box minus
        ``margin_mm``. ``joint_space_mm`` is the smallest distance (mm, between voxel centres)
        between a femur and the hip bone of its side (or between any two bones if there is no
        such pair; ``nan`` with fewer than two bones).

    Raises
    ------
    InputError
        A file is missing, unreadable, not watertight or not classifiable; or ``mirror`` without a
        sacrum.
    """
    if len(mesh_paths) == 0:
        raise ValueError("no mesh paths given")
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    bones = []  # (class name, vertices, faces)
    for path in mesh_paths:
        path = Path(path)
        kind, side = classify_mesh_name(path)
        name = kind if side is None else f"{kind}_{side}"
        if name not in labels.names:
            raise InputError(path, f"class {name!r} is not in the label table {labels.names}")
        vertices, faces = _load_closed_mesh(path)
        bones.append((name, vertices, faces))

    sacra = [v for name, v, _ in bones if name == "sacrum"]
    if _x_points_right(bones, sacra):
        logger.warning("meshes named left lie on the patient's right in RAS (LPS-style "
                       "coordinates?): negating x so that names and sides agree")
        bones = [(name, v * np.array([-1.0, 1.0, 1.0]), f[:, ::-1]) for name, v, f in bones]
        sacra = [v * np.array([-1.0, 1.0, 1.0]) for v in sacra]
    if mirror:
        if not sacra:
            raise InputError(
                Path(mesh_paths[0]).parent,
                "mirror=True needs a sacrum mesh for the mid-sagittal plane",
            )
        plane_x = float(
            np.mean([_centroid(v, f) for name, v, f in bones if name == "sacrum"], axis=0)[0]
        )
        present = {name for name, _, _ in bones}
        for name, vertices, faces in list(bones):
            if not name.endswith(("_left", "_right")):
                continue
            other = _opposite(name)
            if other in present or other not in labels.names:
                continue
            mirrored = vertices.copy()
            mirrored[:, 0] = 2.0 * plane_x - mirrored[:, 0]
            bones.append((other, mirrored, faces[:, ::-1]))

    lo = np.min([v.min(axis=0) for _, v, _ in bones], axis=0) - margin_mm
    hi = np.max([v.max(axis=0) for _, v, _ in bones], axis=0) + margin_mm
    shape = tuple(int(n) for n in np.ceil((hi - lo) / spacing).astype(int) + 1)
    label_map = np.zeros(shape, np.uint8)
    for name, vertices, faces in sorted(bones, key=lambda b: -labels.id_of(b[0])):
        label_map[voxelize_closed_mesh(vertices, faces, lo, spacing, shape)] = labels.id_of(name)
    label_map = enforce_min_gap(label_map, spacing)[0]

    gap_mm = _smallest_joint_gap(label_map, spacing, labels)
    image = labels_to_ct(label_map, spacing, rng, noise_hu=noise_hu)
    max_gap = (gap_mm if np.isfinite(gap_mm) else 0.0) + MESH_COARSE_MARGIN_MM
    coarse = fill_joint_spaces(label_map, spacing, max_gap)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = lo
    return PhantomCase(
        image=Volume(image, affine),
        labels=Volume(label_map, affine),
        labels_coarse=Volume(coarse, affine),
        joint_space_mm=float(gap_mm),
    )


def _load_closed_mesh(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Vertices (V, 3) float64 and faces (F, 3) int64 of a watertight mesh file."""
    import trimesh

    if not path.is_file():
        raise InputError(path, "mesh file not found")
    try:
        mesh = trimesh.load(path, force="mesh")
    except Exception as exc:  # trimesh raises many types for bad files
        raise InputError(path, f"cannot read mesh: {exc}") from exc
    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        raise InputError(path, "no triangles in the file")
    if not mesh.is_watertight:
        raise InputError(
            path, "mesh is not closed (not watertight); cannot tell inside from outside"
        )
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def _opposite(name: str) -> str:
    """``femur_left`` -> ``femur_right`` and back."""
    kind, side = name.rsplit("_", 1)
    return f"{kind}_{'right' if side == 'left' else 'left'}"


def _centroid(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Volume centroid (3,) of a closed mesh, from signed tetrahedra."""
    tri = vertices[faces]
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2]))
    return (volume[:, None] * tri.sum(axis=1)).sum(axis=0) / (4.0 * volume.sum())


def _x_points_right(bones: list, sacra: list) -> bool:
    """True if every one-sided mesh lies on the other side of the sacrum than its name says."""
    if not sacra:
        return False
    mid_x = float(np.mean([s[:, 0].mean() for s in sacra]))
    verdicts = []
    for name, vertices, _ in bones:
        if name.endswith(("_left", "_right")):
            expected = LEFT_X_SIGN if name.endswith("_left") else -LEFT_X_SIGN
            verdicts.append(np.sign(vertices[:, 0].mean() - mid_x) == -expected)
    return bool(verdicts) and all(verdicts)


def _smallest_joint_gap(label_map: np.ndarray, spacing: np.ndarray, labels: LabelTable) -> float:
    """Smallest centre distance (mm) femur-hip of one side; else between any two bones."""
    pairs = [(f"femur_{s}", f"hip_{s}") for s in ("left", "right")]
    pairs = [
        (labels.id_of(a), labels.id_of(b))
        for a, b in pairs
        if a in labels.names and b in labels.names
    ]
    present = set(np.unique(label_map).tolist()) - {0}
    pairs = [p for p in pairs if set(p) <= present]
    if not pairs:
        ids = sorted(present)
        pairs = [(a, b) for a in ids for b in ids if a < b]
    best = np.inf
    for a, b in pairs:
        dist = ndimage.distance_transform_edt(label_map != a, sampling=spacing)
        best = min(best, float(dist[label_map == b].min()))
    return best if np.isfinite(best) else float("nan")
