"""Prediction with the 3D UNet baseline: a sliding window of patches over the scan's grid."""

from __future__ import annotations

import itertools

import numpy as np
import torch
from tqdm import tqdm

from hipseg.core.volume import Volume
from hipseg.models.patches import crop_patch, window_starts
from hipseg.preprocess import model_input
from hipseg.runtime.model_io import LoadedModel

__all__ = ["predict_probabilities_3d"]


def predict_probabilities_3d(model: LoadedModel, image: Volume, *, batch_size: int = 2,
                             progress: bool = True) -> np.ndarray:
    """Class probabilities of every voxel from overlapping patches (stride half a patch), averaged.

    Parameters
    ----------
    image : Volume
        CT intensities in HU, shape (X, Y, Z).

    Returns
    -------
    ndarray, shape (C, X, Y, Z), float32
        Mean softmax over the patches covering each voxel (every voxel is covered).
    """
    config, network, device = model.config, model.network, model.device
    size = config.model.patch_vox
    channels, fill_values = model_input(image.data, image.affine, config)
    volume = torch.from_numpy(channels).to(device)
    fill_value = tuple(fill_values.tolist())
    shape = image.shape
    summed = torch.zeros((config.labels.n_classes, *shape), dtype=torch.float32, device=device)
    counts = torch.zeros(shape, dtype=torch.float32, device=device)
    starts = list(itertools.product(*(window_starts(n, size, size // 2) for n in shape)))
    for first in tqdm(range(0, len(starts), batch_size), desc="patches", disable=not progress,
                      leave=False):
        corners = starts[first : first + batch_size]
        batch = torch.stack([crop_patch(volume, corner, size, fill_value) for corner in corners])
        with torch.no_grad():
            probabilities = torch.softmax(network(batch), dim=1)
        for corner, patch in zip(corners, probabilities):
            inside = tuple(slice(c, min(c + size, n)) for c, n in zip(corner, shape))
            extent = tuple(slice(0, s.stop - s.start) for s in inside)
            summed[(slice(None), *inside)] += patch[(slice(None), *extent)]
            counts[inside] += 1.0
    return (summed / counts).cpu().numpy()
