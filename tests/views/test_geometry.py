"""Plane geometry: directions, bases, sampling against analytic values, mapping back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hipseg.core.volume import apply_affine
from hipseg.views import (
    ViewGrid,
    map_stack_to_voxels,
    prediction_grid,
    sample_planes,
    view_basis,
    view_directions,
)
from hipseg.views.directions import angle_between_lines_deg
from synthetic import blob_labels, oblique_affine


def test_view_directions_axes_first_and_apart(rng):
    directions = view_directions(8, 25.0, rng)
    assert directions.shape == (8, 3)
    np.testing.assert_allclose(directions[:3], np.eye(3))
    np.testing.assert_allclose(np.linalg.norm(directions, axis=1), 1.0)
    for i in range(8):
        for j in range(i):
            assert angle_between_lines_deg(directions[i], directions[j]) >= 25.0


def test_view_directions_impossible_angle_is_an_error(rng):
    with pytest.raises(ValueError, match="could not place"):
        view_directions(6, 80.0, rng, max_tries=1000)


@pytest.mark.parametrize("direction", [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0.3, -0.5, 0.8)])
def test_view_basis_is_orthonormal_and_right_handed(direction):
    basis = view_basis(np.array(direction, float))
    np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.cross(basis[0], basis[1]), basis[2], atol=1e-12)
    np.testing.assert_allclose(basis[2], np.array(direction) / np.linalg.norm(direction))


def test_axial_view_uses_x_rows_and_y_columns():
    np.testing.assert_allclose(view_basis(np.array([0.0, 0, 1])), np.eye(3))


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_axis_plane_equals_voxel_slice(axis, rng):
    """A plane along a scanner axis through voxel centres reproduces that voxel slice exactly."""
    shape = (9, 11, 13)
    volume = rng.normal(size=shape).astype(np.float32)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    affine[:3, 3] = (-3.0, 7.0, 2.0)
    center = apply_affine(affine, (np.asarray(shape) - 1) / 2)
    dim = 13
    grid = ViewGrid(np.eye(3)[axis], center, 1.0, dim, dim)
    tensor = torch.from_numpy(volume)[None]
    for plane in (2, 6, 9):
        out = sample_planes(tensor, grid.stack_to_voxel(affine), torch.tensor([float(plane)]), dim,
                            fill_value=-7.0)[0, 0].numpy()
        u, v, n = view_basis(np.eye(3)[axis])
        index = (plane - (dim - 1) / 2) * n
        for a in range(dim):
            for b in range(dim):
                world = center + index + (a - 6) * u + (b - 6) * v
                ijk = np.round(world - affine[:3, 3]).astype(int)
                inside = np.all(ijk >= 0) and np.all(ijk < shape)
                expected = volume[tuple(ijk)] if inside else -7.0
                assert out[a, b] == pytest.approx(expected, abs=1e-5)


def test_axial_plane_is_the_array_slice_through_its_index():
    volume = np.arange(5 * 5 * 5, dtype=np.float32).reshape(5, 5, 5)
    grid = ViewGrid(np.array([0.0, 0, 1]), np.array([2.0, 2, 2]), 1.0, 5, 5)
    out = sample_planes(torch.from_numpy(volume)[None], grid.stack_to_voxel(np.eye(4)),
                        torch.tensor([3.0]), 5)[0, 0].numpy()
    np.testing.assert_allclose(out, volume[:, :, 3])


def test_oblique_plane_through_linear_ramp_gives_analytic_values():
    """Trilinear interpolation of a linear function is exact, so every inside pixel is analytic."""
    shape = (30, 26, 22)
    affine = oblique_affine()
    gradient = np.array([0.7, -1.3, 0.4])
    world = apply_affine(affine, np.indices(shape).transpose(1, 2, 3, 0))
    ramp = (world @ gradient + 5.0).astype(np.float32)
    direction = np.array([0.4, 0.5, -0.77])
    center = apply_affine(affine, (np.asarray(shape) - 1) / 2)
    dim, spacing = 24, 0.8
    grid = ViewGrid(direction, center, spacing, dim, dim)
    planes = torch.tensor([4.0, 11.5, 17.0])
    out = sample_planes(torch.from_numpy(ramp)[None], grid.stack_to_voxel(affine), planes, dim,
                        fill_value=-1000.0)
    u, v, n = view_basis(direction)
    half = (dim - 1) / 2
    inverse = np.linalg.inv(affine)
    checked = 0
    for p_i, p in enumerate(planes.tolist()):
        for a in range(dim):
            for b in range(dim):
                point = center + spacing * ((p - half) * n + (a - half) * u + (b - half) * v)
                ijk = apply_affine(inverse, point)
                if np.all(ijk >= 0.01) and np.all(ijk <= np.asarray(shape) - 1.01):
                    assert out[p_i, 0, a, b].item() == pytest.approx(point @ gradient + 5.0, abs=2e-3)
                    checked += 1
    assert checked > 500


def test_outside_points_get_the_fill_value():
    volume = torch.zeros((1, 4, 4, 4))
    grid = ViewGrid(np.array([0.0, 0, 1]), np.zeros(3), 1.0, 16, 16)
    out = sample_planes(volume, grid.stack_to_voxel(np.eye(4)), torch.tensor([0.0]), 16,
                        fill_value=-3.0)
    assert out[0, 0, 0, 0].item() == pytest.approx(-3.0)


@pytest.mark.parametrize("direction", [(0, 0, 1), (0.6, -0.3, 0.74), (-0.2, 0.9, 0.38)])
def test_labels_round_trip_through_any_view(direction, rng):
    """Nearest sampling onto a stack finer than sqrt(1/3) voxel, then nearest back, is exact."""
    shape = (20, 17, 15)
    affine = oblique_affine(spacing_mm=(1.0, 1.1, 1.3))
    labels = blob_labels(shape, rng)
    center = apply_affine(affine, (np.asarray(shape) - 1) / 2)
    extent = np.linalg.norm(np.asarray(shape) * [1.0, 1.1, 1.3])
    spacing = 0.55
    grid = prediction_grid(np.asarray(direction, float), center, np.full(3, extent), spacing)
    to_voxel = grid.stack_to_voxel(affine)
    tensor = torch.from_numpy(labels.astype(np.float32))[None]
    stack = sample_planes(tensor, to_voxel, torch.arange(grid.n_planes).float(), grid.dim,
                          mode="nearest")
    back = map_stack_to_voxels(stack.permute(1, 0, 2, 3), to_voxel, shape, mode="nearest",
                               chunk_voxels=1000)
    np.testing.assert_array_equal(back[0].round().numpy().astype(np.uint8), labels)


def test_probability_round_trip_recovers_labels_away_from_boundaries(rng):
    """Trilinear both ways blurs only near boundaries: the argmax is exact one voxel inside."""
    from scipy import ndimage

    shape = (22, 20, 18)
    affine = oblique_affine()
    labels = blob_labels(shape, rng)
    onehot = torch.from_numpy(np.eye(6, dtype=np.float32)[labels]).permute(3, 0, 1, 2)
    center = apply_affine(affine, (np.asarray(shape) - 1) / 2)
    grid = prediction_grid(np.array([0.3, 0.3, 0.9]), center, np.full(3, 60.0), 0.7)
    to_voxel = grid.stack_to_voxel(affine)
    stack = sample_planes(onehot, to_voxel, torch.arange(grid.n_planes).float(), grid.dim)
    back = map_stack_to_voxels(stack.permute(1, 0, 2, 3), to_voxel, shape).argmax(0).numpy()
    interior = np.zeros(shape, bool)
    for c in range(6):
        interior |= ndimage.binary_erosion(labels == c, np.ones((3, 3, 3)))
    interior &= np.pad(np.ones(np.asarray(shape) - 2, bool), 1)
    assert interior.sum() > 1000
    np.testing.assert_array_equal(back[interior], labels[interior])


def test_prediction_grid_covers_the_scan_along_axes():
    grid = prediction_grid(np.array([1.0, 0, 0]), np.zeros(3), np.array([300.0, 200, 100]), 2.5, 16)
    assert grid.dim % 16 == 0
    assert grid.dim * 2.5 >= 300.0
    assert grid.n_planes == grid.dim
