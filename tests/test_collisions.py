"""Collision counts against hand-computed cases, scipy's EDT and a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from hipseg.collisions import (
    collision_map,
    collision_pairs,
    count_collisions,
    default_eps_mm,
    pair_code,
)
from synthetic import blob_labels


def _two_boxes(first: int = 1, second: int = 2) -> np.ndarray:
    """Two 4 x 4 x 4 boxes along axis 0 with one empty voxel layer (x = 5) between them."""
    labels = np.zeros((12, 8, 8), np.uint8)
    labels[1:5, 2:6, 2:6] = first
    labels[6:10, 2:6, 2:6] = second
    return labels


@pytest.mark.parametrize(
    ("spacing_mm", "eps_mm", "layers"),
    [
        ((1.0, 1.0, 1.0), 2.0, 1),  # facing layers at 2 mm count, the next ones (3 mm) do not
        ((1.0, 1.0, 1.0), 1.9, 0),
        ((1.0, 1.0, 1.0), 3.0, 2),
        ((0.6, 1.0, 1.0), 2.0, 2),  # layers at 1.2, 1.8 (in), 2.4 mm (out)
        ((0.5, 1.0, 1.0), 2.0, 3),  # 1.0, 1.5, 2.0 mm: exactly eps counts
        ((1.5, 1.0, 1.0), 2.0, 0),  # facing layers already 3 mm apart
        ((1.0, 0.3, 0.3), 2.0, 1),  # spacing across the gap is what matters
    ],
)
def test_two_boxes_one_voxel_apart(spacing_mm, eps_mm, layers):
    labels = _two_boxes(1, 3)
    total, per_pair = count_collisions(labels, spacing_mm, eps_mm)
    expected = 2 * 16 * layers  # each box: `layers` layers of 4 x 4 voxels
    assert total == expected
    assert per_pair == ({(1, 3): expected} if expected else {})
    codes, pairs = collision_map(labels, spacing_mm, eps_mm)
    assert pairs[pair_code(1, 3) - 1] == (1, 3)
    colliding_x = sorted(set(np.nonzero(codes)[0].tolist()))
    assert colliding_x == [*range(5 - layers, 5), *range(6, 6 + layers)]


def test_nearest_other_class_names_the_pair():
    labels = np.array([[[2, 0, 1, 3, 0, 0]]], np.uint8)  # 1 is 1 voxel from 3, 2 voxels from 2
    codes, pairs = collision_map(labels, (1.0, 1.0, 1.0), eps_mm=2.0)
    assert [pairs[c - 1] if c else None for c in codes[0, 0]] == [
        (1, 2), None, (1, 3), (1, 3), None, None
    ]
    assert count_collisions(labels, (1.0, 1.0, 1.0)) == (3, {(1, 2): 1, (1, 3): 2})


def test_pair_codes_are_a_fixed_table():
    pairs = collision_pairs(5)
    assert pairs == (
        (1, 2), (1, 3), (2, 3), (1, 4), (2, 4), (3, 4), (1, 5), (2, 5), (3, 5), (4, 5)
    )
    assert [pair_code(*p) for p in pairs] == list(range(1, 11))
    assert pair_code(5, 4) == pair_code(4, 5)
    assert collision_pairs(7)[: len(pairs)] == pairs  # more classes extend the table
    with pytest.raises(ValueError):
        pair_code(2, 2)
    with pytest.raises(ValueError):
        pair_code(0, 1)


@pytest.mark.parametrize(
    "labels",
    [np.zeros((6, 5, 4), np.uint8), np.pad(np.full((3, 3, 3), 4, np.int16), 1)],
    ids=["empty", "single-class"],
)
def test_no_collisions_without_two_classes(labels):
    assert count_collisions(labels, (1.0, 1.0, 1.0), eps_mm=100.0) == (0, {})
    codes, _ = collision_map(labels, (1.0, 1.0, 1.0))
    assert codes.dtype == np.uint16 and not codes.any()


def _random_labels(seed: int, shape=(10, 9, 8)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    labels = blob_labels(shape, rng, n_blobs=7)
    noise = rng.random(shape) < 0.03
    labels[noise] = rng.integers(0, 6, int(noise.sum()))
    return labels


def _brute_force_codes(labels: np.ndarray, spacing_mm, eps_mm: float) -> np.ndarray:
    """All pairwise voxel-centre distances; nearest other class, smallest id on ties.

    Distances come from integer voxel offsets, so mirrored offsets tie exactly.
    """
    positions = np.argwhere(labels != 0)
    classes = labels[labels != 0].astype(int)
    offsets_mm = (positions[:, None, :] - positions[None, :, :]) * np.asarray(spacing_mm)
    distances = np.sqrt((offsets_mm**2).sum(axis=-1))
    codes = np.zeros(labels.shape, np.uint16)
    for index, own in enumerate(classes):
        best, best_class = np.inf, 0
        for other in np.unique(classes):  # increasing ids; strict '<' keeps the smallest on ties
            if other != own and distances[index, classes == other].min() < best:
                best, best_class = distances[index, classes == other].min(), other
        if best <= eps_mm:
            i, j = sorted((own, best_class))
            codes[tuple(positions[index])] = (j - 1) * (j - 2) // 2 + i
    return codes


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("spacing_mm", "eps_mm"),
    [((1.0, 1.0, 1.0), 2.0), ((0.7, 1.1, 1.6), 2.0), ((0.5, 0.9, 1.3), 1.4)],
)
def test_matches_brute_force(seed, spacing_mm, eps_mm):
    labels = _random_labels(seed)
    assert len(np.unique(labels)) == 6
    before = labels.copy()
    codes, pairs = collision_map(labels, spacing_mm, eps_mm)
    np.testing.assert_array_equal(codes, _brute_force_codes(labels, spacing_mm, eps_mm))
    np.testing.assert_array_equal(labels, before)
    total, per_pair = count_collisions(labels, spacing_mm, eps_mm)
    assert total == int((codes > 0).sum()) > 0
    assert sum(per_pair.values()) == total
    for code in np.unique(codes[codes > 0]):
        assert per_pair[pairs[code - 1]] == int((codes == code).sum())


def test_collision_set_matches_scipy_edt_on_a_larger_map():
    rng = np.random.default_rng(11)
    labels = blob_labels((40, 36, 30), rng, n_blobs=12)
    spacing_mm, eps_mm = (0.8, 1.25, 2.0), 2.0
    distance_to_other = np.full(labels.shape, np.inf)
    for class_id in range(1, 6):
        to_class = ndimage.distance_transform_edt(labels != class_id, sampling=spacing_mm)
        others = (labels != 0) & (labels != class_id)
        distance_to_other[others] = np.minimum(distance_to_other[others], to_class[others])
    expected = (labels != 0) & (distance_to_other <= eps_mm + 1e-9)
    codes, _ = collision_map(labels, spacing_mm, eps_mm)
    np.testing.assert_array_equal(codes > 0, expected)
    assert expected.sum() > 100


@pytest.mark.parametrize(
    ("labels", "spacing_mm", "eps_mm", "match"),
    [
        (np.zeros((4, 4), np.uint8), (1.0, 1.0, 1.0), 2.0, "3D"),
        (np.zeros((4, 4, 4), float), (1.0, 1.0, 1.0), 2.0, "integer"),
        (np.full((4, 4, 4), -1, np.int16), (1.0, 1.0, 1.0), 2.0, "0..255"),
        (np.zeros((4, 4, 4), np.uint8), (1.0, 1.0), 2.0, "spacing_mm"),
        (np.zeros((4, 4, 4), np.uint8), (1.0, 0.0, 1.0), 2.0, "spacing_mm"),
        (np.zeros((4, 4, 4), np.uint8), (1.0, 1.0, 1.0), -1.0, "eps_mm"),
    ],
)
def test_bad_input_is_rejected(labels, spacing_mm, eps_mm, match):
    with pytest.raises(ValueError, match=match):
        count_collisions(labels, spacing_mm, eps_mm)


def test_default_eps_is_the_papers_2mm_or_one_voxel_step_on_coarse_scans():
    assert default_eps_mm((0.8, 0.8, 1.0)) == 2.0
    assert default_eps_mm((2.8, 2.8, 3.3)) == 3.3
    touching = np.zeros((8, 4, 4), np.uint8)
    touching[:4], touching[4:] = 1, 3
    # on 3 mm voxels, touching bones collide under the default eps but not under a bare 2 mm
    assert count_collisions(touching, (3.0, 3.0, 3.0), default_eps_mm((3.0, 3.0, 3.0)))[0] == 32
    assert count_collisions(touching, (3.0, 3.0, 3.0), 2.0)[0] == 0
