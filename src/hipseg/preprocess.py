"""SPEC step 1: clip negative intensities, then robust scaling per scan (or a fixed HU map).

The median and quartiles are taken over the voxels above the clip value, as the original
MPUNet fits its scaler only on values above the scan's background value. Over all voxels, a CT
with a large field of view (air, lungs, fat: often more than 75 % below 0 HU) would have
q25 = q75 = 0 and nothing to scale by.

Above 0 HU most voxels are muscle and other soft tissue, so the per-scan IQR measures how
much the soft tissue varies (its noise, fat streaks, organs), not the bone contrast the
network needs: on two generators' CTs of four anatomies it ranged 2-217 HU, and the same bone
of one anatomy reached the network up to 14x as bright on one generator's CT as on the
other's (docs/design.md, ``benchmarks/intensity_scaling.py``). CT numbers are calibrated
(water 0, air -1000 HU), so the ``"fixed"`` scaling maps them by one affine map for every
scan, as nnU-Net does for CT with its dataset-wide statistics. The product trains with it
(``preprocess.intensity_scaling``); the functions here default to the paper's.
"""

from __future__ import annotations

import numpy as np

from hipseg.core.config import HipsegConfig
from hipseg.core.errors import VolumeError

__all__ = [
    "FIXED_CENTRE_HU",
    "FIXED_SCALE_HU",
    "body_midline_x_mm",
    "lateral_coordinate",
    "model_input",
    "network_input",
    "preprocess_image",
    "ras_x_mm",
    "robust_scale",
]

#: The ``"fixed"`` scaling: ``(HU - FIXED_CENTRE_HU) / FIXED_SCALE_HU`` after clipping. The
#: centre is soft tissue (muscle 40-60 HU) and the unit of the order of the paper's typical
#: IQR, so the network's input stays within a few units as with the robust scaling.
FIXED_CENTRE_HU = 50.0
FIXED_SCALE_HU = 100.0


def robust_scale(values: np.ndarray) -> tuple[float, float]:
    """Median and inter-quartile range of ``values`` (any shape, flattened).

    Returns
    -------
    median, iqr : float
        ``iqr = q75 - q25``. Raises :class:`~hipseg.core.errors.VolumeError` when it is 0 (no spread to scale by).
    """
    q25, median, q75 = np.percentile(values, [25.0, 50.0, 75.0])
    iqr = float(q75 - q25)
    if not iqr > 0:
        raise VolumeError(
            f"intensities have no spread to scale by (q25 = q75 = {q75:g} after clipping)"
        )
    return float(median), iqr


def preprocess_image(image: np.ndarray, clip_below_hu: float = 0.0,
                     scaling: str = "robust") -> np.ndarray:
    """Set values below ``clip_below_hu`` to it, then scale.

    ``scaling`` "robust" (the paper): ``(x - median) / (q75 - q25)``, the statistics from the
    voxels above ``clip_below_hu`` (see the module docstring); "fixed":
    ``(x - FIXED_CENTRE_HU) / FIXED_SCALE_HU``, the same for every scan.

    Parameters
    ----------
    image : ndarray, shape (X, Y, Z)
        CT intensities in HU.
    clip_below_hu : float
        The paper sets negative HU to 0 (the default).
    scaling : {"robust", "fixed"}

    Returns
    -------
    ndarray, shape (X, Y, Z), float32
        A new array; the input is not modified.
    """
    clipped = np.maximum(np.asarray(image, dtype=np.float32), np.float32(clip_below_hu))
    if scaling == "fixed":
        clipped -= np.float32(FIXED_CENTRE_HU)
        clipped /= np.float32(FIXED_SCALE_HU)
        return clipped
    if scaling != "robust":
        raise ValueError(f"scaling must be 'robust' or 'fixed', got {scaling!r}")
    tissue = clipped[clipped > np.float32(clip_below_hu)]
    if tissue.size == 0:
        raise VolumeError(f"no intensity above {clip_below_hu:g} HU: nothing to scale by")
    median, iqr = robust_scale(tissue)
    return ((clipped - np.float32(median)) / np.float32(iqr)).astype(np.float32, copy=False)


#: The lateral channel is RAS x relative to the body's midline divided by this (mm): a hip
#: region spans about +-200 mm, so the channel stays within a few units, like the scaled CT.
LATERAL_SCALE_MM = 100.0
#: Voxels above this (HU) count as body when the midline is located: fat is about -100 HU,
#: air and lung far below.
BODY_THRESHOLD_HU = -300.0


