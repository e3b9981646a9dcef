"""Surface distances, GapDice and the gap region against hand-computed values and references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from hipseg.metrics import (
    average_surface_distance,
    dice_per_class,
    gap_dice_per_class,
    gap_region,
    hausdorff_distance,
    surface_distances,
    surface_metrics_per_class,
    surface_voxels,
)
from synthetic import blob_labels

SPACING_MM = (0.8, 2.5, 1.2)  # anisotropic; shifts below are along axis 1 (2.5 mm)
CLASS_IDS = (1, 2, 3, 4, 5)


def _cube(y_start: int, shape=(8, 16, 8)) -> np.ndarray:
    """A 4 x 4 x 4 voxel cube at x, z in [2, 6) and y in [y_start, y_start + 4)."""
    mask = np.zeros(shape, bool)
    mask[2:6, y_start:y_start + 4, 2:6] = True
    return mask


def _random_label_pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A reference label map and a perturbed prediction in which every class is present."""
    rng = np.random.default_rng(seed)
    shape = (18, 16, 14)
    while True:
        reference = blob_labels(shape, rng, n_blobs=8)
        prediction = np.roll(reference, 1, axis=int(rng.integers(3)))
        noise = rng.random(shape) < 0.01  # isolated wrong voxels: a long tail for HD vs HD95
        prediction[noise] = rng.integers(0, 6, int(noise.sum()))
        present = set(np.unique(reference)) & set(np.unique(prediction))
        if set(CLASS_IDS) <= present:
            return prediction, reference


def _brute_surface(mask: np.ndarray) -> np.ndarray:
    """Mask voxels with a face neighbour outside the mask (outside the array counts as outside)."""
    padded = np.pad(mask, 1)
    inner = tuple(slice(1, -1) for _ in range(mask.ndim))
    all_neighbours_in = np.ones(mask.shape, bool)
    for axis in range(mask.ndim):
        for step in (-1, 1):
            all_neighbours_in &= np.roll(padded, step, axis=axis)[inner]
    return mask & ~all_neighbours_in


def _brute_directed(source: np.ndarray, target: np.ndarray, spacing) -> np.ndarray:
    """All pairwise distances (mm) between surface voxels, minimum over the target's."""
    points_a = np.argwhere(_brute_surface(source)) * np.asarray(spacing)
    points_b = np.argwhere(_brute_surface(target)) * np.asarray(spacing)
    return cdist(points_a, points_b).min(axis=1)


def test_surface_voxels_match_face_neighbour_definition(rng):
    mask = rng.random((9, 8, 7)) < 0.6
    mask[:, :, 0] = True  # foreground on the array's edge is surface
    np.testing.assert_array_equal(surface_voxels(mask), _brute_surface(mask))
    cube = _cube(2)
    assert surface_voxels(cube).sum() == 64 - 8  # a 4^3 cube minus its 2^3 core


@pytest.mark.parametrize("shift", [1, 3, 6])
def test_shifted_cube_hausdorff_is_shift_times_spacing(shift):
    # The far face of one cube is shift * 2.5 mm from the nearest face of the other; nothing of
    # the other surface is closer to it, and no voxel is farther from the other surface.
    assert hausdorff_distance(_cube(2), _cube(2 + shift), spacing_mm=SPACING_MM) == pytest.approx(
        shift * 2.5
    )


@pytest.mark.parametrize(
    ("shift", "expected_mm"),
    [
        # Disjoint: y layers 2..5 of one cube lie 6, 5, 4, 3 layers from the other's first face;
        # faces have 16 surface voxels, the two middle rings 12.
        (6, (16 * 15.0 + 12 * 12.5 + 12 * 10.0 + 16 * 7.5) / 56),
        # Overlapping by 3 layers: the far face (16 voxels) is 2.5 mm away, the 4 core voxels of
        # the near face are 0.8 mm (one x step) from the other's side ring, the rest lie on it.
        (1, (16 * 2.5 + 4 * 0.8) / 56),
    ],
)
def test_shifted_cube_assd_hand_computed(shift, expected_mm):
    a, b = _cube(2), _cube(2 + shift)
    assert average_surface_distance(a, b, spacing_mm=SPACING_MM) == pytest.approx(expected_mm)
    pred_to_ref, ref_to_pred = surface_distances(a, b, spacing_mm=SPACING_MM)
    assert pred_to_ref.shape == ref_to_pred.shape == (56,)


