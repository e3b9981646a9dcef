"""Hostile config files: YAML bombs, huge files and values, out-of-range settings.

Each is refused quickly with an error naming the file and the key, and no message grows with
the input.
"""

from __future__ import annotations

import time

import pytest
import yaml

from hipseg.core.config import (
    FINETUNE_TRAIN,
    AugmentConfig,
    HipsegConfig,
    ModelConfig,
    SamplingConfig,
    TrainConfig,
    ViewConfig,
    config_to_dict,
    load_config,
    save_config,
)
from hipseg.core.errors import ConfigError, InputError
from hipseg.demo import DemoSettings

# The classic "billion laughs": 9 levels of 10 aliases each, 10**9 strings from a few hundred
# bytes (the reported model file: 1.7 KB expanding to 6.6 GB).
BILLION_LAUGHS = "\n".join(
    ['a0: &a0 "lol"']
    + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    + ["train: *a9"]
) + "\n"


def _config_file(tmp_path, data) -> object:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_billion_laughs_is_refused_at_once(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(BILLION_LAUGHS)
    started = time.perf_counter()
    with pytest.raises(InputError, match="anchors/aliases are not allowed") as caught:
        load_config(path)
    assert time.perf_counter() - started < 1.0
    assert str(path) in str(caught.value)


def test_a_single_alias_is_refused_too(tmp_path):
    data = config_to_dict(HipsegConfig())
    text = yaml.safe_dump(data).replace("alpha_px:", "alpha_px: &range", 1)
    text = text.replace("sigma_px:\n  - 20.0\n  - 30.0", "sigma_px: *range")
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(InputError, match="anchors/aliases"):
        load_config(path)


def test_a_file_larger_than_any_config_is_not_parsed(tmp_path):
    path = tmp_path / "config.yaml"
    save_config(HipsegConfig(), path)
    with path.open("a") as file:
        file.write("#" * 2**20 + "\n")  # over the 1 MiB cap, whatever the config's own size
    with pytest.raises(InputError, match="larger than 1024 KiB") as caught:
        load_config(path)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    ("edit", "key"),
    [
        (lambda d: d["train"].update(validation="x" * 5000), "train.validation"),
        (lambda d: d["model"].update(architecture=["x" * 100] * 100), "model.architecture"),
        (lambda d: d["train"].update({f"k{i}" * 50: i for i in range(100)}), "unknown config"),
        (lambda d: d["labels"].update(names=["a" * 5000, "a" * 5000]), "labels"),
        (lambda d: d.update({"!" * 5000: 1}), "unknown config"),
    ],
)
def test_messages_stay_short_whatever_the_values(tmp_path, edit, key):
    data = config_to_dict(HipsegConfig())
    edit(data)
    with pytest.raises(InputError, match=key) as caught:
        load_config(_config_file(tmp_path, data))
    assert len(str(caught.value)) < 600


def test_a_yaml_error_is_one_short_line(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("!!python/object/apply:os.system" + "x" * 5000 + " ['echo hacked']\n")
    with pytest.raises(InputError, match="not valid YAML") as caught:
        load_config(path)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 600


def test_an_integer_too_large_for_a_float_is_a_config_error(tmp_path):
    data = config_to_dict(HipsegConfig())
    data["train"]["learning_rate"] = 10**400
    with pytest.raises(InputError, match="train.learning_rate: .* is too large"):
        load_config(_config_file(tmp_path, data))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: ModelConfig(depth=40), "model.depth: 40 is not in 1..8"),
        (lambda: ModelConfig(depth=0), "model.depth"),
        (lambda: ModelConfig(kernel_size=4), "model.kernel_size: 4 is not odd"),
        (lambda: ModelConfig(base_width=512, depth=8), "model.base_width \\* 2\\*\\*model.depth"),
        (lambda: SamplingConfig(dim=-16), "sampling.dim"),
        (lambda: SamplingConfig(dim=16, sphere_diameter_mm=1e-4), "sampling.sphere_diameter_mm /"),
        (lambda: SamplingConfig(sphere_diameter_mm=float("nan")), "sampling.sphere_diameter_mm"),
        (lambda: ViewConfig(directions=((0.0, 0.0, 0.0),)), "views.directions\\[0\\]"),
        (lambda: TrainConfig(learning_rate=float("nan")), "train.learning_rate: nan"),
        (lambda: TrainConfig(lr_factor=1.0), "train.lr_factor"),
        (lambda: TrainConfig(seed=-1), "train.seed"),
        (lambda: AugmentConfig(contrast=(0.0, 1.0)), "augment.contrast"),
        (lambda: AugmentConfig(offset=(0.5, -0.5)), "augment.offset"),
        (lambda: AugmentConfig(noise=(-1.0, 0.1)), "augment.noise"),
        (lambda: AugmentConfig(appearance_fraction=2.0), "augment.appearance_fraction"),
    ],
)
def test_out_of_range_values_are_refused_where_they_are_built(build, message):
    with pytest.raises(ConfigError, match=message):
        build()


def test_every_shipped_and_tested_config_is_in_range():
    """The defaults, the demo's and the benchmarks' settings all pass the checks."""
    HipsegConfig()
    assert FINETUNE_TRAIN.learning_rate == 1e-5
    DemoSettings()
    ModelConfig(base_width=2, depth=1, architecture="unet3d", patch_vox=8)
    SamplingConfig(dim=16, sphere_diameter_mm=40.0)
    ViewConfig(n_views=3, directions=((1.0, 0, 0), (0, 1.0, 0), (0, 0, 1.0)))
