"""Cropping a scan to a region and pasting results back: boxes, block downsampling, affines.

A *box* is ``(lo, hi)``: integer voxel indices per axis, ``lo`` inclusive, ``hi`` exclusive,
as in ``data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]``.
"""

from __future__ import annotations

import itertools
import math

import cc3d
import numpy as np

from hipseg.core.volume import Volume, apply_affine, voxel_spacing_mm
from hipseg.distances import class_distances

__all__ = [
    "box_in_grid",
    "crop_volume",
    "downsample_mean",
    "joint_boxes",
    "largest_components_box",
    "paste",
]

Box = tuple[np.ndarray, np.ndarray]


def _translation(offset_vox: np.ndarray) -> np.ndarray:
    shift = np.eye(4)
    shift[:3, 3] = offset_vox
    return shift


def crop_volume(volume: Volume, lo: np.ndarray, hi: np.ndarray) -> Volume:
    """The part of ``volume`` inside the box, with the affine that keeps it in place.

    The crop's voxel ``(0, 0, 0)`` is the volume's voxel ``lo``: ``affine_crop = affine @ T(lo)``.
    The data is a copy.
    """
    lo, hi = np.asarray(lo, int), np.asarray(hi, int)
    if np.any(lo < 0) or np.any(hi > volume.shape) or np.any(hi - lo < 1):
        raise ValueError(f"box {lo.tolist()}..{hi.tolist()} does not fit the grid {volume.shape}")
    data = volume.data[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].copy()
    return Volume(data, volume.affine @ _translation(lo))