def test_surface_metrics_are_symmetric_and_ordered():
    prediction, reference = _random_label_pair(seed=7)
    forward = surface_metrics_per_class(prediction, reference, CLASS_IDS, spacing_mm=SPACING_MM)
    backward = surface_metrics_per_class(reference, prediction, CLASS_IDS, spacing_mm=SPACING_MM)
    for class_id in CLASS_IDS:
        for key in ("hd", "hd95", "assd"):
            assert forward[class_id][key] == pytest.approx(backward[class_id][key])
        metrics = forward[class_id]
        assert 0 < metrics["assd"] <= metrics["hd95"] <= metrics["hd"]
    assert any(m["hd95"] < m["hd"] for m in forward.values())  # the percentile does something


def test_empty_masks():
    empty = np.zeros((6, 6, 6), bool)
    cube = np.zeros_like(empty)
    cube[1:3, 1:4, 2:5] = True
    assert hausdorff_distance(empty, empty, spacing_mm=SPACING_MM) == 0.0
    assert average_surface_distance(empty, empty, spacing_mm=SPACING_MM) == 0.0
    for a, b in ((empty, cube), (cube, empty)):
        assert hausdorff_distance(a, b, spacing_mm=SPACING_MM) == math.inf
        assert hausdorff_distance(a, b, spacing_mm=SPACING_MM, percentile=95) == math.inf
        assert average_surface_distance(a, b, spacing_mm=SPACING_MM) == math.inf
    labels = cube.astype(np.uint8)
    metrics = surface_metrics_per_class(labels, np.zeros_like(labels), (1, 2),
                                        spacing_mm=SPACING_MM)
    assert metrics == {1: {"hd": math.inf, "hd95": math.inf, "assd": math.inf},
                       2: {"hd": 0.0, "hd95": 0.0, "assd": 0.0}}


def test_bad_spacing_is_an_error():
    with pytest.raises(ValueError, match="spacing_mm"):
        hausdorff_distance(_cube(2), _cube(3), spacing_mm=(1.0, 1.0))
    with pytest.raises(ValueError, match="spacing_mm"):
        hausdorff_distance(_cube(2), _cube(3), spacing_mm=(1.0, 0.0, 1.0))


def test_surface_metrics_match_brute_force_pairwise_reference():
    for seed in (1, 2):
        prediction, reference = _random_label_pair(seed)
        before = prediction.copy(), reference.copy()
        metrics = surface_metrics_per_class(prediction, reference, CLASS_IDS,
                                            spacing_mm=SPACING_MM)
        np.testing.assert_array_equal(prediction, before[0])  # inputs untouched
        np.testing.assert_array_equal(reference, before[1])
        for class_id in CLASS_IDS:
            pred, ref = prediction == class_id, reference == class_id
            forward = _brute_directed(pred, ref, SPACING_MM)
            backward = _brute_directed(ref, pred, SPACING_MM)
            expected = {
                "hd": max(forward.max(), backward.max()),
                "hd95": max(np.percentile(forward, 95), np.percentile(backward, 95)),
                "assd": np.concatenate([forward, backward]).mean(),
            }
            for key, value in expected.items():
                assert metrics[class_id][key] == pytest.approx(value, rel=1e-5), (class_id, key)


def _one_hot(labels: np.ndarray):
    import torch

    return torch.from_numpy(np.stack([labels == c for c in CLASS_IDS])[None].astype(np.float32))


@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI's own deprecation notes
def test_surface_metrics_match_monai():
    pytest.importorskip("monai")
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    # Same edge definition (erosion XOR mask) and distances: agreement to float32 precision,
    # far inside the one-voxel-diagonal tolerance that differing conventions would need.
    for seed in (3, 4):
        prediction, reference = _random_label_pair(seed)
        ours = surface_metrics_per_class(prediction, reference, CLASS_IDS, spacing_mm=SPACING_MM)
        y_pred, y = _one_hot(prediction), _one_hot(reference)
        kwargs = {"include_background": True, "spacing": list(SPACING_MM)}
        monai_hd = compute_hausdorff_distance(y_pred, y, **kwargs)[0].numpy()
        monai_hd95 = compute_hausdorff_distance(y_pred, y, percentile=95, **kwargs)[0].numpy()
        monai_assd = compute_average_surface_distance(y_pred, y, symmetric=True, **kwargs)[0]
        for index, class_id in enumerate(CLASS_IDS):
            assert ours[class_id]["hd"] == pytest.approx(monai_hd[index], abs=1e-4)
            assert ours[class_id]["hd95"] == pytest.approx(monai_hd95[index], abs=1e-4)
            assert ours[class_id]["assd"] == pytest.approx(float(monai_assd[index]), abs=1e-4)


