"""The compiled map-and-add pass equals the tiled grid_sample mapping plus slab-wise fusion."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hipseg.core.volume import apply_affine
from hipseg.fusion import ViewAggregator
from hipseg.views import ViewGrid
from hipseg.views.fused_cpu import accumulate_view
from hipseg.views.mapping import TiledStack, mapped_blocks
from synthetic import oblique_affine


@pytest.mark.parametrize("direction", [(0, 0, 1), (0.6, -0.3, 0.74)])
def test_fused_pass_equals_mapping_then_adding(direction, rng):
    shape = (13, 9, 11)
    affine = oblique_affine()
    center = apply_affine(affine, (np.asarray(shape) - 1) / 2)
    grid = ViewGrid(np.asarray(direction, float), center, 1.1, 12, 14)
    to_voxel = grid.stack_to_voxel(affine)
    slow, fast = ViewAggregator(4, shape), ViewAggregator(4, shape)
    for _ in range(3):
        stack = rng.random((14, 12, 12, 4)).astype(np.float32)
        stack /= stack.sum(-1, keepdims=True)
        tiled = TiledStack(4, stack.shape[:3])
        tiled.write(0, torch.from_numpy(stack).permute(0, 3, 1, 2))
        slow.add_blocks(mapped_blocks(tiled, to_voxel, shape, chunk_voxels=300))
        fast.add_stack(torch.from_numpy(stack), to_voxel)
    slow_sum, slow_labels, slow_disagreement = slow.finalize()
    fast_sum, fast_labels, fast_disagreement = fast.finalize()
    assert 0.2 < (slow_sum.sum(0) > 0).float().mean() < 1.0  # inside and outside both occur
    torch.testing.assert_close(fast_sum, slow_sum, atol=2e-5, rtol=0)
    torch.testing.assert_close(fast_labels, slow_labels)
    torch.testing.assert_close(fast_disagreement, slow_disagreement)


def test_mismatched_buffers_are_an_error():
    with pytest.raises(ValueError, match="do not fit"):
        accumulate_view(np.zeros((2, 2, 2, 3), np.float32), np.eye(4),
                        np.zeros((4, 2, 2, 2), np.float32), np.zeros((4, 2, 2, 2), np.uint8),
                        np.zeros((2, 2, 2), np.uint8))
