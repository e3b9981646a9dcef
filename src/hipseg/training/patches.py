"""Random training patches for the 3D UNet baseline.

Patches are cubes of ``size`` voxels on the scan's own voxel grid (no resampling); parts that
fall outside the scan are filled (air for images, background for labels, 1 for weights).
"""

from __future__ import annotations

import numpy as np
import torch

from hipseg.models.patches import crop_patch
from hipseg.training.data import TrainingScan

__all__ = ["PatchSampler"]


class PatchSampler:
    """Random cubic patches: a random scan; centred on a random bone voxel with probability
    ``foreground_fraction``, else anywhere in the scan."""

    #: Patches are not elastically deformed (the augmentation works on 2D planes).
    elastic = False

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
