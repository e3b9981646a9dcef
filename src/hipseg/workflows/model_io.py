"""A model folder: ``config.yaml`` + ``model.pt`` (a state dict). The folder alone is enough to predict."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from hipseg.core.config import HipsegConfig, load_config, save_config
from hipseg.core.errors import ConfigError, InputError
from hipseg.models.checkpoint import load_state_dict, save_state_dict
from hipseg.models.unet2d import UNet2D
from hipseg.models.unet3d import UNet3D

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "LoadedModel", "build_network", "load_model",
           "load_weights_into", "save_model"]

CONFIG_NAME = "config.yaml"
WEIGHTS_NAME = "model.pt"


def build_network(config: HipsegConfig) -> UNet2D | UNet3D:
    """The network the config describes (``config.model.in_channels`` input channels)."""
    model = config.model
    if model.architecture == "unet3d":
        return UNet3D(model.in_channels, config.labels.n_classes, model.base_width, model.depth)
    if model.architecture != "unet2d":
        raise ConfigError(f"model.architecture: unknown {model.architecture!r} "
                          "(unet2d or unet3d)")
    return UNet2D(model.in_channels, config.labels.n_classes, model.base_width, model.depth, model.kernel_size)


def load_weights_into(network: torch.nn.Module, path: Path) -> None:
    """Copy weights into ``network``, requiring every name and shape to match.

    Raises
    ------
    InputError
        Naming missing, unexpected or mis-shaped parameters.
    """
    state = load_state_dict(path)
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}")
        if mismatched:
            k = mismatched[0]
            parts.append(f"shape of {k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}")
        raise InputError(path, "weights do not fit the architecture: " + "; ".join(parts))
    network.load_state_dict(state)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A network in eval mode on its device, with the config it was trained with."""

    config: HipsegConfig
    network: UNet2D | UNet3D
    device: torch.device


def load_model(model_dir: Path, device: torch.device) -> LoadedModel:
    """Load ``model_dir/config.yaml`` and ``model_dir/model.pt`` (``weights_only=True``)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise InputError(model_dir, "model folder not found")
    config = load_config(model_dir / CONFIG_NAME)
    planes = config.model.architecture == "unet2d"  # the 3D baseline has no views
    if planes and (not config.views.directions or config.sampling.dim <= 0):
        raise InputError(model_dir / CONFIG_NAME, "config has no trained views or plane size")
    network = build_network(config)
    load_weights_into(network, model_dir / WEIGHTS_NAME)
    network.to(device).eval()
    return LoadedModel(config, network, device)


def save_model(network: torch.nn.Module, config: HipsegConfig, model_dir: Path,
               weights_name: str = WEIGHTS_NAME) -> None:
    """Write weights and config atomically."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    save_state_dict(state, model_dir / weights_name)
    save_config(config, model_dir / CONFIG_NAME)
