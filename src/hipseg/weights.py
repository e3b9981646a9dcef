"""The distance weight map of the loss (SPEC step 4; Ronneberger et al.'s U-Net weight map).

``w(x) = 1 + w0 * exp(-(d1(x) + d2(x))**2 / (2 sigma**2))``, where ``d1`` and ``d2`` are the
distances, in voxels of the scan (as the paper), to the nearest and second-nearest foreground
class: ``d_c(x)`` is the Euclidean distance from ``x`` to the nearest voxel of class ``c``
(0 inside ``c``). The labels are first eroded by a ball of ``erosion_radius_vox`` voxels, which
moves the high weights from the middle of a joint space onto the bone surfaces around it
(paper, Sect. 2); ``w0`` is doubled (20 instead of 10) to make up for the larger ``d1 + d2``.

:func:`contact_band` marks where labels are not to be trusted: within a distance (mm) of
where two bones touch. Coarse labels (TotalSegmentator-like, joint spaces closed) are wrong
exactly there, so pre-training on them gives those voxels weight 0 and learns the bones, not
the closed gaps.

Pure numpy: label array in, weight array out.
"""

from __future__ import annotations

import math

import edt
import numpy as np

from hipseg.distances import class_distances
from hipseg.labelmap import check_labels, check_spacing

__all__ = [
    "NEGLIGIBLE_TERM",
    "contact_band",
    "contact_voxels",
    "distance_weight_map",
    "erode_labels",
    "joint_space_voxels",
    "negligible_distance_vox",
    "two_nearest_class_distances",
]

#: Weight terms below this are dropped: below half a float32 step at 1, so the map is unchanged.
NEGLIGIBLE_TERM = 5e-8


def negligible_distance_vox(w0: float, sigma_vox: float) -> float:
    """``d1 + d2`` beyond which ``w0 exp(-(d1 + d2)^2 / (2 sigma^2))`` is below :data:`NEGLIGIBLE_TERM`."""
    if w0 <= NEGLIGIBLE_TERM:
        return 0.0
    return sigma_vox * math.sqrt(2.0 * math.log(w0 / NEGLIGIBLE_TERM))


def erode_labels(labels: np.ndarray, radius_vox: float) -> np.ndarray:
    """Erode every class by a ball of ``radius_vox`` voxels (other classes count as outside).

    A voxel keeps its class when every voxel within ``radius_vox`` (centre to centre) has that
    class, i.e. when the nearest voxel of another label is farther than ``radius_vox``: one
    multi-label distance transform (``edt``: each non-zero voxel gets its distance to the nearest
    voxel of a different label) erodes all classes at once. Outside the array is not a border
    (the scan's field of view cuts bones; that is no bone surface).

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), non-negative integer
    radius_vox : float
        Ball radius in voxels (unit spacing along every axis).

    Returns
    -------
    ndarray, shape (X, Y, Z), the input's dtype
    """
    labels = check_labels(labels)
    if radius_vox <= 0:
        return labels.copy()
    distance = edt.edt(labels, black_border=False)
    return np.where(distance > radius_vox, labels, 0).astype(labels.dtype)


def two_nearest_class_distances(labels: np.ndarray, max_distance_vox: float = math.inf
                                ) -> tuple[np.ndarray, np.ndarray]:
    """``d1`` and ``d2``: distances (voxels) to the nearest and second-nearest foreground class.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), non-negative integer
        0 is background, every other value a class.
    max_distance_vox : float, optional
        Distances beyond this may be reported as ``inf``: each class's distance transform is
        computed only in its bounding box grown by this many voxels (much faster on a CT whose
        bones fill a small part of the scan). Distances up to it are exact.

    Returns
    -------
    d1, d2 : ndarray, shape (X, Y, Z), float32
        ``inf`` where fewer than one (two) classes are present.
    """
    d1, d2, _ = class_distances(check_labels(labels), max_mm=max_distance_vox)
    return d1, d2


def distance_weight_map(labels: np.ndarray, *, w0: float = 20.0, sigma_vox: float = 5.0,
                        erosion_radius_vox: float = 3.0) -> np.ndarray:
    """The loss weight of every voxel (SPEC step 4).

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), non-negative integer
        Label map of a training scan (0 background).
    w0 : float
        Height of the weight bump; the paper uses 20 with erosion and 10 without.
    sigma_vox : float
        Width of the bump, voxels.
    erosion_radius_vox : float
        Erode the labels by a ball of this radius (voxels) first; 0 for no erosion.

    Returns
    -------
    ndarray, shape (X, Y, Z), float32
        ``1 + w0 * exp(-(d1 + d2)**2 / (2 sigma**2))``, in ``[1, 1 + w0]``; 1 wherever fewer
        than two classes are present (after erosion). Terms below :data:`NEGLIGIBLE_TERM` are 0.

    Examples
    --------
    >>> labels = np.zeros((1, 1, 9), np.uint8); labels[..., :3] = 1; labels[..., 6:] = 2
    >>> w = distance_weight_map(labels, w0=10.0, erosion_radius_vox=0.0)
    >>> round(float(w[0, 0, 4]), 3)  # in the gap: d1 + d2 = 2 + 2 voxels
    8.261
    """
    if not (w0 >= 0 and math.isfinite(w0)):
        raise ValueError(f"w0 must be a finite number >= 0, got {w0}")
    if not (sigma_vox > 0 and math.isfinite(sigma_vox)):
        raise ValueError(f"sigma_vox must be a positive number, got {sigma_vox}")
    if not (erosion_radius_vox >= 0 and math.isfinite(erosion_radius_vox)):
        raise ValueError(f"erosion_radius_vox must be a finite number >= 0, got {erosion_radius_vox}")
    labels = erode_labels(labels, erosion_radius_vox)
    d1, d2 = two_nearest_class_distances(labels, negligible_distance_vox(w0, sigma_vox))
    total = d1 + d2  # inf where a class is missing: the term is then exactly 0
    term = w0 * np.exp(-(total * total) / (2.0 * sigma_vox**2))
    return (1.0 + term).astype(np.float32)


