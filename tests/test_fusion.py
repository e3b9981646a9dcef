"""Streaming fusion: slab by slab, equal to summing whole views; memory does not keep views."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
import torch

from hipseg.fusion import MAX_VIEWS, ViewAggregator


def _views(rng, n_views, shape, n_classes=4):
    views = []
    for _ in range(n_views):
        p = rng.random((n_classes, *shape)).astype(np.float32)
        p /= p.sum(0)
        p[:, rng.random(shape) < 0.2] = 0.0  # voxels this view does not reach
        views.append(p)
    return views


def test_slabs_in_any_order_equal_the_sum_over_views(rng):
    shape = (9, 4, 5)
    views = _views(rng, 5, shape)
    aggregator = ViewAggregator(4, shape)
    for view in views:
        slabs = [(start, torch.from_numpy(view[:, start : start + 2])) for start in range(0, 9, 2)]
        aggregator.add_blocks(reversed(slabs))
    summed, labels, disagreement = aggregator.finalize()
    np.testing.assert_allclose(summed.numpy(), np.sum(views, axis=0), rtol=1e-6)
    expected_labels = np.sum(views, axis=0).argmax(0)
    np.testing.assert_array_equal(labels.numpy(), expected_labels)
    covered = np.array([v.sum(0) > 0 for v in views])
    against = np.array([(v.argmax(0) != expected_labels) & c for v, c in zip(views, covered)])
    n_covering = covered.sum(0)
    expected = np.where(n_covering > 0, against.sum(0) / np.maximum(n_covering, 1), 0.0)
    np.testing.assert_allclose(disagreement.numpy(), expected, atol=1e-6)


def test_added_views_are_not_kept(rng):
    """Memory does not grow with the number of views: a view can be freed once added."""
    aggregator = ViewAggregator(4, (3, 3, 3))
    view = torch.from_numpy(_views(rng, 1, (3, 3, 3))[0])
    alive = weakref.ref(view)
    aggregator.add(view)
    del view
    gc.collect()
    assert alive() is None


def test_bad_slabs_and_too_many_views_are_errors(rng):
    aggregator = ViewAggregator(2, (4, 3, 3))
    with pytest.raises(ValueError, match="does not fit"):
        aggregator.add_blocks([(3, torch.zeros(2, 2, 3, 3))])
    for _ in range(MAX_VIEWS):
        aggregator.add(torch.zeros(2, 4, 3, 3))
    with pytest.raises(ValueError, match="at most"):
        aggregator.add(torch.zeros(2, 4, 3, 3))
