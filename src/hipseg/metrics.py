"""Segmentation metrics on label maps (more follow: Hausdorff, HD95, GapDice)."""

from __future__ import annotations

import numpy as np

__all__ = ["dice_per_class"]


def dice_per_class(prediction: np.ndarray, reference: np.ndarray, class_ids: tuple[int, ...]) -> dict[int, float]:
    """Dice coefficient of each class.

    Parameters
    ----------
    prediction, reference : ndarray, shape (X, Y, Z), integer
        Label maps on the same grid.
    class_ids : tuple of int

    Returns
    -------
    dict
        ``{class_id: dice}``. A class absent from both maps gets ``nan`` (nothing to score);
        absent from one only, 0.

    Examples
    --------
    >>> a = np.array([[[1, 1, 0, 0]]]); b = np.array([[[1, 0, 0, 0]]])
    >>> dice_per_class(a, b, (1,))
    {1: 0.6666666666666666}
    """
    if prediction.shape != reference.shape:
        raise ValueError(f"shapes differ: {prediction.shape} vs {reference.shape}")
    scores = {}
    for class_id in class_ids:
        pred = prediction == class_id
        ref = reference == class_id
        total = int(pred.sum()) + int(ref.sum())
        scores[class_id] = float("nan") if total == 0 else 2.0 * int((pred & ref).sum()) / total
    return scores
