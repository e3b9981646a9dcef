"""Post-processing of a predicted label map: symmetric connected components (SPEC step 8).

The method's post-processing, in two stages, both on connected components of each class:

1. **Symmetric pairs.** For each symmetric pair ``(a, b)`` of the label table (the same bone on
   the patient's right and left), the largest component of ``a`` stays ``a`` and every other
   component of ``a`` becomes ``b``; likewise every component of ``b`` but its largest becomes
   ``a``. The components of *both* sides of *all* pairs are computed on the input map before
   anything moves, so the result does not depend on the order of the pairs or of the two sides
   (a stray ``a`` blob and a stray ``b`` blob simply swap sides).
2. **Largest component.** On the map after stage 1, every foreground class keeps only its
   largest component; its other components become background (0). A stray blob moved in stage 1
   survives only if it joined the opposite side's largest component.

Components are taken per class (voxels of different classes never connect), with
``connectivity`` 6 (faces), 18 (faces and edges) or 26 (faces, edges and corners). When
components of a class tie for the largest size, the one whose first voxel comes first in C
scan order counts as the largest. Background voxels are never relabelled, so gaps between
classes are kept.

Beyond the paper, :func:`enforce_min_gap` guarantees a gap for finite-element output: after
it, no voxel of one bone touches (is a 26-neighbour of, or with ``min_gap_mm`` lies closer than
that to) a voxel of another bone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cc3d
import numpy as np

from hipseg.core.labels import LabelTable
from hipseg.distances import per_class_distances
from hipseg.labelmap import check_labels

__all__ = [
    "PostprocessReport",
    "enforce_min_gap",
    "symmetric_components",
    "symmetric_components_with_report",
]

CONNECTIVITIES = (6, 18, 26)


@dataclass(frozen=True)
class PostprocessReport:
    """What :func:`symmetric_components_with_report` changed, in voxels per class.

    Parameters
    ----------
    moved : dict of int to int
        ``moved[c]``: voxels of class ``c`` in the input relabelled to ``c``'s symmetric partner
        (stage 1). Every foreground class of the label table has an entry (0 if none moved).
    removed : dict of int to int
        ``removed[c]``: voxels of class ``c`` after stage 1 set to background (stage 2),
        moved-in voxels included. Every foreground class of the label table has an entry.
    """

    moved: dict[int, int] = field(default_factory=dict)
    removed: dict[int, int] = field(default_factory=dict)

    @property
    def total_moved(self) -> int:
        """Voxels relabelled to the opposite side, all classes together."""
        return sum(self.moved.values())

    @property
    def total_removed(self) -> int:
        """Voxels set to background, all classes together."""
        return sum(self.removed.values())


def symmetric_components(
    labels: np.ndarray, table: LabelTable, *, connectivity: int = 26
) -> np.ndarray:
    """Symmetric connected-component post-processing of a label map.

    See the module docstring for the two stages; :func:`symmetric_components_with_report`
    also says how many voxels moved or were removed per class.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        Label map; 0 is background and every value must be a class id of ``table``.
        Not modified.
    table : LabelTable
        Class ids and symmetric pairs. Each class may belong to at most one pair.
    connectivity : {6, 18, 26}, default 26
        Neighbourhood that connects voxels of a class into a component.

    Returns
    -------
    ndarray, shape (X, Y, Z), uint8
        A new label map in which every foreground class has at most one component.

    Raises
    ------
    ValueError
        If ``labels`` is not a 3D integer array, holds ids outside ``table``, ``connectivity``
        is not 6, 18 or 26, or a class is in more than one symmetric pair.

    Examples
    --------
    >>> from hipseg.core.labels import DEFAULT_LABELS
    >>> labels = np.zeros((1, 1, 9), np.uint8)
    >>> labels[0, 0, :3] = 1; labels[0, 0, 4] = 1; labels[0, 0, 5:8] = 2
    >>> symmetric_components(labels, DEFAULT_LABELS)[0, 0]  # the stray 1 joins femur_left
    array([1, 1, 1, 0, 2, 2, 2, 2, 0], dtype=uint8)
    """
    return symmetric_components_with_report(labels, table, connectivity=connectivity)[0]


def symmetric_components_with_report(
    labels: np.ndarray, table: LabelTable, *, connectivity: int = 26
) -> tuple[np.ndarray, PostprocessReport]:
    """:func:`symmetric_components`, plus a report of the voxels moved and removed per class.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        As :func:`symmetric_components`.
    table : LabelTable
    connectivity : {6, 18, 26}, default 26

    Returns
    -------
    result : ndarray, shape (X, Y, Z), uint8
        As :func:`symmetric_components`.
    report : PostprocessReport
        Voxels moved to the opposite side and voxels removed, per foreground class.
    """
    labels = _check_labels(labels, table)
    if connectivity not in CONNECTIVITIES:
        raise ValueError(f"connectivity must be one of {CONNECTIVITIES}, got {connectivity!r}")
    partner = _partners(table)

    # Stage 1: components of every class on the input map; non-largest ones change side.
    components = cc3d.connected_components(labels, connectivity=connectivity)
    comp_class, largest = _component_classes(components, labels)
    target = comp_class.copy()
    for class_id, other in partner.items():
        strays = (comp_class == class_id) & ~largest
        target[strays] = other
    moved_labels = target[components]
    moved = _count_changed(labels, moved_labels, table)

    # Stage 2: on the moved map, every class keeps its largest component only.
    components = cc3d.connected_components(moved_labels, connectivity=connectivity)
    comp_class, largest = _component_classes(components, moved_labels)
    result = np.where(largest, comp_class, 0).astype(np.uint8)[components]
    removed = _count_changed(moved_labels, result, table)
    return result, PostprocessReport(moved=moved, removed=removed)


def _check_labels(labels: np.ndarray, table: LabelTable) -> np.ndarray:
    """The label map as a C-contiguous uint8 array (a copy or the input; never written to)."""
    if table.n_classes > 256:
        raise ValueError(f"at most 256 classes fit in uint8, the table has {table.n_classes}")
    return np.ascontiguousarray(check_labels(labels, max_id=table.n_classes - 1), dtype=np.uint8)


def _partners(table: LabelTable) -> dict[int, int]:
    """``{class_id: partner_id}`` for both sides of every symmetric pair."""
    partner: dict[int, int] = {}
    for a, b in table.symmetric_pairs:
        for own, other in ((a, b), (b, a)):
            if own in partner:
                raise ValueError(
                    f"class {own} is in more than one symmetric pair: {table.symmetric_pairs}"
                )
            partner[own] = other
    return partner


def _component_classes(components: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class of each component and whether it is its class's largest.

    Returns
    -------
    comp_class : ndarray, shape (N + 1,), uint8
        ``comp_class[k]`` is the class of component ``k``; entry 0 (background) is 0.
    largest : ndarray, shape (N + 1,), bool
        True for the largest component of each foreground class (see the module docstring
        for ties).
    """
    n_components = int(components.max()) if components.size else 0
    comp_class = np.zeros(n_components + 1, np.uint8)
    comp_class[components.ravel()] = labels.ravel()
    sizes = np.bincount(components.ravel(), minlength=n_components + 1)
    largest = np.zeros(n_components + 1, bool)
    for class_id in np.unique(comp_class[1:]):
        members = np.flatnonzero(comp_class == class_id)
        members = members[members > 0]
        tied = members[sizes[members] == sizes[members].max()]
        if tied.size > 1:  # the tied component reached first in C scan order wins
            first_voxel = np.flatnonzero(np.isin(components, tied))[0]
            tied = components.ravel()[first_voxel : first_voxel + 1]
        largest[tied[0]] = True
    return comp_class, largest


