"""The inference copy of the UNet with batch norms folded gives the same outputs."""

from __future__ import annotations

import pytest
import torch

from hipseg.models.unet2d import UNet2D, flops_per_pixel, fused_for_inference


def test_folded_batch_norms_give_the_same_logits():
    torch.manual_seed(0)
    network = UNet2D(1, 3, base_width=4, depth=2)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    network.eval()
    fused = fused_for_inference(network)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), network(x), atol=1e-5, rtol=1e-5)
        assert network(x).std() > 0.01  # the comparison is not between constants


def test_folding_a_training_network_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        fused_for_inference(UNet2D(1, 2, base_width=4, depth=1))


def test_flops_per_pixel_of_one_convolution_is_counted_by_hand():
    conv = torch.nn.Conv2d(1, 4, 3, padding=1)
    assert flops_per_pixel(conv) == 2 * 1 * 4 * 3 * 3  # 2 FLOPs per multiply-add


def test_unet_flops_grow_linearly_with_the_pixels():
    network = UNet2D(in_channels=1, n_classes=3, base_width=4, depth=2).eval()
    assert flops_per_pixel(network, 32) == pytest.approx(flops_per_pixel(network, 64))
    wider = UNet2D(in_channels=1, n_classes=3, base_width=8, depth=2).eval()
    assert 3.5 < flops_per_pixel(wider) / flops_per_pixel(network) < 4.1  # width^2
