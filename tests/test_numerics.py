"""Pre-processing, metrics and fusion against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hipseg.fusion import ViewAggregator
from hipseg.metrics import dice_per_class
from hipseg.preprocess import preprocess_image


def test_preprocess_clips_then_scales_by_statistics_of_the_voxels_above_the_clip():
    image = np.array([-500.0, 0, 10, 20, 30, 40, 1000, -1]).reshape(2, 2, 2)
    out = preprocess_image(image)
    clipped = np.maximum(image, 0)
    q25, med, q75 = np.percentile([10, 20, 30, 40, 1000], [25, 50, 75])
    np.testing.assert_allclose(out, (clipped - med) / (q75 - q25), rtol=1e-6)
    assert out.dtype == np.float32
    assert image[0, 0, 0] == -500.0


def test_preprocess_scales_a_scan_that_is_mostly_air():
    image = np.full((10, 10, 10), -1000.0)
    image[:2] = np.linspace(20.0, 80.0, 200).reshape(2, 10, 10)  # 20 % tissue
    out = preprocess_image(image)
    assert np.isfinite(out).all()
    assert np.median(out[:2]) == pytest.approx(0.0, abs=1e-6)


def test_preprocess_without_tissue_or_spread_is_an_error():
    with pytest.raises(ValueError, match="nothing to scale by"):
        preprocess_image(np.full((3, 3, 3), -100.0))
    with pytest.raises(ValueError, match="no spread"):
        preprocess_image(np.full((3, 3, 3), 50.0))


def test_dice_known_values():
    ref = np.zeros((4, 4, 4), np.uint8)
    pred = np.zeros_like(ref)
    ref[:2] = 1
    pred[:1] = 1
    pred[3, 0, 0] = 2
    scores = dice_per_class(pred, ref, (1, 2, 3))
    assert scores[1] == pytest.approx(2 * 16 / (16 + 32))
    assert scores[2] == 0.0
    assert math.isnan(scores[3])


def test_aggregator_sums_views_and_measures_disagreement():
    shape = (1, 1, 3)
    view_a = torch.tensor([[0.9, 0.6, 0.0], [0.1, 0.4, 0.0]]).reshape(2, *shape)
    view_b = torch.tensor([[0.2, 0.1, 0.3], [0.8, 0.9, 0.7]]).reshape(2, *shape)
    view_c = torch.tensor([[0.8, 0.1, 0.0], [0.2, 0.9, 0.0]]).reshape(2, *shape)
    agg = ViewAggregator(2, shape)
    for view in (view_a, view_b, view_c):
        agg.add(view)
    summed, labels, disagreement = agg.finalize()
    torch.testing.assert_close(summed, view_a + view_b + view_c)
    assert labels.flatten().tolist() == [0, 1, 1]
    # voxel 0: view b votes 1 against 0; voxel 1: view a votes 0; voxel 2: only view b covers it.
    torch.testing.assert_close(disagreement.flatten(), torch.tensor([1 / 3, 1 / 3, 0.0]))
