"""View directions: the scanner axes plus random unit vectors kept apart by a minimum angle."""

from __future__ import annotations

import numpy as np

__all__ = ["angle_between_lines_deg", "view_directions"]


def angle_between_lines_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle in degrees (0 to 90) between the lines along unit vectors ``a`` and ``b``.

    A view along ``n`` cuts the same planes as one along ``-n``, so directions are lines.
    """
    cosine = min(1.0, abs(float(np.dot(a, b))))
    return float(np.degrees(np.arccos(cosine)))


def view_directions(
    n_views: int, min_angle_deg: float, rng: np.random.Generator, *, max_tries: int = 100_000
) -> np.ndarray:
    """The scanner axes (RAS x, y, z) followed by random unit vectors.

    Parameters
    ----------
    n_views : int
        Total number of directions, at least 1. The first ``min(n_views, 3)`` are the axes.
    min_angle_deg : float
        Every random direction is at least this far (as a line) from all earlier ones.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray, shape (n_views, 3), float64
        Unit vectors in RAS scanner space.
    """
    if n_views < 1:
        raise ValueError(f"n_views must be at least 1, got {n_views}")
    directions = list(np.eye(3)[: min(n_views, 3)])
    for _ in range(max_tries):
        if len(directions) == n_views:
            break
        candidate = rng.normal(size=3)
        candidate /= np.linalg.norm(candidate)
        if all(angle_between_lines_deg(candidate, d) >= min_angle_deg for d in directions):
            directions.append(candidate)
    else:
        raise ValueError(
            f"could not place {n_views} views at least {min_angle_deg} degrees apart; "
            "lower the angle or the number of views"
        )
    return np.stack(directions)
