"""Sampling planes of a view from a volume with ``torch.nn.functional.grid_sample``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["inside_weight", "normalise_for_grid_sample", "sample_planes", "stack_coordinates"]


def stack_coordinates(
    index_to_target: np.ndarray, first_axis_indices: torch.Tensor, rows: int, cols: int
) -> torch.Tensor:
    """Target-grid coordinates of a block of a 3D index grid, through an affine.

    Parameters
    ----------
    index_to_target : ndarray, shape (4, 4)
        Maps source index ``(p, a, b)`` to target index (e.g. voxel ``(i, j, k)``).
    first_axis_indices : Tensor, shape (P,)
        Source indices along the first axis (may be fractional).
    rows, cols : int
        Size of the source grid along its second and third axes.

    Returns
    -------
    Tensor, shape (P, rows, cols, 3), float32
    """
    m = torch.as_tensor(index_to_target, dtype=torch.float64, device=first_axis_indices.device)
    p = first_axis_indices.to(torch.float64)
    a = torch.arange(rows, dtype=torch.float64, device=p.device)
    b = torch.arange(cols, dtype=torch.float64, device=p.device)
    coords = (
        p[:, None, None, None] * m[:3, 0]
        + a[None, :, None, None] * m[:3, 1]
        + b[None, None, :, None] * m[:3, 2]
        + m[:3, 3]
    )
    return coords.to(torch.float32)


def normalise_for_grid_sample(coords: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """Index coordinates ``(..., 3)`` into ``grid_sample``'s ``[-1, 1]`` convention.

    ``grid_sample`` on an input ``(N, C, X, Y, Z)`` with ``align_corners=True`` expects the last
    grid axis ordered ``(z, y, x)`` and index ``0`` / ``size - 1`` at ``-1`` / ``+1``.
    """
    sizes = torch.tensor([max(s - 1, 1) for s in shape], dtype=coords.dtype, device=coords.device)
    return (2.0 * coords / sizes - 1.0).flip(-1)


def inside_weight(coords: torch.Tensor, shape: tuple[int, int, int], mode: str) -> torch.Tensor:
    """Share of each point's interpolation weight that falls on voxels inside the volume.

    Parameters
    ----------
    coords : Tensor, shape (..., 3)
        Voxel index coordinates.
    shape : (int, int, int)
    mode : {"bilinear", "nearest"}

    Returns
    -------
    Tensor, shape (...), in [0, 1]: 1 inside ``[0, n - 1]`` on every axis, falling linearly to 0
    one voxel outside (trilinear), or 1 where the nearest voxel exists (nearest).
    """
    sizes = torch.tensor(shape, dtype=coords.dtype, device=coords.device)
    if mode == "nearest":
        inside = (coords >= -0.5) & (coords < sizes - 0.5)
        return inside.all(dim=-1).to(coords.dtype)
    per_axis = torch.minimum(coords + 1.0, sizes - coords).clamp(0.0, 1.0)
    return per_axis.prod(dim=-1)


def sample_planes(
    volume: torch.Tensor,
    stack_to_voxel: np.ndarray,
    plane_indices: torch.Tensor,
    dim: int | tuple[int, int],
    *,
    mode: str = "bilinear",
    fill_value: float | Sequence[float] = 0.0,
) -> torch.Tensor:
    """Cut planes of a view's stack out of a volume.

    Parameters
    ----------
    volume : Tensor, shape (C, X, Y, Z), float
        Image channels (or labels as float for ``mode="nearest"``) on the voxel grid.
    stack_to_voxel : ndarray, shape (4, 4)
        From :meth:`hipseg.views.grid.ViewGrid.stack_to_voxel`.
    plane_indices : Tensor, shape (P,)
        Which planes (index along the view normal; fractional allowed).
    dim : int or (int, int)
        Pixels per plane side, or ``(rows, cols)`` of a rectangular plane.
    mode : {"bilinear", "nearest"}
        ``"bilinear"`` on a volume is trilinear interpolation (images); ``"nearest"`` for labels.
    fill_value : float or sequence of C floats
        Value of points outside the volume: one for all channels, or one per channel.

    Returns
    -------
    Tensor, shape (P, C, rows, cols), the volume's dtype
    """
    rows, cols = (dim, dim) if isinstance(dim, int) else dim
    coords = stack_coordinates(stack_to_voxel, plane_indices.to(volume.device), rows, cols)
    grid = normalise_for_grid_sample(coords, tuple(volume.shape[1:]))
    fill = torch.as_tensor(fill_value, dtype=volume.dtype, device=volume.device).reshape(-1)
    if fill.numel() not in (1, volume.shape[0]):
        raise ValueError(f"{fill.numel()} fill values for a volume of {volume.shape[0]} channels")
    out = F.grid_sample(volume[None], grid[None].to(volume.dtype), mode=mode,
                        padding_mode="zeros", align_corners=True)[0]
    if bool(torch.any(fill != 0)):
        # Zero padding gives the outside corners weight 0; adding fill times their share of the
        # interpolation weight pads with fill exactly, without a shifted copy of the volume.
        outside = 1.0 - inside_weight(coords, tuple(volume.shape[1:]), mode).to(volume.dtype)
        out = out + fill.reshape(-1, 1, 1, 1) * outside[None]
    return out.permute(1, 0, 2, 3)
