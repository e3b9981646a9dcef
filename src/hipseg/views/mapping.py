"""Mapping a view's stack of class probabilities back onto the scan's voxel grid."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hipseg.views.sampling import normalise_for_grid_sample, stack_coordinates

__all__ = ["map_stack_to_voxels"]


def map_stack_to_voxels(
    stack: torch.Tensor,
    stack_to_voxel: np.ndarray,
    volume_shape: tuple[int, int, int],
    *,
    mode: str = "bilinear",
    chunk_voxels: int = 4_000_000,
) -> torch.Tensor:
    """Resample a view's stack onto the voxel grid (the inverse of :func:`sample_planes`).

    Parameters
    ----------
    stack : Tensor, shape (C, P, D, D)
        Per-class values on the view's stack, indexed ``(p, a, b)``.
    stack_to_voxel : ndarray, shape (4, 4)
        From :meth:`hipseg.views.grid.ViewGrid.stack_to_voxel`.
    volume_shape : (X, Y, Z)
    mode : {"bilinear", "nearest"}
        Trilinear interpolation for probabilities, nearest for labels.
    chunk_voxels : int
        Voxels resampled per call, to bound memory.

    Returns
    -------
    Tensor, shape (C, X, Y, Z), the stack's dtype
        Voxels outside the stack get 0.
    """
    voxel_to_stack = np.linalg.inv(np.asarray(stack_to_voxel, float))
    n_x, n_y, n_z = volume_shape
    out = torch.zeros((stack.shape[0], n_x, n_y, n_z), dtype=stack.dtype, device=stack.device)
    step = max(1, chunk_voxels // (n_y * n_z))
    for start in range(0, n_x, step):
        i = torch.arange(start, min(start + step, n_x), device=stack.device)
        coords = stack_coordinates(voxel_to_stack, i, n_y, n_z)
        grid = normalise_for_grid_sample(coords, tuple(stack.shape[1:]))
        out[:, start : start + len(i)] = F.grid_sample(
            stack[None], grid[None].to(stack.dtype), mode=mode, padding_mode="zeros",
            align_corners=True,
        )[0]
    return out
