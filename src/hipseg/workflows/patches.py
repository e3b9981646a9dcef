"""3D patches for the 3D UNet baseline: random training patches and the sliding-window grid.

Patches are cubes of ``size`` voxels on the scan's own voxel grid (no resampling); parts that
fall outside the scan are filled (air for images, background for labels, 1 for weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from hipseg.workflows.data import TrainingScan

__all__ = ["PatchSampler", "crop_patch", "window_starts"]


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


class PatchSampler:
    """Random cubic patches: a random scan; centred on a random bone voxel with probability
    ``foreground_fraction``, else anywhere in the scan."""

    def __init__(self, scans: list[TrainingScan], size: int, foreground_fraction: float) -> None:
        if not scans:
            raise ValueError("no training scans")
        self.scans = scans
        self.size = size
        self.foreground_fraction = foreground_fraction

    def sample(self, batch_size: int, rng: np.random.Generator
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A batch of patches.

        Returns
        -------
        images : Tensor, shape (B, 1, P, P, P), float32
        labels : Tensor, shape (B, P, P, P), int64
        weights : Tensor, shape (B, P, P, P), float32 (ones without a weight map)
        """
        images, labels, weights = [], [], []
        for _ in range(batch_size):
            scan = self.scans[rng.integers(len(self.scans))]
            shape = np.asarray(scan.shape)
            if len(scan.foreground_mm) and rng.random() < self.foreground_fraction:
                point = scan.foreground_mm[rng.integers(len(scan.foreground_mm))]
                centre = np.linalg.solve(scan.affine[:3, :3], point - scan.affine[:3, 3])
            else:
                centre = rng.uniform(0, shape - 1)
            start = tuple(int(v) for v in np.round(centre).astype(int) - self.size // 2)
            images.append(crop_patch(scan.image, start, self.size, scan.fill_value))
            labels.append(crop_patch(scan.labels, start, self.size, 0.0))
            if scan.weights is None:
                weights.append(torch.ones_like(labels[-1]))
            else:
                weights.append(crop_patch(scan.weights, start, self.size, 1.0))
        return (torch.stack(images), torch.stack(labels)[:, 0].round().long(),
                torch.stack(weights)[:, 0])
