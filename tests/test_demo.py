"""The demo's wiring, at a size that runs in seconds (the full demo is `make demo`)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from hipseg.core.config import ModelConfig, TrainConfig, ViewConfig, load_config
from hipseg.demo import DemoSettings, run_demo


@pytest.mark.slow
def test_tiny_demo_writes_every_stage(tmp_path, capsys):
    tiny_train = TrainConfig(epochs=1, steps_per_epoch=2, batch_size=4, val_planes=4)
    defaults = DemoSettings()
    settings = DemoSettings(
        train_maps=("s20", "s22"), variants=1, test_maps=("s27",), train=tiny_train,
        base_config=dataclasses.replace(defaults.base_config, views=ViewConfig(n_views=3),
                                        model=ModelConfig(base_width=4, depth=2)),
    )
    evaluation = run_demo(tmp_path, device=torch.device("cpu"), progress=False, settings=settings)
    assert [row["case"] for row in evaluation.rows] == ["s27"]
    assert (tmp_path / "predictions" / "s27.nii.gz").is_file()
    assert (tmp_path / "data" / "train" / "labels" / "s22_v01.nii.gz").is_file()
    assert (tmp_path / "models" / "trained" / "model.pt").is_file()
    # The demo trains with the weight map, on accurate labels only.
    assert load_config(tmp_path / "models" / "trained" / "config.yaml").weight_map.enabled
    assert (tmp_path / "evaluation.csv").is_file()
    printed = capsys.readouterr().out
    assert "dice_mean" in printed and str(tmp_path) in printed
    # `make demo` twice: the demo owns its folder and redoes every stage in it.
    first = (tmp_path / "predictions" / "s27.nii.gz").stat().st_mtime_ns
    run_demo(tmp_path, device=torch.device("cpu"), progress=False, settings=settings)
    assert (tmp_path / "predictions" / "s27.nii.gz").stat().st_mtime_ns > first
