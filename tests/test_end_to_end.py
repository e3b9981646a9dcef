"""The whole pipeline through the command line on a few small phantoms."""

from __future__ import annotations

import csv

import nibabel as nib
import numpy as np
import pytest

from hipseg.cli import main
from hipseg.core.config import load_config


@pytest.mark.slow
def test_phantom_train_finetune_predict_evaluate(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["phantom", str(data), "--cases", "4", "--seed", "3", "--no-progress"]) == 0
    common = ["--steps-per-epoch", "8", "--batch-size", "6", "--base-width", "8", "--depth", "3",
              "--views", "4", "--no-progress"]
    assert main(["train", str(data), "--out", str(tmp_path / "pre"), "--labels-dir", "labels_coarse",
                 "--epochs", "3", "--lr", "3e-3", "--joint-plane-fraction", "0.25", *common]) == 0
    assert load_config(tmp_path / "pre" / "config.yaml").sampling.joint_plane_fraction == 0.25
    assert main(["train", str(data), "--out", str(tmp_path / "fine"), "--init", str(tmp_path / "pre"),
                 "--epochs", "1", *common]) == 0
    for name in ("model.pt", "last.pt", "config.yaml", "log.csv"):
        assert (tmp_path / "fine" / name).is_file()
    with open(tmp_path / "fine" / "log.csv") as handle:
        assert [row["epoch"] for row in csv.DictReader(handle)] == ["1"]

    image = data / "images" / "case_003.nii.gz"
    assert main(["predict", str(tmp_path / "fine"), str(image), "--out", str(tmp_path / "pred"),
                 "--meshes", "--report", "--no-progress"]) == 0
    assert (tmp_path / "pred" / "reports" / "case_003_report.html").is_file()
    assert (tmp_path / "pred" / "meshes" / "case_003_mesh_qc.json").is_file()
    predicted = nib.load(tmp_path / "pred" / "case_003.nii.gz")
    source = nib.load(image)
    assert predicted.shape == source.shape
    np.testing.assert_array_equal(predicted.affine, source.affine)

    capsys.readouterr()
    (tmp_path / "labels_one").mkdir()
    (tmp_path / "labels_one" / "case_003.nii.gz").write_bytes((data / "labels" / "case_003.nii.gz").read_bytes())
    assert main(["evaluate", "--labels", str(tmp_path / "labels_one"), "--predictions",
                 str(tmp_path / "pred"), "--out", str(tmp_path / "scores.csv")]) == 0
    table = capsys.readouterr().out
    assert "dice_femur_left" in table and "dice_mean" in table
    with open(tmp_path / "scores.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["case"] for r in rows] == ["case_003"]
    assert 0.0 <= float(rows[0]["dice_mean"]) <= 1.0


def test_bad_input_gives_one_line_and_exit_code_2(tmp_path, capsys):
    (tmp_path / "model").mkdir()
    code = main(["predict", str(tmp_path / "model"), str(tmp_path / "missing.nii.gz"),
                 "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("hipseg: error: ") and "config.yaml" in err[-1]


def test_missing_label_partner_is_named(tmp_path, capsys):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), tmp_path / "images" / "a.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.uint8), np.eye(4)), tmp_path / "labels" / "b.nii.gz")
    code = main(["train", str(tmp_path), "--out", str(tmp_path / "m"), "--no-progress"])
    assert code == 2
    assert "a.nii.gz: no label map for case 'a'" in capsys.readouterr().err
