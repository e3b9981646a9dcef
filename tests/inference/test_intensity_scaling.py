"""Prediction reads the intensity scaling its model was trained with."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hipseg.core.config import PreprocessConfig
from hipseg.core.volume import Volume
from hipseg.inference.volume import predict_volume
from hipseg.preprocess import FIXED_CENTRE_HU, FIXED_SCALE_HU
from hipseg.runtime.model_io import load_model
from synthetic import oblique_affine

CPU = torch.device("cpu")


def _scan_scaled_alike_both_ways(rng: np.random.Generator) -> np.ndarray:
    """Positive HU whose median and IQR are the fixed scaling's centre and unit, so the paper's
    per-scan scaling and the fixed one give the network the same input."""
    shape = (18, 16, 14)
    values = np.where(rng.random(shape) < 0.5, rng.uniform(0.4, 0.6, shape),
                      rng.uniform(0.6, 2.0, shape))
    q25, median, q75 = np.percentile(values, [25.0, 50.0, 75.0])
    image = FIXED_CENTRE_HU + FIXED_SCALE_HU * (values - median) / (q75 - q25)
    assert image.min() > 0, "every voxel counts in the robust statistics"
    return image.astype(np.float32)


@pytest.mark.parametrize("model_dir", ["tiny_model_dir", "unet3d_model_dir"])
def test_a_fixed_model_reads_calibrated_hu_where_the_paper_s_scaling_cannot(model_dir, rng,
                                                                            request):
    loaded = load_model(request.getfixturevalue(model_dir), CPU)
    robust, fixed = (dataclasses.replace(loaded, config=dataclasses.replace(
        loaded.config, preprocess=PreprocessConfig(intensity_scaling=scaling)))
        for scaling in ("robust", "fixed"))
    image = Volume(_scan_scaled_alike_both_ways(rng), oblique_affine())
    same = [predict_volume(model, image, progress=False).probabilities
            for model in (robust, fixed)]
    # every HU doubled: the per-scan scaling divides it out, the fixed one does not
    doubled = Volume(2.0 * image.data, image.affine)
    robust_doubled = predict_volume(robust, doubled, progress=False).probabilities
    fixed_doubled = predict_volume(fixed, doubled, progress=False).probabilities
    np.testing.assert_allclose(same[1], same[0], atol=1e-6)
    np.testing.assert_allclose(robust_doubled, same[0], atol=1e-6)
    # the tiny random network is not very sensitive: 1e-4 is 100x what "alike" allows
    assert np.abs(fixed_doubled - same[1]).max() > 1e-4
