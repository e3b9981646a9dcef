"""Segmentation metrics on label maps: Dice, surface distances (HD, HD95, ASSD) and GapDice.

Conventions (all functions are pure: numpy arrays in, floats or new arrays out):

- Surfaces are voxel sets: the voxels of a mask that 6-connectivity erosion removes. Voxels on
  the array's edge count as surface (outside the array is background).
- Distances are Euclidean, between voxel centres, in mm; ``spacing_mm`` (keyword-only, one value
  per axis) carries the anisotropic voxel size.
- Empty sets: both masks empty -> distance 0.0; exactly one empty -> ``inf`` (as in
  scikit-image's ``hausdorff_distance``). Dice of a class absent from both maps is ``nan``.
"""

from __future__ import annotations

from collections.abc import Sequence

import edt
import numpy as np
from scipy import ndimage

from hipseg.distances import class_distances
from hipseg.labelmap import check_spacing

__all__ = [
    "average_surface_distance",
    "dice_per_class",
    "gap_dice_per_class",
    "gap_region",
    "hausdorff_distance",
    "surface_distances",
    "surface_metrics_per_class",
    "surface_voxels",
]


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


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """Boundary voxels of a binary mask: the mask minus its erosion.

    The erosion uses the 6-connectivity cross (face neighbours only; ``2 * ndim`` neighbours in
    general) and treats everything outside the array as background, so mask voxels on the
    array's edge are surface voxels. A non-empty mask always has a non-empty surface.

    Parameters
    ----------
    mask : ndarray, shape (X, Y, Z), bool (any dtype; non-zero is foreground)

    Returns
    -------
    ndarray, shape (X, Y, Z), bool
        True on the mask's surface voxels.

    Examples
    --------
    >>> cube = np.zeros((5, 5, 5), bool); cube[1:4, 1:4, 1:4] = True
    >>> int(surface_voxels(cube).sum())  # 27 voxels minus the centre one
    26
    """
    mask = np.asarray(mask, dtype=bool)
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def surface_distances(
    pred_mask: np.ndarray, ref_mask: np.ndarray, *, spacing_mm: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Distances (mm) from each surface voxel of one mask to the nearest surface voxel of the other.

    Parameters
    ----------
    pred_mask, ref_mask : ndarray, shape (X, Y, Z), bool
        Masks on the same grid (non-zero is foreground).
    spacing_mm : sequence of float, length 3 (one per axis)
        Voxel size in mm along each axis.

    Returns
    -------
    pred_to_ref : ndarray, shape (n_pred_surface,), float64
        For each surface voxel of ``pred_mask`` (in C order), the distance in mm to the nearest
        surface voxel of ``ref_mask``; ``inf`` for all of them when ``ref_mask`` is empty.
    ref_to_pred : ndarray, shape (n_ref_surface,), float64
        The same in the other direction.

    Notes
    -----
    Computed with an anisotropic Euclidean distance transform of the complement of the other
    surface, cropped to the bounding box of both masks (exact: nearest surface voxels lie in it).
    """
    pred, ref = _check_masks(pred_mask, ref_mask)
    spacing = check_spacing(spacing_mm, pred.ndim)
    box = _bounding_box(pred | ref)
    if box is None:
        return np.zeros(0), np.zeros(0)
    pred_surface = surface_voxels(pred[box])
    ref_surface = surface_voxels(ref[box])
    return (
        _distances_to(ref_surface, pred_surface, spacing),
        _distances_to(pred_surface, ref_surface, spacing),
    )


def hausdorff_distance(
    pred_mask: np.ndarray,
    ref_mask: np.ndarray,
    *,
    spacing_mm: Sequence[float],
    percentile: float = 100.0,
) -> float:
    """Symmetric (percentile) Hausdorff distance between the surfaces of two masks, in mm.

    The ``percentile`` of each directed set of surface distances (pred -> ref and ref -> pred,
    see :func:`surface_distances`) is taken separately, then the larger of the two is returned.
    ``percentile=100`` is the classic Hausdorff distance; ``percentile=95`` is HD95 with
    MONAI's convention (``compute_hausdorff_distance(..., percentile=95)``). Percentiles use
    linear interpolation (``np.percentile``'s default, as ``torch.quantile``).

    Parameters
    ----------
    pred_mask, ref_mask : ndarray, shape (X, Y, Z), bool
        Masks on the same grid (non-zero is foreground).
    spacing_mm : sequence of float, length 3
        Voxel size in mm along each axis.
    percentile : float in [0, 100], default 100

    Returns
    -------
    float
        Distance in mm. Both masks empty: 0.0; exactly one empty: ``inf``.

    Examples
    --------
    >>> a = np.zeros((1, 1, 6), bool); a[0, 0, 0] = True
    >>> b = np.zeros((1, 1, 6), bool); b[0, 0, 4] = True
    >>> hausdorff_distance(a, b, spacing_mm=(1.0, 1.0, 2.5))
    10.0
    """
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    return _hausdorff(*surface_distances(pred_mask, ref_mask, spacing_mm=spacing_mm), percentile)


def average_surface_distance(
    pred_mask: np.ndarray, ref_mask: np.ndarray, *, spacing_mm: Sequence[float]
) -> float:
    """Average symmetric surface distance (ASSD) between two masks, in mm.

    The mean of all surface distances of both directions pooled together:
    ``(sum(pred_to_ref) + sum(ref_to_pred)) / (n_pred_surface + n_ref_surface)`` — as MONAI's
    ``compute_average_surface_distance(..., symmetric=True)``, not the mean of the two
    directed means.

    Parameters
    ----------
    pred_mask, ref_mask : ndarray, shape (X, Y, Z), bool
        Masks on the same grid (non-zero is foreground).
    spacing_mm : sequence of float, length 3
        Voxel size in mm along each axis.

    Returns
    -------
    float
        Distance in mm. Both masks empty: 0.0; exactly one empty: ``inf``.
    """
    return _assd(*surface_distances(pred_mask, ref_mask, spacing_mm=spacing_mm))


def surface_metrics_per_class(
    prediction: np.ndarray,
    reference: np.ndarray,
    class_ids: tuple[int, ...],
    *,
    spacing_mm: Sequence[float],
) -> dict[int, dict[str, float]]:
    """Hausdorff distance, HD95 and ASSD (all mm) of each class.

    Parameters
    ----------
    prediction, reference : ndarray, shape (X, Y, Z), integer
        Label maps on the same grid.
    class_ids : tuple of int
    spacing_mm : sequence of float, length 3
        Voxel size in mm along each axis.

    Returns
    -------
    dict
        ``{class_id: {"hd": ..., "hd95": ..., "assd": ...}}``, as :func:`hausdorff_distance`
        (percentile 100 and 95) and :func:`average_surface_distance`: a class absent from both
        maps gets 0.0, absent from one only ``inf``.
    """
    if prediction.shape != reference.shape:
        raise ValueError(f"shapes differ: {prediction.shape} vs {reference.shape}")
    metrics = {}
    for class_id in class_ids:
        distances = surface_distances(
            prediction == class_id, reference == class_id, spacing_mm=spacing_mm
        )
        metrics[class_id] = {
            "hd": _hausdorff(*distances, 100.0),
            "hd95": _hausdorff(*distances, 95.0),
            "assd": _assd(*distances),
        }
    return metrics


def gap_region(
    reference_labels: np.ndarray,
    *,
    spacing_mm: Sequence[float] | None = None,
    threshold: float = 10.0,
) -> np.ndarray:
    """The gap region G = { x : d1(x) + d2(x) < threshold } of a reference label map.

    ``d_c(x)`` is the distance from voxel ``x`` to the nearest voxel of foreground class ``c``
    (the Euclidean distance transform of the complement of class ``c``): 0 inside class ``c``,
    one voxel spacing just outside it. ``d1`` and ``d2`` are the smallest and second-smallest
    ``d_c`` over the foreground classes present, so inside a class ``d1 = 0`` and ``d2`` is the
    distance to the nearest other class. This is the ``d1 + d2`` of the paper's weight map,
    computed here on the labels as given (no erosion).

    Parameters
    ----------
    reference_labels : ndarray, shape (X, Y, Z), integer
        Ground-truth labels; 0 is background, every other value a foreground class.
    spacing_mm : sequence of float, length 3, optional
        If given, distances and ``threshold`` are in mm; if ``None`` (default) they are in
        voxels (unit spacing), as the paper's weight map.
    threshold : float, default 10
        Upper bound (exclusive) on ``d1 + d2``, in voxels or mm (see ``spacing_mm``).

    Returns
    -------
    ndarray, shape (X, Y, Z), bool
        True inside G. Empty when fewer than two foreground classes are present.

    Examples
    --------
    >>> labels = np.array([[[1, 0, 0, 2, 0, 0, 0, 0]]])
    >>> gap_region(labels, threshold=4).astype(int)
    array([[[1, 1, 1, 1, 0, 0, 0, 0]]])
    """
    labels = np.asarray(reference_labels)
    if not (np.isfinite(threshold) and threshold > 0):
        raise ValueError(f"threshold must be a positive finite number, got {threshold!r}")
    spacing = (
        np.ones(labels.ndim) if spacing_mm is None else check_spacing(spacing_mm, labels.ndim)
    )
    # Distances >= threshold cannot give d1 + d2 < threshold: inf beyond it is exact here.
    d1, d2, _ = class_distances(labels, spacing_mm=spacing, max_mm=threshold)
    return d1 + d2 < threshold


def gap_dice_per_class(
    prediction: np.ndarray,
    reference: np.ndarray,
    class_ids: tuple[int, ...],
    *,
    region: np.ndarray,
) -> dict[int, float]:
    """GapDice: the Dice of each class restricted to the voxels of ``region``.

    Parameters
    ----------
    prediction, reference : ndarray, shape (X, Y, Z), integer
        Label maps on the same grid.
    class_ids : tuple of int
    region : ndarray, shape (X, Y, Z), bool
        Voxels to score, usually :func:`gap_region` of ``reference``.

    Returns
    -------
    dict
        ``{class_id: dice}`` as :func:`dice_per_class` on the voxels of ``region`` only: a class
        absent from both maps there gets ``nan``, absent from one only 0.
    """
    region = np.asarray(region)
    if region.dtype != bool:
        raise ValueError(f"region must be a bool mask, got dtype {region.dtype}")
    if region.shape != prediction.shape or region.shape != reference.shape:
        raise ValueError(
            f"shapes differ: region {region.shape}, prediction {prediction.shape}, "
            f"reference {reference.shape}"
        )
    return dice_per_class(prediction[region], reference[region], class_ids)


def _hausdorff(pred_to_ref: np.ndarray, ref_to_pred: np.ndarray, percentile: float) -> float:
    if pred_to_ref.size == 0 and ref_to_pred.size == 0:
        return 0.0
    if pred_to_ref.size == 0 or ref_to_pred.size == 0:
        return float("inf")
    return float(max(np.percentile(pred_to_ref, percentile), np.percentile(ref_to_pred, percentile)))


def _assd(pred_to_ref: np.ndarray, ref_to_pred: np.ndarray) -> float:
    if pred_to_ref.size == 0 and ref_to_pred.size == 0:
        return 0.0
    if pred_to_ref.size == 0 or ref_to_pred.size == 0:
        return float("inf")
    total = float(pred_to_ref.sum()) + float(ref_to_pred.sum())
    return total / (pred_to_ref.size + ref_to_pred.size)


def _distances_to(target: np.ndarray, sources: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) from each True voxel of ``sources`` to the nearest True voxel of ``target``."""
    if not sources.any():
        return np.zeros(0)
    if not target.any():
        return np.full(int(sources.sum()), np.inf)
    return _edt(~target, spacing)[sources].astype(np.float64)


def _edt(foreground: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) from each True voxel to the nearest False one; 0 on False voxels.

    ``foreground`` must contain a False voxel. Outside the array is not background.
    """
    data = np.ascontiguousarray(foreground, dtype=bool)
    if data.ndim > 3:  # the edt package handles 1-3 dimensions
        return ndimage.distance_transform_edt(data, sampling=spacing)
    return edt.edt(data, anisotropy=tuple(spacing), black_border=False)


def _bounding_box(mask: np.ndarray, margin: np.ndarray | int = 0) -> tuple[slice, ...] | None:
    """Slices of ``mask``'s bounding box grown by ``margin`` voxels (clipped); None if empty."""
    if not mask.any():
        return None
    margins = np.broadcast_to(margin, (mask.ndim,))
    box = []
    for axis, pad in enumerate(margins):
        other_axes = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other_axes))
        box.append(slice(max(int(hits[0]) - int(pad), 0), int(hits[-1]) + 1 + int(pad)))
    return tuple(box)


def _check_masks(pred_mask: np.ndarray, ref_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(pred_mask, dtype=bool)
    ref = np.asarray(ref_mask, dtype=bool)
    if pred.shape != ref.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {ref.shape}")
    return pred, ref
