"""Networks by name (``model.architecture``): the method and the ablation's 3D baseline.

Each stage keeps its own table keyed by the same names (training: how samples are cut,
:data:`hipseg.training.train.SAMPLERS`; inference: how a volume is predicted,
:data:`hipseg.inference.volume.PREDICTORS`), so a new architecture is a new entry in each, not
a new ``if`` in the stages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from hipseg.core.config import ModelConfig
from hipseg.core.errors import ConfigError
from hipseg.models.unet2d import UNet2D
from hipseg.models.unet3d import UNet3D

__all__ = ["ARCHITECTURES", "Architecture", "architecture"]


@dataclass(frozen=True)
class Architecture:
    """A network family.

    Parameters
    ----------
    build : callable (ModelConfig, n_classes) -> Module
    uses_views : bool
        Whether it reads planes of the model's views (it then needs trained view directions
        and a plane size in its config).
    """

    build: Callable[[ModelConfig, int], torch.nn.Module]
    uses_views: bool


ARCHITECTURES: dict[str, Architecture] = {
    "unet2d": Architecture(
        build=lambda m, n: UNet2D(m.in_channels, n, m.base_width, m.depth, m.kernel_size),
        uses_views=True),
    "unet3d": Architecture(
        build=lambda m, n: UNet3D(m.in_channels, n, m.base_width, m.depth),
        uses_views=False),
}


def architecture(name: str) -> Architecture:
    """The entry of ``name``; a :class:`ConfigError` naming the known ones otherwise."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ConfigError(f"model.architecture: unknown {name!r} "
                          f"({', '.join(sorted(ARCHITECTURES))})") from None