def _count_changed(before: np.ndarray, after: np.ndarray, table: LabelTable) -> dict[int, int]:
    """Voxels of each foreground class of ``before`` that have another value in ``after``."""
    counts = np.bincount(before[before != after].ravel(), minlength=table.n_classes)
    return {class_id: int(counts[class_id]) for class_id in table.foreground_ids}


def enforce_min_gap(
    labels: np.ndarray,
    spacing_mm: Sequence[float],
    *,
    min_gap_mm: float | None = None,
    probabilities: np.ndarray | None = None,
) -> tuple[np.ndarray, int]:
    """Set contested voxels to background so that no two bones touch.

    Two voxels of *different foreground classes* are **contested** when they are
    26-neighbours (faces, edges or corners; always, so the result never has touching bones) or,
    with ``min_gap_mm``, when their centres are closer than ``min_gap_mm`` (Euclidean, in mm,
    anisotropic spacing respected; ``distance < min_gap_mm``). Of each contested pair exactly
    one voxel, the **loser**, becomes background (0):

    - with ``probabilities``: the voxel whose probability of its *own* class is lower;
    - without ``probabilities``, or where the two are equal: the voxel of the class that gives
      up fewer voxels. For each pair of classes ``(a, b)`` in contact, count the distinct
      contested voxels of ``a`` (contested with ``b``) and of ``b`` (with ``a``); all of those
      pairs' losers are on the side with the smaller count, i.e. one layer is cut from the side
      where that changes the map least; on equal counts the class with the larger id loses.

    All pairs are judged on the input map and all losers removed together; since removing
    voxels never creates a contact, one pass leaves no contested pair (this is checked, and
    repeated, at most ``_MAX_GAP_PASSES`` times). The rule treats both classes alike except for
    the last tie-break, and does not depend on scan order.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        Label map, 0 background, ids 0..255. Not modified.
    spacing_mm : sequence of float, length 3
        Voxel size in mm along each axis.
    min_gap_mm : float, optional
        Smallest allowed centre distance (mm) between voxels of different classes (the
        background between their faces is then about ``min_gap_mm`` minus one voxel). Default:
        only 26-neighbours are contested; values up to twice the smallest voxel spacing add
        nothing to that.
    probabilities : ndarray, shape (C, X, Y, Z), optional
        Per-class scores, e.g. the summed view probabilities; ``C`` larger than every label id.

    Returns
    -------
    result : ndarray, shape (X, Y, Z), uint8
        A new map in which no two different foreground classes are contested.
    n_changed : int
        Number of voxels set to background.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 2, 2, 0]]])
    >>> enforce_min_gap(labels, (1.0, 1.0, 1.0))  # one voxel each side: the larger id loses
    (array([[[1, 1, 0, 2, 0]]], dtype=uint8), 1)
    """
    labels = np.ascontiguousarray(_check_gap_labels(labels))
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ValueError(f"spacing_mm must be 3 positive finite numbers, got {spacing_mm!r}")
    if min_gap_mm is not None and not (np.isfinite(min_gap_mm) and min_gap_mm >= 0):
        raise ValueError(f"min_gap_mm must be a finite number >= 0, got {min_gap_mm!r}")
    if probabilities is not None:
        probabilities = np.asarray(probabilities)
        if probabilities.ndim != 4 or probabilities.shape[1:] != labels.shape:
            raise ValueError(f"probabilities must have shape (C, {', '.join(map(str, labels.shape))}), "
                             f"got {probabilities.shape}")
        if labels.size and probabilities.shape[0] <= labels.max():
            raise ValueError(f"probabilities have {probabilities.shape[0]} classes, labels hold "
                             f"id {labels.max()}")
    offsets = _contest_offsets(spacing, min_gap_mm)
    result = labels.copy()
    for _ in range(_MAX_GAP_PASSES):
        pairs = _contested_pairs(result, offsets, spacing)
        if pairs is None:
            break
        losers = _losers(result, *pairs, probabilities)
        result.ravel()[losers] = 0
    else:
        if _contested_pairs(result, offsets, spacing) is not None:  # pragma: no cover
            raise RuntimeError("enforce_min_gap did not converge")
    return result, int(np.count_nonzero(result != labels))


