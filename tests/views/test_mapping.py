"""Mapping back through tiled 2D sampling, checked against SciPy's map_coordinates."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from hipseg.core.volume import apply_affine
from hipseg.views import ViewGrid, map_stack_to_voxels
from hipseg.views.grid import stack_window
from hipseg.views.mapping import TiledStack, mapped_blocks
from synthetic import oblique_affine


@pytest.mark.parametrize("shape", [(5, 7, 9), (1, 3, 4), (12, 2, 2)])
def test_tiled_sampling_equals_trilinear_with_zero_padding(shape, rng):
    """Inside, near and beyond the border: SciPy's grid-constant mode pads with zeros too."""
    stack = rng.random((3, *shape)).astype(np.float32)
    tiled = TiledStack(3, shape)
    tiled.write(0, torch.from_numpy(stack).permute(1, 0, 2, 3))
    points = rng.uniform(-2.0, np.asarray(shape) + 1.0, size=(4000, 3))
    ours = tiled.sample(torch.from_numpy(points)).numpy()
    for channel in range(3):
        reference = ndimage.map_coordinates(stack[channel], points.T, order=1,
                                            mode="grid-constant", cval=0.0)
        np.testing.assert_allclose(ours[channel], reference, atol=2e-5)


def test_tiled_nearest_sampling_picks_the_nearest_plane_pixel(rng):
    shape = (4, 6, 5)
    stack = rng.random((2, *shape)).astype(np.float32)
    tiled = TiledStack(2, shape)
    tiled.write(0, torch.from_numpy(stack).permute(1, 0, 2, 3))
    points = rng.uniform(-0.45, np.asarray(shape) - 0.55, size=(2000, 3))
    ours = tiled.sample(torch.from_numpy(points), mode="nearest").numpy()
    index = tuple(np.rint(points).astype(int).T)
    np.testing.assert_array_equal(ours, stack[(slice(None), *index)])


def test_planes_are_written_where_they_belong_in_any_batch(rng):
    shape = (9, 3, 4)
    stack = torch.from_numpy(rng.random((2, *shape)).astype(np.float32))
    tiled = TiledStack(2, shape)
    for start, stop in ((0, 4), (4, 5), (5, 9)):
        tiled.write(start, stack[:, start:stop].permute(1, 0, 2, 3))
    grid = torch.from_numpy(np.indices(shape).transpose(1, 2, 3, 0).astype(np.float64))
    torch.testing.assert_close(tiled.sample(grid), stack)
    with pytest.raises(ValueError, match="do not fit"):
        tiled.write(8, stack[:, :2].permute(1, 0, 2, 3))


def test_mapping_back_equals_map_coordinates_through_an_oblique_affine(rng):
    shape = (11, 9, 7)
    affine = oblique_affine()
    center = apply_affine(affine, (np.asarray(shape) - 1) / 2)
    grid = ViewGrid(np.array([0.3, -0.5, 0.8]), center, 0.9, 20, 18)
    to_voxel = grid.stack_to_voxel(affine)
    stack = rng.random((2, 18, 20, 20)).astype(np.float32)
    ours = map_stack_to_voxels(torch.from_numpy(stack), to_voxel, shape, chunk_voxels=100).numpy()
    voxels = np.indices(shape).reshape(3, -1)
    coords = apply_affine(np.linalg.inv(to_voxel), voxels.T).T
    assert ((coords > 0) & (coords < 17)).all(axis=0).mean() > 0.5  # the test sees the inside
    for channel in range(2):
        reference = ndimage.map_coordinates(stack[channel], coords, order=1, mode="grid-constant")
        np.testing.assert_allclose(ours[channel].reshape(-1), reference, atol=2e-5)


@pytest.mark.parametrize("direction", [(0, 0, 1), (0.6, -0.3, 0.74)])
def test_skipping_planes_outside_the_window_changes_nothing(direction, rng):
    """Planes beyond the scan's corners are never read: the cropped stack maps back exactly."""
    shape = (13, 8, 10)
    affine = oblique_affine()
    center = apply_affine(affine, (np.asarray(shape) - 1) / 2)
    grid = ViewGrid(np.asarray(direction, float), center, 0.8, 40, 40)
    window = stack_window(grid, affine, shape, context_px=None)
    assert window.n_planes < grid.n_planes  # something is skipped
    stack = torch.from_numpy(rng.random((3, 40, 40, 40)).astype(np.float32))
    full = map_stack_to_voxels(stack, grid.stack_to_voxel(affine), shape)
    cropped = stack[:, window.first_plane : window.first_plane + window.n_planes]
    tiled = TiledStack(3, tuple(cropped.shape[1:]))
    tiled.write(0, cropped.permute(1, 0, 2, 3))
    to_voxel = grid.stack_to_voxel(affine) @ window.shift()
    blocks = dict(mapped_blocks(tiled, to_voxel, shape, chunk_voxels=200))
    back = torch.cat([blocks[start] for start in sorted(blocks)], dim=1)
    torch.testing.assert_close(back, full, atol=5e-5, rtol=0)  # float32 rounding only


def test_window_rows_and_columns_cover_the_scan_with_context_in_multiples():
    shape = (40, 20, 30)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    grid = ViewGrid(np.array([0.0, 0, 1]), (np.asarray(shape) - 1) / 2, 1.0, 64, 64)
    window = stack_window(grid, affine, shape, context_px=4, multiple_of=16)
    # Axial view: rows along x (40 voxels), columns along y (20), planes along z (30).
    assert window.n_planes == 30 and window.n_rows % 16 == 0 and window.n_cols % 16 == 0
    for first, count, size in ((window.first_row, window.n_rows, 40),
                               (window.first_col, window.n_cols, 20)):
        low = (64 - size) // 2  # where the scan starts in the centred stack
        assert first <= low - 4 and first + count >= low + size + 4
        assert count < 64
