"""Predicting on the hip region: found by a coarse pass, cropped, pasted back on the input's grid."""

from __future__ import annotations

import logging

import nibabel as nib
import numpy as np
import pytest
import torch

from hipseg.cli import main
from hipseg.core.volume import Volume
from hipseg.inference import localize
from hipseg.inference.volume import Prediction
from hipseg.runtime.model_io import load_model
from shared_data import REAL_CT
from synthetic import oblique_affine

REAL_NIFTI = REAL_CT / "torso_ct_3mm.nii.gz"


def _threshold_predictor(calls: list):
    """Stands in for the network: bone (over 300 HU) is class 1, on whatever grid it is given."""
    def predict(model, image: Volume, **_) -> Prediction:
        calls.append(image)
        labels = (image.data > 300).astype(np.uint8)
        probabilities = np.stack([1.0 - labels, labels] + [np.zeros_like(labels)] * 4).astype(np.float32)
        return Prediction(labels, probabilities, np.full(image.shape, 0.5, np.float32))
    return predict


def _scan(rng, with_bone: bool) -> Volume:
    data = rng.normal(0, 50, (60, 50, 70)).astype(np.float32)
    if with_bone:
        data[30:38, 12:20, 40:52] = 1000.0
    return Volume(data, oblique_affine(spacing_mm=(1.5, 1.5, 2.0)))


def test_crop_finds_the_bone_and_pastes_it_back_exactly(tiny_model_dir, rng, monkeypatch):
    calls = []
    monkeypatch.setattr(localize, "predict_volume", _threshold_predictor(calls))
    image = _scan(rng, with_bone=True)
    prediction = localize.predict_hip_region(load_model(tiny_model_dir, torch.device("cpu")), image,
                                             margin_mm=6.0, progress=False)
    np.testing.assert_array_equal(prediction.labels, image.data > 300)
    coarse, region = calls
    assert max(coarse.spacing_mm) >= localize.COARSE_SPACING_MM - 1.0
    assert np.prod(region.shape) < np.prod(image.shape) / 10
    lo, hi = localize.locate_hips(load_model(tiny_model_dir, torch.device("cpu")), image,
                                  margin_mm=6.0, progress=False)
    assert np.all(lo <= [30, 12, 40]) and np.all(hi >= [38, 20, 52])
    assert np.all(lo >= [30 - 8, 12 - 8, 40 - 7]) and np.all(hi <= [38 + 8, 20 + 8, 52 + 7])
    outside = np.ones(image.shape, bool)
    outside[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = False
    assert np.all(prediction.probabilities[0][outside] == 1)
    assert np.all(prediction.disagreement[outside] == 0)
    np.testing.assert_allclose(prediction.probabilities.sum(0), 1.0)


def test_a_scan_without_bone_gives_an_empty_map_and_a_warning(tiny_model_dir, rng, monkeypatch,
                                                              caplog):
    calls = []
    monkeypatch.setattr(localize, "predict_volume", _threshold_predictor(calls))
    image = _scan(rng, with_bone=False)
    with caplog.at_level(logging.WARNING):
        prediction = localize.predict_hip_region(load_model(tiny_model_dir, torch.device("cpu")),
                                                 image, margin_mm=6.0, progress=False)
    assert len(calls) == 1
    assert not prediction.labels.any() and prediction.labels.shape == image.shape
    assert "no hip bone found" in caplog.text


def test_predict_crop_writes_on_the_input_grid_and_reports_empty_classes(tiny_model_dir, rng,
                                                                         tmp_path, capsys):
    image = Volume(_scan(rng, with_bone=True).data[20:44, 5:25, 30:60], oblique_affine())
    nib.save(nib.Nifti1Image(image.data, image.affine), tmp_path / "scan.nii.gz")
    assert main(["predict", str(tiny_model_dir), str(tmp_path / "scan.nii.gz"), "--out",
                 str(tmp_path / "out"), "--crop", "--crop-margin-mm", "10", "--no-progress"]) == 0
    written = nib.load(tmp_path / "out" / "scan.nii.gz")
    assert written.shape == image.shape
    np.testing.assert_allclose(written.affine, image.affine, atol=1e-5)
    assert "empty classes" in capsys.readouterr().out


@pytest.mark.slow
def test_real_scan_without_hips_gives_an_answer_not_a_crash(tiny_model_dir, tmp_path, capsys):
    if not REAL_NIFTI.is_file():
        pytest.skip("shared real-ct data not present")
    assert main(["predict", str(tiny_model_dir), str(REAL_NIFTI), "--out", str(tmp_path),
                 "--crop", "--no-progress"]) == 0
    written = nib.load(tmp_path / "torso_ct_3mm.nii.gz")
    assert written.shape == nib.load(REAL_NIFTI).shape
    assert "empty classes" in capsys.readouterr().out
