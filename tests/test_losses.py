"""Losses and overlap counts against plain references."""

from __future__ import annotations

import numpy as np
import torch

from hipseg.losses import class_overlaps, mean_foreground_dice, weighted_cross_entropy
from hipseg.metrics import dice_per_class


def test_weighted_cross_entropy_multiplies_before_the_mean():
    logits = torch.randn(2, 3, 4, 4)
    labels = torch.randint(0, 3, (2, 4, 4))
    weights = torch.rand(2, 4, 4) * 5
    per_pixel = -torch.log_softmax(logits, 1).gather(1, labels[:, None])[:, 0]
    expected = (per_pixel * weights).mean()
    torch.testing.assert_close(weighted_cross_entropy(logits, labels, weights), expected)


def test_overlap_counts_give_the_metrics_dice():
    rng = np.random.default_rng(0)
    predicted = rng.integers(0, 4, size=(3, 9, 9))
    target = rng.integers(0, 4, size=(3, 9, 9))
    target[target == 3] = 2  # class 3 is only in the prediction
    inter, sizes = class_overlaps(torch.from_numpy(predicted), torch.from_numpy(target), 5)
    reference = dice_per_class(predicted, target, (1, 2, 3, 4))
    scored = [v for v in reference.values() if not np.isnan(v)]
    assert abs(mean_foreground_dice(inter, sizes) - np.mean(scored)) < 1e-6
    assert sizes[4] == 0  # absent from both: not scored
    assert np.isnan(mean_foreground_dice(torch.zeros(3), torch.zeros(3)))