def paste(part: np.ndarray, lo: np.ndarray, shape: tuple[int, int, int],
          fill: float | np.ndarray = 0) -> np.ndarray:
    """Put ``part`` at voxel ``lo`` of a new full-size array (the inverse of a crop).

    Parameters
    ----------
    part : ndarray, shape (..., X', Y', Z')
        Spatial axes last; leading axes (classes) are kept.
    lo : ndarray of int, shape (3,)
    shape : tuple
        The full grid ``(X, Y, Z)``.
    fill : float or ndarray
        Value outside the box; an array broadcasts against ``(..., X, Y, Z)`` (one value per
        class: shape ``(C, 1, 1, 1)``).

    Returns
    -------
    ndarray, shape (..., X, Y, Z), the dtype of ``part``
    """
    out = np.empty((*part.shape[:-3], *shape), dtype=part.dtype)
    out[...] = fill
    hi = np.asarray(lo, int) + part.shape[-3:]
    out[..., lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = part
    return out


def downsample_mean(volume: Volume, spacing_mm: float) -> Volume:
    """Average blocks of voxels so the spacing comes close to ``spacing_mm`` (never finer).

    Each axis is reduced by the integer factor ``max(1, round(spacing_mm / spacing))``; the
    grid is first padded by repeating its last voxels to a multiple of the factor. Coarse voxel
    ``I`` is the mean of fine voxels ``I f .. I f + f - 1``, whose centre is ``I f + (f - 1) / 2``:
    that is where the returned affine puts it.

    Returns
    -------
    Volume
        Float32 data, shape ``ceil(shape / f)``.
    """
    factors = np.maximum(1, np.round(spacing_mm / volume.spacing_mm)).astype(int)
    padded_shape = -(-np.asarray(volume.shape) // factors) * factors
    data = np.pad(volume.data.astype(np.float32),
                  [(0, p - s) for p, s in zip(padded_shape, volume.shape)], mode="edge")
    coarse_shape = padded_shape // factors
    blocks = data.reshape(coarse_shape[0], factors[0], coarse_shape[1], factors[1],
                          coarse_shape[2], factors[2])
    scale = np.eye(4)
    scale[:3, :3] = np.diag(factors)
    scale[:3, 3] = (factors - 1) / 2.0
    return Volume(blocks.mean(axis=(1, 3, 5), dtype=np.float32), volume.affine @ scale)


def largest_components_box(labels: np.ndarray) -> Box | None:
    """Box around the largest 26-connected component of every class present.

    Scattered false positives (a small blob far from the hips) do not stretch the box; a class
    found in several places counts only where it is largest.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        0 is background.

    Returns
    -------
    (lo, hi) or None
        None when there is no foreground voxel.
    """
    components = cc3d.connected_components(np.ascontiguousarray(labels), connectivity=26)
    sizes = np.bincount(components.ravel())
    keep = []
    for class_id in np.unique(labels[labels > 0]):
        ids = np.unique(components[labels == class_id])
        keep.append(ids[np.argmax(sizes[ids])])
    if not keep:
        return None
    where = np.argwhere(np.isin(components, keep))
    return where.min(axis=0), where.max(axis=0) + 1


def box_in_grid(box: Box, from_affine: np.ndarray, to_affine: np.ndarray,
                to_shape: tuple[int, int, int], margin_mm: float) -> Box:
    """The box of another grid that covers ``box`` plus ``margin_mm`` on every side.

    The region a box covers spans its voxels' full extent (``lo - 0.5`` to ``hi - 0.5``); its 8
    corners are mapped to the world and into the target grid, the margin is converted to voxels
    per target axis, and the result is clipped to the target grid.

    Parameters
    ----------
    box : (lo, hi)
        Voxel box in the grid of ``from_affine``.
    from_affine, to_affine : ndarray, shape (4, 4)
        Voxel-to-RAS affines of the two grids.
    to_shape : tuple of int
    margin_mm : float

    Returns
    -------
    (lo, hi)
        Voxel box in the target grid, within ``0 .. to_shape``.
    """
    lo, hi = (np.asarray(b, float) for b in box)
    corners = np.array(list(itertools.product(*zip(lo - 0.5, hi - 0.5))))
    to_voxel = np.linalg.inv(np.asarray(to_affine, float)) @ np.asarray(from_affine, float)
    mapped = apply_affine(to_voxel, corners)
    margin_vox = margin_mm / voxel_spacing_mm(to_affine)
    # Target voxel i spans i - 0.5 .. i + 0.5: keep every voxel that reaches into the region
    # (one that only touches its boundary is left out, on both sides alike).
    new_lo = np.floor(mapped.min(axis=0) + 0.5 - margin_vox).astype(int)
    new_hi = np.ceil(mapped.max(axis=0) + 0.5 + margin_vox).astype(int)
    return np.clip(new_lo, 0, to_shape), np.clip(new_hi, 0, to_shape)


def joint_boxes(labels: np.ndarray, spacing_mm: tuple[float, float, float], *,
                max_gap_mm: float, margin_mm: float) -> list[Box]:
    """Boxes around the places where two bones come within ``max_gap_mm`` of each other.

    The zone is every voxel (bone or not) whose distances to the nearest bone and to the
    nearest other bone sum to at most ``max_gap_mm``, so a joint the labels have closed counts
    as much as an open one. Each 26-connected component of it gets its box, grown by
    ``margin_mm`` on every side and clipped to the grid. Boxes may overlap; they are not merged,
    because the box around two joints' boxes holds much that is neither (in run 9 of
    docs/accuracy.md, poor first passes and merging made one box of 83-96 % of the scan; the
    real maps' own boxes cover 5-10 %, benchmarks/joint_boxes.py).

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        0 is background.
    spacing_mm : (3,) floats
        Voxel spacing.

    Returns
    -------
    list of (lo, hi)
        Voxel boxes, the one of the largest component first; empty when no two bones come
        that close.
    """
    d1, d2, _ = class_distances(labels, spacing_mm=spacing_mm, max_mm=max_gap_mm)
    zone = d1 + d2 <= max_gap_mm
    components, n = cc3d.connected_components(zone, connectivity=26, return_N=True)
    if n == 0:
        return []
    stats = cc3d.statistics(components)
    margin = np.array([math.ceil(margin_mm / s) for s in spacing_mm])
    shape = np.array(labels.shape)
    boxes = []
    for label in np.argsort(-stats["voxel_counts"][1:]) + 1:
        slices = stats["bounding_boxes"][label]
        lo = np.array([sl.start for sl in slices]) - margin
        hi = np.array([sl.stop for sl in slices]) + margin
        boxes.append((np.clip(lo, 0, shape), np.clip(hi, 0, shape)))
    return boxes
