"""A small 3D UNet on cubic patches: the ablation's baseline backbone (paper Table 1, "3DUNet")."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["UNet3D"]


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two 3x3x3 convolutions, each followed by batch norm and ReLU."""
    layers: list[nn.Module] = []
    for channels_in in (in_channels, out_channels):
        layers += [nn.Conv3d(channels_in, out_channels, 3, padding=1, bias=False),
                   nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class _Level(nn.Module):
    """One resolution level: encode, recurse one level down (if any), decode with the skip."""

    def __init__(self, in_channels: int, width: int, levels_below: int) -> None:
        super().__init__()
        self.encode = _conv_block(in_channels, width)
        self.below = _Level(width, 2 * width, levels_below - 1) if levels_below else None
        if self.below is not None:
            self.up = nn.ConvTranspose3d(2 * width, width, kernel_size=2, stride=2)
            self.decode = _conv_block(2 * width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.encode(x)
        if self.below is None:
            return skip
        deeper = self.below(nn.functional.max_pool3d(skip, 2))
        return self.decode(torch.cat([self.up(deeper), skip], dim=1))


class UNet3D(nn.Module):
    """Encoder-decoder with skip connections on volumes; returns logits.

    Parameters
    ----------
    in_channels, n_classes : int
    base_width : int
        Channels at full resolution; doubled after each pooling.
    depth : int
        Number of 2x2x2 poolings; patch sides must be divisible by ``2 ** depth``.

    Shapes: input ``(N, in_channels, D, H, W)`` -> logits ``(N, n_classes, D, H, W)``.
    """

    def __init__(self, in_channels: int, n_classes: int, base_width: int = 8,
                 depth: int = 3) -> None:
        super().__init__()
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        self.depth = depth
        self.body = _Level(in_channels, base_width, depth)
        self.head = nn.Conv3d(base_width, n_classes, kernel_size=1)

    @property
    def size_multiple(self) -> int:
        """Patch sides must be multiples of this."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(side % self.size_multiple for side in x.shape[-3:]):
            raise ValueError(f"patch sides {tuple(x.shape[-3:])} must be multiples of "
                             f"{self.size_multiple}")
        return self.head(self.body(x))
