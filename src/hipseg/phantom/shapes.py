"""Implicit shapes (approximate signed distances, mm) and the side convention of the phantom.

Every function takes points as an array of shape ``(..., 3)`` in mm and returns an array of
shape ``(...)``: negative inside the shape, positive outside. The values are exact distances for
spheres, capsules and planes and close approximations otherwise; they are used to decide
inside / outside on voxel centres, never as exact distances.
"""

from __future__ import annotations

import numpy as np

from hipseg.core.volume import patient_side_of_voxels

__all__ = [
    "LEFT_X_SIGN",
    "capsule",
    "difference",
    "ellipsoid",
    "half_space",
    "intersection",
    "smooth_union",
    "sphere",
    "union",
]


def _left_x_sign() -> float:
    """+1 if the patient's left is at +x in the project's scanner space, else -1."""
    side = patient_side_of_voxels(np.eye(4), np.array([[1.0, 0.0, 0.0]]), 0.0)[0]
    return 1.0 if side == "left" else -1.0


#: Sign of the scanner x coordinate on the patient's left, read from
#: :func:`hipseg.core.volume.patient_side_of_voxels` so that the phantom follows the
#: project's convention if it ever changes.
LEFT_X_SIGN: float = _left_x_sign()


def sphere(points: np.ndarray, center: np.ndarray, radius_mm: float) -> np.ndarray:
    """Signed distance to a ball of ``radius_mm`` around ``center`` (shape (3,))."""
    return np.linalg.norm(points - np.asarray(center), axis=-1) - radius_mm


def capsule(points: np.ndarray, start: np.ndarray, end: np.ndarray, radius_mm: float) -> np.ndarray:
    """Signed distance to the set of points within ``radius_mm`` of segment ``start``-``end``."""
    start = np.asarray(start, dtype=np.float64)
    axis = np.asarray(end, dtype=np.float64) - start
    rel = points - start
    t = np.clip((rel @ axis) / float(axis @ axis), 0.0, 1.0)
    return np.linalg.norm(rel - t[..., None] * axis, axis=-1) - radius_mm


def ellipsoid(points: np.ndarray, center: np.ndarray, radii_mm: np.ndarray) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipsoid with semi-axes ``radii_mm``."""
    radii = np.asarray(radii_mm, dtype=np.float64)
    scaled = np.linalg.norm((points - np.asarray(center)) / radii, axis=-1)
    return (scaled - 1.0) * radii.min()


def half_space(points: np.ndarray, origin: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """Signed distance to the half-space behind a plane; ``normal`` points outside."""
    normal = np.asarray(normal, dtype=np.float64)
    normal = normal / np.linalg.norm(normal)
    return (points - np.asarray(origin)) @ normal


def smooth_union(a: np.ndarray, b: np.ndarray, blend_mm: float) -> np.ndarray:
    """Polynomial smooth minimum: the union of two shapes with a fillet of about ``blend_mm``."""
    h = np.clip(0.5 + 0.5 * (b - a) / blend_mm, 0.0, 1.0)
    return b + (a - b) * h - blend_mm * h * (1.0 - h)


def union(*shapes: np.ndarray) -> np.ndarray:
    """Sharp union of several signed distances."""
    return np.minimum.reduce(shapes)


def intersection(*shapes: np.ndarray) -> np.ndarray:
    """Sharp intersection of several signed distances."""
    return np.maximum.reduce(shapes)


def difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shape ``a`` with shape ``b`` cut away."""
    return np.maximum(a, -b)
