"""Small synthetic volumes and affines that tests build for themselves."""

from __future__ import annotations

import itertools

import numpy as np


def oblique_affine(spacing_mm=(1.2, 0.9, 1.5), angles_deg=(10.0, -20.0, 30.0),
                   origin_mm=(-40.0, 25.0, 10.0), flips=(False, True, False)) -> np.ndarray:
    """A voxel-to-RAS affine with rotation, anisotropic spacing, axis flips and translation."""
    ax, ay, az = np.radians(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    signs = np.where(flips, -1.0, 1.0)
    affine = np.eye(4)
    affine[:3, :3] = rz @ ry @ rx @ np.diag(np.asarray(spacing_mm) * signs)
    affine[:3, 3] = origin_mm
    return affine


def blob_labels(shape: tuple[int, int, int], rng: np.random.Generator, n_blobs: int = 6) -> np.ndarray:
    """Overlapping random balls with ids 1..5 on a grid: a label map with many boundaries."""
    grid = np.indices(shape).transpose(1, 2, 3, 0).astype(float)
    labels = np.zeros(shape, np.uint8)
    for index in range(n_blobs):
        center = rng.uniform(0, np.asarray(shape) - 1)
        radius = rng.uniform(2, min(shape) / 3)
        labels[np.linalg.norm(grid - center, axis=-1) <= radius] = index % 5 + 1
    return labels


def touching_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of different foreground classes that are 26-neighbours (slow, independent)."""
    pairs = set()
    n = labels.shape
    for offset in itertools.product((-1, 0, 1), repeat=3):
        if offset == (0, 0, 0):
            continue
        a = labels[tuple(slice(max(0, -o), n[i] - max(0, o)) for i, o in enumerate(offset))]
        b = labels[tuple(slice(max(0, o), n[i] - max(0, -o)) for i, o in enumerate(offset))]
        hit = (a != 0) & (b != 0) & (a != b)
        pairs |= {(int(x), int(y)) for x, y in set(zip(a[hit].tolist(), b[hit].tolist()))}
    return pairs
