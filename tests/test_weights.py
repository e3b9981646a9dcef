"""The distance weight map: the paper's shape on hand-built labels, and a slow reference."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from hipseg.weights import (
    contact_band,
    contact_voxels,
    distance_weight_map,
    erode_labels,
    joint_space_voxels,
    negligible_distance_vox,
)
from synthetic import blob_labels

GAP = slice(20, 23)  # x range of the 3-voxel gap between the blocks


def two_blocks() -> np.ndarray:
    """Class 1 at x in [8, 20), class 2 at x in [23, 35), both y, z in [4, 20); 48 x 24 x 24."""
    labels = np.zeros((48, 24, 24), np.uint8)
    labels[8:20, 4:20, 4:20] = 1
    labels[23:35, 4:20, 4:20] = 2
    return labels


def reference_weight_map(labels: np.ndarray, w0: float, sigma: float, radius: float) -> np.ndarray:
    """Per class: scipy binary erosion by a ball, scipy EDT of the complement; sort; formula."""
    offsets = np.indices((7, 7, 7)) - 3
    ball = (offsets**2).sum(0) <= radius**2
    distances = []
    for class_id in np.unique(labels[labels != 0]):
        mask = labels == class_id
        if radius > 0:
            mask = ndimage.binary_erosion(mask, structure=ball, border_value=1)
        if mask.any():
            distances.append(ndimage.distance_transform_edt(~mask))
    while len(distances) < 2:
        distances.append(np.full(labels.shape, np.inf))
    d = np.sort(np.stack(distances), axis=0)
    return 1.0 + w0 * np.exp(-((d[0] + d[1]) ** 2) / (2 * sigma**2))


@pytest.mark.parametrize("w0, radius", [(20.0, 3.0), (10.0, 0.0)])
def test_two_blocks_maximum_in_the_gap_and_one_far_away(w0, radius):
    weights = distance_weight_map(two_blocks(), w0=w0, erosion_radius_vox=radius)
    assert weights.dtype == np.float32
    gap = weights[GAP, 4:20, 4:20]
    assert gap.max() == pytest.approx(weights.max())
    assert weights[GAP, 12, 12].min() > 1.5
    assert weights[47, 0, 0] == 1.0 and weights[0, 23, 23] == 1.0
    assert weights.min() >= 1.0 and weights.max() <= 1.0 + w0


def test_erosion_moves_weight_onto_the_bone_surfaces_around_the_gap():
    """Paper: weights on the gap only widen it; eroded labels weight the surfaces around it."""
    labels = two_blocks()
    eroded = distance_weight_map(labels, w0=20.0, erosion_radius_vox=3.0)[:, 12, 12]
    plain = distance_weight_map(labels, w0=10.0, erosion_radius_vox=0.0)[:, 12, 12]
    centre = 21
    # d1 + d2 is constant between two surfaces: the eroded map's plateau spans the gap and
    # 4 voxels deep into each bone (x 16..26), the plain map's the gap and the surface voxels
    np.testing.assert_allclose(eroded[16:27], eroded[centre], rtol=1e-6)
    assert eroded[15] < eroded[centre] and eroded[27] < eroded[centre]
    np.testing.assert_allclose(plain[19:24], plain[centre], rtol=1e-6)
    assert plain[17] < plain[18] < plain[19]
    # relative to the gap, the bone surface weighs more with erosion
    assert (eroded[17] - 1) / (eroded[centre] - 1) > (plain[17] - 1) / (plain[centre] - 1)
    # erosion lowers the gap's own weight even with w0 doubled: d1 + d2 grows by 6 voxels
    assert eroded[centre] < plain[centre]


@pytest.mark.parametrize("w0, sigma, radius", [(20.0, 5.0, 3.0), (10.0, 5.0, 0.0), (20.0, 1.5, 2.0)])
def test_matches_a_slow_per_class_reference(rng, w0, sigma, radius):
    labels = blob_labels((26, 22, 30), rng, n_blobs=8)
    fast = distance_weight_map(labels, w0=w0, sigma_vox=sigma, erosion_radius_vox=radius)
    slow = reference_weight_map(labels, w0, sigma, radius)
    np.testing.assert_allclose(fast, slow, rtol=2e-6, atol=1e-6)


def test_erosion_matches_binary_erosion_by_a_ball(rng):
    labels = blob_labels((20, 18, 16), rng)
    offsets = np.indices((7, 7, 7)) - 3
    ball = (offsets**2).sum(0) <= 9
    expected = np.zeros_like(labels)
    for class_id in range(1, 6):
        expected[ndimage.binary_erosion(labels == class_id, ball, border_value=1)] = class_id
    np.testing.assert_array_equal(erode_labels(labels, 3.0), expected)


def test_cutoff_is_where_the_term_vanishes_in_float32():
    d = negligible_distance_vox(20.0, 5.0)
    assert np.float32(1.0 + 20.0 * np.exp(-(d**2) / 50.0)) == np.float32(1.0)


def test_single_class_gives_ones_and_bad_input_is_refused():
    labels = np.zeros((8, 8, 8), np.uint8)
    labels[2:6, 2:6, 2:6] = 1
    np.testing.assert_array_equal(distance_weight_map(labels, erosion_radius_vox=0.0), 1.0)
    with pytest.raises(ValueError, match="3D"):
        distance_weight_map(labels[0])
    with pytest.raises(ValueError, match="sigma"):
        distance_weight_map(labels, sigma_vox=0.0)


def reference_contact_band(labels: np.ndarray, spacing: tuple[float, float, float],
                           radius_mm: float) -> np.ndarray:
    """Slow: contacts by looping over voxels and their 6 neighbours, then the distance from
    every voxel to every contact voxel."""
    contacts = []
    shape = labels.shape
    for ijk in np.ndindex(shape):
        a = labels[ijk]
        if a == 0:
            continue
        for axis in range(3):
            for step in (-1, 1):
                n = list(ijk)
                n[axis] += step
                if 0 <= n[axis] < shape[axis] and labels[tuple(n)] not in (0, a):
                    contacts.append(ijk)
    band = np.zeros(shape, bool)
    if contacts:
        points = np.asarray(contacts, float) * spacing
        grid = np.indices(shape).reshape(3, -1).T * np.asarray(spacing)
        nearest = np.min(np.linalg.norm(grid[:, None] - points[None], axis=-1), axis=1)
        band = (nearest <= radius_mm + 1e-9).reshape(shape)
    return band


@pytest.mark.parametrize("radius_mm", [0.0, 1.3, 2.5])
def test_contact_band_matches_a_slow_reference(rng, radius_mm):
    labels = blob_labels((14, 12, 10), rng)
    spacing = (0.8, 1.0, 1.6)
    band = contact_band(labels, spacing, radius_mm)
    np.testing.assert_array_equal(band, reference_contact_band(labels, spacing, radius_mm))
    assert band.any() and not band.all()


def reference_joint_space(labels, spacing, max_gap_mm):
    """Brute force: per background voxel, the nearest bone and the nearest other bone."""
    grid = np.indices(labels.shape).reshape(3, -1).T * np.asarray(spacing)
    flat = labels.ravel()
    per_class = {c: np.min(np.linalg.norm(grid[:, None] - grid[flat == c][None], axis=-1), axis=1)
                 for c in np.unique(flat[flat > 0])}
    stacked = np.sort(np.stack(list(per_class.values())), axis=0)
    d1, d2 = stacked[0], stacked[1]
    return ((flat == 0) & (d1 + d2 <= max_gap_mm + 1e-9)).reshape(labels.shape)


@pytest.mark.parametrize("max_gap_mm", [0.0, 2.0, 4.5])
def test_joint_space_matches_a_slow_reference(rng, max_gap_mm):
    labels = blob_labels((12, 10, 9), rng)
    labels[::3] = 0  # background slabs between the blobs
    spacing = (0.8, 1.0, 1.6)
    joint = joint_space_voxels(labels, spacing, max_gap_mm)
    np.testing.assert_array_equal(joint, reference_joint_space(labels, spacing, max_gap_mm))
    if max_gap_mm > 0:
        assert joint.any() and not joint[labels > 0].any()


def test_contact_voxels_need_two_bones_not_bone_and_background():
    labels = np.zeros((6, 6, 6), np.uint8)
    labels[1:3, 1:5, 1:5] = 1
    assert not contact_voxels(labels).any() and not contact_band(labels, (1, 1, 1), 5.0).any()
    labels[3:5, 1:5, 1:5] = 4
    touching = contact_voxels(labels)
    assert touching.sum() == 2 * 16 and touching[2:4, 1:5, 1:5].all()
    with pytest.raises(ValueError, match="radius_mm"):
        contact_band(labels, (1, 1, 1), -1.0)
    with pytest.raises(ValueError, match="spacing_mm"):
        contact_band(labels, (1, 0, 1), 1.0)


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_contact_voxels_match_a_loop_over_neighbours(rng, connectivity):
    labels = blob_labels((9, 8, 7), rng)
    order = {6: 1, 18: 2, 26: 3}[connectivity]
    expected = np.zeros(labels.shape, bool)
    for ijk in np.ndindex(labels.shape):
        for offset in np.ndindex(3, 3, 3):
            step = np.asarray(offset) - 1
            n = tuple(np.asarray(ijk) + step)
            if not 0 < np.abs(step).sum() <= order or not all(0 <= c < s for c, s in zip(n, labels.shape)):
                continue
            if labels[ijk] > 0 and labels[n] > 0 and labels[ijk] != labels[n]:
                expected[ijk] = True
    np.testing.assert_array_equal(contact_voxels(labels, connectivity), expected)
    with pytest.raises(ValueError, match="connectivity"):
        contact_voxels(labels, 8)
