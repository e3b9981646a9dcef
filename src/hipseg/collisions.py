"""Collisions between classes of a label map: the gap measure |E| of SPEC step 9.

E = { x : labels(x) != 0 and d(x) <= eps }, where d(x) is the Euclidean distance in mm from
the centre of voxel x to the centre of the nearest voxel of a *different* foreground class
(background never counts). A voxel face-adjacent, along an axis of spacing s, to a voxel of
another class has d = s; two classes separated by one background voxel along that axis have
d = 2 s on their facing layers. Distances exactly equal to ``eps_mm`` count as collisions (up
to float32 rounding, relative 1e-5). Without ground truth, |E| tells how well a prediction
keeps the gaps between bones.

Pair codes
----------
Each colliding voxel is labelled with the unordered pair ``(i, j)``, ``0 < i < j``, of its own
class and the class it collides with, encoded as ``code = (j - 1) * (j - 2) // 2 + i``
(``0`` = no collision). The codes do not depend on how many classes there are; for the paper's
classes (1 femur_right, 2 femur_left, 3 hip_right, 4 hip_left, 5 sacrum):

====  ======  ====  ======  ====  ======  ====  ======  ====  ======
code  pair    code  pair    code  pair    code  pair    code  pair
====  ======  ====  ======  ====  ======  ====  ======  ====  ======
1     (1, 2)  3     (2, 3)  5     (2, 4)  7     (1, 5)  9     (3, 5)
2     (1, 3)  4     (1, 4)  6     (3, 4)  8     (2, 5)  10    (4, 5)
====  ======  ====  ======  ====  ======  ====  ======  ====  ======

:func:`collision_pairs` gives the table: ``collision_pairs(max_label)[code - 1] == (i, j)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hipseg.distances import per_class_distances
from hipseg.labelmap import check_labels, check_spacing

__all__ = ["collision_map", "collision_pairs", "count_collisions", "default_eps_mm", "pair_code"]

#: The paper's eps, in mm (SPEC step 9).
PAPER_EPS_MM = 2.0

#: Relative tolerance on ``d(x) <= eps`` and on ties: the distance transform works in float32.
_RELATIVE_TOLERANCE = 1e-5
_MAX_LABEL = 255


def default_eps_mm(spacing_mm: Sequence[float]) -> float:
    """The paper's 2 mm, or the largest voxel spacing when that is larger.

    The paper's scans have ~0.8 mm voxels, where 2 mm spans more than two voxels. On coarser
    scans 2 mm would be shorter than one voxel step, and bones that touch would count as no
    collision at all; the largest spacing makes every face-touching voxel count.
    """
    return max(PAPER_EPS_MM, float(np.max(spacing_mm)))


def pair_code(i: int, j: int) -> int:
    """Code of the unordered pair of foreground classes ``{i, j}`` (see the module docstring).

    Examples
    --------
    >>> pair_code(1, 2), pair_code(4, 3), pair_code(4, 5)
    (1, 6, 10)
    """
    i, j = sorted((int(i), int(j)))
    if i < 1 or i == j:
        raise ValueError(f"a pair needs two different foreground ids, got ({i}, {j})")
    return (j - 1) * (j - 2) // 2 + i


def collision_pairs(max_label: int) -> tuple[tuple[int, int], ...]:
    """The pair table of all classes ``1..max_label``: entry ``code - 1`` is the pair of ``code``.

    Parameters
    ----------
    max_label : int
        Largest foreground id. The table for a larger ``max_label`` extends this one.

    Returns
    -------
    tuple of (int, int)
        ``max_label * (max_label - 1) / 2`` pairs ``(i, j)``, ``i < j``, ordered by ``j`` then
        ``i``; empty when ``max_label < 2``.

    Examples
    --------
    >>> collision_pairs(3)
    ((1, 2), (1, 3), (2, 3))
    """
    return tuple((i, j) for j in range(2, int(max_label) + 1) for i in range(1, j))


def collision_map(
    labels: np.ndarray, spacing_mm: Sequence[float], eps_mm: float = 2.0
) -> tuple[np.ndarray, tuple[tuple[int, int], ...]]:
    """Collision map: each voxel of E labelled with the class pair it collides in.

    A voxel within ``eps_mm`` of several other classes gets the pair with the nearest one;
    on ties (equal distances up to float32 rounding, relative 1e-5) the smallest class id.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        Label map, 0 background, foreground ids 1..255. Not modified.
    spacing_mm : sequence of float, length 3
        Voxel size in mm along each axis.
    eps_mm : float, default 2.0
        Collision distance in mm (the paper's eps = 2), ``>= 0``.

    Returns
    -------
    codes : ndarray, shape (X, Y, Z), uint16
        0 outside E; inside E, ``pair_code(labels[x], nearest other class)``.
    pairs : tuple of (int, int)
        ``collision_pairs(labels.max())``: ``pairs[code - 1]`` is the pair of ``code``.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 0, 2, 2, 0, 0, 3]]])
    >>> codes, pairs = collision_map(labels, (1.0, 1.0, 1.0))
    >>> codes[0, 0], pairs
    (array([0, 1, 0, 1, 0, 0, 0, 0], dtype=uint16), ((1, 2), (1, 3), (2, 3)))
    """
    labels, spacing, eps_mm = _check_inputs(labels, spacing_mm, eps_mm)
    distance, nearest = _nearest_other_class(labels, spacing, eps_mm)
    colliding = distance <= eps_mm * (1.0 + _RELATIVE_TOLERANCE)
    own = labels[colliding].astype(np.int64)
    other = nearest[colliding].astype(np.int64)
    low, high = np.minimum(own, other), np.maximum(own, other)
    codes = np.zeros(labels.shape, np.uint16)
    codes[colliding] = (high - 1) * (high - 2) // 2 + low
    max_label = int(labels.max()) if labels.size else 0
    return codes, collision_pairs(max_label)


def count_collisions(
    labels: np.ndarray, spacing_mm: Sequence[float], eps_mm: float = 2.0
) -> tuple[int, dict[tuple[int, int], int]]:
    """The number of colliding voxels |E|, in total and per class pair.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        As :func:`collision_map`.
    spacing_mm : sequence of float, length 3
        Voxel size in mm along each axis.
    eps_mm : float, default 2.0
        Collision distance in mm.

    Returns
    -------
    total : int
        |E|; 0 for an empty map or a map with one foreground class.
    per_pair : dict of (int, int) to int
        ``{(i, j): count}``, ``i < j``, for the pairs with at least one colliding voxel, in
        pair-code order; the counts sum to ``total``. Both sides count: a voxel of ``i`` near
        ``j`` and a voxel of ``j`` near ``i`` are both counted under ``(i, j)``.

    Examples
    --------
    >>> labels = np.array([[[1, 1, 0, 2, 2, 0, 0, 3]]])
    >>> count_collisions(labels, (1.0, 1.0, 1.0))
    (2, {(1, 2): 2})
    """
    codes, pairs = collision_map(labels, spacing_mm, eps_mm)
    counts = np.bincount(codes.ravel(), minlength=len(pairs) + 1)
    per_pair = {pairs[code - 1]: int(counts[code]) for code in np.flatnonzero(counts[1:]) + 1}
    return int(counts[1:].sum()), per_pair


def _nearest_other_class(
    labels: np.ndarray, spacing: np.ndarray, eps_mm: float
) -> tuple[np.ndarray, np.ndarray]:
    """Distance (mm) to, and id of, the nearest voxel of another foreground class.

    Exact up to ``eps_mm`` (with margin); beyond that the distance may be ``inf`` and the id 0.
    Background voxels get ``inf`` and 0.
    """
    distance = np.full(labels.shape, np.inf, np.float32)
    nearest = np.zeros(labels.shape, np.uint8)
    # Classes come in increasing id order and replace the nearest class found so far only if
    # closer beyond float32 rounding: ties go to the smallest id.
    reach_mm = eps_mm * (1.0 + _RELATIVE_TOLERANCE)
    for class_id, box, dist in per_class_distances(labels, spacing_mm=spacing, max_mm=reach_mm):
        sub = labels[box]
        closer = (sub != 0) & (sub != class_id) & (dist < distance[box] * (1 - _RELATIVE_TOLERANCE))
        distance[box][closer] = dist[closer]
        nearest[box][closer] = class_id
    return distance, nearest


def _check_inputs(
    labels: np.ndarray, spacing_mm: Sequence[float], eps_mm: float
) -> tuple[np.ndarray, np.ndarray, float]:
    labels = check_labels(labels, max_id=_MAX_LABEL)
    spacing = check_spacing(spacing_mm)
    eps = float(eps_mm)
    if not (np.isfinite(eps) and eps >= 0):
        raise ValueError(f"eps_mm must be a finite number >= 0, got {eps_mm!r}")
    return np.ascontiguousarray(labels, dtype=np.uint8), spacing, eps
