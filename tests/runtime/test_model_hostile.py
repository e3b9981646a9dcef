"""Tampered model folders: every bad ``config.yaml`` value or corrupt ``model.pt`` is one error
line naming that file (and the key), exit code 2, nothing written; never a traceback later
during prediction, nor an error blamed on the scan, nor a silent all-background prediction.
"""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
import yaml

from hipseg.cli import main
from hipseg.core.errors import InputError
from hipseg.models.checkpoint import load_state_dict, save_state_dict
from hipseg.runtime.model_io import load_model


def _image(path: Path) -> Path:
    data = np.random.default_rng(0).normal(100, 50, (12, 10, 8)).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def _predict_fails(tmp_path: Path, model_dir: Path, capsys) -> str:
    """The one error line of ``hipseg predict`` (exit 2, no traceback, nothing written)."""
    out = tmp_path / "out"
    code = main(["predict", str(model_dir), str(_image(tmp_path / "ct.nii.gz")), "--out", str(out),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and lines[0].startswith("hipseg: error: "), err
    assert not out.exists() or not any(out.iterdir())
    return lines[0]


def _replace_direction(index: int, value: list) -> object:
    def edit(directions: list) -> list:
        directions[index] = value
        return directions
    return edit


# (key, new value or a function of the old one, what the message names)
TAMPERINGS = [
    ("model.depth", -1, "model.depth"),
    ("model.depth", 0, "model.depth"),
    ("model.depth", 40, "model.depth"),
    ("model.depth", 10**400, "model.depth"),
    ("model.kernel_size", 0, "model.kernel_size"),
    ("model.kernel_size", 4, "model.kernel_size"),
    ("model.base_width", 1_000_000, "model.base_width"),
    ("model.base_width", 0, "model.base_width"),
    ("model.patch_vox", 0, "model.patch_vox"),
    ("model.patch_vox", -48, "model.patch_vox"),
    ("model.architecture", "resnet", "model.architecture"),
    ("model.architecture", "r" * 5000, "model.architecture"),
    ("sampling.dim", 1_600_000, "sampling.dim"),
    ("sampling.dim", -16, "sampling.dim"),
    ("sampling.sphere_diameter_mm", -40.0, "sampling.sphere_diameter_mm"),
    ("sampling.sphere_diameter_mm", math.nan, "sampling.sphere_diameter_mm"),
    ("sampling.sphere_diameter_mm", 1e-6, "sampling.sphere_diameter_mm"),
    ("sampling.sphere_diameter_mm", 0.0, "plane size"),
    ("preprocess.clip_below_hu", math.nan, "preprocess.clip_below_hu"),
    ("preprocess.clip_below_hu", math.inf, "preprocess.clip_below_hu"),
    ("views.directions", _replace_direction(1, [0.0, 0.0, 0.0]), "views.directions[1]"),
    ("views.directions", _replace_direction(0, [1.0, 0.0]), "views.directions[0]"),
    ("views.directions", _replace_direction(2, [math.nan, 1.0, 0.0]), "views.directions[2]"),
    ("views.n_views", 0, "views.n_views"),
    ("labels.names", [], "labels"),
    ("labels.names", lambda names: [*names[:-1], ""], "labels.names[5]"),
    ("labels.symmetric_pairs", [[1, 9]], "labels"),
    ("train.epochs", 0, "train.epochs"),
    ("train.learning_rate", 0.0, "train.learning_rate"),
    ("train.learning_rate", math.nan, "train.learning_rate"),
    ("train.batch_size", 0, "train.batch_size"),
    ("weight_map.w0", -1.0, "weight_map.w0"),
    ("weight_map.sigma_vox", 0.0, "weight_map.sigma_vox"),
]


@pytest.mark.parametrize(("key", "value", "named"), TAMPERINGS,
                         ids=[f"{i}-{key}" for i, (key, _, _) in enumerate(TAMPERINGS)])
def test_tampered_config_values_are_refused_naming_config_yaml(tmp_path, tiny_model_dir, capsys,
                                                               key, value, named):
    path = tiny_model_dir / "config.yaml"
    data = yaml.safe_load(path.read_text())
    section, name = key.split(".")
    old = data[section][name]
    data[section][name] = value(old) if callable(value) else value
    path.write_text(yaml.safe_dump(data))
    line = _predict_fails(tmp_path, tiny_model_dir, capsys)
    assert str(path) in line and named in line
    assert len(line) < 600


def test_a_3d_patch_the_network_cannot_take_is_refused(tmp_path, tiny_model_dir):
    path = tiny_model_dir / "config.yaml"
    data = yaml.safe_load(path.read_text())
    data["model"].update(architecture="unet3d", depth=2, patch_vox=50)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match="model.patch_vox: 50 is not a multiple of") as caught:
        load_model(tiny_model_dir, torch.device("cpu"))
    assert caught.value.path == path


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("tensor", ["encoders.1.0.weight", "encoders.0.1.running_var"])
def test_non_finite_weights_are_refused_naming_the_model_file(tmp_path, tiny_model_dir, capsys,
                                                              bad, tensor):
    weights = tiny_model_dir / "model.pt"
    state = load_state_dict(weights)
    state[tensor].view(-1)[3] = bad
    save_state_dict(state, weights)
    with pytest.raises(InputError, match=f"non-finite weights in {tensor} ") as caught:
        load_model(tiny_model_dir, torch.device("cpu"))
    assert caught.value.path == weights
    line = _predict_fails(tmp_path, tiny_model_dir, capsys)
    assert str(weights) in line and "NaN or inf" in line


def test_a_weight_that_is_not_a_tensor_is_refused(tmp_path, tiny_model_dir):
    weights = tiny_model_dir / "model.pt"
    state = load_state_dict(weights)
    state["encoders.0.1.num_batches_tracked"] = 7
    save_state_dict(state, weights)
    with pytest.raises(InputError, match="not tensors") as caught:
        load_model(tiny_model_dir, torch.device("cpu"))
    assert caught.value.path == weights


def test_the_untampered_model_still_loads(tiny_model_dir):
    model = load_model(tiny_model_dir, torch.device("cpu"))
    assert not model.network.training
