"""A model folder and its files (:class:`ModelFolder`); building, loading and saving networks.

``config.yaml`` + ``model.pt`` (a state dict) alone are enough to predict; training adds
``last.pt``, ``train_state.pt``, ``log.csv``, ``progress.png`` and ``training_cases.csv``.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass
from pathlib import Path

import torch

from hipseg.core.config import HipsegConfig, load_config, save_config
from hipseg.core.errors import InputError
from hipseg.models.checkpoint import load_state_dict, save_state_dict
from hipseg.models.registry import ARCHITECTURES, architecture
from hipseg.models.unet2d import UNet2D
from hipseg.models.unet3d import UNet3D

__all__ = ["LoadedModel", "ModelFolder", "build_network", "load_model", "load_weights_into",
           "save_model"]


@dataclass(frozen=True)
class ModelFolder:
    """The one owner of a model folder's file names."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        """The settings the model was trained with (labels, views, plane size, ...)."""
        return self.root / "config.yaml"

    @property
    def weights(self) -> Path:
        """The best model (best validation value, ``train.monitor``): what ``predict`` loads."""
        return self.root / "model.pt"

    @property
    def last_weights(self) -> Path:
        return self.root / "last.pt"

    @property
    def train_state(self) -> Path:
        """Model, optimiser, scheduler and random state after the last epoch (``--resume``)."""
        return self.root / "train_state.pt"

    @property
    def log(self) -> Path:
        return self.root / "log.csv"

    @property
    def progress(self) -> Path:
        return self.root / "progress.png"

    @property
    def cases(self) -> Path:
        """The scans it was trained on (``finetune --continue`` adds to them)."""
        return self.root / "training_cases.csv"


def build_network(config: HipsegConfig) -> UNet2D | UNet3D:
    """The network the config describes (``config.model.in_channels`` input channels)."""
    return architecture(config.model.architecture).build(config.model, config.labels.n_classes)


def load_weights_into(network: torch.nn.Module, path: Path) -> None:
    """Copy weights into ``network``, requiring every name and shape to match.

    Raises
    ------
    InputError
        Naming missing, unexpected, mis-shaped or non-tensor parameters, or the first tensor
        with NaN or infinite values (a network with them predicts background everywhere,
        silently).
    """
    state = load_state_dict(path)
    own = network.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(map(str, set(state) - set(own)))
    not_tensors = [k for k in own if k in state and not isinstance(state[k], torch.Tensor)]
    mismatched = [k for k in own if k in state and k not in not_tensors
                  and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or not_tensors or mismatched:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {reprlib.repr(unexpected)}")
        if not_tensors:
            parts.append(f"not tensors {not_tensors[:3]}")
        if mismatched:
            k = mismatched[0]
            parts.append(f"shape of {k}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}")
        raise InputError(path, "weights do not fit the architecture: " + "; ".join(parts))
    for name, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise InputError(path, f"non-finite weights in {name} (NaN or inf): the model file "
                                   "is corrupt")
    network.load_state_dict(state)


@dataclass(frozen=True, eq=False)
class LoadedModel:
    """A network in eval mode on its device, with the config it was trained with.

    ``source`` is the weights file it came from, named by errors about the network's output.
    """

    config: HipsegConfig
    network: UNet2D | UNet3D
    device: torch.device
    source: Path = Path("model.pt")


def load_model(model_dir: Path, device: torch.device) -> LoadedModel:
    """Load ``model_dir/config.yaml`` and ``model_dir/model.pt`` (``weights_only=True``).

    Raises
    ------
    InputError
        Naming ``config.yaml``: invalid, an unknown architecture, no trained views or plane
        size, or a patch size the network cannot take; or naming ``model.pt``: missing,
        unsafe, not fitting the network or with non-finite weights.
    """
    folder = ModelFolder(model_dir)
    if not folder.root.is_dir():
        raise InputError(folder.root, "model folder not found")
    config = load_config(folder.config)
    # The registry's own error would not name the file (core cannot know the registry).
    name = config.model.architecture
    if name not in ARCHITECTURES:
        raise InputError(folder.config, f"model.architecture: unknown {reprlib.repr(name)} "
                                        f"({', '.join(sorted(ARCHITECTURES))})")
    family, sampling = ARCHITECTURES[name], config.sampling
    if family.uses_views and (
            not config.views.directions or sampling.dim <= 0 or sampling.sphere_diameter_mm <= 0):
        raise InputError(folder.config, "config has no trained views or plane size")
    network = build_network(config)
    if not family.uses_views and config.model.patch_vox % network.size_multiple:
        raise InputError(folder.config, f"model.patch_vox: {config.model.patch_vox} is not a "
                                        f"multiple of 2**model.depth = {network.size_multiple}")
    load_weights_into(network, folder.weights)
    network.to(device).eval()
    return LoadedModel(config, network, device, folder.weights)


def save_model(network: torch.nn.Module, config: HipsegConfig, model_dir: Path, *,
               last: bool = False) -> None:
    """Write the weights (``model.pt``, or ``last.pt`` with ``last``) and the config, atomically."""
    folder = ModelFolder(model_dir)
    folder.root.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in network.state_dict().items()}
    save_state_dict(state, folder.last_weights if last else folder.weights)
    save_config(config, folder.config)
