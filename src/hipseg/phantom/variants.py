"""New anatomies from a real label map: mirroring, scaling, smooth deformation, resampling.

Every function takes a label map with its voxel-to-RAS affine and returns a new pair; label
maps are resampled by nearest neighbour, so no new ids appear.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from hipseg.core.volume import array_axis_nearest, voxel_spacing_mm

__all__ = ["VariantSettings", "deform_labels", "make_variant", "mirror_left_right",
           "nearest_indices", "resample_labels"]

#: Side swaps of the default label table: femur right/left, hip right/left.
SIDE_SWAPS: tuple[tuple[int, int], ...] = ((1, 2), (3, 4))


@dataclass(frozen=True)
class VariantSettings:
    """How far a variant may move from its map.

    Parameters
    ----------
    scale_range : (float, float)
        Uniform range of the isotropic size factor (adult pelves vary by about +-10 %).
    max_displacement_mm : float
        Largest amplitude of the smooth displacement field, mm.
    smoothness_mm : float
        Spacing of the displacement's control points, mm: the field bends bones as wholes,
        it does not crumple them, and changes a joint-space width by a few percent at most.
    mirror_probability : float
        Chance that a variant is mirrored left-right (with the side ids swapped).
    """

    scale_range: tuple[float, float] = (0.9, 1.1)
    max_displacement_mm: float = 6.0
    smoothness_mm: float = 60.0
    mirror_probability: float = 0.5


def mirror_left_right(labels: np.ndarray, affine: np.ndarray,
                      swaps: tuple[tuple[int, int], ...] = SIDE_SWAPS) -> np.ndarray:
    """The anatomy mirrored through the array's mid-plane across RAS x, side ids swapped.

    The array is flipped along the axis closest to RAS x and the affine kept, so the result
    stays in the same scanner space (RAS); the bone that now lies on the patient's right gets
    the right-side id.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
    affine : ndarray, shape (4, 4)
    swaps : tuple of (int, int)
        Pairs of ids exchanged.

    Returns
    -------
    ndarray, shape (X, Y, Z), the dtype of ``labels``
    """
    flipped = np.flip(labels, axis=array_axis_nearest(affine, 0))
    lookup = np.arange(max(int(labels.max()) + 1, 1 + max(max(p) for p in swaps)),
                       dtype=labels.dtype)
    for a, b in swaps:
        lookup[a], lookup[b] = b, a
    return lookup[flipped]


def deform_labels(labels: np.ndarray, affine: np.ndarray, rng: np.random.Generator, *,
                  scale: float = 1.0, max_displacement_mm: float = 6.0,
                  smoothness_mm: float = 60.0) -> np.ndarray:
    """Scale about the array's centre and bend by a smooth random field, on the same grid.

    The output at voxel ``p`` is the input at ``c + (p - c) / scale + u(p)``, with ``u`` a
    displacement (mm, converted to voxels per axis) drawn uniformly in
    ``[-max_displacement_mm, max_displacement_mm]`` on control points ``smoothness_mm`` apart
    and interpolated cubically.

    Returns
    -------
    ndarray, shape (X, Y, Z), the dtype of ``labels``
    """
    spacing = voxel_spacing_mm(affine)
    shape = np.asarray(labels.shape)
    n_control = np.maximum(2, np.ceil(shape * spacing / smoothness_mm).astype(int) + 1)
    centre = (shape - 1) / 2.0
    coords = []
    for axis in range(3):
        control = rng.uniform(-max_displacement_mm, max_displacement_mm, size=tuple(n_control))
        field = ndimage.zoom(control / spacing[axis], shape / n_control, order=3,
                             mode="nearest", grid_mode=True)
        field = field[: shape[0], : shape[1], : shape[2]]
        index = np.arange(shape[axis], dtype=np.float32).reshape(
            [-1 if a == axis else 1 for a in range(3)])
        coords.append((centre[axis] + (index - centre[axis]) / scale + field).astype(np.float32))
    return ndimage.map_coordinates(labels, coords, order=0, mode="constant", cval=0)


def resample_labels(labels: np.ndarray, affine: np.ndarray,
                    spacing_mm: tuple[float, float, float],
                    shift: tuple[float, float, float] = (0.0, 0.0, 0.0),
                    ) -> tuple[np.ndarray, np.ndarray]:
    """The label map on a grid of ``spacing_mm`` covering the same box (nearest neighbour).

    The new grid keeps the axes' directions and the box's outer corner, moved by ``shift``
    new voxels per axis; each axis gets ``round(extent / spacing)`` voxels.

    Returns
    -------
    labels : ndarray, the dtype of ``labels``
    affine : ndarray, shape (4, 4)
    """
    affine = np.asarray(affine, np.float64)
    old = voxel_spacing_mm(affine)
    new = np.asarray(spacing_mm, np.float64)
    if new.shape != (3,) or not np.all(new > 0):
        raise ValueError(f"spacing_mm must be 3 positive numbers, got {spacing_mm}")
    ratio = new / old
    offset = 0.5 + np.asarray(shift, np.float64)
    # voxel p of the new grid is at old index (p + offset) * ratio - 0.5
    new_affine = affine.copy()
    new_affine[:3, :3] = affine[:3, :3] * ratio
    new_affine[:3, 3] = affine[:3, :3] @ (offset * ratio - 0.5) + affine[:3, 3]
    index = nearest_indices(labels.shape, old, new, shift)
    return labels[np.ix_(*index)], new_affine


def nearest_indices(shape: tuple[int, ...], old_spacing_mm: np.ndarray,
                    new_spacing_mm: np.ndarray, shift: tuple[float, float, float]
                    ) -> list[np.ndarray]:
    """Per axis, the old voxel index nearest to each voxel of :func:`resample_labels`'s grid
    (int arrays, clamped to the box: a new voxel outside it takes the edge voxel)."""
    index = []
    for n, old, new, s in zip(shape, old_spacing_mm, new_spacing_mm, shift, strict=True):
        ratio = new / old
        count = max(1, int(np.round(n / ratio)))
        centre = (np.arange(count) + 0.5 + s) * ratio - 0.5
        index.append(np.clip(np.floor(centre + 0.5), 0, n - 1).astype(np.intp))
    return index


def make_variant(labels: np.ndarray, affine: np.ndarray, rng: np.random.Generator,
                 settings: VariantSettings | None = None) -> tuple[np.ndarray, bool]:
    """A new anatomy from one map: maybe mirrored, scaled and smoothly deformed.

    Returns
    -------
    labels : ndarray, shape (X, Y, Z), on the same grid and affine
    mirrored : bool
    """
    settings = VariantSettings() if settings is None else settings
    mirrored = bool(rng.random() < settings.mirror_probability)
    if mirrored:
        labels = mirror_left_right(labels, affine)
    scale = float(rng.uniform(*settings.scale_range))
    out = deform_labels(labels, affine, rng, scale=scale,
                        max_displacement_mm=settings.max_displacement_mm,
                        smoothness_mm=settings.smoothness_mm)
    return out, mirrored
