"""SPEC step 1: clip negative intensities, then robust scaling per scan."""

from __future__ import annotations

import numpy as np

__all__ = ["preprocess_image", "robust_scale"]


def robust_scale(values: np.ndarray) -> tuple[float, float]:
    """Median and inter-quartile range of ``values``.

    Returns
    -------
    median, iqr : float
        ``iqr = q75 - q25``. Raises ``ValueError`` when it is 0 (no spread to scale by).
    """
    q25, median, q75 = np.percentile(values, [25.0, 50.0, 75.0])
    iqr = float(q75 - q25)
    if not iqr > 0:
        raise ValueError(
            f"intensities have no spread to scale by (q25 = q75 = {q75:g} after clipping)"
        )
    return float(median), iqr


def preprocess_image(image: np.ndarray, clip_below_hu: float = 0.0) -> np.ndarray:
    """Set values below ``clip_below_hu`` to it, then ``(x - median) / (q75 - q25)``.

    Parameters
    ----------
    image : ndarray, shape (X, Y, Z)
        CT intensities in HU.
    clip_below_hu : float
        The paper sets negative HU to 0 (the default).

    Returns
    -------
    ndarray, shape (X, Y, Z), float32
        A new array; the input is not modified.
    """
    clipped = np.maximum(np.asarray(image, dtype=np.float32), np.float32(clip_below_hu))
    median, iqr = robust_scale(clipped)
    return ((clipped - np.float32(median)) / np.float32(iqr)).astype(np.float32, copy=False)