def ras_x_mm(shape: tuple[int, int, int], affine: np.ndarray) -> np.ndarray:
    """RAS x (mm) of every voxel, shape ``shape``, float32."""
    row = np.asarray(affine, dtype=np.float64)[0]
    i, j, k = (np.arange(n, dtype=np.float64) for n in shape)
    x = (i[:, None, None] * row[0] + j[None, :, None] * row[1]).astype(np.float32)
    return x + (k[None, None, :] * row[2] + row[3]).astype(np.float32)


def body_midline_x_mm(image_hu: np.ndarray, affine: np.ndarray,
                      body_threshold_hu: float = BODY_THRESHOLD_HU) -> float:
    """RAS x (mm) of the body's mid-sagittal plane: the median x of the body's voxels.

    The median, not the mean, so a table or a one-sided object off the body moves it little.

    Parameters
    ----------
    image_hu : ndarray, shape (X, Y, Z)
        CT intensities in HU.
    affine : ndarray, shape (4, 4)
        Voxel-to-RAS affine, mm.
    body_threshold_hu : float
        Voxels above it are body.

    Returns
    -------
    float
        RAS x in mm; the x of the array's centre when nothing is above the threshold.
    """
    return _body_median_x(image_hu, ras_x_mm(np.shape(image_hu), affine), body_threshold_hu)


def _body_median_x(image_hu: np.ndarray, x_mm: np.ndarray, body_threshold_hu: float) -> float:
    body = np.asarray(image_hu) > body_threshold_hu
    return float(np.median(x_mm[body] if body.any() else x_mm))


def lateral_coordinate(shape: tuple[int, int, int], affine: np.ndarray,
                       midline_x_mm: float) -> np.ndarray:
    """The patient-side channel: ``(RAS x - midline_x_mm) / LATERAL_SCALE_MM`` at every voxel.

    Positive on the patient's right (RAS +x), whatever the array's orientation: a plane cut
    through one femur alone tells the network which femur it is.

    Returns
    -------
    ndarray, shape ``shape``, float32
    """
    return _lateral_from_x(ras_x_mm(shape, affine), midline_x_mm)


def _lateral_from_x(x_mm: np.ndarray, midline_x_mm: float) -> np.ndarray:
    """``(x_mm - midline_x_mm) / LATERAL_SCALE_MM``, in place on ``x_mm`` (float32)."""
    x_mm -= np.float32(midline_x_mm)
    x_mm /= np.float32(LATERAL_SCALE_MM)
    return x_mm


def network_input(image_hu: np.ndarray, affine: np.ndarray, *, clip_below_hu: float = 0.0,
                  scaling: str = "robust", lateral_channel: bool = True
                  ) -> tuple[np.ndarray, np.ndarray]:
    """The channels the network reads, on the scan's grid, and their values outside the scan.

    Parameters
    ----------
    image_hu : ndarray, shape (X, Y, Z)
        CT intensities in HU.
    affine : ndarray, shape (4, 4)
        Voxel-to-RAS affine, mm.
    clip_below_hu, scaling
        As :func:`preprocess_image`.
    lateral_channel : bool
        Add :func:`lateral_coordinate` about :func:`body_midline_x_mm` as a second channel.

    Returns
    -------
    channels : ndarray, shape (C, X, Y, Z), float32
        ``C`` is 1 (scaled CT) or 2 (scaled CT, lateral coordinate).
    fill_values : ndarray, shape (C,), float64
        Per channel, the value of points outside the scan: the scaled CT's minimum (air) and
        0 (the midline) for the lateral channel.
    """
    scaled = preprocess_image(image_hu, clip_below_hu, scaling)
    if not lateral_channel:
        return scaled[None], np.array([float(scaled.min())])
    # one RAS x grid serves both the midline and the channel
    x_mm = ras_x_mm(scaled.shape, affine)
    lateral = _lateral_from_x(x_mm, _body_median_x(image_hu, x_mm, BODY_THRESHOLD_HU))
    return np.stack([scaled, lateral]), np.array([float(scaled.min()), 0.0])


def model_input(image_hu: np.ndarray, affine: np.ndarray, config: HipsegConfig
                ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`network_input` with the clip, scaling and channels a model was trained with, so
    training and every way of predicting read a scan alike."""
    return network_input(image_hu, affine, clip_below_hu=config.preprocess.clip_below_hu,
                         scaling=config.preprocess.intensity_scaling,
                         lateral_channel=config.model.lateral_channel)
