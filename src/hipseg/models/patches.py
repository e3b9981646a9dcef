"""Cubic patches of a volume for the 3D UNet baseline, and the sliding-window grid.

Patches are cubes of ``size`` voxels on the scan's own voxel grid (no resampling); parts that
fall outside the scan are filled (air for images, background for labels, 1 for weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["crop_patch", "window_starts"]


def crop_patch(volume: torch.Tensor, start: tuple[int, int, int], size: int,
               fill_value: float | Sequence[float]) -> torch.Tensor:
    """The cube ``volume[:, start : start + size]`` (per axis), filled where it leaves the volume.

    Parameters
    ----------
    volume : Tensor, shape (C, X, Y, Z)
    start : (int, int, int)
        Corner voxel index; may be negative or run past the end.

    Returns
    -------
    Tensor, shape (C, size, size, size), the volume's dtype
    """
    fill = torch.as_tensor(fill_value, dtype=volume.dtype, device=volume.device)
    out = fill.reshape(-1, 1, 1, 1).expand(volume.shape[0], size, size, size).clone()
    source, target = [], []
    for axis, first in enumerate(start):
        lo, hi = max(first, 0), min(first + size, volume.shape[axis + 1])
        if hi <= lo:
            return out
        source.append(slice(lo, hi))
        target.append(slice(lo - first, hi - first))
    out[(slice(None), *target)] = volume[(slice(None), *source)]
    return out


def window_starts(length: int, size: int, stride: int) -> list[int]:
    """Corner indices of windows of ``size`` along an axis of ``length`` voxels, every ``stride``.

    The last window ends at the axis end, so every voxel is covered; an axis shorter than
    ``size`` gets one window at 0 (filled beyond the end).
    """
    if length <= size:
        return [0]
    starts = list(range(0, length - size + 1, stride))
    if starts[-1] != length - size:
        starts.append(length - size)
    return starts
