"""Property-based tests (hypothesis) of the geometry and the metrics on random small inputs."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from hipseg.core.volume import apply_affine
from hipseg.metrics import average_surface_distance, dice_per_class, hausdorff_distance
from hipseg.views import ViewGrid, map_stack_to_voxels, prediction_grid, sample_planes
from synthetic import oblique_affine

angles = st.tuples(*[st.floats(-180, 180)] * 3)
spacings = st.tuples(*[st.floats(0.5, 3.0)] * 3)
flips = st.tuples(*[st.booleans()] * 3)
directions = st.tuples(*[st.floats(-1, 1)] * 3).filter(lambda d: np.linalg.norm(d) > 0.2)
small_labels = arrays(np.uint8, st.tuples(*[st.integers(3, 9)] * 3), elements=st.integers(0, 3))


@settings(max_examples=25, deadline=None)
@given(angles=angles, spacing=spacings, flip=flips, direction=directions, labels=small_labels)
def test_label_round_trip_through_any_view_and_affine(angles, spacing, flip, direction, labels):
    affine = oblique_affine(spacing_mm=spacing, angles_deg=angles, flips=flip)
    center = apply_affine(affine, (np.asarray(labels.shape) - 1) / 2)
    diagonal = float(np.linalg.norm(np.asarray(labels.shape) * spacing))
    # a stack finer than 1/sqrt(3) of the smallest voxel side makes nearest-nearest exact
    grid = prediction_grid(np.asarray(direction), center, np.full(3, diagonal + 2 * max(spacing)),
                           0.55 * min(spacing))
    to_voxel = grid.stack_to_voxel(affine)
    stack = sample_planes(torch.from_numpy(labels.astype(np.float32))[None], to_voxel,
                          torch.arange(grid.n_planes).float(), grid.dim, mode="nearest")
    back = map_stack_to_voxels(stack.permute(1, 0, 2, 3), to_voxel, labels.shape, mode="nearest")
    np.testing.assert_array_equal(back[0].round().numpy().astype(np.uint8), labels)


@settings(max_examples=50, deadline=None)
@given(angles=angles, spacing=spacings, flip=flips, direction=directions,
       points=arrays(np.float64, (5, 3), elements=st.floats(-50, 50)))
def test_stack_and_voxel_affines_invert_each_other(angles, spacing, flip, direction, points):
    affine = oblique_affine(spacing_mm=spacing, angles_deg=angles, flips=flip)
    grid = ViewGrid(np.asarray(direction), np.array([3.0, -2.0, 7.0]), 0.8, 16, 12)
    to_voxel = grid.stack_to_voxel(affine)
    world = apply_affine(grid.stack_to_world(), points)
    np.testing.assert_allclose(apply_affine(affine, apply_affine(to_voxel, points)), world, atol=1e-8)
    # a step of one plane moves one pixel spacing along the view direction, in mm
    step = apply_affine(grid.stack_to_world(), points + [1, 0, 0]) - world
    np.testing.assert_allclose(step, np.tile(0.8 * np.asarray(direction) / np.linalg.norm(direction),
                                             (5, 1)), atol=1e-9)


masks = arrays(bool, (6, 7, 5), elements=st.booleans())


@settings(max_examples=60, deadline=None)
@given(a=masks, b=masks, spacing=spacings)
def test_surface_distances_are_symmetric_ordered_and_zero_on_identity(a, b, spacing):
    hd = hausdorff_distance(a, b, spacing_mm=spacing)
    assert hd == hausdorff_distance(b, a, spacing_mm=spacing)
    if a.any() and b.any():
        hd95 = hausdorff_distance(a, b, spacing_mm=spacing, percentile=95)
        assd = average_surface_distance(a, b, spacing_mm=spacing)
        assert 0 <= assd <= hd + 1e-9 and 0 <= hd95 <= hd + 1e-9
        assert hausdorff_distance(a, a, spacing_mm=spacing) == 0.0
    elif a.any() != b.any():
        assert hd == float("inf")
    else:
        assert hd == 0.0


@settings(max_examples=60, deadline=None)
@given(a=small_labels, seed=st.integers(0, 2**16))
def test_dice_is_one_on_identity_and_symmetric(a, seed):
    b = np.random.default_rng(seed).permutation(a.ravel()).reshape(a.shape)
    identity = dice_per_class(a, a, (1, 2, 3))
    for class_id, value in identity.items():
        assert value == 1.0 or (np.isnan(value) and not (a == class_id).any())
    forward, backward = dice_per_class(a, b, (1, 2, 3)), dice_per_class(b, a, (1, 2, 3))
    for class_id in (1, 2, 3):
        assert np.isnan(forward[class_id]) or 0.0 <= forward[class_id] == backward[class_id] <= 1.0
