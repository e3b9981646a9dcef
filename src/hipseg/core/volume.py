"""A 3D array with the affine that places it in scanner space (RAS, mm)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Volume", "apply_affine", "array_axis_nearest", "mirrored_affine",
           "patient_side_of_voxels", "voxel_spacing_mm"]


def voxel_spacing_mm(affine: np.ndarray) -> np.ndarray:
    """Voxel spacing of a 4x4 voxel-to-RAS affine.

    Returns
    -------
    ndarray, shape (3,), float64
        Length in mm of a step along each array axis.
    """
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


def array_axis_nearest(affine: np.ndarray, ras_axis: int) -> int:
    """The array axis whose direction is closest to RAS axis ``ras_axis`` (0 x, 1 y, 2 z)."""
    columns = np.asarray(affine, np.float64)[:3, :3]
    return int(np.argmax(np.abs(columns[ras_axis]) / np.linalg.norm(columns, axis=0)))


def apply_affine(affine: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points through a 4x4 affine.

    Parameters
    ----------
    affine : ndarray, shape (4, 4)
    points : ndarray, shape (..., 3)

    Returns
    -------
    ndarray, shape (..., 3), float64
    """
    affine = np.asarray(affine, dtype=np.float64)
    return np.asarray(points, dtype=np.float64) @ affine[:3, :3].T + affine[:3, 3]


def mirrored_affine(affine: np.ndarray, midline_x_mm: float) -> np.ndarray:
    """The affine that puts the same voxels mirrored across the sagittal plane at ``midline_x_mm``.

    The data do not move, only where scanner space places them: the patient's left becomes the
    right. Anything that reads the scan in scanner space (planes, the lateral channel) then
    sees a mirrored patient on the same voxel grid, so its output per voxel can be compared
    with, or added to, the unmirrored one once the side ids are swapped.

    Parameters
    ----------
    affine : ndarray, shape (4, 4)
        Voxel-to-RAS affine, mm.
    midline_x_mm : float
        RAS x of the mirror plane.

    Returns
    -------
    ndarray, shape (4, 4), float64
        ``R @ affine`` with ``R`` the reflection ``x -> 2 * midline_x_mm - x`` (its
        determinant is -1: the handedness of the voxel axes flips).
    """
    reflection = np.diag([-1.0, 1.0, 1.0, 1.0])
    reflection[0, 3] = 2.0 * midline_x_mm
    return reflection @ np.asarray(affine, dtype=np.float64)


def patient_side_of_voxels(affine: np.ndarray, ijk: np.ndarray, midline_x_mm: float) -> np.ndarray:
    """Which side of the patient each voxel lies on, from the affine alone.

    Parameters
    ----------
    affine : ndarray, shape (4, 4)
        Voxel-to-RAS affine; RAS +x points to the patient's right (RAS+: x increases
        towards the Right, y towards Anterior, z towards Superior).
    ijk : ndarray, shape (N, 3)
        Voxel indices.
    midline_x_mm : float
        RAS x coordinate of the mid-sagittal plane.

    Returns
    -------
    ndarray of str, shape (N,)
        ``"left"`` or ``"right"``.
    """
    x_mm = apply_affine(affine, ijk)[:, 0]
    return np.where(x_mm > midline_x_mm, "right", "left")


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D array and its voxel-to-scanner affine.

    Parameters
    ----------
    data : ndarray, shape (X, Y, Z)
        Intensities (float32) or labels (integer).
    affine : ndarray, shape (4, 4)
        Maps voxel indices ``(i, j, k, 1)`` to RAS scanner coordinates in mm.
    """

    data: np.ndarray
    affine: np.ndarray

    def __post_init__(self) -> None:
        if self.data.ndim != 3:
            raise ValueError(f"a Volume is 3D, got shape {self.data.shape}")
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {affine.shape}")
        object.__setattr__(self, "affine", affine)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def spacing_mm(self) -> np.ndarray:
        """Voxel spacing in mm, shape (3,)."""
        return voxel_spacing_mm(self.affine)

    @property
    def extent_mm(self) -> np.ndarray:
        """Physical size along each array axis in mm (voxel count times spacing), shape (3,)."""
        return np.asarray(self.shape) * self.spacing_mm

    @property
    def center_mm(self) -> np.ndarray:
        """RAS position in mm of the array's centre, shape (3,)."""
        return apply_affine(self.affine, (np.asarray(self.shape) - 1) / 2.0)

    def with_data(self, data: np.ndarray) -> Volume:
        """A new Volume with other data on the same grid."""
        if data.shape != self.data.shape:
            raise ValueError(f"shape {data.shape} differs from the grid's {self.data.shape}")
        return Volume(data, self.affine)
