"""From a label map to the bodies and the tetrahedral mesh of an FE model (issue 14, item 2).

Order of work, and why:

1. Cartilage is built in the joint spaces of the map at its own resolution
   (``hipseg.cartilage``): bones that touch are refused there, naming the pair and where. On a
   coarser grid a layer 1-2 voxels thick could no longer be split half and half (measured in
   docs/fe.md: -60 % for an acetabular layer when built on a 1.5 mm grid).
2. Bones and cartilage are resampled together (nearest neighbour) to a grid of the element
   size: each voxel becomes 6 tetrahedra, so the grid sets the element size. A layer one or
   two elements thick gains or loses an element across wherever the grid's phase falls
   (measured on s20: the pubic symphysis -16 % to +16 % over the phases, the hip layers
   +-3 %), so the grid is shifted by the fraction of an element that keeps the cartilage
   volumes best (:func:`volume_keeping_shift`).
3. The gap guarantee runs on the bones of that grid: resampling can close a joint space where
   it is a voxel wide, and two bones must never share a node.
4. Where a body touches itself along a voxel edge only (two voxels of it diagonal in a 2 x 2
   block, the other two not), its surface is not a manifold there; a background voxel of the
   block is given to it (for a bone, only one with no other bone among its 26 neighbours, so
   no gap narrows). Then every body keeps its largest face-connected piece: a piece joined
   only along an edge or at a corner would be a separate body for a solver.
5. One Kuhn mesh of all bodies (``hipseg.tetmesh``): cartilage bonded to the bone it lies on (a
   single sacro-iliac or symphysis piece to both bones); the two layers of a hip joint and
   every other touching pair keep separate nodes, as the contact pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import cc3d
import numpy as np
from scipy import ndimage

from hipseg.cartilage import cartilage_bodies, hip_joints
from hipseg.core.labels import LabelTable
from hipseg.core.volume import Volume, voxel_spacing_mm
from hipseg.labelmap import check_labels
from hipseg.phantom.variants import nearest_indices, resample_labels
from hipseg.postprocess import enforce_min_gap
from hipseg.tetmesh import TetMesh, lattice_tet_mesh, open_contacts

__all__ = ["FeBody", "FeModel", "FeSettings", "fe_model", "volume_keeping_shift"]


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
    contact_gap_mm : float
        Gap opened between the two surfaces of every contact pair (mm,
        :func:`hipseg.tetmesh.open_contacts`): 0 leaves them touching, as FEBio's contact
        needs; a small gap gives a start free of penetration (LibHip's "with gap" models, for
        PolyFEM). Below a third of the element size.
    """

    size_mm: float | None = 1.0
    max_gap_mm: float = 4.0
    enforce_gap: bool = False
    contact_gap_mm: float = 0.0

    def __post_init__(self) -> None:
        if self.size_mm is not None and not (np.isfinite(self.size_mm) and self.size_mm > 0):
            raise ValueError(f"size_mm must be a positive number or None, got {self.size_mm!r}")
        if not (np.isfinite(self.max_gap_mm) and self.max_gap_mm > 0):
            raise ValueError(f"max_gap_mm must be a positive number, got {self.max_gap_mm!r}")
        if not (np.isfinite(self.contact_gap_mm) and self.contact_gap_mm >= 0):
            raise ValueError(f"contact_gap_mm must be 0 or a positive number, got "
                             f"{self.contact_gap_mm!r}")
        if self.size_mm is not None and self.contact_gap_mm >= self.size_mm / 3:
            raise ValueError(f"contact_gap_mm ({self.contact_gap_mm} mm) must be below a third "
                             f"of the element size ({self.size_mm} mm)")


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
    (bones as given, cartilage as built there), what the mesh's volumes are measured against;
    ``pinches_filled``: background voxels given to a body so it does not touch itself along a
    voxel edge only (see :func:`_fill_edge_pinches`).
    """

    mesh: TetMesh
    bodies: tuple[FeBody, ...]
    body_map: Volume
    gap_voxels_changed: int
    dropped_voxels: dict[int, int]
    source_volume_mm3: dict[int, float]
    pinches_filled: int = 0

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
        size = (settings.size_mm,) * 3
        cartilage_ids = [i for i in source if i > offset]
        shift = volume_keeping_shift(body_map, cartilage_ids, spacing, size)
        body_map, affine = resample_labels(body_map, affine, size, shift)
        bones_only = np.where(body_map <= offset, body_map, 0)
        guarded, moved = enforce_min_gap(bones_only, voxel_spacing_mm(affine))
        body_map[(bones_only > 0) & (guarded == 0)] = 0
        changed += moved
    body_map, filled = _fill_edge_pinches(body_map, table.foreground_ids)
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
    mesh = open_contacts(mesh, settings.contact_gap_mm)
    return FeModel(mesh, bodies, Volume(body_map, affine), int(changed), dropped, source,
                   filled)


#: Grid shifts tried per axis, in eighths of an element.
_SHIFT_STEPS = 8


def volume_keeping_shift(body_map: np.ndarray, body_ids: list[int], spacing_mm: np.ndarray,
                         size_mm: tuple[float, float, float]) -> tuple[float, float, float]:
    """The shift of the element grid whose nearest-neighbour resampling keeps the volumes of
    ``body_ids`` best (the smallest largest relative error, then the smallest sum, then the
    smallest shift).

    Nearest-neighbour resampling takes old voxel ``(i, j, k)`` as often as the product of
    how many new voxels pick ``i``, ``j`` and ``k`` on their axes, so every body's new volume
    at every shift is a weighted sum over its own voxels; the grid is never built.

    Parameters
    ----------
    body_map : ndarray, shape (X, Y, Z), int
    body_ids : list of int
        Bodies whose volumes count (none: no shift).
    spacing_mm : ndarray, shape (3,)
        Spacing of ``body_map`` (mm).
    size_mm : tuple of 3 float
        Spacing of the element grid (mm).

    Returns
    -------
    tuple of 3 float
        The shift for :func:`hipseg.phantom.variants.resample_labels`, in new voxels per
        axis, each in [-0.5, 0.5).
    """
    shifts = np.arange(_SHIFT_STEPS) / _SHIFT_STEPS - 0.5
    if not body_ids:
        return (0.0, 0.0, 0.0)
    old, new = np.asarray(spacing_mm, np.float64), np.asarray(size_mm, np.float64)
    # weights[axis][s, i]: how many new voxels of shift s take old index i on that axis
    index = [nearest_indices(body_map.shape, old, new, (s, s, s)) for s in shifts]
    weights = [np.asarray([np.bincount(per_shift[axis], minlength=n) for per_shift in index],
                          np.float64) for axis, n in enumerate(body_map.shape)]
    errors = []
    for body_id in body_ids:
        mask = body_map == body_id
        box = ndimage.find_objects(mask.astype(np.uint8))[0]
        inside = mask[box].astype(np.float64)
        w = [weights[a][:, box[a]] for a in range(3)]
        counts = np.einsum("ijk,ai,bj,ck->abc", inside, *w, optimize=True)
        errors.append(np.abs(counts * new.prod() / (inside.sum() * old.prod()) - 1.0))
    errors = np.stack(errors)
    score = errors.max(axis=0) + 1e-6 * errors.sum(axis=0)
    # Among equally good shifts the smallest: where the grids are commensurate (the same
    # spacing) every shift picks the same voxels, and only a zero shift leaves them in place.
    size = np.add.outer(np.add.outer(shifts**2, shifts**2), shifts**2)
    best = np.unravel_index(np.argmin(np.where(score <= score.min() + 1e-9, size, np.inf)),
                            score.shape)
    return tuple(float(shifts[b]) for b in best)


def _bonded_pairs(bodies: tuple[FeBody, ...]) -> list[tuple[int, int]]:
    return [(b.body_id, other) for b in bodies for other in b.bonded_to if b.body_id < other]


#: Rounds of pinch filling; each round can only create a new pinch next to a filled voxel.
_PINCH_ROUNDS = 20


def _fill_edge_pinches(body_map: np.ndarray, bone_ids: tuple[int, ...]
                       ) -> tuple[np.ndarray, int]:
    """Give a background voxel to every body wherever it touches itself along a voxel edge
    only; returns the map and the number of voxels filled."""
    body_map = body_map.copy()
    filled = 0
    for body_id in np.unique(body_map):
        if body_id == 0:
            continue
        allowed = body_map == 0
        if body_id in bone_ids:
            others = np.isin(body_map, [b for b in bone_ids if b != body_id])
            allowed &= ~ndimage.binary_dilation(others, structure=np.ones((3, 3, 3), bool))
        for _ in range(_PINCH_ROUNDS):
            mask = body_map == body_id
            fill = _pinch_fill_voxels(mask, allowed)
            if not fill.any():
                break
            body_map[fill] = body_id
            allowed &= ~fill
            filled += int(np.count_nonzero(fill))
    return body_map, filled


def _pinch_fill_voxels(mask: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """For each 2 x 2 block (in each of the 3 planes) where ``mask`` holds one diagonal pair
    and not the other, one voxel of the other pair that ``allowed`` permits."""
    fill = np.zeros_like(mask)
    diagonals = (((0, 0), (1, 1)), ((1, 0), (0, 1)))
    for plane in ((0, 1), (0, 2), (1, 2)):
        for held, other in (diagonals, diagonals[::-1]):
            pinch = (mask[_block(mask.shape, plane, held[0])]
                     & mask[_block(mask.shape, plane, held[1])]
                     & ~mask[_block(mask.shape, plane, other[0])]
                     & ~mask[_block(mask.shape, plane, other[1])])
            first = pinch & allowed[_block(mask.shape, plane, other[0])]
            fill[_block(mask.shape, plane, other[0])] |= first
            fill[_block(mask.shape, plane, other[1])] |= (
                pinch & ~first & allowed[_block(mask.shape, plane, other[1])])
    return fill


def _block(shape: tuple[int, ...], plane: tuple[int, int], offset: tuple[int, int]
           ) -> tuple[slice, ...]:
    """The voxels at ``offset`` within every 2 x 2 block of the axes ``plane``."""
    index = [slice(None)] * 3
    for axis, step in zip(plane, offset, strict=True):
        index[axis] = slice(step, shape[axis] - 1 + step)
    return tuple(index)


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