def test_dice_matches_monai_and_set_formula():
    prediction, reference = _random_label_pair(seed=5)
    ours = dice_per_class(prediction, reference, CLASS_IDS)
    for class_id in CLASS_IDS:
        pred = set(np.flatnonzero(prediction == class_id))
        ref = set(np.flatnonzero(reference == class_id))
        assert ours[class_id] == pytest.approx(2 * len(pred & ref) / (len(pred) + len(ref)),
                                               abs=1e-6)
    pytest.importorskip("monai")
    from monai.metrics import compute_dice

    monai_dice = compute_dice(_one_hot(prediction), _one_hot(reference), include_background=True)
    np.testing.assert_allclose([ours[c] for c in CLASS_IDS], monai_dice[0].numpy(), atol=1e-6)


def test_gap_dice_is_dice_on_the_region():
    prediction, reference = _random_label_pair(seed=6)
    everywhere = np.ones(reference.shape, bool)
    gap_dice = gap_dice_per_class(prediction, reference, CLASS_IDS, region=everywhere)
    assert gap_dice == pytest.approx(dice_per_class(prediction, reference, CLASS_IDS))
    # A region holding only class 1 of the reference, half of it predicted right.
    prediction = np.zeros((1, 1, 6), np.uint8)
    reference = np.array([[[1, 1, 1, 1, 2, 2]]], np.uint8)
    prediction[0, 0, :2] = 1
    region = reference == 1
    scores = gap_dice_per_class(prediction, reference, (1, 2), region=region)
    assert scores[1] == pytest.approx(2 * 2 / (2 + 4))
    assert math.isnan(scores[2])  # absent from both inside the region
    with pytest.raises(ValueError, match="bool"):
        gap_dice_per_class(prediction, reference, (1,), region=region.astype(np.uint8))


def _two_blocks() -> np.ndarray:
    """Class 1 at x in [2, 6), class 2 at x in [8, 12), full y and z: a 2-voxel gap at x = 6, 7."""
    labels = np.zeros((14, 3, 4), np.uint8)
    labels[2:6] = 1
    labels[8:12] = 2
    return labels


def test_gap_region_of_two_blocks_hand_computed():
    labels = _two_blocks()
    # d1 + d2 along x (voxels); blocks span y and z, so distances are along x only:
    # x:      0   1  2  3  4  5  6  7  8  9 10 11 12  13
    y_d = [10, 8, 6, 5, 4, 3, 3, 3, 3, 4, 5, 6, 8, 10]
    for threshold in (4.0, 10.0):
        region = gap_region(labels, threshold=threshold)
        expected = np.asarray(y_d) < threshold
        assert (region == expected[:, None, None]).all()
    assert gap_region(labels, threshold=4.0)[6:8].all()  # the gap itself
    assert not gap_region(labels)[[0, 13]].any()  # far voxels: d1 + d2 = 10, not < 10
    # In mm: 2 mm along x doubles every distance.
    region_mm = gap_region(labels, spacing_mm=(2.0, 0.5, 0.5), threshold=8.0)
    assert (region_mm == (np.asarray(y_d) < 4.0)[:, None, None]).all()


def test_gap_region_needs_two_classes():
    labels = _two_blocks()
    labels[labels == 2] = 0
    assert not gap_region(labels).any()
    assert not gap_region(np.zeros((4, 4, 4), np.uint8)).any()


def test_gap_region_matches_brute_force(rng):
    labels = blob_labels((14, 12, 10), rng, n_blobs=6)
    spacing = np.array([1.1, 0.7, 1.6])
    threshold = 4.05
    points = np.argwhere(np.ones(labels.shape, bool)) * spacing
    per_class = [
        cdist(points, np.argwhere(labels == c) * spacing).min(axis=1)
        for c in np.unique(labels[labels != 0])
    ]
    assert len(per_class) >= 3
    two_smallest = np.sort(np.stack(per_class), axis=0)[:2]
    expected = (two_smallest.sum(axis=0) < threshold).reshape(labels.shape)
    region = gap_region(labels, spacing_mm=tuple(spacing), threshold=threshold)
    np.testing.assert_array_equal(region, expected)
    assert 0 < region.sum() < region.size
