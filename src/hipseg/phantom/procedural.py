"""A procedural CT phantom of the hip region with known joint spaces."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from hipseg.core.labels import DEFAULT_LABELS
from hipseg.core.volume import Volume
from hipseg.phantom.anatomy import (
    FEMUR_KEEP_ABOVE_MM,
    AnatomyParameters,
    draw_anatomy,
    femur_sdf,
    hip_sdf,
    sacrum_sdf,
    side_signs,
)
from hipseg.phantom.coarse import fill_joint_spaces
from hipseg.phantom.intensities import labels_to_ct
from hipseg.postprocess import enforce_min_gap

__all__ = [
    "COARSE_MARGIN_MM",
    "PhantomCase",
    "PhantomSettings",
    "flip_axes",
    "make_procedural_case",
]

#: The coarse labels close gaps up to the drawn joint space plus this (mm).
COARSE_MARGIN_MM = 2.0
_FIT_STEP_MM = 6.0  # grid step of the coarse evaluation that finds the anatomy's extent


@dataclass(frozen=True)
class PhantomSettings:
    """Ranges from which each procedural case is drawn.

    Parameters
    ----------
    field_of_view_mm : (float, float, float)
        RAS x, y, z extent of the scan, mm.
    inplane_spacing_mm : (float, float)
        Uniform range of the x and y spacing (one value per case, shared by x and y), mm.
    slice_spacing_mm : (float, float)
        Uniform range of the z spacing, mm.
    joint_space_mm : (float, float)
        Uniform range of the width of the hip joint spaces, the sacro-iliac gaps and the pubic
        symphysis, mm.
    scale_range : (float, float)
        Uniform range of the global size factor. A drawn scale is lowered where the posed
        anatomy would not fit in the field of view.
    max_rotation_deg : float
        Rotation about each axis is uniform in ``[-max, max]``, degrees.
    max_shift_mm : float
        Translation along each axis is uniform in ``[-max, max]`` (then limited so the bones stay
        inside the field of view), mm.
    noise_hu : float
        Standard deviation of the gaussian image noise, HU.
    random_axis_flips : bool
        Flip each array axis with probability 1/2, together with the affine, so the stored
        orientation varies while every voxel keeps its position in scanner space.
    """

    field_of_view_mm: tuple[float, float, float] = (340.0, 250.0, 250.0)
    inplane_spacing_mm: tuple[float, float] = (2.6, 3.0)
    slice_spacing_mm: tuple[float, float] = (3.0, 3.6)
    joint_space_mm: tuple[float, float] = (1.5, 4.0)
    scale_range: tuple[float, float] = (0.9, 1.1)
    max_rotation_deg: float = 8.0
    max_shift_mm: float = 10.0
    noise_hu: float = 25.0
    random_axis_flips: bool = True


@dataclass(frozen=True)
class PhantomCase:
    """One synthetic scan with accurate and coarse labels on the same grid.

    Parameters
    ----------
    image : Volume
        float32 HU.
    labels : Volume
        uint8 accurate labels (:data:`~hipseg.core.labels.DEFAULT_LABELS` ids): different bones
        are never 26-neighbours.
    labels_coarse : Volume
        uint8, the joint spaces filled in so that neighbouring bones touch.
    joint_space_mm : float
        Width of the joint spaces of this case, mm.
    """

    image: Volume
    labels: Volume
    labels_coarse: Volume
    joint_space_mm: float


def make_procedural_case(
    rng: np.random.Generator, settings: PhantomSettings = PhantomSettings()
) -> PhantomCase:
    """Draw one procedural hip CT with accurate and coarse labels.

    The anatomy (sacrum, two hip bones, two proximal femurs) is built from implicit shapes on
    the voxel centres' scanner coordinates, with a random size, pose, joint-space width and
    voxel spacing. The hip bones are cut back so that they keep the joint space from the femurs
    and the sacrum, and :func:`~hipseg.postprocess.enforce_min_gap` guarantees that no two
    bones are 26-neighbours. The same generator state gives identical arrays and affines.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness.
    settings : PhantomSettings

    Returns
    -------
    PhantomCase
        Volumes of shape about ``field_of_view_mm / spacing``; the scan's centre is at scanner
        (0, 0, 0) within a voxel.
    """
    fov = np.asarray(settings.field_of_view_mm, dtype=np.float64)
    inplane = float(rng.uniform(*settings.inplane_spacing_mm))
    spacing = np.array([inplane, inplane, rng.uniform(*settings.slice_spacing_mm)])
    gap_mm = float(rng.uniform(*settings.joint_space_mm))
    scale = float(rng.uniform(*settings.scale_range))
    angles = np.radians(rng.uniform(-settings.max_rotation_deg, settings.max_rotation_deg, size=3))
    shift = rng.uniform(-settings.max_shift_mm, settings.max_shift_mm, size=3)
    flips = rng.random(3) < 0.5
    params = draw_anatomy(rng, gap_mm / scale)

    shape = np.maximum(np.round(fov / spacing).astype(int), 8)
    half_extent = (shape - 1) / 2.0 * spacing - (0.5 * spacing + 1.0)  # room for the bones
    rotation = _rotation(angles)
    center, points = _extent_points(params)
    posed = (points - center) @ rotation.T
    lo, hi = posed.min(axis=0) - _FIT_STEP_MM, posed.max(axis=0) + _FIT_STEP_MM
    fit = float(np.min(2.0 * half_extent / (scale * (hi - lo))))
    if fit < 1.0:
        scale *= 0.999 * fit
        params = dataclasses.replace(params, joint_space_mm=gap_mm / scale)
    shift = np.clip(shift, -half_extent - scale * lo, half_extent - scale * hi)

    labels = _rasterise(params, shape, spacing, rotation, scale, shift, center, gap_mm)
    image = labels_to_ct(labels, spacing, rng, noise_hu=settings.noise_hu)
    coarse = fill_joint_spaces(labels, spacing, gap_mm + COARSE_MARGIN_MM)

    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -(shape - 1) / 2.0 * spacing
    if settings.random_axis_flips:
        axes = tuple(int(a) for a in np.flatnonzero(flips))
        (image, labels, coarse), affine = flip_axes((image, labels, coarse), affine, axes)
    return PhantomCase(
        image=Volume(image, affine),
        labels=Volume(labels, affine),
        labels_coarse=Volume(coarse, affine),
        joint_space_mm=gap_mm,
    )


def flip_axes(
    arrays: tuple[np.ndarray, ...], affine: np.ndarray, axes: tuple[int, ...]
) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """Flip array axes and the affine together so every voxel keeps its scanner position.

    Parameters
    ----------
    arrays : tuple of ndarray, each shape (X, Y, Z)
    affine : ndarray, shape (4, 4)
    axes : tuple of int
        Array axes to reverse.

    Returns
    -------
    arrays : tuple of ndarray
        Flipped, contiguous copies.
    affine : ndarray, shape (4, 4)
        ``affine @ F`` where ``F`` maps a new index to the old one (``i_old = n - 1 - i_new``).
    """
    shape = arrays[0].shape
    index_map = np.eye(4)
    for axis in axes:
        index_map[axis, axis] = -1.0
        index_map[axis, 3] = shape[axis] - 1
    flipped = tuple(
        np.ascontiguousarray(np.flip(a, axis=axes)) if axes else a.copy() for a in arrays
    )
    return flipped, np.asarray(affine, dtype=np.float64) @ index_map


def _rotation(angles_rad: np.ndarray) -> np.ndarray:
    ax, ay, az = angles_rad
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def _bone_sdfs(points: np.ndarray, params: AnatomyParameters) -> dict[str, np.ndarray]:
    """Signed distances (anatomical mm) of every bone, keyed by class name."""
    out = {}
    for side, sign in side_signs().items():
        out[f"femur_{side}"] = femur_sdf(points, params, sign)
        out[f"hip_{side}"] = hip_sdf(points, params, sign)
    out["sacrum"] = sacrum_sdf(points, params)
    return out


def _extent_points(params: AnatomyParameters) -> tuple[np.ndarray, np.ndarray]:
    """Bone points on a coarse grid (femoral shafts cut low) and their bounding-box centre.

    The true surface lies at most about one grid step (``_FIT_STEP_MM``) beyond these points.

    Returns
    -------
    center : ndarray, shape (3,)
    points : ndarray, shape (N, 3)
        Anatomical coordinates, mm.
    """
    axes = [np.arange(lo, hi, _FIT_STEP_MM) for lo, hi in ((-175, 176), (-140, 90), (-120, 160))]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    inside = np.zeros(len(grid), bool)
    for name, sdf in _bone_sdfs(grid, params).items():
        keep = sdf < 0.0
        if name.startswith("femur"):
            keep &= grid[:, 2] > FEMUR_KEEP_ABOVE_MM
        inside |= keep
    points = grid[inside]
    return (points.min(axis=0) + points.max(axis=0)) / 2.0, points


def _rasterise(
    params: AnatomyParameters,
    shape: np.ndarray,
    spacing: np.ndarray,
    rotation: np.ndarray,
    scale: float,
    shift: np.ndarray,
    center: np.ndarray,
    gap_mm: float,
) -> np.ndarray:
    """Accurate uint8 labels on the unflipped grid (axes along +x, +y, +z)."""
    axes = [(np.arange(n) - (n - 1) / 2.0) * h for n, h in zip(shape, spacing, strict=True)]
    world = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    anat = (world - shift) @ rotation / scale + center  # R^T (p - t) / s + c, row vectors
    masks = {name: sdf < 0.0 for name, sdf in _bone_sdfs(anat, params).items()}

    femurs = masks["femur_left"] | masks["femur_right"]
    keep_from_femur = ndimage.distance_transform_edt(~femurs, sampling=spacing) >= gap_mm
    keep_from_sacrum = ndimage.distance_transform_edt(~masks["sacrum"], sampling=spacing) >= gap_mm
    labels = np.zeros(tuple(shape), np.uint8)
    for name in ("sacrum", "hip_right", "hip_left"):
        mask = masks[name]
        if name.startswith("hip"):
            mask = mask & keep_from_femur & keep_from_sacrum
        labels[mask] = DEFAULT_LABELS.id_of(name)
    for name in ("femur_right", "femur_left"):
        labels[masks[name]] = DEFAULT_LABELS.id_of(name)
    return enforce_min_gap(labels, spacing)[0]
