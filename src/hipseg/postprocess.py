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
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cc3d
import numpy as np

from hipseg.core.labels import LabelTable

__all__ = ["PostprocessReport", "symmetric_components", "symmetric_components_with_report"]

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
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3D array (X, Y, Z), got shape {labels.shape}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"labels must be an integer array, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= table.n_classes):
        raise ValueError(
            f"labels hold ids in [{labels.min()}, {labels.max()}]; the label table knows "
            f"0..{table.n_classes - 1}"
        )
    if table.n_classes > 256:
        raise ValueError(f"at most 256 classes fit in uint8, the table has {table.n_classes}")
    return np.ascontiguousarray(labels, dtype=np.uint8)


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
