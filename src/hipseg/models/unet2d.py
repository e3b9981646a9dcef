"""A standard 2D UNet with batch normalisation (SPEC step 3)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["UNet2D", "fused_for_inference"]


def _double_conv(in_channels: int, out_channels: int, kernel_size: int) -> nn.Sequential:
    padding = kernel_size // 2
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, kernel_size, padding=padding, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class UNet2D(nn.Module):
    """Encoder-decoder with skip connections; returns logits.

    Parameters
    ----------
    in_channels, n_classes : int
    base_width : int
        Channels at full resolution; doubled after each pooling.
    depth : int
        Number of 2x2 poolings; inputs must have sides divisible by ``2 ** depth``.
    kernel_size : int
        Odd convolution kernel size.

    Shapes: input ``(N, in_channels, H, W)`` -> logits ``(N, n_classes, H, W)``.
    """

    def __init__(self, in_channels: int, n_classes: int, base_width: int = 16, depth: int = 4,
                 kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        widths = [base_width * 2**level for level in range(depth + 1)]
        self.depth = depth
        self.encoders = nn.ModuleList(
            _double_conv(in_channels if level == 0 else widths[level - 1], widths[level], kernel_size)
            for level in range(depth + 1)
        )
        self.upsamplers = nn.ModuleList(
            nn.ConvTranspose2d(widths[level + 1], widths[level], kernel_size=2, stride=2)
            for level in range(depth)
        )
        self.decoders = nn.ModuleList(
            _double_conv(2 * widths[level], widths[level], kernel_size) for level in range(depth)
        )
        self.head = nn.Conv2d(widths[0], n_classes, kernel_size=1)

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.size_multiple or x.shape[-2] % self.size_multiple:
            raise ValueError(
                f"input sides {tuple(x.shape[-2:])} must be multiples of {self.size_multiple}"
            )
        skips = []
        for level, encoder in enumerate(self.encoders):
            x = encoder(x)
            if level < self.depth:
                skips.append(x)
                x = nn.functional.max_pool2d(x, 2)
        for level in reversed(range(self.depth)):
            x = self.upsamplers[level](x)
            x = self.decoders[level](torch.cat([x, skips[level]], dim=1))
        return self.head(x)


def fused_for_inference(network: UNet2D) -> UNet2D:
    """A copy of an eval-mode ``network`` with every batch norm folded into its convolution.

    Same outputs (up to float rounding) with fewer passes over memory; for prediction only.
    """
    if network.training:
        raise ValueError("fold batch norms only of a network in eval mode")
    fused = copy.deepcopy(network)
    for block in [*fused.encoders, *fused.decoders]:
        for index in (0, 3):
            block[index] = fuse_conv_bn_eval(block[index], block[index + 1])
            block[index + 1] = nn.Identity()
    return fused


def flops_per_pixel(network: nn.Module, side: int = 64) -> float:
    """FLOPs (2 per multiply-add) of one forward pass per input pixel, counted by torch on a
    ``side x side`` single-channel plane; the UNet's cost is linear in the pixel count."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        network(torch.zeros(1, 1, side, side, device=next(network.parameters()).device))
    return float(counter.get_total_flops()) / side**2
