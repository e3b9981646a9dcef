"""Mixed-precision training steps (the CUDA defaults, exercised here on the CPU)."""

from __future__ import annotations

import copy

import pytest
import torch

from hipseg.models.unet2d import UNet2D
from hipseg.runtime.device import training_precision
from hipseg.training.precision import AutocastPolicy
from hipseg.training.train import train_step

CPU = torch.device("cpu")


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 1, 16, 16, generator=g)
    labels = torch.randint(0, 3, (2, 16, 16), generator=g)
    return images, labels, torch.ones(2, 16, 16)


def _network():
    torch.manual_seed(0)
    return UNet2D(1, 3, base_width=4, depth=2)


def test_auto_precision_is_fp32_on_the_cpu_and_explicit_choices_are_kept():
    assert training_precision(CPU, "auto") is None
    assert training_precision(CPU, "fp32") is None
    assert training_precision(CPU, "bf16") == torch.bfloat16
    assert AutocastPolicy.for_device(CPU, "fp16").scaler is not None
    assert AutocastPolicy.for_device(CPU, "bf16").scaler is None


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_a_mixed_precision_step_is_close_to_but_not_the_fp32_step(precision):
    plain, mixed = _network(), _network()
    mixed.load_state_dict(copy.deepcopy(plain.state_dict()))
    loss_fp32 = train_step(plain, torch.optim.Adam(plain.parameters(), lr=1e-3), _batch())
    loss_mixed = train_step(mixed, torch.optim.Adam(mixed.parameters(), lr=1e-3), _batch(),
                            AutocastPolicy.for_device(CPU, precision))
    assert loss_mixed == pytest.approx(loss_fp32, rel=2e-2)
    assert loss_mixed != loss_fp32, "autocast did not run in reduced precision"
    moved = [not torch.equal(a, b) for a, b in zip(plain.parameters(), mixed.parameters())]
    assert any(moved)
