"""Synthetic CT intensities (HU) for a label map of bones."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from hipseg.phantom.coarse import nearest_two_bones

__all__ = ["default_body_mask", "labels_to_ct"]

AIR_HU = -1000.0
FAT_HU = -100.0
MUSCLE_HU = 40.0
CARTILAGE_HU = 70.0
TRABECULAR_HU = 250.0
CORTICAL_HU = 1200.0
CORTEX_MM = 2.0
BODY_MARGIN_MM = 30.0
JOINT_REGION_MM = 8.0


def default_body_mask(
    labels: np.ndarray, spacing_mm: np.ndarray, margin_mm: float = BODY_MARGIN_MM
) -> np.ndarray:
    """An elliptic cylinder along the last array axis around the bones.

    The ellipse (in the plane of array axes 0 and 1) is centred on the bones' bounding box,
    with semi-axes half the box's extent plus ``margin_mm``, shrunk where needed so that it
    stays inside the array: the array's corners are always outside the body.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
    spacing_mm : array-like, shape (3,)
    margin_mm : float
        Soft tissue around the bones, mm.

    Returns
    -------
    ndarray, shape (X, Y, Z), bool
    """
    spacing = np.asarray(spacing_mm, dtype=np.float64)
    shape = np.asarray(labels.shape[:2])
    bone_xy = np.any(labels != 0, axis=2)
    if bone_xy.any():
        idx = np.nonzero(bone_xy)
        lo = np.array([i.min() for i in idx], float)
        hi = np.array([i.max() for i in idx], float)
    else:
        lo, hi = np.zeros(2), shape - 1.0
    center = (lo + hi) / 2.0
    semi = (hi - lo) / 2.0 + margin_mm / spacing[:2]
    semi = np.minimum(semi, np.minimum(center, shape - 1.0 - center) + 0.5)
    semi = np.maximum(semi, 1.0)
    i = (np.arange(shape[0]) - center[0]) / semi[0]
    j = (np.arange(shape[1]) - center[1]) / semi[1]
    ellipse = i[:, None] ** 2 + j[None, :] ** 2 <= 1.0
    return np.repeat(ellipse[:, :, None], labels.shape[2], axis=2)


def labels_to_ct(
    labels: np.ndarray,
    spacing_mm: np.ndarray,
    rng: np.random.Generator,
    *,
    body_mask: np.ndarray | None = None,
    noise_hu: float = 25.0,
) -> np.ndarray:
    """Turn a bone label map into a plausible CT image.

    Air (-1000 HU) outside the body; a subcutaneous fat layer (about -100 HU, 10-25 mm thick);
    soft tissue (about 40 HU, with a smooth random variation); cartilage (about 70 HU) in the
    narrow spaces between two different bones; inside each bone trabecular bone (about 250 HU,
    textured) and a cortical shell (about 1200 HU) over the outer ~2 mm, with the partial-volume
    fraction of the shell in each boundary voxel. Then a slight blur and gaussian noise. The
    tissue values are jittered per call by a few percent.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        0 is background, every other value a bone.
    spacing_mm : array-like, shape (3,)
        Voxel spacing in mm; all distances (cortex, fat layer) are in mm.
    rng : numpy.random.Generator
        The only source of randomness.
    body_mask : ndarray, shape (X, Y, Z), bool, optional
        Inside of the body. Default: :func:`default_body_mask`.
    noise_hu : float
        Standard deviation of the gaussian noise, HU.

    Returns
    -------
    ndarray, shape (X, Y, Z), float32
        Intensities in HU.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be 3D, got shape {labels.shape}")
    spacing = np.asarray(spacing_mm, dtype=np.float64).reshape(3)
    if body_mask is None:
        body = default_body_mask(labels, spacing)
    else:
        body = np.asarray(body_mask, bool)
        if body.shape != labels.shape:
            raise ValueError(f"body_mask shape {body.shape} differs from labels {labels.shape}")
    bone = labels != 0
    body = body | bone

    jitter = rng.uniform(0.92, 1.08, size=5)
    fat_mm = rng.uniform(10.0, 25.0)

    image = np.full(labels.shape, AIR_HU, np.float32)
    image[body] = MUSCLE_HU * jitter[0]
    image += _smooth_field(labels.shape, rng, amplitude=12.0) * body
    depth_in_body = ndimage.distance_transform_edt(body, sampling=spacing)
    image[body & (depth_in_body <= fat_mm) & ~bone] = FAT_HU * jitter[1]

    d1, d2, _ = nearest_two_bones(labels, spacing, JOINT_REGION_MM)
    joint = ~bone & body & (d1 + d2 <= JOINT_REGION_MM)
    image[joint] = CARTILAGE_HU * jitter[2]

    image += _bone_intensities(labels, spacing, rng, jitter[3], jitter[4])
    sigma_vox = np.clip(0.6 / spacing, 0.3, 0.6)  # a little partial volume
    image = ndimage.gaussian_filter(image, sigma=sigma_vox)
    image += rng.normal(0.0, noise_hu, size=labels.shape).astype(np.float32)
    return image.astype(np.float32, copy=False)


def _bone_intensities(
    labels: np.ndarray,
    spacing: np.ndarray,
    rng: np.random.Generator,
    trab_scale: float,
    cort_scale: float,
) -> np.ndarray:
    """HU to add on bone voxels (replacing the soft-tissue value there), shape of ``labels``."""
    out = np.zeros(labels.shape, np.float32)
    step = float(spacing.mean())
    trabecular = TRABECULAR_HU * trab_scale
    cortical = CORTICAL_HU * cort_scale
    texture = ndimage.gaussian_filter(
        rng.normal(0.0, 1.0, size=labels.shape).astype(np.float32), 1.0
    )
    texture *= 40.0 / max(float(texture.std()), 1e-6)
    boxes = ndimage.find_objects(labels.astype(np.int64, copy=False))
    for index, box in enumerate(boxes):
        if box is None:
            continue
        box = tuple(
            slice(max(s.start - 1, 0), min(s.stop + 1, n))
            for s, n in zip(box, labels.shape, strict=True)
        )
        mask = labels[box] == index + 1
        # depth of the voxel centre below the bone surface, which lies half a voxel outside
        depth = ndimage.distance_transform_edt(mask, sampling=spacing) - 0.5 * step
        cortex_fraction = np.clip((CORTEX_MM - (depth - 0.5 * step)) / step, 0.0, 1.0)
        value = trabecular + texture[box] + cortex_fraction * (cortical - trabecular)
        out[box][mask] = (value - MUSCLE_HU)[mask]
    return out


def _smooth_field(shape: tuple[int, ...], rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """A smooth random field with values in about ``[-amplitude, amplitude]``, float32."""
    coarse = rng.uniform(-amplitude, amplitude, size=(4, 4, 4))
    zoom = [n / 4.0 for n in shape]
    field = ndimage.zoom(coarse, zoom, order=1, mode="nearest")
    out = np.zeros(shape, np.float32)
    sl = tuple(slice(0, min(a, b)) for a, b in zip(shape, field.shape, strict=True))
    out[sl] = field[sl]
    return out
