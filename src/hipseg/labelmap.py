"""Checks every numerical function applies to a label map and a voxel spacing, in one place."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["check_labels", "check_spacing"]


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
