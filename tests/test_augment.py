"""Elastic augmentation: warping against scipy, label set kept, deformed samples weigh 1/3.
Appearance augmentation: blur against scipy, the exact affine map, other channels kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from hipseg.augment import (
    appearance_augment,
    blur_planes,
    deform_planes,
    elastic_augment,
    elastic_displacement,
)


def _batch(rng, n=4, size=24):
    images = torch.from_numpy(rng.normal(size=(n, 1, size, size)).astype(np.float32))
    labels = torch.from_numpy(rng.choice([0, 2, 5], size=(n, size, size))).long()
    weights = torch.from_numpy(rng.uniform(1, 20, size=(n, size, size)).astype(np.float32))
    return images, labels, weights


def test_zero_displacement_is_the_identity(rng):
    images, labels, weights = _batch(rng)
    out = deform_planes(images, labels, weights, torch.zeros(4, 2, 24, 24))
    torch.testing.assert_close(out[0], images, atol=1e-5, rtol=0)
    assert torch.equal(out[1], labels)
    torch.testing.assert_close(out[2], weights, atol=1e-4, rtol=0)


def test_warp_matches_scipy_map_coordinates(rng):
    images, labels, weights = _batch(rng, n=1)
    field = elastic_displacement(24, 300.0, 4.0, rng)
    assert np.abs(field).max() > 1.0, "the field must actually move pixels"
    out_images, out_labels, _ = deform_planes(images, labels, weights, torch.from_numpy(field[None]))
    rows, cols = np.indices((24, 24)).astype(float)
    coords = np.stack([np.clip(rows + field[0], 0, 23), np.clip(cols + field[1], 0, 23)])
    expected = ndimage.map_coordinates(images[0, 0].numpy(), coords, order=1)
    np.testing.assert_allclose(out_images[0, 0].numpy(), expected, atol=1e-4)
    nearest = ndimage.map_coordinates(labels[0].numpy(), np.round(coords), order=0)
    agree = (out_labels[0].numpy() == nearest).mean()
    assert agree > 0.99  # rounding ties at exact half pixels may go either way


def test_labels_stay_in_the_label_set(rng):
    images, labels, weights = _batch(rng)
    _, out_labels, _, deformed = elastic_augment(
        images, labels, weights, fraction=1.0, alpha_px=(200.0, 400.0), sigma_px=(3.0, 5.0),
        deformed_weight=1 / 3, rng=rng)
    assert deformed.all() and out_labels.dtype == torch.int64
    assert set(out_labels.unique().tolist()) <= {0, 2, 5}
    assert not torch.equal(out_labels, labels)


def test_a_deformed_sample_weighs_one_third(rng):
    images, labels, _ = _batch(rng, n=8)
    ones = torch.ones(8, 24, 24)
    out_images, _, out_weights, deformed = elastic_augment(
        images, labels, ones, fraction=0.5, alpha_px=(100.0, 200.0), sigma_px=(3.0, 5.0),
        deformed_weight=1 / 3, rng=np.random.default_rng(3))
    assert 0 < deformed.sum() < 8
    torch.testing.assert_close(out_weights[deformed], torch.full_like(out_weights[deformed], 1 / 3))
    assert torch.equal(out_weights[~deformed], ones[~deformed])
    assert torch.equal(out_images[~deformed], images[~deformed])
    assert torch.equal(ones, torch.ones(8, 24, 24)), "inputs are not modified"


def test_fraction_is_checked(rng):
    images, labels, weights = _batch(rng)
    with pytest.raises(ValueError, match="fraction"):
        elastic_augment(images, labels, weights, fraction=1.5, alpha_px=(0, 1), sigma_px=(1, 2),
                        deformed_weight=1 / 3, rng=rng)


def test_blur_matches_scipy_gaussian_filter(rng):
    planes = torch.from_numpy(rng.normal(size=(2, 2, 30, 26)).astype(np.float64))
    sigma = 1.3
    ours = blur_planes(planes, sigma).numpy()
    for b in range(2):
        for c in range(2):
            # scipy's "nearest" is edge replication; truncate 3 sigma rounded up as ours
            reference = ndimage.gaussian_filter(planes[b, c].numpy(), sigma, mode="nearest",
                                                truncate=np.ceil(3 * sigma) / sigma)
            np.testing.assert_allclose(ours[b, c], reference, atol=1e-10)
    assert blur_planes(planes, 0.0) is planes


def test_appearance_is_the_drawn_affine_map_of_the_ct_channel_alone(rng):
    images = torch.from_numpy(rng.normal(size=(6, 2, 16, 16)).astype(np.float32))
    out = appearance_augment(images, fraction=1.0, contrast=(2.0, 2.0), offset=(0.5, 0.5),
                             blur_px=(0.0, 0.0), noise=(0.0, 0.0), rng=rng)
    torch.testing.assert_close(out[:, 0], 2.0 * images[:, 0] + 0.5)
    assert torch.equal(out[:, 1], images[:, 1]), "the lateral channel comes from the affine"
    assert not torch.equal(out, images) and images is not out


def test_appearance_touches_only_the_drawn_fraction(rng):
    images = torch.from_numpy(rng.normal(size=(200, 1, 8, 8)).astype(np.float32))
    out = appearance_augment(images, fraction=0.25, contrast=(0.7, 1.4), offset=(-0.3, 0.3),
                             blur_px=(0.0, 1.0), noise=(0.05, 0.2), rng=rng)
    changed = (out != images).flatten(1).any(1).float().mean().item()
    assert 0.15 < changed < 0.35
    unchanged = appearance_augment(images, fraction=0.0, contrast=(0.7, 1.4), offset=(0, 0),
                                   blur_px=(0, 1), noise=(0, 0.2), rng=rng)
    assert torch.equal(unchanged, images)
    with pytest.raises(ValueError, match="fraction"):
        appearance_augment(images, fraction=1.5, contrast=(1, 1), offset=(0, 0),
                           blur_px=(0, 0), noise=(0, 0), rng=rng)
