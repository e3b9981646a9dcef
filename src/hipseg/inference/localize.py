"""Prediction on the hip region of a larger scan: find the hips coarsely, crop, predict, paste.

The model itself finds the hips: it segments a copy of the scan averaged down to
:data:`COARSE_SPACING_MM` voxels, and the box around the largest component of each predicted
bone, plus a margin, is cropped from the full-resolution scan and segmented again. The result
is pasted back onto the input's grid: background outside the box.
"""

from __future__ import annotations

import logging

import numpy as np

from hipseg.core.volume import Volume
from hipseg.crop import box_in_grid, crop_volume, downsample_mean, largest_components_box, paste
from hipseg.inference.volume import Prediction, predict_volume
from hipseg.runtime.model_io import LoadedModel

__all__ = ["COARSE_SPACING_MM", "locate_hips", "predict_hip_region"]

logger = logging.getLogger(__name__)

#: Voxel spacing of the localisation copy. The network still sees planes at the model's pixel
#: spacing; the coarse grid only makes mapping the views back (memory, time) cheap.
COARSE_SPACING_MM = 4.0


def locate_hips(model: LoadedModel, image: Volume, *, margin_mm: float,
                max_memory_bytes: int | None = None, progress: bool = True,
                precision: str = "auto") -> tuple[np.ndarray, np.ndarray] | None:
    """Box ``(lo, hi)`` of ``image``'s voxels around the predicted bones plus ``margin_mm``.

    Returns None when the coarse prediction has no bone voxel at all.
    """
    coarse = downsample_mean(image, COARSE_SPACING_MM)
    labels = predict_volume(model, coarse, max_memory_bytes=max_memory_bytes, progress=progress,
                            precision=precision).labels
    box = largest_components_box(labels)
    if box is None:
        return None
    return box_in_grid(box, coarse.affine, image.affine, image.shape, margin_mm)


def predict_hip_region(model: LoadedModel, image: Volume, *, margin_mm: float,
                       max_memory_bytes: int | None = None, progress: bool = True,
                       precision: str = "auto", mirror: bool = False,
                       pixel_spacing_mm: float | None = None,
                       refine_joints: bool = False) -> Prediction:
    """:func:`predict_volume` on the hip region only, returned on ``image``'s full grid.

    ``mirror``, ``pixel_spacing_mm`` and ``refine_joints`` apply to the region's prediction, not to the coarse
    pass that finds it (which keeps the model's own spacing).

    Outside the region: label 0, background probability 1, disagreement 0. When no bone is
    found, the whole prediction is background (and a warning is logged).
    """
    box = locate_hips(model, image, margin_mm=margin_mm, max_memory_bytes=max_memory_bytes,
                      progress=progress, precision=precision)
    background = np.zeros((model.config.labels.n_classes, 1, 1, 1), np.float32)
    background[0] = 1.0
    if box is None:
        logger.warning("no hip bone found in the coarse pass: the label map is empty")
        probabilities = np.broadcast_to(background, (len(background), *image.shape)).copy()
        return Prediction(labels=np.zeros(image.shape, np.uint8), probabilities=probabilities,
                          disagreement=np.zeros(image.shape, np.float32))
    lo, hi = box
    logger.info("hip region: voxels %s to %s of %s", lo.tolist(), (hi - 1).tolist(), image.shape)
    part = predict_volume(model, crop_volume(image, lo, hi), max_memory_bytes=max_memory_bytes,
                          progress=progress, precision=precision, mirror=mirror,
                          pixel_spacing_mm=pixel_spacing_mm, refine_joints=refine_joints)
    return Prediction(labels=paste(part.labels, lo, image.shape),
                      probabilities=paste(part.probabilities, lo, image.shape, fill=background),
                      disagreement=paste(part.disagreement, lo, image.shape))
