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
   block, the other two not), its surface is not a manifold there. The body takes a voxel of
   the block: background (for a bone, only one with no other bone among its 26 neighbours, so
   no gap narrows), else, for cartilage, one of its bone's, then one of the other layer's of
   its joint (a layer one element thick that steps between its bone and the other layer has
   no background to take); where it may take none, a voxel of the pinched pair becomes
   background. Then every body keeps its largest face-connected piece: a piece joined only
   along an edge or at a corner would be a separate body for a solver.
5. Taking bone voxels can add a fifth to a thin layer, so every cartilage body is brought back
   to its volume at the map's resolution, to the nearest element (:func:`restore_volumes`):
   its most exposed free-surface voxels go (rim tips first), or, where it is short, it grows
   into the background along its own bone; no step makes a pinch or splits the body.
6. One Kuhn mesh of all bodies (``hipseg.tetmesh``): cartilage bonded to the bone it lies on (a
   single sacro-iliac or symphysis piece to both bones); the two layers of a hip joint and
   every other touching pair keep separate nodes, as the contact pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

__all__ = ["FeBody", "FeModel", "FeSettings", "fe_model", "restore_volumes",
           "volume_keeping_shift"]


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
    ``pinch_voxels_changed``: voxels given to or taken from a body so that none touches itself
    along a voxel edge only (see :func:`_resolve_edge_pinches`);
    ``volume_restored``: per cartilage body id, voxels added (positive) or removed (negative)
    to bring it back to its volume at the map's resolution (:func:`restore_volumes`).
    """

    mesh: TetMesh
    bodies: tuple[FeBody, ...]
    body_map: Volume
    gap_voxels_changed: int
    dropped_voxels: dict[int, int]
    source_volume_mm3: dict[int, float]
    pinch_voxels_changed: int = 0
    volume_restored: dict[int, int] = field(default_factory=dict)

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
    joint_of = {j.name: j for j in joints}
    cartilage_bones = {body.body_id + offset: (body.bone,) if body.bone is not None
                       else joint_of[body.joint].bones for body in info}
    donors = {body.body_id + offset: (cartilage_bones[body.body_id + offset],
                                      tuple(other.body_id + offset for other in info
                                            if other.joint == body.joint and other is not body))
              for body in info}
    body_map, filled = _resolve_edge_pinches(body_map, table.foreground_ids, donors)
    body_map, dropped = _largest_face_connected(body_map)
    element_mm3 = float(np.prod(voxel_spacing_mm(affine)))
    targets = {i: round(source[i] / element_mm3) for i in cartilage_bones if i in source}
    body_map, restored = restore_volumes(body_map, targets, cartilage_bones)
    bones = [c for c in table.foreground_ids if np.any(body_map == c)]
    if not bones:
        raise ValueError("label map has no bone: nothing to mesh")
    bonded: dict[int, set[int]] = {c: set() for c in bones}
    bodies_info = []
    for body in info:
        body_id = body.body_id + offset
        if body.n_voxels == 0 or not np.any(body_map == body_id):
            continue
        bonded[body_id] = {p for p in cartilage_bones[body_id] if p in bonded}
        for p in bonded[body_id]:
            bonded[p].add(body_id)
        bodies_info.append((body_id, body.name, "cartilage"))
    bodies = tuple(FeBody(c, table.names[c], "bone", tuple(sorted(bonded[c]))) for c in bones) + \
        tuple(FeBody(i, name, kind, tuple(sorted(bonded[i]))) for i, name, kind in bodies_info)
    mesh = lattice_tet_mesh(body_map, affine, bonded=_bonded_pairs(bodies), bones=bones)
    mesh = open_contacts(mesh, settings.contact_gap_mm)
    return FeModel(mesh, bodies, Volume(body_map, affine), int(changed), dropped, source,
                   filled, restored)


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


#: Rounds of pinch resolving per body; each round can only create a new pinch next to a
#: voxel it changed.
_PINCH_ROUNDS = 20
#: Sweeps over all bodies: a body that gives a voxel away can be left with a pinch of its own.
_PINCH_SWEEPS = 3


def _resolve_edge_pinches(body_map: np.ndarray, bone_ids: tuple[int, ...],
                          donors: dict[int, tuple[tuple[int, ...], ...]] | None = None
                          ) -> tuple[np.ndarray, int]:
    """Wherever a body touches itself along a voxel edge only, give it a voxel of the block or
    take one away; returns the map and the number of voxels changed.

    A body takes background first (a bone none next to another bone, so no gap narrows), then
    a voxel of its ``donors``, group by group: a cartilage layer one element thick that steps
    between its bone and the other layer of its joint has no background to take, so it takes
    from its bone, then from the other layer. Where nothing may be taken, one voxel of the
    pinched pair becomes background (for a bone that only widens its gaps). Cartilage goes
    first; sweeps repeat until nothing changes, as a donor can be left with a pinch.
    """
    body_map = body_map.copy()
    donors = donors or {}
    present = [int(i) for i in np.unique(body_map) if i != 0]
    order = [i for i in present if i not in bone_ids] + [i for i in present if i in bone_ids]
    changed = 0
    for _ in range(_PINCH_SWEEPS):
        changed_before = changed
        for body_id in order:
            changed += _resolve_body_pinches(body_map, body_id, bone_ids,
                                             donors.get(body_id, ()))
        if changed == changed_before:
            break
    return body_map, changed


def _resolve_body_pinches(body_map: np.ndarray, body_id: int, bone_ids: tuple[int, ...],
                          donors: tuple[tuple[int, ...], ...]) -> int:
    """:func:`_resolve_edge_pinches` for one body, editing ``body_map`` in place."""
    found = ndimage.find_objects((body_map == body_id).astype(np.uint8))
    if not found:
        return 0
    # each round reaches at most one voxel further, and a candidate's neighbours one more
    reach = _PINCH_ROUNDS + 2
    body_map = body_map[tuple(slice(max(s.start - reach, 0), s.stop + reach)
                              for s in found[0])]  # a view: edits reach the caller's map
    allowed = body_map == 0
    if body_id in bone_ids:
        others = np.isin(body_map, [b for b in bone_ids if b != body_id])
        allowed &= ~ndimage.binary_dilation(others, structure=np.ones((3, 3, 3), bool))
    changed = 0
    for _ in range(_PINCH_ROUNDS):
        mask = body_map == body_id
        fill = _pinch_fill_voxels(mask, allowed)
        for group in donors:
            if fill.any():
                break
            fill = _pinch_fill_voxels(mask, np.isin(body_map, group))
        if fill.any():
            body_map[fill] = body_id
            allowed &= ~fill
        else:
            fill = _pinch_clear_voxels(mask)
            if not fill.any():
                break
            body_map[fill] = 0
        changed += int(np.count_nonzero(fill))
    return changed


def _pinch_clear_voxels(mask: np.ndarray) -> np.ndarray:
    """For each 2 x 2 block (in each of the 3 planes) where ``mask`` holds one diagonal pair
    and not the other, the first voxel of the pair."""
    clear = np.zeros_like(mask)
    for plane in ((0, 1), (0, 2), (1, 2)):
        for held, other in _DIAGONALS:
            clear[_block(mask.shape, plane, held[0])] |= _pinches(mask, plane, held, other)
    return clear


def _pinches(mask: np.ndarray, plane: tuple[int, int], held: tuple[tuple[int, int], ...],
             other: tuple[tuple[int, int], ...]) -> np.ndarray:
    """Per 2 x 2 block of ``plane``: ``mask`` holds the diagonal ``held`` and not ``other``."""
    def at(offset: tuple[int, int]) -> np.ndarray:
        return mask[_block(mask.shape, plane, offset)]
    return at(held[0]) & at(held[1]) & ~at(other[0]) & ~at(other[1])


_DIAGONALS = ((((0, 0), (1, 1)), ((1, 0), (0, 1))), (((1, 0), (0, 1)), ((0, 0), (1, 1))))


def _pinch_fill_voxels(mask: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """For each 2 x 2 block (in each of the 3 planes) where ``mask`` holds one diagonal pair
    and not the other, one voxel of the other pair that ``allowed`` permits."""
    fill = np.zeros_like(mask)
    for plane in ((0, 1), (0, 2), (1, 2)):
        for held, other in _DIAGONALS:
            pinch = _pinches(mask, plane, held, other)
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


#: Passes of volume restoring per body; each pass re-ranks the surface voxels.
_RESTORE_PASSES = 10
_FACE_NEIGHBOURS = ndimage.generate_binary_structure(3, 1)


def restore_volumes(body_map: np.ndarray, targets: dict[int, int],
                    partners: dict[int, tuple[int, ...]]) -> tuple[np.ndarray, dict[int, int]]:
    """Bring bodies to a voxel count by adding or removing voxels on their free surface,
    never making a body touch itself along an edge only or fall apart.

    A body above its count gives its most exposed voxels that touch the background (fewest
    face neighbours of its own first: rim tips before the flat of a layer) to the background.
    A body below takes the background voxels that are most enclosed by it, among those whose
    26 neighbours are background, the body or one of its ``partners`` (the bones it lies on),
    so it grows along its own bone and never into a new contact.

    Parameters
    ----------
    body_map : ndarray, shape (X, Y, Z), int
    targets : dict of int to int
        Voxel count wanted per body id.
    partners : dict of int to tuple of int
        Per body id, the bodies it may newly touch when it grows.

    Returns
    -------
    body_map : ndarray
        A copy with the bodies changed.
    changed : dict of int to int
        Per body id of ``targets``, voxels added (positive) or removed (negative).
    """
    body_map = body_map.copy()
    changed = {}
    for body_id, target in targets.items():
        net = 0
        for _ in range(_RESTORE_PASSES):
            mask = body_map == body_id
            excess = int(np.count_nonzero(mask)) - target
            if excess == 0 or not mask.any():
                break
            box = tuple(slice(max(s.start - 2, 0), s.stop + 2)
                        for s in ndimage.find_objects(mask.astype(np.uint8))[0])
            view = body_map[box]  # edited in place
            done = _restore_pass(view, body_id, abs(excess), excess > 0,
                                 partners.get(body_id, ()))
            net += -done if excess > 0 else done
            if done == 0:
                break
        changed[body_id] = net
    return body_map, changed


def _restore_pass(view: np.ndarray, body_id: int, wanted: int, remove: bool,
                  partners: tuple[int, ...]) -> int:
    """One pass of :func:`restore_volumes` on a box around one body; edits ``view`` and
    returns how many voxels changed."""
    mask = np.pad(view == body_id, 1)
    free = np.pad(view == 0, 1)
    own = ndimage.correlate(mask.astype(np.int8), _FACE_NEIGHBOURS.astype(np.int8),
                            mode="constant") - mask
    if remove:
        touches_free = ndimage.binary_dilation(free, _FACE_NEIGHBOURS)
        candidates = mask & touches_free
        rank = own
    else:
        near = np.isin(np.pad(view, 1), (0, body_id, *partners))
        only_near = ~ndimage.binary_dilation(~near, np.ones((3, 3, 3), bool))
        candidates = free & (own > 0) & only_near
        rank = -own
    # the padding ring is never a candidate: every window below lies inside the padded box
    candidates[[0, -1]] = candidates[:, [0, -1]] = candidates[:, :, [0, -1]] = False
    points = np.argwhere(candidates)
    points = points[np.argsort(rank[tuple(points.T)], kind="stable")]
    done = 0
    for x, y, z in points:
        if done == wanted:
            break
        window = mask[x - 1:x + 2, y - 1:y + 2, z - 1:z + 2].copy()
        if window[1, 1, 1] == (not remove):
            continue  # changed by an earlier step of this pass
        window[1, 1, 1] = not remove
        if _edge_pinch_at_centre(window) or (remove and not _locally_connected(window)):
            continue
        mask[x, y, z] = not remove
        view[x - 1, y - 1, z - 1] = 0 if remove else body_id
        done += 1
    return done


def _edge_pinch_at_centre(window: np.ndarray) -> bool:
    """Whether a 3 x 3 x 3 mask holds exactly one diagonal pair in a 2 x 2 block (any of the
    three planes) that contains its centre."""
    for plane in ((0, 1), (0, 2), (1, 2)):
        for held, other in _DIAGONALS:
            # the blocks of this plane through the centre: index 1 along the third axis
            if np.take(_pinches(window, plane, held, other), 1, axis=3 - sum(plane)).any():
                return True
    return False


def _locally_connected(window: np.ndarray) -> bool:
    """Whether the centre's face neighbours in a 3 x 3 x 3 mask (centre removed) stay joined
    by face-connected paths inside the window, so removing the centre splits nothing."""
    pieces, _ = ndimage.label(window, _FACE_NEIGHBOURS)
    ends = {int(pieces[1 + dx, 1 + dy, 1 + dz]) for dx, dy, dz in
            ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))}
    return len(ends - {0}) <= 1


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
