"""The shared distance kernel against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from hipseg.distances import class_boxes, class_distances, distance_to_class
from synthetic import blob_labels


def _brute_force(labels: np.ndarray, spacing: np.ndarray) -> np.ndarray:
    """Distance (mm) from every voxel to every class present, shape (n_classes + 1, *shape)."""
    points = np.argwhere(np.ones(labels.shape, bool)) * spacing
    out = np.full((int(labels.max()) + 1, *labels.shape), np.inf)
    for c in range(1, int(labels.max()) + 1):
        members = np.argwhere(labels == c) * spacing
        if len(members):
            d = np.sqrt(((points[:, None, :] - members[None]) ** 2).sum(-1)).min(1)
            out[c] = d.reshape(labels.shape)
    return out


@pytest.mark.parametrize("max_mm", [np.inf, 3.0])
def test_two_nearest_classes_match_brute_force(rng, max_mm):
    labels = blob_labels((12, 10, 9), rng, n_blobs=5)
    spacing = np.array([0.8, 1.0, 1.7])
    d1, d2, nearest = class_distances(labels, spacing_mm=spacing, max_mm=max_mm)
    reference = np.sort(_brute_force(labels, spacing)[1:], axis=0)
    for got, want in ((d1, reference[0]), (d2, reference[1])):
        exact = want <= max_mm
        np.testing.assert_allclose(got[exact], want[exact], rtol=1e-5, atol=1e-5)
        assert np.all(got[~exact] > max_mm)  # beyond the reach: larger, possibly inf
    per_class = _brute_force(labels, spacing)
    found = nearest > 0
    np.testing.assert_allclose(per_class[nearest[found], *np.nonzero(found)], d1[found],
                               rtol=1e-5, atol=1e-5)
    assert np.all(nearest[labels > 0] == labels[labels > 0])


def test_boxes_are_grown_and_clipped():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[4:6, 0:2, 8:10] = 3
    assert list(class_boxes(labels, 2)) == [(3, (slice(2, 8), slice(0, 4), slice(6, 10)))]


def test_distance_to_an_absent_class_is_inf():
    assert np.all(np.isinf(distance_to_class(np.zeros((3, 3, 3), np.uint8), 2)))
