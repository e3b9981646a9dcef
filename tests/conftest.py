"""Shared fixtures."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hipseg.core.config import HipsegConfig, ModelConfig, SamplingConfig, ViewConfig
from hipseg.runtime.model_io import build_network, save_model
from hipseg.views.directions import view_directions


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_model_dir(tmp_path):
    directions = view_directions(4, 30.0, np.random.default_rng(0))
    config = dataclasses.replace(
        HipsegConfig(),
        views=ViewConfig(n_views=4, directions=tuple(tuple(map(float, d)) for d in directions)),
        sampling=SamplingConfig(dim=16, sphere_diameter_mm=40.0),
        model=ModelConfig(base_width=4, depth=2),
    )
    torch.manual_seed(0)
    network = build_network(config)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
    save_model(network, config, tmp_path / "model")
    return tmp_path / "model"


@pytest.fixture
def unet3d_model_dir(tmp_path):
    config = dataclasses.replace(HipsegConfig(), model=ModelConfig(
        base_width=2, depth=1, architecture="unet3d", patch_vox=8))
    torch.manual_seed(0)
    save_model(build_network(config), config, tmp_path / "unet3d")
    return tmp_path / "unet3d"
