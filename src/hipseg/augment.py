"""Augmentation of training planes: elastic deformation (SPEC step 5; Simard et al. 2003) and
the CT's appearance.

A plane's image, label map and loss weights are warped by the same smooth random displacement
field: the image and weights by bilinear interpolation, the labels by nearest neighbour, so no
label outside the original set appears. Deformed planes weigh ``deformed_weight`` (the paper's
1/3) in the loss, through their weight maps. The appearance augmentation changes the CT
channel alone (contrast, offset, blur, noise), so that a model learns the anatomy rather than
the one generator or scanner its training CT came from; labels and weights are untouched.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

__all__ = ["appearance_augment", "blur_planes", "deform_planes", "elastic_augment",
           "elastic_displacement"]


def elastic_displacement(size: int, alpha_px: float, sigma_px: float,
                         rng: np.random.Generator) -> np.ndarray:
    """A random smooth displacement field: uniform noise in [-1, 1], Gaussian-smoothed, scaled.

    Parameters
    ----------
    size : int
        Plane side, pixels.
    alpha_px : float
        Scale of the displacement, pixels (0: no displacement).
    sigma_px : float
        Standard deviation of the smoothing Gaussian, pixels.

    Returns
    -------
    ndarray, shape (2, size, size), float32
        Displacement along rows and along columns, pixels.
    """
    noise = rng.uniform(-1.0, 1.0, size=(2, size, size))
    smooth = np.stack([ndimage.gaussian_filter(n, sigma_px, mode="constant") for n in noise])
    return (alpha_px * smooth).astype(np.float32)


def deform_planes(images: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor,
                  displacement: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Warp planes: ``out(p) = in(p + displacement(p))``; outside the plane, its edge value.

    Parameters
    ----------
    images : Tensor, shape (B, C, H, W), float
    labels : Tensor, shape (B, H, W), int64
    weights : Tensor, shape (B, H, W), float
    displacement : Tensor, shape (B, 2, H, W), float
        Row and column displacement, pixels.

    Returns
    -------
    images, labels, weights : the inputs' shapes and dtypes
    """
    _, _, height, width = images.shape
    rows = torch.arange(height, dtype=torch.float32, device=images.device)[:, None]
    cols = torch.arange(width, dtype=torch.float32, device=images.device)[None, :]
    disp = displacement.to(device=images.device, dtype=torch.float32)
    # grid_sample wants (x = column, y = row) in [-1, 1] with align_corners=True
    grid = torch.stack([2.0 * (cols + disp[:, 1]) / max(width - 1, 1) - 1.0,
                        2.0 * (rows + disp[:, 0]) / max(height - 1, 1) - 1.0], dim=-1)
    warp = {"padding_mode": "border", "align_corners": True}
    out_images = F.grid_sample(images, grid.to(images.dtype), mode="bilinear", **warp)
    out_weights = F.grid_sample(weights[:, None], grid.to(weights.dtype), mode="bilinear", **warp)
    out_labels = F.grid_sample(labels[:, None].to(torch.float32), grid, mode="nearest", **warp)
    return out_images, out_labels[:, 0].round().to(labels.dtype), out_weights[:, 0]


def elastic_augment(images: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor, *,
                    fraction: float, alpha_px: tuple[float, float], sigma_px: tuple[float, float],
                    deformed_weight: float, rng: np.random.Generator
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """Deform a random ``fraction`` of a batch; their loss weights are multiplied by ``deformed_weight``.

    Each plane is deformed with probability ``fraction``, with ``alpha`` and ``sigma`` drawn
    uniformly from ``alpha_px`` and ``sigma_px``. The inputs are not modified.

    Parameters
    ----------
    images : Tensor, shape (B, C, H, W), float
    labels : Tensor, shape (B, H, W), int64
    weights : Tensor, shape (B, H, W), float
        Per-pixel loss weights (the weight map's slice, or ones).

    Returns
    -------
    images, labels, weights : new tensors, the inputs' shapes
    deformed : ndarray, shape (B,), bool
        Which planes were deformed.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    deformed = rng.random(len(images)) < fraction
    images, labels, weights = images.clone(), labels.clone(), weights.clone()
    index = np.flatnonzero(deformed)
    if len(index):
        size = images.shape[-1]
        if images.shape[-2] != size:
            raise ValueError(f"planes must be square, got {tuple(images.shape[-2:])}")
        fields = np.stack([elastic_displacement(size, rng.uniform(*alpha_px), rng.uniform(*sigma_px),
                                                rng) for _ in index])
        at = torch.as_tensor(index, device=images.device)
        warped = deform_planes(images[at], labels[at], weights[at], torch.from_numpy(fields))
        images[at], labels[at] = warped[0], warped[1]
        weights[at] = deformed_weight * warped[2]
    return images, labels, weights, deformed


def blur_planes(planes: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Gaussian blur of every plane and channel (separable, edges replicated).

    Parameters
    ----------
    planes : Tensor, shape (B, C, H, W), float
    sigma_px : float
        Standard deviation, pixels; 0 returns ``planes`` unchanged.

    Returns
    -------
    Tensor, the input's shape and dtype
    """
    if sigma_px <= 0:
        return planes
    radius = max(1, int(np.ceil(3.0 * sigma_px)))
    offsets = torch.arange(-radius, radius + 1, dtype=planes.dtype, device=planes.device)
    kernel = torch.exp(-0.5 * (offsets / sigma_px) ** 2)
    kernel = kernel / kernel.sum()
    batch, channels, height, width = planes.shape
    flat = planes.reshape(batch * channels, 1, height, width)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="replicate"), kernel.view(1, 1, -1, 1))
    return flat.reshape(batch, channels, height, width)


def appearance_augment(images: torch.Tensor, *, fraction: float,
                       contrast: tuple[float, float], offset: tuple[float, float],
                       blur_px: tuple[float, float], noise: tuple[float, float],
                       rng: np.random.Generator) -> torch.Tensor:
    """Change the CT channel (channel 0) of a random ``fraction`` of a batch.

    Each chosen plane becomes ``blur(contrast * x + offset) + noise``: contrast drawn
    log-uniformly from ``contrast``, the offset, the blur's sigma (pixels) and the white noise's
    standard deviation uniformly from their ranges. ``x`` is the scaled CT (SPEC step 1), so
    offsets and noise are in its units: the scan's IQR with the paper's robust scaling, 100 HU
    with the fixed one (``preprocess.intensity_scaling``). Other
    channels (the lateral coordinate, which comes from the affine) are kept.

    Parameters
    ----------
    images : Tensor, shape (B, C, H, W), float

    Returns
    -------
    Tensor, the input's shape: a new tensor
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    images = images.clone()
    for i in np.flatnonzero(rng.random(len(images)) < fraction):
        gain = float(np.exp(rng.uniform(np.log(contrast[0]), np.log(contrast[1]))))
        shift, sigma = rng.uniform(*offset), rng.uniform(*blur_px)
        std = rng.uniform(*noise)
        plane = images[i : i + 1, :1] * gain + shift
        plane = blur_planes(plane, sigma)
        generator = torch.Generator(device="cpu").manual_seed(int(rng.integers(2**63 - 1)))
        plane = plane + std * torch.randn(plane.shape, generator=generator).to(plane)
        images[i : i + 1, :1] = plane
    return images
