"""The one distance kernel: per-class Euclidean distances in each class's grown bounding box.

Weight maps, the gap region of GapDice, collisions, the gap guarantee, the phantom's joint
spaces and the report's joint centres all need "how far is this voxel from class c" only up to
some distance. Each class's distance transform (:mod:`edt`, anisotropic, mm) is therefore
computed only in its bounding box grown by that distance; farther voxels are ``inf``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import edt
import numpy as np
from scipy import ndimage

from hipseg.labelmap import check_spacing

__all__ = ["class_boxes", "class_distances", "distance_to_class", "per_class_distances"]


def _spacing(spacing_mm: Sequence[float] | None, ndim: int) -> np.ndarray:
    return np.ones(ndim) if spacing_mm is None else check_spacing(spacing_mm, ndim)


def class_boxes(labels: np.ndarray, margin_vox: Sequence[int] | int = 0
                ) -> Iterator[tuple[int, tuple[slice, ...]]]:
    """``(class id, bounding box grown by margin_vox and clipped)`` of each foreground class
    present, in increasing id order.

    Parameters
    ----------
    labels : ndarray, integer, non-negative
    margin_vox : int or sequence of int (one per axis)
    """
    labels = np.asarray(labels)
    margin = np.broadcast_to(np.asarray(margin_vox, dtype=np.int64), (labels.ndim,))
    for index, tight in enumerate(ndimage.find_objects(labels.astype(np.int64, copy=False))):
        if tight is None:
            continue
        yield index + 1, tuple(slice(max(s.start - int(m), 0), min(s.stop + int(m), n))
                               for s, m, n in zip(tight, margin, labels.shape, strict=True))


def per_class_distances(labels: np.ndarray, *, spacing_mm: Sequence[float] | None = None,
                        max_mm: float = math.inf
                        ) -> Iterator[tuple[int, tuple[slice, ...], np.ndarray]]:
    """``(class id, box, distance)``: for each class, the distance (mm; voxels without
    ``spacing_mm``) from every voxel of its box to the class's nearest voxel (0 inside).

    The box is the class's bounding box grown by ``max_mm`` (plus a voxel), so every distance
    up to ``max_mm`` is exact within the whole array: voxels outside the box are farther.
    """
    labels = np.asarray(labels)
    spacing = _spacing(spacing_mm, labels.ndim)
    if math.isinf(max_mm):
        margin = np.asarray(labels.shape)
    else:
        margin = np.ceil(max_mm / spacing).astype(np.int64) + 1
    for class_id, box in class_boxes(labels, margin):
        outside = np.ascontiguousarray(labels[box] != class_id)
        yield class_id, box, edt.edt(outside, anisotropy=tuple(spacing), black_border=False)


def class_distances(labels: np.ndarray, *, spacing_mm: Sequence[float] | None = None,
                    max_mm: float = math.inf) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance to the nearest foreground class and to the second nearest, and which class is
    nearest.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        0 is background, every other value a class.
    spacing_mm : sequence of 3 floats, optional
        Voxel spacing; distances in mm. Without it, in voxels.
    max_mm : float
        Distances beyond this may be ``inf`` (see :func:`per_class_distances`).

    Returns
    -------
    d1, d2 : ndarray, shape (X, Y, Z), float32
        ``d1`` is 0 on foreground; ``d2`` is then the distance to the nearest other class.
    nearest : ndarray, shape (X, Y, Z), the dtype of ``labels``
        The class at ``d1`` (the smallest id on ties), 0 where ``d1`` is ``inf``.
    """
    labels = np.asarray(labels)
    d1 = np.full(labels.shape, np.inf, np.float32)
    d2 = np.full(labels.shape, np.inf, np.float32)
    nearest = np.zeros_like(labels)
    for class_id, box, dist in per_class_distances(labels, spacing_mm=spacing_mm, max_mm=max_mm):
        b1, b2, bn = d1[box], d2[box], nearest[box]  # views into the full arrays
        closer = dist < b1
        np.minimum(b2, np.maximum(b1, dist), out=b2)
        np.minimum(b1, dist, out=b1)
        bn[closer] = class_id
    return d1, d2, nearest


def distance_to_class(labels: np.ndarray, class_id: int, *,
                      spacing_mm: Sequence[float] | None = None) -> np.ndarray:
    """Distance (mm; voxels without ``spacing_mm``) from every voxel to class ``class_id``,
    float32, over the whole array (``inf`` everywhere when the class is absent)."""
    labels = np.asarray(labels)
    spacing = _spacing(spacing_mm, labels.ndim)
    if not np.any(labels == class_id):
        return np.full(labels.shape, np.inf, np.float32)
    outside = np.ascontiguousarray(labels != class_id)
    return edt.edt(outside, anisotropy=tuple(spacing), black_border=False).astype(np.float32)
