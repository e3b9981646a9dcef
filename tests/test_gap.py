"""enforce_min_gap: no two bones touch afterwards, and the contest rule picks the right side."""

from __future__ import annotations

import numpy as np
import pytest

from hipseg.collisions import count_collisions
from hipseg.postprocess import enforce_min_gap
from synthetic import blob_labels, touching_pairs


def _boxes(face_b: int = 10) -> np.ndarray:
    """Box of class 2 (10 voxels wide) touching, face to face along x, a box of class 4."""
    labels = np.zeros((30, 20, 20), np.uint8)
    labels[5:15, 5:15, 5:15] = 2
    lo = 5 + (10 - face_b) // 2
    labels[15:25, lo:lo + face_b, lo:lo + face_b] = 4
    return labels


def test_equal_faces_cut_one_layer_of_the_larger_id():
    labels = _boxes()
    before = labels.copy()
    result, changed = enforce_min_gap(labels, (1.0, 1.0, 1.0))
    assert touching_pairs(labels) == {(2, 4), (4, 2)}
    assert touching_pairs(result) == set()
    assert changed == 100  # one 10 x 10 layer; equal counts: the larger id (4) loses
    assert np.all(result[15] == 0) and np.count_nonzero(result == 2) == 1000
    np.testing.assert_array_equal(labels, before)


def test_the_side_with_fewer_contested_voxels_loses():
    result, changed = enforce_min_gap(_boxes(face_b=6), (1.0, 1.0, 1.0))
    # Box 4's 6 x 6 face touches 8 x 8 voxels of box 2 (26-neighbours): box 4 gives up 36.
    assert changed == 36
    assert np.count_nonzero(result == 2) == 1000
    assert touching_pairs(result) == set()


def test_probabilities_decide_the_lower_side_loses():
    labels = _boxes(face_b=6)
    probabilities = np.zeros((5, *labels.shape), np.float32)
    probabilities[2], probabilities[4] = 0.3, 0.9  # box 2 is the unsure one
    result, changed = enforce_min_gap(labels, (1.0, 1.0, 1.0), probabilities=probabilities)
    assert changed == 64  # 8 x 8 voxels of box 2's face, although box 4 would give up fewer
    assert np.count_nonzero(result == 4) == 360
    assert touching_pairs(result) == set()


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 1.0, 2.0)])
def test_min_gap_mm_leaves_no_closer_voxel_pair(spacing, rng):
    labels = blob_labels((24, 22, 20), rng)
    result, changed = enforce_min_gap(labels, spacing, min_gap_mm=3.0)
    assert count_collisions(labels, spacing, eps_mm=2.99)[0] > 0
    assert count_collisions(result, spacing, eps_mm=2.99)[0] == 0
    assert changed == np.count_nonzero(result != labels)
    assert np.all((result == labels) | (result == 0))  # only ever removes


def test_random_maps_end_without_contact(rng):
    for _ in range(3):
        labels = blob_labels((20, 18, 16), rng)
        result, changed = enforce_min_gap(labels, (1.2, 0.9, 1.5))
        assert touching_pairs(result) == set()
        assert np.all((result == labels) | (result == 0))
        assert changed == np.count_nonzero(result != labels)


def test_no_contact_changes_nothing():
    labels = np.zeros((10, 10, 10), np.uint8)
    labels[1:4], labels[6:9] = 1, 3
    result, changed = enforce_min_gap(labels, (1.0, 1.0, 1.0))
    assert changed == 0
    np.testing.assert_array_equal(result, labels)


def test_bad_inputs_are_refused():
    labels = _boxes()
    with pytest.raises(ValueError, match="spacing_mm"):
        enforce_min_gap(labels, (1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="probabilities"):
        enforce_min_gap(labels, (1.0, 1.0, 1.0), probabilities=np.zeros((3, *labels.shape)))
    with pytest.raises(ValueError, match="3D"):
        enforce_min_gap(labels[0], (1.0, 1.0, 1.0))
