"""From a label map to the bodies and the tetrahedral mesh of an FE model (issue 14, item 2).

Order of work, and why:

1. Cartilage is built in the joint spaces of the map at its own resolution
   (``hipseg.cartilage``): bones that touch are refused there, naming the pair and where. On a
   coarser grid a layer 1-2 voxels thick could no longer be split half and half (measured in
   docs/fe.md: -60 % for an acetabular layer when built on a 1.5 mm grid).
2. Bones and cartilage are resampled together (nearest neighbour) to a grid of the element
   size: each voxel becomes 6 tetrahedra, so the grid sets the element size.
3. The gap guarantee runs on the bones of that grid: resampling can close a joint space where
   it is a voxel wide, and two bones must never share a node.
4. Every body keeps its largest face-connected piece: a piece joined only along an edge or at a
   corner would be a separate body for a solver.
5. One Kuhn mesh of all bodies (``hipseg.tetmesh``): cartilage bonded to the bone it lies on (a
   single sacro-iliac or symphysis piece to both bones); the two layers of a hip joint and
   every other touching pair keep separate nodes, as the contact pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np

from hipseg.cartilage import cartilage_bodies, hip_joints
from hipseg.core.labels import LabelTable
from hipseg.core.volume import Volume, voxel_spacing_mm
from hipseg.labelmap import check_labels
from hipseg.phantom.variants import resample_labels
from hipseg.postprocess import enforce_min_gap
from hipseg.tetmesh import TetMesh, lattice_tet_mesh

__all__ = ["FeBody", "FeModel", "FeSettings", "fe_model"]


@dataclass(frozen=True)
class FeSettings:
    """How the FE model is built.

    Attributes
    ----------
    size_mm : float or None
        Edge of the grid the elements are cut from (mm); ``None`` keeps the map's own voxels.
        1 mm gives hip cartilage (1-2.5 mm per layer) one to two elements across.
    max_gap_mm : float
        Widest face-to-face joint space filled with cartilage (mm).
    enforce_gap : bool
        Run the gap guarantee on the map first (its changes are counted in
        ``FeModel.gap_voxels_changed``); by default bones that touch are refused.
    """

    size_mm: float | None = 1.0
    max_gap_mm: float = 4.0
    enforce_gap: bool = False

    def __post_init__(self) -> None:
        if self.size_mm is not None and not (np.isfinite(self.size_mm) and self.size_mm > 0):
            raise ValueError(f"size_mm must be a positive number or None, got {self.size_mm!r}")
        if not (np.isfinite(self.max_gap_mm) and self.max_gap_mm > 0):
            raise ValueError(f"max_gap_mm must be a positive number, got {self.max_gap_mm!r}")


@dataclass(frozen=True)
class FeBody:
    """One body of the model: its tag in the mesh, name, kind, and the bodies it is bonded to
    (shares nodes with)."""

    body_id: int
    name: str
    kind: str  # "bone" or "cartilage"
    bonded_to: tuple[int, ...]


@dataclass(frozen=True)
class FeModel:
    """The mesh, its bodies, the body map on the element grid, and what the build changed.

    ``gap_voxels_changed``: voxels the gap guarantee changed (on the map when asked to, and
    on the element grid);
    ``dropped_voxels``: per body id, voxels of pieces only edge- or corner-joined to the rest;
    ``source_volume_mm3``: per body id, its volume in the map at the map's own resolution
    (bones as given, cartilage as built there), what the mesh's volumes are measured against.
    """

    mesh: TetMesh
    bodies: tuple[FeBody, ...]
    body_map: Volume
    gap_voxels_changed: int
    dropped_voxels: dict[int, int]
    source_volume_mm3: dict[int, float]

    @property
    def bonded_pairs(self) -> list[tuple[int, int]]:
        return _bonded_pairs(self.bodies)


def fe_model(labels: Volume, table: LabelTable, settings: FeSettings | None = None) -> FeModel:
    """Bones and cartilage of ``labels`` as one conforming tetrahedral mesh.

    Parameters
    ----------
    labels : Volume
        Label map (integer ids of ``table``, 0 background) and its affine.
    table : LabelTable
        Must name hipseg's five bones (see :func:`hipseg.cartilage.hip_joints`).
    settings : FeSettings, optional

    Returns
    -------
    FeModel
        Bones keep their label ids; cartilage bodies follow, numbered from
        ``table.n_classes``.

    Raises
    ------
    ValueError
        Bad labels, bones of a joint that touch (naming them and where), no bone, or a table
        without hipseg's bones.
    """
    settings = settings or FeSettings()
    data = check_labels(labels.data, max_id=table.n_classes - 1)
    affine = labels.affine
    spacing = voxel_spacing_mm(affine)
    changed = 0
    if settings.enforce_gap:
        data, changed = enforce_min_gap(data, spacing)
    joints = hip_joints(table)
    cartilage, info = cartilage_bodies(data, spacing, table, joints,
                                       max_gap_mm=settings.max_gap_mm, affine=affine)
    offset = table.n_classes - 1
    body_map = data.astype(np.uint8)
    inside = cartilage > 0
    body_map[inside] = cartilage[inside] + offset
    ids, counts = np.unique(body_map, return_counts=True)
    voxel_mm3 = float(np.prod(spacing))
    source = {int(i): float(n) * voxel_mm3 for i, n in zip(ids, counts, strict=True) if i > 0}
    if settings.size_mm is not None:
        body_map, affine = resample_labels(body_map, affine, (settings.size_mm,) * 3)
        bones_only = np.where(body_map <= offset, body_map, 0)
        guarded, moved = enforce_min_gap(bones_only, voxel_spacing_mm(affine))
        body_map[(bones_only > 0) & (guarded == 0)] = 0
        changed += moved
    body_map, dropped = _largest_face_connected(body_map)
    bones = [c for c in table.foreground_ids if np.any(body_map == c)]
    if not bones:
        raise ValueError("label map has no bone: nothing to mesh")
    bonded: dict[int, set[int]] = {c: set() for c in bones}
    joint_of = {j.name: j for j in joints}
    bodies_info = []
    for body in info:
        body_id = body.body_id + offset
        if body.n_voxels == 0 or not np.any(body_map == body_id):
            continue
        partners = [body.bone] if body.bone is not None else list(joint_of[body.joint].bones)
        bonded[body_id] = {p for p in partners if p in bonded}
        for p in bonded[body_id]:
            bonded[p].add(body_id)
        bodies_info.append((body_id, body.name, "cartilage"))
    bodies = tuple(FeBody(c, table.names[c], "bone", tuple(sorted(bonded[c]))) for c in bones) + \
        tuple(FeBody(i, name, kind, tuple(sorted(bonded[i]))) for i, name, kind in bodies_info)
    mesh = lattice_tet_mesh(body_map, affine, bonded=_bonded_pairs(bodies), bones=bones)
    return FeModel(mesh, bodies, Volume(body_map, affine), int(changed), dropped, source)


def _bonded_pairs(bodies: tuple[FeBody, ...]) -> list[tuple[int, int]]:
    return [(b.body_id, other) for b in bodies for other in b.bonded_to if b.body_id < other]


def _largest_face_connected(body_map: np.ndarray) -> tuple[np.ndarray, dict[int, int]]:
    """Each body's largest 6-connected piece; the voxels of other pieces become background."""
    out = np.zeros_like(body_map)
    dropped = {}
    for body_id in np.unique(body_map):
        if body_id == 0:
            continue
        mask = body_map == body_id
        piece = cc3d.largest_k(mask, k=1, connectivity=6) > 0
        out[piece] = body_id
        dropped[int(body_id)] = int(np.count_nonzero(mask) - np.count_nonzero(piece))
    return out, dropped
