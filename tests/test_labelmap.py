"""The shared label-map and spacing checks."""

from __future__ import annotations

import numpy as np
import pytest

from hipseg.labelmap import check_labels, check_spacing


@pytest.mark.parametrize(("labels", "match"), [
    (np.zeros((3, 3), np.uint8), "3D"),
    (np.zeros((3, 3, 3), np.float32), "integer"),
    (np.full((3, 3, 3), -1, np.int16), r"\[-1, -1\]"),
])
def test_bad_label_maps_are_refused(labels, match):
    with pytest.raises(ValueError, match=match):
        check_labels(labels)


def test_ids_above_the_table_are_refused_and_good_maps_pass_through():
    labels = np.zeros((3, 3, 3), np.uint8)
    labels[1, 1, 1] = 6
    with pytest.raises(ValueError, match=r"0\.\.5"):
        check_labels(labels, max_id=5)
    assert check_labels(labels, max_id=6) is labels  # already contiguous: no copy
    assert check_labels(labels.astype(bool)).dtype == bool


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, np.nan, 1.0)])
def test_bad_spacings_are_refused(spacing):
    with pytest.raises(ValueError, match="spacing_mm"):
        check_spacing(spacing)