_MAX_GAP_PASSES = 4


def _check_gap_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3D array (X, Y, Z), got shape {labels.shape}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"labels must be an integer array, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"labels must lie in 0..255, got [{labels.min()}, {labels.max()}]")
    return labels.astype(np.uint8)


def _contest_offsets(spacing: np.ndarray, min_gap_mm: float | None) -> np.ndarray:
    """Voxel offsets (one of each +-pair) whose two ends are contested, shape (K, 3)."""
    reach = np.ones(3, int)
    if min_gap_mm is not None:
        reach = np.maximum(reach, np.ceil(min_gap_mm / spacing).astype(int))
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1)
    grid = grid.reshape(-1, 3)
    first = grid[np.flatnonzero(np.any(grid != 0, axis=1))]
    nonzero = first[np.arange(len(first)), np.argmax(first != 0, axis=1)]
    half = first[nonzero > 0]  # the first non-zero component is positive: one of each pair
    close = np.all(np.abs(half) <= 1, axis=1)
    if min_gap_mm is not None:
        close |= np.linalg.norm(half * spacing, axis=1) < min_gap_mm
    return half[close]


def _contested_pairs(
    labels: np.ndarray, offsets: np.ndarray, spacing: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """Flat indices ``(p, q)`` of all contested voxel pairs, or None when there are none."""
    reach_mm = float(np.max(np.linalg.norm(offsets * spacing, axis=1)))
    candidates = _near_other_class(labels, spacing, reach_mm)
    if not candidates.any():
        return None
    ijk = np.argwhere(candidates)
    own = labels[candidates]
    shape = np.asarray(labels.shape)
    ps, qs = [], []
    for offset in offsets:
        other = ijk + offset
        inside = np.all((other >= 0) & (other < shape), axis=1)
        other_label = np.zeros(len(ijk), np.uint8)
        other_label[inside] = labels[tuple(other[inside].T)]
        hit = (other_label != 0) & (other_label != own)
        if hit.any():
            ps.append(np.ravel_multi_index(tuple(ijk[hit].T), labels.shape))
            qs.append(np.ravel_multi_index(tuple(other[hit].T), labels.shape))
    if not ps:
        return None
    return np.concatenate(ps), np.concatenate(qs)


def _near_other_class(labels: np.ndarray, spacing: np.ndarray, reach_mm: float) -> np.ndarray:
    """Foreground voxels within ``reach_mm`` (centre distance) of another foreground class."""
    near = np.zeros(labels.shape, bool)
    for class_id, box, dist in per_class_distances(labels, spacing_mm=spacing, max_mm=reach_mm):
        sub = labels[box]
        own = sub == class_id
        within = dist <= reach_mm * (1 + 1e-6)
        # Voxels of other classes near this one; this class's own voxels near another class
        # are marked when that class's turn comes, so both ends of every pair are found.
        near[box] |= within & (sub != 0) & ~own
    return near


def _losers(
    labels: np.ndarray, p: np.ndarray, q: np.ndarray, probabilities: np.ndarray | None
) -> np.ndarray:
    """Flat index of the loser of each contested pair (see :func:`enforce_min_gap`)."""
    flat = labels.ravel()
    label_p, label_q = flat[p].astype(np.int64), flat[q].astype(np.int64)
    low, high = np.minimum(label_p, label_q), np.maximum(label_p, label_q)
    p_loses = np.zeros(len(p), bool)
    for a, b in set(zip(low.tolist(), high.tolist())):
        pairs = (low == a) & (high == b)
        voxels = np.unique(np.concatenate([p[pairs], q[pairs]]))
        n_a = int(np.count_nonzero(flat[voxels] == a))
        loser = a if n_a < len(voxels) - n_a else b
        p_loses[pairs] = label_p[pairs] == loser
    if probabilities is not None:
        scores = probabilities.reshape(probabilities.shape[0], -1)
        score_p, score_q = scores[label_p, p], scores[label_q, q]
        p_loses = np.where(score_p != score_q, score_p < score_q, p_loses)
    return np.unique(np.where(p_loses, p, q))
