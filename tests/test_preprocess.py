"""The network's input channels: scaled CT and the patient-side (lateral) coordinate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hipseg.core.volume import apply_affine
from hipseg.preprocess import (
    FIXED_CENTRE_HU,
    FIXED_SCALE_HU,
    LATERAL_SCALE_MM,
    body_midline_x_mm,
    lateral_coordinate,
    network_input,
    preprocess_image,
)
from hipseg.views.sampling import sample_planes
from synthetic import oblique_affine


def _body_ct(shape=(30, 24, 20)) -> np.ndarray:
    image = np.full(shape, -1000.0, np.float32)
    image[6:20, 4:20, 2:18] = 40.0 + 20.0 * np.random.default_rng(0).random((14, 16, 16))
    image[8:12, 8:12, 5:15] = 700.0
    return image


def test_lateral_coordinate_is_ras_x_about_the_midline_at_every_voxel():
    affine = oblique_affine()
    shape = (7, 6, 5)
    channel = lateral_coordinate(shape, affine, midline_x_mm=12.5)
    ijk = np.argwhere(np.ones(shape, bool))
    expected = (apply_affine(affine, ijk)[:, 0] - 12.5) / LATERAL_SCALE_MM
    np.testing.assert_allclose(channel[tuple(ijk.T)], expected, atol=1e-5)


def test_midline_is_the_median_x_of_the_body():
    affine = np.diag([2.0, 1.0, 1.0, 1.0])
    affine[0, 3] = -30.0
    image = _body_ct()
    x = apply_affine(affine, np.argwhere(image > -300))[:, 0]
    assert body_midline_x_mm(image, affine) == pytest.approx(np.median(x), abs=1e-4)


def test_side_channel_comes_from_the_affine_not_the_array_order():
    """The same scan stored with its first axis reversed gets the same channel in scanner space."""
    affine = oblique_affine()
    image = _body_ct()
    flipped_affine = affine.copy()
    flipped_affine[:3, 0] *= -1
    flipped_affine[:3, 3] = apply_affine(affine, [[image.shape[0] - 1, 0, 0]])[0]
    a, _ = network_input(image, affine)
    b, _ = network_input(image[::-1].copy(), flipped_affine)
    np.testing.assert_allclose(a[1], b[1][::-1], atol=1e-4)
    np.testing.assert_allclose(a[0], b[0][::-1], atol=1e-6)


def test_network_input_channels_and_fill_values():
    image = _body_ct()
    channels, fills = network_input(image, np.eye(4))
    assert channels.shape == (2, *image.shape) and channels.dtype == np.float32
    np.testing.assert_array_equal(channels[0], preprocess_image(image))
    assert fills.tolist() == [float(channels[0].min()), 0.0]
    single, fill = network_input(image, np.eye(4), lateral_channel=False)
    assert single.shape == (1, *image.shape) and fill.tolist() == [float(single.min())]


def _noisier_soft_tissue(image: np.ndarray, noise_hu: float) -> np.ndarray:
    noisy = image.copy()
    soft = (image > -500.0) & (image < 500.0)
    noisy[soft] = 50.0 + np.random.default_rng(1).normal(0.0, noise_hu, int(soft.sum()))
    return noisy


def test_fixed_scaling_gives_a_tissue_the_same_input_whatever_the_soft_tissue_noise():
    quiet = _body_ct()
    noisy = _noisier_soft_tissue(quiet, 60.0)
    bone_expected = (700.0 - FIXED_CENTRE_HU) / FIXED_SCALE_HU
    air_expected = (0.0 - FIXED_CENTRE_HU) / FIXED_SCALE_HU
    for image in (quiet, noisy):
        fixed = preprocess_image(image, scaling="fixed")
        assert fixed.dtype == np.float32
        np.testing.assert_allclose(fixed[9, 9, 9], bone_expected, rtol=1e-6)
        np.testing.assert_allclose(fixed[0, 0, 0], air_expected, rtol=1e-6)
    # the paper's per-scan scaling divides by the soft tissue's spread: the same bone reaches
    # the network several times dimmer in the noisier scan
    robust_quiet = preprocess_image(quiet)[9, 9, 9]
    robust_noisy = preprocess_image(noisy)[9, 9, 9]
    assert robust_quiet > 3.0 * robust_noisy > 0


def test_network_input_passes_the_scaling_on_and_refuses_an_unknown_one():
    image = _body_ct()
    channels, fills = network_input(image, np.eye(4), scaling="fixed")
    np.testing.assert_array_equal(channels[0], preprocess_image(image, scaling="fixed"))
    assert fills[0] == float(channels[0].min())
    with pytest.raises(ValueError, match="zscore"):
        preprocess_image(image, scaling="zscore")


def test_planes_outside_the_volume_get_each_channels_fill():
    rng = np.random.default_rng(0)
    volume = torch.from_numpy(rng.normal(size=(2, 6, 6, 6)).astype(np.float32))
    # planes along the first axis, the plane at index -3 lies wholly outside the volume
    to_voxel = np.eye(4)
    planes = sample_planes(volume, to_voxel, torch.tensor([-3.0, 2.0]), 6, fill_value=(-5.0, 7.0))
    np.testing.assert_allclose(planes[0, 0].numpy(), -5.0)
    np.testing.assert_allclose(planes[0, 1].numpy(), 7.0)
    np.testing.assert_allclose(planes[1].numpy(), volume[:, 2].numpy(), atol=1e-6)


def test_fill_blends_exactly_like_padding_with_the_fill_value():
    """Half a voxel outside, trilinear mixes the border voxel with the fill: compare with an
    independent reference that pads the volume with the fill value explicitly."""
    rng = np.random.default_rng(1)
    volume = torch.from_numpy(rng.normal(size=(1, 5, 5, 5)).astype(np.float32))
    to_voxel = np.eye(4)
    to_voxel[:3, 3] = [-0.5, -0.25, 0.0]  # every point of the plane sits outside on axes 0, 1
    got = sample_planes(volume, to_voxel, torch.tensor([0.0]), 6, fill_value=3.0)
    padded = torch.nn.functional.pad(volume, (2, 2, 2, 2, 2, 2), value=3.0)
    shifted = to_voxel.copy()
    shifted[:3, 3] += 2.0
    expected = sample_planes(padded, shifted, torch.tensor([0.0]), 6, fill_value=3.0)
    np.testing.assert_allclose(got.numpy(), expected.numpy(), atol=1e-5)
