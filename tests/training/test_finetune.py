"""Fine-tuning: every tensor of the source model is loaded, label tables must match,
``--continue`` adds the earlier scans, the loss uses the weight map, curves are drawn."""

from __future__ import annotations

import csv
import dataclasses

import pytest
import torch

from hipseg.cli import main
from hipseg.core.config import (
    FINETUNE_TRAIN,
    HipsegConfig,
    TrainConfig,
    WeightMapConfig,
    load_config,
)
from hipseg.core.errors import InputError
from hipseg.core.labels import LabelTable
from hipseg.io import find_cases
from hipseg.models.checkpoint import load_state_dict
from hipseg.runtime.model_io import build_network, save_model
from hipseg.training import train as train_module
from hipseg.training.finetune import finetune

TINY = ["--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "2", "--no-progress"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    assert main(["phantom", str(folder), "--cases", "2", "--seed", "11", "--no-progress"]) == 0
    return folder


class _Stop(Exception):
    pass


def test_every_tensor_of_the_source_model_is_loaded_before_the_first_step(data, tiny_model_dir,
                                                                          tmp_path, monkeypatch):
    source = load_state_dict(tiny_model_dir / "model.pt")
    seen = {}

    def first_step(network, optimizer, batch, amp=None):
        seen.update({k: v.detach().clone() for k, v in network.state_dict().items()})
        seen["weights"] = batch[2]
        raise _Stop

    monkeypatch.setattr(train_module, "train_step", first_step)
    config = dataclasses.replace(HipsegConfig(), train=dataclasses.replace(FINETUNE_TRAIN,
                                                                           batch_size=2),
                                 weight_map=WeightMapConfig(enabled=True))
    with pytest.raises(_Stop):
        finetune(tiny_model_dir, find_cases(data / "images", data / "labels"), config,
                 tmp_path / "ft", device=torch.device("cpu"), progress=False)
    assert set(source) <= set(seen)
    for key, value in source.items():
        torch.testing.assert_close(seen[key], value, rtol=0, atol=0, msg=key)
    # a fresh network differs in the output layer: the check above is not vacuous
    fresh = build_network(load_config(tiny_model_dir / "config.yaml")).state_dict()
    assert not torch.equal(fresh["head.weight"], source["head.weight"])
    assert seen["weights"].max() > 1.0, "the weight map's slice reaches the loss"


def test_label_table_mismatch_is_refused_with_one_line(data, tmp_path, capsys):
    other = LabelTable(names=("background", "femur", "pelvis"), symmetric_pairs=())
    config = dataclasses.replace(HipsegConfig(), labels=other)
    save_model(build_network(config), config, tmp_path / "three_classes")
    code = main(["finetune", str(tmp_path / "three_classes"), str(data), "--out",
                 str(tmp_path / "ft"), *TINY])
    err = capsys.readouterr().err
    assert code == 2
    assert "label table" in err and "differs" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "ft" / "model.pt").exists()


def test_finetune_writes_models_curves_and_continue_adds_earlier_scans(data, tiny_model_dir,
                                                                     tmp_path):
    first = tmp_path / "round1"
    assert main(["finetune", str(tiny_model_dir), str(data), "--out", str(first),
                 "--early-stop-patience", "3", *TINY]) == 0
    for name in ("model.pt", "last.pt", "config.yaml", "log.csv", "training_cases.csv"):
        assert (first / name).is_file(), name
    assert (first / "progress.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = load_config(first / "config.yaml")
    assert config.weight_map.enabled and config.train.learning_rate == 1e-5
    assert config.train.early_stop_patience == 3 != TrainConfig().early_stop_patience
    assert config.views == load_config(tiny_model_dir / "config.yaml").views

    new_data = tmp_path / "new"
    assert main(["phantom", str(new_data), "--cases", "1", "--seed", "99", "--no-progress"]) == 0
    (new_data / "images" / "case_000.nii.gz").rename(new_data / "images" / "case_new.nii.gz")
    (new_data / "labels" / "case_000.nii.gz").rename(new_data / "labels" / "case_new.nii.gz")
    second = tmp_path / "round2"
    assert main(["finetune", str(first), str(new_data), "--out", str(second), "--continue",
                 *TINY]) == 0
    with open(second / "training_cases.csv") as handle:
        ids = [row["case_id"] for row in csv.DictReader(handle)]
    assert ids == ["case_000", "case_001", "case_new"]


def test_continue_needs_the_earlier_scan_list(data, tiny_model_dir, tmp_path):
    with pytest.raises(InputError, match="training_cases.csv"):
        finetune(tiny_model_dir, find_cases(data / "images", data / "labels"), HipsegConfig(),
                 tmp_path / "ft", device=torch.device("cpu"), continue_training=True,
                 progress=False)


def test_output_folder_must_be_new(data, tiny_model_dir):
    with pytest.raises(InputError, match="new folder"):
        finetune(tiny_model_dir, find_cases(data / "images", data / "labels"), HipsegConfig(),
                 tiny_model_dir, device=torch.device("cpu"), progress=False)