def _half_neighbourhood(connectivity: int) -> list[tuple[int, int, int]]:
    """One offset of each +-pair of the 6 (faces), 18 (and edges) or 26 (and corners) neighbours."""
    limits = {6: 1, 18: 2, 26: 3}
    if connectivity not in limits:
        raise ValueError(f"connectivity must be 6, 18 or 26, got {connectivity}")
    offsets = [o for o in np.ndindex(3, 3, 3) if 0 < sum(abs(c - 1) for c in o) <= limits[connectivity]]
    return [tuple(c - 1 for c in o) for o in offsets if tuple(c - 1 for c in o) > (0, 0, 0)]


def contact_voxels(labels: np.ndarray, connectivity: int = 6) -> np.ndarray:
    """Voxels of a foreground class with a neighbour of another foreground class.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), non-negative integer
    connectivity : {6, 18, 26}
        Which neighbours count: faces; faces and edges; faces, edges and corners.

    Returns
    -------
    ndarray, shape (X, Y, Z), bool
        Both voxels of every neighbouring pair with two different non-zero labels.
    """
    labels = check_labels(labels)
    touching = np.zeros(labels.shape, bool)
    n = labels.shape
    for offset in _half_neighbourhood(connectivity):
        # a: the voxels whose neighbour at +offset exists; b: those neighbours
        a_index = tuple(slice(max(0, -d), n[i] - max(0, d)) for i, d in enumerate(offset))
        b_index = tuple(slice(max(0, d), n[i] - max(0, -d)) for i, d in enumerate(offset))
        a, b = labels[a_index], labels[b_index]
        hit = (a != b) & (a > 0) & (b > 0)
        touching[a_index] |= hit
        touching[b_index] |= hit
    return touching


def joint_space_voxels(labels: np.ndarray, spacing_mm: tuple[float, float, float],
                       max_gap_mm: float) -> np.ndarray:
    """Background voxels between two bones at most ``max_gap_mm`` apart: the joint spaces.

    A background voxel whose distances ``d1`` to the nearest bone and ``d2`` to the nearest
    other bone (mm, between voxel centres) satisfy ``d1 + d2 <= max_gap_mm``.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), non-negative integer
    spacing_mm : (3,) floats
    max_gap_mm : float

    Returns
    -------
    ndarray, shape (X, Y, Z), bool

    Examples
    --------
    >>> labels = np.zeros((1, 1, 9), np.uint8); labels[..., :3] = 1; labels[..., 6:] = 2
    >>> joint_space_voxels(labels, (1.0, 1.0, 1.0), 4.0).astype(int)[0, 0]
    array([0, 0, 0, 1, 1, 1, 0, 0, 0])
    """
    if not (max_gap_mm >= 0 and math.isfinite(max_gap_mm)):
        raise ValueError(f"max_gap_mm must be a finite number >= 0, got {max_gap_mm}")
    labels = check_labels(labels)
    d1, d2, _ = class_distances(labels, spacing_mm=check_spacing(spacing_mm), max_mm=max_gap_mm)
    return (labels == 0) & (d1 + d2 <= max_gap_mm)


def contact_band(labels: np.ndarray, spacing_mm: tuple[float, float, float],
                 radius_mm: float) -> np.ndarray:
    """Voxels within ``radius_mm`` (centre to centre, in mm) of a contact of two bones.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), non-negative integer
    spacing_mm : (3,) floats
        Voxel size along each array axis, mm.
    radius_mm : float
        Band half-width, mm; 0 gives the contact voxels themselves.

    Returns
    -------
    ndarray, shape (X, Y, Z), bool
        False everywhere when no two bones touch.

    Examples
    --------
    >>> labels = np.zeros((1, 1, 8), np.uint8); labels[..., :4] = 1; labels[..., 4:] = 2
    >>> contact_band(labels, (1.0, 1.0, 2.0), 2.0).astype(int)[0, 0]
    array([0, 0, 1, 1, 1, 1, 0, 0])
    """
    if not (radius_mm >= 0 and math.isfinite(radius_mm)):
        raise ValueError(f"radius_mm must be a finite number >= 0, got {radius_mm}")
    spacing = check_spacing(spacing_mm)
    touching = contact_voxels(labels)
    band = np.zeros(labels.shape, bool)
    if not touching.any():
        return band
    # only the contacts' bounding box grown by the radius can be within it
    ijk = np.argwhere(touching)
    grow = np.ceil(radius_mm / spacing).astype(int)
    lo = np.maximum(ijk.min(0) - grow, 0)
    hi = np.minimum(ijk.max(0) + grow + 1, labels.shape)
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    distance = edt.edt(~touching[box], anisotropy=tuple(spacing), black_border=False)
    band[box] = distance <= radius_mm
    return band
