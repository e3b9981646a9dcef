"""Crop, paste, block downsampling and box mapping: exact geometry, checked against slow references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hipseg.core.volume import Volume, apply_affine
from hipseg.crop import (
    box_in_grid,
    crop_volume,
    downsample_mean,
    joint_boxes,
    largest_components_box,
    paste,
)
from synthetic import oblique_affine


def _random_box(rng, shape):
    lo = np.array([rng.integers(0, s - 1) for s in shape])
    hi = np.array([rng.integers(low + 1, s + 1) for low, s in zip(lo, shape)])
    return lo, hi


def test_crop_then_paste_is_identity_inside_and_fill_outside(rng):
    volume = Volume(rng.normal(size=(9, 8, 7)).astype(np.float32), oblique_affine())
    for _ in range(20):
        lo, hi = _random_box(rng, volume.shape)
        part = crop_volume(volume, lo, hi)
        back = paste(part.data, lo, volume.shape, fill=np.nan)
        inside = np.zeros(volume.shape, bool)
        inside[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = True
        np.testing.assert_array_equal(back[inside], volume.data[inside])
        assert np.isnan(back[~inside]).all()


def test_crop_affine_puts_every_crop_voxel_where_it_was(rng):
    volume = Volume(rng.normal(size=(9, 8, 7)).astype(np.float32), oblique_affine())
    lo, hi = np.array([2, 3, 1]), np.array([7, 8, 5])
    part = crop_volume(volume, lo, hi)
    np.testing.assert_allclose(apply_affine(part.affine, np.zeros(3)), apply_affine(volume.affine, lo))
    for ijk in itertools.product(*(range(n) for n in part.shape)):
        assert part.data[ijk] == volume.data[tuple(np.add(ijk, lo))]
        np.testing.assert_allclose(apply_affine(part.affine, np.array(ijk)),
                                   apply_affine(volume.affine, np.add(ijk, lo)), atol=1e-9)


def test_paste_keeps_leading_class_axes_with_per_class_fill(rng):
    part = rng.random((3, 2, 2, 2)).astype(np.float32)
    out = paste(part, np.array([1, 0, 2]), (4, 3, 5), fill=np.array([1, 0, 0], np.float32)[:, None, None, None])
    assert out.shape == (3, 4, 3, 5)
    np.testing.assert_array_equal(out[:, 1:3, 0:2, 2:4], part)
    assert out[0, 0, 0, 0] == 1 and out[1, 0, 0, 0] == 0


def test_crop_outside_the_grid_is_refused(rng):
    volume = Volume(np.zeros((4, 4, 4), np.float32), np.eye(4))
    with pytest.raises(ValueError, match="does not fit"):
        crop_volume(volume, np.array([0, 0, 0]), np.array([5, 4, 4]))


def test_downsample_is_the_block_mean_at_the_block_centre(rng):
    affine = oblique_affine(spacing_mm=(1.0, 2.0, 0.5))
    volume = Volume(rng.normal(size=(9, 6, 13)).astype(np.float32), affine)
    coarse = downsample_mean(volume, 4.0)
    factors = (4, 2, 8)
    assert coarse.shape == (3, 3, 2)
    padded = np.pad(volume.data, [(0, 3), (0, 0), (0, 3)], mode="edge")
    for index in itertools.product(*(range(n) for n in coarse.shape)):
        block = tuple(slice(i * f, (i + 1) * f) for i, f in zip(index, factors))
        np.testing.assert_allclose(coarse.data[index], padded[block].mean(), rtol=1e-5)
        centre_ijk = [i * f + (f - 1) / 2 for i, f in zip(index, factors)]
        np.testing.assert_allclose(apply_affine(coarse.affine, np.array(index)),
                                   apply_affine(affine, np.array(centre_ijk)), atol=1e-9)


def test_box_of_largest_components_ignores_stray_voxels():
    labels = np.zeros((20, 20, 20), np.uint8)
    labels[5:9, 6:10, 7:12] = 1
    labels[8:12, 6:9, 7:9] = 2
    labels[18, 18, 18] = 1  # a stray false positive far away
    lo, hi = largest_components_box(labels)
    np.testing.assert_array_equal(lo, [5, 6, 7])
    np.testing.assert_array_equal(hi, [12, 10, 12])
    assert largest_components_box(np.zeros((3, 3, 3), np.uint8)) is None


def test_box_in_grid_covers_the_region_plus_margin():
    fine = np.diag([1.0, 1.0, 1.0, 1.0])
    coarse = fine @ np.array([[4, 0, 0, 1.5], [0, 4, 0, 1.5], [0, 0, 4, 1.5], [0, 0, 0, 1]])
    # Coarse voxels 2..3 along each axis are fine voxels 8..15.
    lo, hi = box_in_grid((np.array([2, 2, 2]), np.array([4, 4, 4])), coarse, fine, (40, 40, 20),
                         margin_mm=0.0)
    np.testing.assert_array_equal(lo, [8, 8, 8])
    np.testing.assert_array_equal(hi, [16, 16, 16])
    lo, hi = box_in_grid((np.array([2, 2, 2]), np.array([4, 4, 4])), coarse, fine, (40, 40, 20),
                         margin_mm=5.0)
    np.testing.assert_array_equal(lo, [3, 3, 3])
    np.testing.assert_array_equal(hi, [21, 21, 20])


def test_box_in_grid_contains_every_voxel_centre_of_the_region_on_oblique_grids(rng):
    fine = oblique_affine()
    to_fine = np.array([[2.1, 0.3, 0.0, 50.0], [-0.2, 1.9, 0.4, 60.0], [0.1, 0.0, 3.0, 40.0],
                        [0.0, 0.0, 0.0, 1.0]])
    coarse = fine @ to_fine
    box = (np.array([1, 2, 1]), np.array([3, 4, 3]))
    lo, hi = box_in_grid(box, coarse, fine, (200, 200, 200), margin_mm=0.0)
    # Slow reference: points filling the coarse box's region must land inside the fine box.
    points = rng.uniform(box[0] - 0.5, box[1] - 0.5, size=(2000, 3))
    fine_index = np.round(apply_affine(to_fine, points)).astype(int)
    assert np.all(fine_index >= lo) and np.all(fine_index < hi)


def _brute_force_zone(labels, spacing, max_gap_mm):
    """Voxels whose distances to the nearest bone and the nearest other bone sum to at most
    ``max_gap_mm``, by measuring every pair of voxels."""
    centres = np.argwhere(np.ones(labels.shape, bool)) * spacing
    flat = labels.ravel()
    zone = np.zeros(flat.shape, bool)
    for i, point in enumerate(centres):
        nearest = {}
        for c in np.unique(flat[flat > 0]):
            nearest[c] = np.min(np.linalg.norm(centres[flat == c] - point, axis=1))
        d = sorted(nearest.values())
        zone[i] = len(d) > 1 and d[0] + d[1] <= max_gap_mm
    return zone.reshape(labels.shape)


def test_joint_boxes_cover_open_and_closed_joints_plus_margin():
    import cc3d

    spacing = np.array([1.0, 2.0, 1.5])
    labels = np.zeros((30, 8, 9), np.uint8)
    labels[1:7, 2:6, 2:7] = 1
    labels[10:14, 2:6, 2:7] = 2   # 4 mm from bone 1: an open joint
    labels[14:18, 2:6, 2:7] = 3   # touching bone 2: a closed joint, same component
    labels[23:26, 2:6, 2:7] = 4   # 6 mm from bone 3: no joint ...
    labels[29:30, 2:6, 2:7] = 5   # ... but 4 mm from bone 4: a zone whose grown box overlaps
    zone = _brute_force_zone(labels, spacing, 5.0)
    boxes = joint_boxes(labels, tuple(spacing), max_gap_mm=5.0, margin_mm=6.0)
    margin = np.ceil(6.0 / spacing).astype(int)
    components = cc3d.connected_components(zone, connectivity=26)
    grown = []
    for c in np.unique(components[components > 0]):
        where = np.argwhere(components == c)
        grown.append((np.clip(where.min(0) - margin, 0, labels.shape),
                      np.clip(where.max(0) + 1 + margin, 0, labels.shape)))
    order = np.argsort([-(components == c).sum() for c in np.unique(components[components > 0])])
    assert len(grown) == 2 and len(boxes) == 2, "one box per zone component"
    for (lo, hi), g in zip(boxes, [grown[i] for i in order]):  # largest component first
        np.testing.assert_array_equal(lo, g[0])
        np.testing.assert_array_equal(hi, g[1])
    (lo_a, hi_a), (lo_b, hi_b) = boxes
    assert np.all(np.maximum(lo_a, lo_b) < np.minimum(hi_a, hi_b)), "overlapping, not merged"
    assert lo_a[0] == 0 and hi_a[0] == 24, "the open and the closed joint share one box"


def test_joint_boxes_are_empty_without_two_close_bones():
    labels = np.zeros((20, 6, 6), np.uint8)
    labels[1:5] = 1
    labels[14:18] = 2  # 10 mm apart
    assert joint_boxes(labels, (1.0, 1.0, 1.0), max_gap_mm=8.0, margin_mm=2.0) == []
    assert len(joint_boxes(labels, (1.0, 1.0, 1.0), max_gap_mm=10.0, margin_mm=2.0)) == 1
