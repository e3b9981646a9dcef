"""Symmetric connected components against hand-built cases and a scipy.ndimage reference."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from hipseg.core.labels import DEFAULT_LABELS, LabelTable
from hipseg.postprocess import (
    PostprocessReport,
    symmetric_components,
    symmetric_components_with_report,
)
from synthetic import blob_labels

FEMUR_RIGHT, FEMUR_LEFT, HIP_RIGHT, HIP_LEFT, SACRUM = 1, 2, 3, 4, 5
STRUCTURE_RANK = {6: 1, 18: 2, 26: 3}  # scipy's generate_binary_structure rank per connectivity


def _hip_scene() -> tuple[np.ndarray, dict[str, tuple[slice, ...]]]:
    """Main bones with one-voxel gaps, plus stray blobs; returns the map and the blob boxes."""
    labels = np.zeros((20, 20, 16), np.uint8)
    labels[2:8, 2:10, 2:8] = FEMUR_RIGHT
    labels[12:18, 2:10, 2:8] = FEMUR_LEFT
    labels[2:8, 2:10, 9:14] = HIP_RIGHT  # z = 8: a one-voxel gap to the femur below
    labels[12:18, 2:10, 9:14] = HIP_LEFT
    labels[6:14, 12:16, 2:10] = SACRUM  # y = 10, 11: a two-voxel gap to the femurs
    blobs = {
        # femur_left, touching the main femur_right, far from the main femur_left
        "femur_left_stray": (slice(8, 10), slice(4, 6), slice(4, 6)),
        # hip_right, on the left side, one voxel away from hip_left (so not touching it)
        "hip_right_stray": (slice(10, 11), slice(4, 5), slice(10, 11)),
        # sacrum, floating in a corner
        "sacrum_stray": (slice(0, 2), slice(18, 20), slice(14, 16)),
    }
    labels[blobs["femur_left_stray"]] = FEMUR_LEFT
    labels[blobs["hip_right_stray"]] = HIP_RIGHT
    labels[blobs["sacrum_stray"]] = SACRUM
    return labels, blobs


def test_strays_move_to_the_other_side_or_vanish_and_main_bones_stay():
    labels, blobs = _hip_scene()
    before = labels.copy()
    result, report = symmetric_components_with_report(labels, DEFAULT_LABELS)

    expected = labels.copy()
    expected[blobs["femur_left_stray"]] = FEMUR_RIGHT  # joins the main right femur
    expected[blobs["hip_right_stray"]] = 0  # becomes hip_left, not connected to it: removed
    expected[blobs["sacrum_stray"]] = 0
    np.testing.assert_array_equal(result, expected)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(labels, before)  # input untouched
    assert report == PostprocessReport(
        moved={1: 0, 2: 8, 3: 1, 4: 0, 5: 0}, removed={1: 0, 2: 0, 3: 0, 4: 1, 5: 8}
    )
    assert (report.total_moved, report.total_removed) == (9, 9)
    assert np.array_equal(symmetric_components(labels, DEFAULT_LABELS), result)


def test_one_voxel_gaps_between_classes_survive():
    labels, _ = _hip_scene()
    result = symmetric_components(labels, DEFAULT_LABELS)
    assert not result[2:8, 2:10, 8].any()  # femur_right | gap | hip_right
    assert not result[12:18, 2:10, 8].any()
    assert (result[2:8, 2:10, 7] == FEMUR_RIGHT).all() and (result[2:8, 2:10, 9] == HIP_RIGHT).all()


def test_stray_blobs_swap_sides_whatever_the_pair_order():
    labels = np.zeros((16, 8, 8), np.uint8)
    labels[1:6, 1:7, 1:7] = FEMUR_RIGHT
    labels[10:15, 1:7, 1:7] = FEMUR_LEFT
    labels[6, 3:5, 3:5] = FEMUR_LEFT  # stray left blob touching the right femur
    labels[9, 3:5, 3:5] = FEMUR_RIGHT  # stray right blob touching the left femur
    expected = labels.copy()
    expected[6, 3:5, 3:5] = FEMUR_RIGHT
    expected[9, 3:5, 3:5] = FEMUR_LEFT

    reversed_table = LabelTable(DEFAULT_LABELS.names, symmetric_pairs=((4, 3), (2, 1)))
    np.testing.assert_array_equal(symmetric_components(labels, DEFAULT_LABELS), expected)
    np.testing.assert_array_equal(symmetric_components(labels, reversed_table), expected)


@pytest.mark.parametrize(
    ("offset", "kept_by"),
    [((1, 0, 0), (6, 18, 26)), ((1, 1, 0), (18, 26)), ((1, 1, 1), (26,))],
    ids=["face", "edge", "corner"],
)
def test_connectivity_decides_whether_a_touching_voxel_belongs(offset, kept_by):
    labels = np.zeros((12, 8, 8), np.uint8)
    labels[1:4, 1:4, 1:4] = FEMUR_RIGHT
    labels[8:11, 1:4, 1:4] = FEMUR_LEFT
    voxel = tuple(3 + o for o in offset)  # touches the corner voxel (3, 3, 3) of femur_right
    labels[voxel] = FEMUR_RIGHT
    for connectivity in (6, 18, 26):
        result, report = symmetric_components_with_report(
            labels, DEFAULT_LABELS, connectivity=connectivity
        )
        kept = connectivity in kept_by
        # not connected: moved to femur_left, which it does not touch either, so removed
        assert result[voxel] == (FEMUR_RIGHT if kept else 0), connectivity
        assert report.moved[FEMUR_RIGHT] == (0 if kept else 1)
        assert report.removed[FEMUR_LEFT] == (0 if kept else 1)


def test_empty_classes_and_empty_map():
    labels = np.zeros((5, 6, 7), np.int32)
    result, report = symmetric_components_with_report(labels, DEFAULT_LABELS)
    assert result.dtype == np.uint8 and not result.any()
    assert report.total_moved == report.total_removed == 0
    labels[1:3, 1:3, 1:3] = SACRUM  # one class only, one component: nothing to do
    np.testing.assert_array_equal(symmetric_components(labels, DEFAULT_LABELS), labels)


def test_tie_goes_to_the_component_first_in_scan_order():
    labels = np.zeros((3, 3, 9), np.uint8)
    labels[1, 1, 1:3] = SACRUM
    labels[1, 1, 5:7] = SACRUM
    result = symmetric_components(labels, DEFAULT_LABELS)
    assert result[1, 1].tolist() == [0, 5, 5, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(
    ("labels", "kwargs", "match"),
    [
        (np.zeros((4, 4), np.uint8), {}, "3D"),
        (np.zeros((4, 4, 4), float), {}, "integer"),
        (np.full((4, 4, 4), 6, np.uint8), {}, r"allowed are 0\.\.5"),
        (np.zeros((4, 4, 4), np.uint8), {"connectivity": 8}, "connectivity"),
    ],
)
def test_bad_input_is_rejected(labels, kwargs, match):
    with pytest.raises(ValueError, match=match):
        symmetric_components(labels, DEFAULT_LABELS, **kwargs)


def test_class_in_two_pairs_is_rejected():
    table = LabelTable(DEFAULT_LABELS.names, symmetric_pairs=((1, 2), (2, 3)))
    with pytest.raises(ValueError, match="more than one symmetric pair"):
        symmetric_components(np.zeros((3, 3, 3), np.uint8), table)


def _noisy_labels(seed: int) -> np.ndarray:
    """Random blobs plus scattered wrong voxels: many small components of every class."""
    rng = np.random.default_rng(seed)
    labels = blob_labels((16, 14, 12), rng, n_blobs=8)
    noise = rng.random(labels.shape) < 0.05
    labels[noise] = rng.integers(0, 6, int(noise.sum()))
    return labels


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_cc3d_components_match_scipy_label(connectivity):
    labels = _noisy_labels(7)
    components = cc3d.connected_components(labels, connectivity=connectivity)
    structure = ndimage.generate_binary_structure(3, STRUCTURE_RANK[connectivity])
    for class_id in range(1, 6):
        mask = labels == class_id
        reference, n_reference = ndimage.label(mask, structure=structure)
        ours = components[mask]
        # the same partition: a bijection between component ids
        pairs = set(zip(ours.tolist(), reference[mask].tolist(), strict=True))
        assert len(pairs) == n_reference == len(set(ours.tolist())), class_id
        assert n_reference > 1  # the case is not trivial


def _reference_symmetric_components(labels, table, connectivity):
    """Slow reference: scipy.ndimage.label on one class at a time."""
    structure = ndimage.generate_binary_structure(3, STRUCTURE_RANK[connectivity])

    def largest_and_rest(label_map, class_id):
        components, n = ndimage.label(label_map == class_id, structure=structure)
        if n == 0:
            return None, np.zeros(label_map.shape, bool)
        sizes = np.bincount(components.ravel())[1:]
        largest = components == 1 + int(np.argmax(sizes))  # ndimage numbers in C scan order
        return largest, (components > 0) & ~largest

    moved = labels.copy()
    for a, b in table.symmetric_pairs:
        _, rest_a = largest_and_rest(labels, a)
        _, rest_b = largest_and_rest(labels, b)
        moved[rest_a] = b
        moved[rest_b] = a
    result = moved.copy()
    for class_id in table.foreground_ids:
        _, rest = largest_and_rest(moved, class_id)
        result[rest] = 0
    return result


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_scipy_reference_on_random_maps(seed, connectivity):
    labels = _noisy_labels(seed)
    result = symmetric_components(labels, DEFAULT_LABELS, connectivity=connectivity)
    expected = _reference_symmetric_components(labels, DEFAULT_LABELS, connectivity)
    np.testing.assert_array_equal(result, expected)
    for class_id in DEFAULT_LABELS.foreground_ids:  # at most one component per class
        structure = ndimage.generate_binary_structure(3, STRUCTURE_RANK[connectivity])
        assert ndimage.label(result == class_id, structure=structure)[1] <= 1
