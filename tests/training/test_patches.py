"""3D patches: cropping against numpy padding, window coverage, sliding-window prediction."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hipseg.core.volume import Volume
from hipseg.inference.predict3d import predict_probabilities_3d
from hipseg.inference.volume import predict_volume
from hipseg.models.patches import crop_patch, window_starts
from hipseg.preprocess import network_input
from hipseg.runtime.model_io import load_model
from synthetic import oblique_affine


@pytest.mark.parametrize("start", [(0, 0, 0), (-3, 2, 5), (4, -6, -1), (9, 9, 9), (20, 0, 0)])
def test_crop_matches_numpy_padding(rng, start):
    volume = rng.normal(size=(2, 10, 11, 12)).astype(np.float32)
    size, fill, pad = 6, -7.0, 30
    padded = np.pad(volume, ((0, 0), (pad, pad), (pad, pad), (pad, pad)), constant_values=fill)
    expected = padded[(slice(None), *(slice(s + pad, s + pad + size) for s in start))]
    got = crop_patch(torch.from_numpy(volume), start, size, fill).numpy()
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("length, size, stride", [(10, 4, 2), (11, 4, 2), (3, 4, 2), (4, 4, 2)])
def test_windows_cover_every_voxel_and_stay_inside(length, size, stride):
    starts = window_starts(length, size, stride)
    covered = np.zeros(length, int)
    for s in starts:
        covered[s : s + size] += 1
    assert covered.min() >= 1
    assert all(s >= 0 and (s + size <= length or length <= size) for s in starts)


def test_sliding_window_probabilities_sum_to_one(unet3d_model_dir, rng):
    model = load_model(unet3d_model_dir, torch.device("cpu"))
    image = Volume(rng.normal(300, 200, size=(13, 9, 6)).astype(np.float32), oblique_affine())
    probabilities = predict_probabilities_3d(model, image, progress=False)
    assert probabilities.shape == (6, 13, 9, 6)
    np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=1e-5)
    prediction = predict_volume(model, image, progress=False)
    np.testing.assert_array_equal(prediction.labels, probabilities.argmax(0))
    assert prediction.labels.dtype == np.uint8


def test_sliding_window_equals_one_patch_on_a_small_scan(unet3d_model_dir, rng):
    """A scan that fits in one patch is predicted by exactly that patch (filled around)."""
    model = load_model(unet3d_model_dir, torch.device("cpu"))
    data = rng.normal(300, 200, size=(8, 8, 8)).astype(np.float32)
    image = Volume(data, np.eye(4))
    with torch.no_grad():
        channels, _ = network_input(data, image.affine, clip_below_hu=0.0,
                                    scaling=model.config.preprocess.intensity_scaling,
                                    lateral_channel=model.config.model.lateral_channel)
        direct = torch.softmax(model.network(torch.from_numpy(channels)[None]), 1)[0].numpy()
    np.testing.assert_allclose(predict_probabilities_3d(model, image, progress=False), direct,
                               atol=1e-6)
