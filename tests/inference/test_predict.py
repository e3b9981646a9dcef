"""Prediction geometry: the output sits on the input's exact grid and follows the anatomy, not the array."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from hipseg.core.errors import HipsegError
from hipseg.core.volume import Volume
from hipseg.inference.files import PredictOptions, predict_files
from hipseg.inference.volume import predict_volume
from hipseg.runtime.model_io import load_model
from synthetic import oblique_affine

CPU = torch.device("cpu")


def _ct(rng, shape=(14, 12, 10)):
    grid = np.indices(shape).astype(float)
    bone = ((grid[0] - 4) ** 2 + (grid[1] - 6) ** 2 + (grid[2] - 5) ** 2) < 12
    return (np.where(bone, 700.0, 40.0) + rng.normal(0, 30, shape)).astype(np.float32)


def test_label_map_has_the_inputs_exact_shape_and_affine(tiny_model_dir, tmp_path, rng):
    affine = oblique_affine()
    img = nib.Nifti1Image(_ct(rng).astype(np.int16), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, tmp_path / "scan.nii.gz")
    model = load_model(tiny_model_dir, CPU)
    options = PredictOptions(save_probabilities=True, save_uncertainty=True)
    [summary] = predict_files(model, [tmp_path / "scan.nii.gz"], tmp_path / "out", progress=False,
                              options=options)
    out = nib.load(summary.path)
    assert out.shape == img.shape
    np.testing.assert_array_equal(out.affine, nib.load(tmp_path / "scan.nii.gz").affine)
    np.testing.assert_array_equal(out.get_qform(), nib.load(tmp_path / "scan.nii.gz").get_qform())
    probabilities = nib.load(tmp_path / "out" / "scan_probabilities.nii.gz")
    assert probabilities.shape == (*img.shape, 6)
    np.testing.assert_allclose(np.asarray(probabilities.dataobj).sum(-1), 1.0, atol=1e-4)
    uncertainty = np.asarray(nib.load(tmp_path / "out" / "scan_uncertainty.nii.gz").dataobj)
    assert uncertainty.shape == img.shape
    assert 0.0 <= uncertainty.min() and uncertainty.max() <= 1.0


def test_flipping_array_and_affine_together_flips_the_prediction(tiny_model_dir, rng):
    """Views live in scanner space: the same anatomy stored in another axis order gets the
    same labels at the same physical places."""
    model = load_model(tiny_model_dir, CPU)
    affine = oblique_affine(flips=(False, False, False))
    image = _ct(rng)
    flipped_affine = affine.copy()
    flipped_affine[:3, 0] *= -1
    flipped_affine[:3, 3] = affine[:3, :3] @ [image.shape[0] - 1, 0, 0] + affine[:3, 3]
    original = predict_volume(model, Volume(image, affine), progress=False)
    flipped = predict_volume(model, Volume(image[::-1].copy(), flipped_affine), progress=False)
    # The untrained network's output must vary in space, or the comparison would prove nothing.
    assert np.ptp(original.probabilities, axis=(1, 2, 3)).max() > 0.005
    np.testing.assert_allclose(flipped.probabilities[:, ::-1], original.probabilities, atol=2e-5)
    agreement = np.mean(flipped.labels[::-1] == original.labels)
    assert agreement > 0.999


def test_a_failed_input_is_named_and_the_others_still_run(tiny_model_dir, tmp_path, rng):
    nib.save(nib.Nifti1Image(_ct(rng), np.eye(4)), tmp_path / "good.nii.gz")
    nib.save(nib.Nifti1Image(np.full((5, 5, 5), np.nan, np.float32), np.eye(4)), tmp_path / "bad.nii.gz")
    model = load_model(tiny_model_dir, CPU)
    with pytest.raises(HipsegError, match="1 of 2 inputs failed: .*bad.nii.gz: image contains NaN"):
        predict_files(model, [tmp_path / "bad.nii.gz", tmp_path / "good.nii.gz"], tmp_path / "out",
                      progress=False)
    assert (tmp_path / "out" / "good.nii.gz").exists()
    assert not (tmp_path / "out" / "bad.nii.gz").exists()
