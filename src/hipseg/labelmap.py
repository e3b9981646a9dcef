"""Checks every numerical function applies to a label map and a voxel spacing, in one place."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hipseg.core.labels import LabelTable
from hipseg.core.volume import apply_affine

__all__ = ["check_labels", "check_spacing", "side_problems"]

#: Voxel stride for centroids: a centroid moves by far less than a voxel when every second
#: voxel along each axis is used, and the check stays cheap on a 500^3 map.
_CENTROID_STRIDE = 2


def check_labels(labels: np.ndarray, *, max_id: int | None = None) -> np.ndarray:
    """A label map as a C-contiguous array (the input itself when it already is one).

    Parameters
    ----------
    labels : array-like, shape (X, Y, Z), integer or bool
        0 is background.
    max_id : int, optional
        The largest id allowed (e.g. ``table.n_classes - 1``).

    Raises
    ------
    ValueError
        Not 3D, not integers, a negative id, or an id above ``max_id``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be a 3D array (X, Y, Z), got shape {labels.shape}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise ValueError(f"labels must be an integer array, got dtype {labels.dtype}")
    if labels.size:
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or (max_id is not None and high > max_id):
            known = "0 or more" if max_id is None else f"0..{max_id}"
            raise ValueError(f"labels hold ids in [{low}, {high}]; allowed are {known}")
    return np.ascontiguousarray(labels)


def check_spacing(spacing_mm: Sequence[float], ndim: int = 3) -> np.ndarray:
    """Voxel spacing as ``ndim`` positive finite float64 numbers (mm).

    Raises
    ------
    ValueError
        Another count, zero, negative, NaN or infinite values.
    """
    spacing = np.asarray(spacing_mm, dtype=np.float64).reshape(-1)
    if spacing.shape != (ndim,) or not np.all(np.isfinite(spacing)) or np.any(spacing <= 0):
        raise ValueError(f"spacing_mm must be {ndim} positive finite numbers, got {spacing_mm!r}")
    return spacing


def side_problems(labels: np.ndarray, affine: np.ndarray, table: LabelTable) -> list[str]:
    """Side classes whose centroid lies on the wrong side of the mid-sagittal plane (RAS x).

    A ``(right, left)`` pair of ``table.symmetric_pairs`` must have its right class on the
    patient's right: RAS +x of the midline. The midline is the x of the centroid of every
    foreground voxel (sacrum and both sides of the pelvis balance there). Left and right come
    from the affine, never from the array order.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
    affine : ndarray, shape (4, 4)
        Voxel to RAS (mm).

    Returns
    -------
    list of str
        One message per misplaced class, e.g. ``"femur_right lies 85.0 mm left of the
        midline"``; empty when every present side class is on its side.
    """
    sub = np.asarray(labels)[::_CENTROID_STRIDE, ::_CENTROID_STRIDE, ::_CENTROID_STRIDE]
    ijk = np.argwhere(sub > 0)
    if len(ijk) == 0:
        return []
    x_mm = apply_affine(np.asarray(affine, float), ijk * _CENTROID_STRIDE)[:, 0]
    ids = sub[tuple(ijk.T)]
    midline = float(x_mm.mean())
    problems = []
    for right, left in table.symmetric_pairs:
        for class_id, sign in ((right, 1.0), (left, -1.0)):
            inside = ids == class_id
            if not inside.any():
                continue
            offset = float(x_mm[inside].mean()) - midline
            if offset * sign < 0:
                problems.append(f"{table.names[class_id]} lies {abs(offset):.1f} mm "
                                f"{'left' if offset < 0 else 'right'} of the midline")
    return problems
