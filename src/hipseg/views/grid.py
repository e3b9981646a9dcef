"""A view's stack of parallel planes: an isotropic grid in scanner space (mm).

A stack is indexed ``(p, a, b)``: plane ``p`` along the view's normal ``n``, row ``a`` along
``u``, column ``b`` along ``v``, where ``(u, v, n)`` is an orthonormal basis. Index ``(p, a, b)``
sits at ``center + s * ((p - (P-1)/2) n + (a - (D-1)/2) u + (b - (D-1)/2) v)`` with pixel
spacing ``s`` in mm. Everything about where a plane lies is in :meth:`ViewGrid.stack_to_world`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["StackWindow", "ViewGrid", "prediction_grid", "stack_window", "view_basis"]


def view_basis(direction: np.ndarray) -> np.ndarray:
    """Orthonormal basis ``(u, v, n)`` of a view, ``n`` the normalised direction.

    ``u`` is the scanner axis least aligned with ``n``, made orthogonal to it; ``v = n x u``.
    For the axial view (``n = z``) this gives ``u = x, v = y``; sagittal (``n = x``):
    ``u = y, v = z``.

    Returns
    -------
    ndarray, shape (3, 3), float64
        Rows ``u``, ``v``, ``n``.
    """
    n = np.asarray(direction, dtype=np.float64)
    norm = np.linalg.norm(n)
    if not norm > 0:
        raise ValueError("a view direction must be a non-zero vector")
    n = n / norm
    helper = np.eye(3)[int(np.argmin(np.abs(n)))]
    u = helper - np.dot(helper, n) * n
    u /= np.linalg.norm(u)
    v = np.cross(n, u)
    return np.stack([u, v, n])


@dataclass(frozen=True, eq=False)
class ViewGrid:
    """Where a view's stack of planes lies in scanner space.

    Parameters
    ----------
    direction : ndarray, shape (3,)
        View normal in RAS.
    center_mm : ndarray, shape (3,)
        Centre of the sphere the planes span, RAS mm.
    pixel_spacing_mm : float
        Isotropic spacing between pixels and between planes.
    dim : int
        Pixels per plane side (``D``).
    n_planes : int
        Planes in the stack (``P``).
    """

    direction: np.ndarray
    center_mm: np.ndarray
    pixel_spacing_mm: float
    dim: int
    n_planes: int

    def stack_to_world(self) -> np.ndarray:
        """4x4 affine from stack index ``(p, a, b)`` to RAS mm."""
        u, v, n = view_basis(self.direction)
        s = self.pixel_spacing_mm
        matrix = np.eye(4)
        matrix[:3, 0] = s * n
        matrix[:3, 1] = s * u
        matrix[:3, 2] = s * v
        half_p = (self.n_planes - 1) / 2.0
        half_d = (self.dim - 1) / 2.0
        matrix[:3, 3] = np.asarray(self.center_mm, float) - s * (half_p * n + half_d * u + half_d * v)
        return matrix

    def stack_to_voxel(self, volume_affine: np.ndarray) -> np.ndarray:
        """4x4 affine from stack index ``(p, a, b)`` to voxel index ``(i, j, k)`` of a volume."""
        return np.linalg.inv(np.asarray(volume_affine, float)) @ self.stack_to_world()

    def plane_index_of_offset(self, offset_mm: np.ndarray) -> np.ndarray:
        """Plane index (float) of planes at signed distance ``offset_mm`` from the centre along n."""
        return np.asarray(offset_mm, float) / self.pixel_spacing_mm + (self.n_planes - 1) / 2.0


def prediction_grid(
    direction: np.ndarray,
    center_mm: np.ndarray,
    extent_mm: np.ndarray,
    pixel_spacing_mm: float,
    multiple_of: int = 1,
) -> ViewGrid:
    """The stack that covers a scan at prediction time.

    The sphere's diameter is the scan's largest physical extent (so an axis-aligned view covers
    every voxel); the pixel spacing is the one the model was trained with. ``dim`` is rounded up
    to a multiple of ``multiple_of`` (the UNet's total pooling factor).

    Parameters
    ----------
    extent_mm : ndarray, shape (3,)
        Physical size of the scan along each array axis.
    """
    diameter_mm = float(np.max(extent_mm))
    dim = math.ceil(diameter_mm / pixel_spacing_mm)
    dim = multiple_of * math.ceil(dim / multiple_of)
    return ViewGrid(np.asarray(direction, float), np.asarray(center_mm, float),
                    float(pixel_spacing_mm), dim, dim)


@dataclass(frozen=True)
class StackWindow:
    """The part of a view's stack that a scan needs: planes, rows and columns (index ranges).

    Plane ``first_plane + q`` of the window is plane ``q`` of the cropped stack; likewise rows
    and columns. Shapes: a cropped stack is ``(C, n_planes, n_rows, n_cols)``.
    """

    first_plane: int
    n_planes: int
    first_row: int
    n_rows: int
    first_col: int
    n_cols: int

    def shift(self) -> np.ndarray:
        """4x4 affine from cropped-stack index to full-stack index."""
        matrix = np.eye(4)
        matrix[:3, 3] = (self.first_plane, self.first_row, self.first_col)
        return matrix


def _index_range(lo: float, hi: float, margin: int, size: int, multiple: int) -> tuple[int, int]:
    """``(first, count)`` covering ``[lo, hi]`` plus ``margin``, clipped to ``[0, size)``, the
    count rounded up to a multiple of ``multiple`` (``size`` is one) and shifted to fit."""
    first = max(0, math.floor(lo) - margin)
    last = min(size - 1, math.ceil(hi) + margin)
    count = min(size, multiple * math.ceil((last - first + 1) / multiple))
    return min(first, size - count), count


def stack_window(grid: ViewGrid, volume_affine: np.ndarray, volume_shape: tuple[int, int, int],
                 *, context_px: int | None, multiple_of: int = 1) -> StackWindow:
    """The planes, rows and columns of ``grid`` that a scan's voxels map into.

    Mapping back reads, for each voxel, the two planes around it, so planes outside the range
    spanned by the scan's corners (plus one) never contribute: skipping them is exact. Rows and
    columns are cropped to the scan's projection plus ``context_px`` pixels on each side (the
    network then sees less air around the scan, which can change its output near the crop
    edge); ``context_px=None`` keeps whole planes. Row and column counts are multiples of
    ``multiple_of`` (the network's pooling factor).

    Parameters
    ----------
    volume_shape : (X, Y, Z)
        Voxel counts of the scan.
    """
    corners = np.array(np.meshgrid(*[(0, n - 1) for n in volume_shape], indexing="ij"))
    corners = np.concatenate([corners.reshape(3, -1), np.ones((1, 8))])
    to_stack = np.linalg.inv(grid.stack_to_voxel(volume_affine))
    stack_corners = (to_stack @ corners)[:3]
    lo, hi = stack_corners.min(axis=1), stack_corners.max(axis=1)
    first_plane, n_planes = _index_range(lo[0], hi[0], 0, grid.n_planes, 1)
    margin = grid.dim if context_px is None else context_px
    first_row, n_rows = _index_range(lo[1], hi[1], margin, grid.dim, multiple_of)
    first_col, n_cols = _index_range(lo[2], hi[2], margin, grid.dim, multiple_of)
    return StackWindow(first_plane, n_planes, first_row, n_rows, first_col, n_cols)
