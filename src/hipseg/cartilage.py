"""Cartilage bodies in the joint spaces of a label map that keeps its gaps (issue 14, item 1).

Each joint is a pair of bones. Its joint space is the background where the two surfaces face
each other closely: ``d_a + d_b`` is small, with ``d_a``, ``d_b`` the distances (mm) to the two
bones. A voxel in the middle of a gap of face-to-face width ``w`` has ``d_a + d_b = w + s`` for
a voxel size ``s`` along the gap, so the space within ``max_gap_mm`` is ``d_a + d_b - s <=
max_gap_mm`` (``s`` the smallest voxel spacing). Where the surfaces diverge (the rim of the
acetabulum, the open sides of a joint) ``d_a + d_b`` grows and the space ends there: that is
the rim trim.

- Hip joints are split half and half across the local gap into a femoral layer (the voxels
  nearer the femur) and an acetabular layer (nearer the hip bone), as CarGen (Moshfeghifar et
  al., 2022) builds the two cartilages from the bones' facing surfaces.
- Sacro-iliac joints and the pubic symphysis get one piece filling the space.

Unlike CarGen, which offsets surface meshes, this works on the voxel grid of the label map: the
bodies are disjoint from every bone and from each other by construction, and a voxel within
reach of two joints goes to the one with the narrower gap. Each body keeps its largest
26-connected piece, so it meshes as one closed surface.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage

from hipseg.core.labels import LabelTable
from hipseg.core.volume import apply_affine
from hipseg.distances import per_class_distances
from hipseg.labelmap import check_labels, check_spacing

__all__ = ["CartilageBody", "Joint", "cartilage_bodies", "hip_joints"]


@dataclass(frozen=True)
class Joint:
    """Two bones that meet in a joint; ``split``: two layers (one on each bone) or one piece."""

    name: str
    bones: tuple[int, int]
    split: bool


@dataclass(frozen=True)
class CartilageBody:
    """One body of the result map: its id there, name, joint, and the bone it lies on (the
    bone it is bonded to in an FE model; ``None`` for a single piece between two bones)."""

    body_id: int
    name: str
    joint: str
    bone: int | None
    n_voxels: int


def hip_joints(table: LabelTable) -> tuple[Joint, ...]:
    """The joints of the hip region for a table with hipseg's class names.

    Raises
    ------
    ValueError
        A class name the joints need is missing from ``table``.
    """
    ids = {name: i for i, name in enumerate(table.names)}
    need = ("femur_right", "femur_left", "hip_right", "hip_left", "sacrum")
    missing = [name for name in need if name not in ids]
    if missing:
        raise ValueError(f"label table lacks {missing}: cartilage needs {list(need)}")
    return (Joint("hip_right", (ids["femur_right"], ids["hip_right"]), True),
            Joint("hip_left", (ids["femur_left"], ids["hip_left"]), True),
            Joint("sacroiliac_right", (ids["sacrum"], ids["hip_right"]), False),
            Joint("sacroiliac_left", (ids["sacrum"], ids["hip_left"]), False),
            Joint("pubic_symphysis", (ids["hip_right"], ids["hip_left"]), False))


def _refuse_contact(labels: np.ndarray, a: int, b: int, table: LabelTable,
                    affine: np.ndarray | None) -> None:
    """Raise when bones ``a`` and ``b`` touch (26-neighbours): a joint needs a space."""
    grown = ndimage.binary_dilation(labels == b, structure=np.ones((3, 3, 3), bool))
    contact = np.argwhere(grown & (labels == a))
    if len(contact):
        where = contact[len(contact) // 2]
        place = f"voxel {tuple(int(v) for v in where)}"
        if affine is not None:
            x, y, z = apply_affine(affine, where[None].astype(float))[0]
            place += f", RAS ({x:.1f}, {y:.1f}, {z:.1f}) mm"
        raise ValueError(f"{table.names[a]} and {table.names[b]} touch at {len(contact)} "
                         f"voxels (e.g. {place}): no joint space to put cartilage in; "
                         "post-process the map first (the gap guarantee)")


def cartilage_bodies(labels: np.ndarray, spacing_mm: Sequence[float], table: LabelTable,
                     joints: Sequence[Joint] | None = None, *, max_gap_mm: float = 4.0,
                     affine: np.ndarray | None = None
                     ) -> tuple[np.ndarray, tuple[CartilageBody, ...]]:
    """Cartilage bodies in the joint spaces of ``labels``.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        Bones with their gaps kept (0 background).
    spacing_mm : sequence of 3 floats
    table : LabelTable
    joints : sequence of Joint, optional
        Default :func:`hip_joints` of ``table``.
    max_gap_mm : float
        Largest face-to-face gap (mm) still filled; where the bones are farther apart there is
        no cartilage (default 4 mm, about the thickest hip cartilage pair).
    affine : ndarray, shape (4, 4), optional
        Voxel to RAS; only to say where bones touch in mm.

    Returns
    -------
    bodies : ndarray, shape (X, Y, Z), uint8
        0 outside cartilage, ``body.body_id`` inside each body; never on a bone voxel.
    info : tuple of CartilageBody
        One per body (hip joints: the femoral layer, then the acetabular one), empty bodies
        included with ``n_voxels == 0``.

    Raises
    ------
    ValueError
        Two bones of a joint touch (naming them and where), a bad spacing or ``max_gap_mm``.
    """
    labels = check_labels(labels, max_id=table.n_classes - 1)
    spacing = check_spacing(spacing_mm)
    if not (np.isfinite(max_gap_mm) and max_gap_mm > 0):
        raise ValueError(f"max_gap_mm must be a positive number, got {max_gap_mm!r}")
    joints = hip_joints(table) if joints is None else tuple(joints)
    for joint in joints:
        _refuse_contact(labels, *joint.bones, table, affine)
    background = labels == 0
    # A voxel can only be in a joint space when both distances are within the gap plus a
    # voxel, so each bone's distances are needed only in its box grown by that much.
    reach_mm = max_gap_mm + float(spacing.max())
    bones = {c for j in joints for c in j.bones}
    distance = {c: np.full(labels.shape, np.inf, np.float32) for c in bones}
    for class_id, box, dist in per_class_distances(labels, spacing_mm=spacing, max_mm=reach_mm):
        if class_id in bones:
            distance[class_id][box] = dist
    # Per voxel, the narrowest joint that reaches it wins.
    best_gap = np.full(labels.shape, np.inf, np.float32)
    owner = np.full(labels.shape, -1, np.int16)
    for index, joint in enumerate(joints):
        a, b = joint.bones
        gap = distance[a] + distance[b] - float(spacing.min())
        inside = background & (gap <= max_gap_mm) & (gap < best_gap)
        best_gap[inside] = gap[inside]
        owner[inside] = index
    bodies = np.zeros(labels.shape, np.uint8)
    info = []
    for index, joint in enumerate(joints):
        a, b = joint.bones
        space = owner == index
        if joint.split:
            # Ties (the middle voxel of an odd gap) go to the first bone of the pair.
            parts = [(f"{joint.name}_{table.names[a]}_cartilage", a,
                      space & (distance[a] <= distance[b])),
                     (f"{joint.name}_{table.names[b]}_cartilage", b,
                      space & (distance[a] > distance[b]))]
        else:
            parts = [(f"{joint.name}_cartilage", None, space)]
        for name, bone, mask in parts:
            body_id = len(info) + 1
            piece = cc3d.largest_k(mask, k=1, connectivity=26) > 0 if mask.any() else mask
            bodies[piece] = body_id
            info.append(CartilageBody(body_id, name, joint.name, bone,
                                      int(np.count_nonzero(piece))))
    return bodies, tuple(info)
