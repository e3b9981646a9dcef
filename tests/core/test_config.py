"""Config: YAML round trip, unknown keys and wrong types rejected with the key named."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from hipseg.core.config import (
    HipsegConfig,
    PreprocessConfig,
    TrainConfig,
    config_to_dict,
    load_config,
    save_config,
)
from hipseg.core.errors import ConfigError, InputError
from hipseg.core.labels import DEFAULT_LABELS, LabelTable


def test_round_trip(tmp_path):
    config = dataclasses.replace(
        HipsegConfig(),
        views=dataclasses.replace(HipsegConfig().views, directions=((1.0, 0.0, 0.0), (0.0, 0.6, 0.8))),
    )
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["train"].update(epoch=3), "train.epoch"),
        (lambda d: d["train"].update(epochs="many"), "train.epochs: expected an integer"),
        (lambda d: d.update(extra=1), "extra"),
        (lambda d: d["labels"].update(names=["background"]), "labels"),
    ],
)
def test_bad_configs_name_the_key(tmp_path, edit, message):
    data = config_to_dict(HipsegConfig())
    edit(data)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(InputError, match=message):
        load_config(tmp_path / "config.yaml")


def test_intensity_scaling_is_checked_and_a_model_saved_without_it_reads_as_robust(tmp_path):
    with pytest.raises(ConfigError, match="preprocess.intensity_scaling: 'zscore'"):
        PreprocessConfig(intensity_scaling="zscore")
    data = config_to_dict(dataclasses.replace(
        HipsegConfig(), preprocess=PreprocessConfig(intensity_scaling="fixed")))
    (tmp_path / "fixed.yaml").write_text(yaml.safe_dump(data))
    assert load_config(tmp_path / "fixed.yaml").preprocess.intensity_scaling == "fixed"
    del data["preprocess"]["intensity_scaling"]
    (tmp_path / "older.yaml").write_text(yaml.safe_dump(data))
    assert load_config(tmp_path / "older.yaml").preprocess.intensity_scaling == "robust"


def test_unsafe_yaml_is_not_executed(tmp_path):
    (tmp_path / "config.yaml").write_text("!!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(tmp_path / "config.yaml")


def test_default_label_table_matches_the_paper():
    assert DEFAULT_LABELS.names == ("background", "femur_right", "femur_left", "hip_right",
                                    "hip_left", "sacrum")
    assert DEFAULT_LABELS.symmetric_pairs == ((1, 2), (3, 4))
    with pytest.raises(ValueError):
        LabelTable(names=("background", "a"), symmetric_pairs=((1, 1),))


def test_validation_mode_is_checked_and_auto_keeps_few_scans_for_training():
    with pytest.raises(ConfigError, match="train.validation"):
        TrainConfig(validation="holdout")
    auto = TrainConfig()
    assert auto.validates_on_planes(2) and auto.validates_on_planes(4)
    assert not auto.validates_on_planes(5)
    assert not TrainConfig(validation="split").validates_on_planes(2)
    assert TrainConfig(validation="planes").validates_on_planes(40)
