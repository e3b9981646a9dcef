"""Procedural phantom: determinism, sides from the affine, gaps kept, gaps closed, intensities."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from hipseg.core.volume import apply_affine, patient_side_of_voxels
from hipseg.phantom import (
    PhantomSettings,
    fill_joint_spaces,
    labels_to_ct,
    make_procedural_case,
)
from hipseg.phantom.coarse import nearest_two_bones
from synthetic import touching_pairs

FEMUR_R, FEMUR_L, HIP_R, HIP_L, SACRUM = 1, 2, 3, 4, 5
SEED_WITH_FLIP = 0




def min_distance_mm(labels: np.ndarray, spacing: np.ndarray, a: int, b: int) -> float:
    return float(ndimage.distance_transform_edt(labels != a, sampling=spacing)[labels == b].min())


@pytest.fixture(scope="module")
def case():
    return make_procedural_case(np.random.default_rng(SEED_WITH_FLIP))


def test_same_seed_same_case_and_other_seed_differs(case):
    again = make_procedural_case(np.random.default_rng(SEED_WITH_FLIP))
    np.testing.assert_array_equal(again.image.data, case.image.data)
    np.testing.assert_array_equal(again.labels.data, case.labels.data)
    np.testing.assert_array_equal(again.labels_coarse.data, case.labels_coarse.data)
    np.testing.assert_array_equal(again.labels.affine, case.labels.affine)
    assert again.joint_space_mm == case.joint_space_mm
    other = make_procedural_case(np.random.default_rng(SEED_WITH_FLIP + 1))
    assert other.labels.shape != case.labels.shape or not np.array_equal(
        other.labels.data, case.labels.data
    )


def test_types_and_shared_grid(case):
    assert case.image.data.dtype == np.float32
    assert case.labels.data.dtype == np.uint8 and case.labels_coarse.data.dtype == np.uint8
    assert case.image.shape == case.labels.shape == case.labels_coarse.shape
    np.testing.assert_array_equal(case.image.affine, case.labels.affine)
    np.testing.assert_allclose(case.labels.center_mm, 0.0, atol=case.labels.spacing_mm.max())
    settings = PhantomSettings()
    assert settings.joint_space_mm[0] <= case.joint_space_mm <= settings.joint_space_mm[1]


@pytest.mark.parametrize("seed", [SEED_WITH_FLIP, 3])
def test_sides_come_from_world_coordinates(seed):
    case = make_procedural_case(np.random.default_rng(seed))
    labels, affine = case.labels.data, case.labels.affine
    assert np.any(np.diag(affine)[:3] < 0), "pick a seed whose stored orientation is flipped"
    assert set(np.unique(labels)) == {0, 1, 2, 3, 4, 5}
    centroid = {k: apply_affine(affine, np.argwhere(labels == k).mean(axis=0)) for k in range(1, 6)}
    sacrum_x = centroid[SACRUM][0]
    assert abs(sacrum_x) < 25.0
    for name, class_id in (
        ("femur_left", FEMUR_L),
        ("hip_left", HIP_L),
        ("femur_right", FEMUR_R),
        ("hip_right", HIP_R),
    ):
        side = patient_side_of_voxels(np.eye(4), centroid[class_id][None], sacrum_x)[0]
        assert side == name.split("_")[1], name
    # RAS+: the patient's right is +x
    assert centroid[FEMUR_R][0] > 0 > centroid[FEMUR_L][0]
    assert centroid[HIP_R][0] > 0 > centroid[HIP_L][0]
    assert centroid[FEMUR_L][2] < centroid[HIP_L][2]  # femur below the hip bone


def test_flipping_off_gives_positive_diagonal():
    settings = PhantomSettings(random_axis_flips=False)
    case = make_procedural_case(np.random.default_rng(SEED_WITH_FLIP), settings)
    assert np.all(np.diag(case.labels.affine)[:3] > 0)
    flipped = make_procedural_case(np.random.default_rng(SEED_WITH_FLIP))
    # same anatomy, stored differently: class volumes identical
    np.testing.assert_array_equal(
        np.bincount(case.labels.data.ravel(), minlength=6),
        np.bincount(flipped.labels.data.ravel(), minlength=6),
    )


def test_accurate_labels_never_touch(case):
    assert touching_pairs(case.labels.data) == set()


def test_coarse_labels_close_the_joints_and_keep_every_accurate_voxel(case):
    accurate, coarse = case.labels.data, case.labels_coarse.data
    pairs = touching_pairs(coarse)
    assert (FEMUR_L, HIP_L) in pairs and (FEMUR_R, HIP_R) in pairs
    fg = accurate != 0
    np.testing.assert_array_equal(coarse[fg], accurate[fg])
    assert (coarse != 0).sum() > fg.sum()


def test_joint_space_width_in_mm(case):
    labels, spacing, gap = case.labels.data, case.labels.spacing_mm, case.joint_space_mm
    for femur, hip in ((FEMUR_L, HIP_L), (FEMUR_R, HIP_R)):
        dist = min_distance_mm(labels, spacing, femur, hip)
        assert dist >= gap - 1e-6
        assert dist < gap + 2 * spacing.max()
    assert min_distance_mm(labels, spacing, SACRUM, HIP_L) >= gap - 1e-6
    assert min_distance_mm(labels, spacing, SACRUM, HIP_R) >= gap - 1e-6
    # the sacro-iliac joint exists: the bones come close, not just anywhere
    assert min_distance_mm(labels, spacing, SACRUM, HIP_L) < gap + 2 * spacing.max()


def test_image_intensities(case):
    image, labels = case.image.data, case.labels.data
    assert image.dtype == np.float32 and np.all(np.isfinite(image))
    assert image[0, 0, 0] < -900 and image[-1, -1, -1] < -900
    bone = labels != 0
    inner = ndimage.binary_erosion(bone)
    boundary = bone & ~inner
    deep = ndimage.binary_erosion(bone, iterations=2)
    assert deep.sum() > 100
    assert image[boundary].mean() > image[deep].mean() + 150
    assert 100 < np.median(image[deep]) < 500
    soft = ~ndimage.binary_dilation(bone, iterations=3) & (image > -500)
    assert -150 < np.median(image[soft]) < 100


def test_fill_joint_spaces_on_two_slabs():
    labels = np.zeros((12, 6, 6), np.uint8)
    labels[:4] = 1
    labels[7:] = 3  # three background planes between, centres 4 voxels apart
    spacing = np.array([1.0, 1.0, 2.0])
    closed = fill_joint_spaces(labels, spacing, max_gap_mm=3.0)
    assert np.all(closed[:6] == 1) and np.all(closed[6:] == 3)
    np.testing.assert_array_equal(fill_joint_spaces(labels, spacing * 4, max_gap_mm=3.0), labels)


def test_nearest_two_bones_matches_brute_force():
    rng = np.random.default_rng(2)
    labels = np.zeros((9, 8, 7), np.uint8)
    for class_id in (1, 2, 3):
        labels[tuple(rng.integers(0, s, 4) for s in labels.shape)] = class_id
    spacing = np.array([1.0, 1.5, 2.0])
    d1, d2, nearest = nearest_two_bones(labels, spacing, max_distance_mm=100.0)
    centres = np.argwhere(np.ones(labels.shape, bool)) * spacing
    per_class = []
    for class_id in (1, 2, 3):
        pts = np.argwhere(labels == class_id) * spacing
        per_class.append(
            np.linalg.norm(centres[:, None] - pts[None], axis=-1).min(axis=1).reshape(labels.shape)
        )
    per_class = np.stack(per_class)
    ordered = np.sort(per_class, axis=0)
    np.testing.assert_allclose(d1, ordered[0], atol=1e-4)
    np.testing.assert_allclose(d2, ordered[1], atol=1e-4)
    unique = ordered[0] < ordered[1]
    np.testing.assert_array_equal(nearest[unique], np.argmin(per_class, axis=0)[unique] + 1)


def test_labels_to_ct_uses_given_body_and_is_reproducible():
    labels = np.zeros((20, 20, 10), np.uint8)
    labels[6:14, 6:14, 2:8] = 1
    body = np.zeros(labels.shape, bool)
    body[3:17, 3:17] = True
    spacing = np.array([2.0, 2.0, 3.0])
    a = labels_to_ct(labels, spacing, np.random.default_rng(0), body_mask=body, noise_hu=0.0)
    b = labels_to_ct(labels, spacing, np.random.default_rng(0), body_mask=body, noise_hu=0.0)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32
    assert np.all(a[0] < -950)  # outside the body: air
    assert a[10, 10, 5] > 150  # bone
