"""Mirror test-time augmentation: the scan seen with its sides exchanged, fused back."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch
from test_predict_fast import _ct, reference_sums

from hipseg.cli import main
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.core.volume import Volume, apply_affine, mirrored_affine
from hipseg.fusion import ViewAggregator
from hipseg.inference.volume import mirrored_volume, predict_volume
from hipseg.preprocess import body_midline_x_mm
from hipseg.runtime.model_io import load_model
from synthetic import oblique_affine

CPU = torch.device("cpu")


def test_mirrored_affine_reflects_x_about_the_midline_and_is_its_own_inverse():
    affine = oblique_affine()
    mirrored = mirrored_affine(affine, 12.5)
    ijk = np.array([[0.0, 0, 0], [3, 4, 5], [-2, 7, 1]])
    world, seen = apply_affine(affine, ijk), apply_affine(mirrored, ijk)
    np.testing.assert_allclose(seen[:, 0], 25.0 - world[:, 0])
    np.testing.assert_allclose(seen[:, 1:], world[:, 1:])
    np.testing.assert_allclose(mirrored_affine(mirrored, 12.5), affine, atol=1e-12)
    assert np.linalg.det(mirrored[:3, :3]) == pytest.approx(-np.linalg.det(affine[:3, :3]))


def test_mirrored_ids_swap_each_side_pair_and_keep_the_rest():
    assert DEFAULT_LABELS.mirrored_ids == (0, 2, 1, 4, 3, 5)


def test_swap_classes_exchanges_sums_and_votes():
    aggregator = ViewAggregator(3, (1, 1, 2))
    aggregator.add(torch.tensor([[[[0.1, 0.1]]], [[[0.7, 0.2]]], [[[0.2, 0.7]]]]))
    aggregator.swap_classes([(1, 2)])
    summed, labels, disagreement = aggregator.finalize()
    np.testing.assert_allclose(summed[:, 0, 0].numpy(), [[0.1, 0.1], [0.2, 0.7], [0.7, 0.2]])
    assert labels[0, 0].tolist() == [2, 1]
    assert disagreement.max() == 0  # the votes moved with the sums


def test_mirror_adds_the_mirrored_views_with_their_sides_swapped(tiny_model_dir, rng):
    """Against an independent slow reference: every view of the scan and of its mirror image,
    the latter's side classes exchanged, summed and normalised."""
    model = load_model(tiny_model_dir, CPU)
    image = Volume(_ct(rng), oblique_affine())
    fused = predict_volume(model, image, progress=False, precision="fp32", context_px=None,
                           mirror=True)
    seen_mirrored = reference_sums(model, mirrored_volume(image))
    swapped = seen_mirrored[list(DEFAULT_LABELS.mirrored_ids)]
    # The swap must change the sums, or this test would not notice it missing.
    assert np.abs(seen_mirrored - swapped).max() > 1e-3
    total = reference_sums(model, image) + swapped
    expected = total / total.sum(0)
    np.testing.assert_allclose(fused.probabilities, expected, atol=1e-4)


def test_a_symmetric_scan_gets_a_mirror_symmetric_prediction(tiny_model_dir, rng):
    """On a scan symmetric about its midline, the mirrored pass sees the same scene, so the
    fused probabilities at a voxel equal those of its mirror voxel with the sides exchanged,
    whatever the network. Without the swap, or without the reflection, they would not."""
    model = load_model(tiny_model_dir, CPU)
    half = _ct(rng, shape=(9, 14, 12))
    data = np.concatenate([half, half[::-1]], axis=0)
    affine = np.diag([1.1, 0.9, 1.3, 1.0])
    affine[:3, 3] = (-20.0, 5.0, 30.0)
    image = Volume(data, affine)
    assert body_midline_x_mm(data, affine) == pytest.approx(image.center_mm[0])
    plain = predict_volume(model, image, progress=False, precision="fp32", context_px=None)
    fused = predict_volume(model, image, progress=False, precision="fp32", context_px=None,
                           mirror=True)
    swapped = list(DEFAULT_LABELS.mirrored_ids)
    # The network alone is not symmetric, so the property below is the mirror pass's doing.
    assert np.abs(plain.probabilities[swapped][:, ::-1] - plain.probabilities).max() > 1e-3
    np.testing.assert_allclose(fused.probabilities[swapped][:, ::-1], fused.probabilities,
                               atol=1e-4)


def test_predict_cli_mirror_writes_the_mirrored_fusion(tiny_model_dir, tmp_path, rng):
    affine = oblique_affine()
    data = _ct(rng)
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "scan.nii.gz")
    assert main(["predict", str(tiny_model_dir), str(tmp_path / "scan.nii.gz"), "--out",
                 str(tmp_path / "out"), "--mirror", "--save-probabilities", "--no-progress"]) == 0
    written = np.asarray(nib.load(tmp_path / "out" / "scan_probabilities.nii.gz").dataobj)
    model = load_model(tiny_model_dir, CPU)
    image = Volume(np.asarray(nib.load(tmp_path / "scan.nii.gz").dataobj, np.float32), affine)
    mirrored = predict_volume(model, image, progress=False, mirror=True).probabilities
    plain = predict_volume(model, image, progress=False).probabilities
    assert np.abs(mirrored - plain).max() > 1e-3
    np.testing.assert_allclose(np.moveaxis(written, -1, 0), mirrored, atol=1e-3)
