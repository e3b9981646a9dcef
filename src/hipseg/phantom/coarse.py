"""Closing the gaps between bones, as coarse labels do (the gap guarantee of accurate labels is
:func:`hipseg.postprocess.enforce_min_gap`, the one gap rule)."""

from __future__ import annotations

import numpy as np

from hipseg.distances import class_distances, per_class_distances
from hipseg.labelmap import check_labels, check_spacing

__all__ = ["FEMUR_HIP_PAIRS", "fill_joint_spaces", "merge_femoral_heads", "nearest_two_bones"]


def nearest_two_bones(
    labels: np.ndarray, spacing_mm: np.ndarray, max_distance_mm: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance to the nearest foreground class and to the nearest *other* one.

    Distances are between voxel centres, in mm (anisotropic spacing respected). Each class's
    distance map is computed only in its bounding box grown by ``max_distance_mm``; farther
    voxels get ``inf``.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        0 is background, every other value a class.
    spacing_mm : array-like, shape (3,)
        Voxel spacing in mm.
    max_distance_mm : float
        Distances beyond this are not needed by the caller and may be ``inf``.

    Returns
    -------
    d1 : ndarray, shape (X, Y, Z), float32
        Distance (mm) to the nearest foreground voxel (0 on foreground).
    d2 : ndarray, shape (X, Y, Z), float32
        Distance (mm) to the nearest voxel of a class other than ``nearest``.
    nearest : ndarray, shape (X, Y, Z), same dtype as ``labels``
        Class of the nearest foreground voxel (0 where ``d1`` is ``inf``).
    """
    labels = check_labels(labels)
    return class_distances(labels, spacing_mm=check_spacing(spacing_mm), max_mm=max_distance_mm)


def fill_joint_spaces(labels: np.ndarray, spacing_mm: np.ndarray, max_gap_mm: float) -> np.ndarray:
    """Close the narrow gaps between neighbouring bones, as poor public labels do.

    A background voxel whose distance ``d1`` to the nearest bone and ``d2`` to the nearest
    *other* bone satisfy ``d1 + d2 <= max_gap_mm + h`` (``h``: the largest voxel spacing) gets
    the class of the nearest bone, so that bones on either side of a joint space touch.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        Accurate labels, 0 is background.
    spacing_mm : array-like, shape (3,)
        Voxel spacing in mm.
    max_gap_mm : float
        Widest gap (mm, between voxel centres) that is filled.

    Returns
    -------
    ndarray, shape (X, Y, Z), same dtype as ``labels``
        A new label map; every foreground voxel of ``labels`` keeps its class.
    """
    labels = check_labels(labels)
    spacing = check_spacing(spacing_mm)
    if max_gap_mm < 0:
        raise ValueError(f"max_gap_mm must be >= 0, got {max_gap_mm}")
    limit = max_gap_mm + float(spacing.max())
    d1, d2, nearest = nearest_two_bones(labels, spacing, limit)
    fill = (labels == 0) & (d1 + d2 <= limit)
    out = labels.copy()
    out[fill] = nearest[fill]
    return out


#: Femur and hip bone ids of one side in the default label table (right, left).
FEMUR_HIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 3), (2, 4))


def merge_femoral_heads(labels: np.ndarray, spacing_mm: np.ndarray, reach_mm: float = 15.0,
                        femur_hip_pairs: tuple[tuple[int, int], ...] = FEMUR_HIP_PAIRS
                        ) -> np.ndarray:
    """Give the femoral head's part next to the acetabulum to the hip bone.

    Coarse public labels (TotalSegmentator's among them) often draw the top of the femoral
    head as part of the hip bone. Every femur voxel within ``reach_mm`` of its own side's hip
    bone becomes hip bone.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
    spacing_mm : array-like, shape (3,)
    reach_mm : float
        How deep into the head (from the acetabulum) the hip bone reaches, mm.
    femur_hip_pairs : tuple of (int, int)
        ``(femur id, hip id)`` of each side.

    Returns
    -------
    ndarray, shape (X, Y, Z), same dtype as ``labels``
        Only femur voxels change, and only to their side's hip id.
    """
    labels = check_labels(labels)
    spacing = check_spacing(spacing_mm)
    out = labels.copy()
    femur_of = {hip: femur for femur, hip in femur_hip_pairs}
    for class_id, box, distance in per_class_distances(labels, spacing_mm=spacing,
                                                      max_mm=reach_mm):
        if class_id in femur_of:
            sub = labels[box]
            out[box][(sub == femur_of[class_id]) & (distance <= reach_mm)] = class_id
    return out
