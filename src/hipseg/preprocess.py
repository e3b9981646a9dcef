"""SPEC step 1: clip negative intensities, then robust scaling per scan.

The median and quartiles are taken over the voxels above the clip value, as the original
MPUNet fits its scaler only on values above the scan's background value. Over all voxels, a CT
with a large field of view (air, lungs, fat: often more than 75 % below 0 HU) would have
q25 = q75 = 0 and nothing to scale by.
"""

from __future__ import annotations

import numpy as np

__all__ = ["preprocess_image", "robust_scale"]


def robust_scale(values: np.ndarray) -> tuple[float, float]:
    """Median and inter-quartile range of ``values`` (any shape, flattened).

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

    The statistics come from the voxels above ``clip_below_hu`` (see the module docstring).

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
    tissue = clipped[clipped > np.float32(clip_below_hu)]
    if tissue.size == 0:
        raise ValueError(f"no intensity above {clip_below_hu:g} HU: nothing to scale by")
    median, iqr = robust_scale(tissue)
    return ((clipped - np.float32(median)) / np.float32(iqr)).astype(np.float32, copy=False)
