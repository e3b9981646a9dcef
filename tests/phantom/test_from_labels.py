"""Phantoms from real label maps: the CT generator, coarse labels and new anatomies."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from hipseg.core.labels import DEFAULT_LABELS
from hipseg.core.volume import Volume, apply_affine, voxel_spacing_mm
from hipseg.demo import DemoSettings, demo_label_maps
from hipseg.distances import distance_to_class
from hipseg.io import read_labels
from hipseg.phantom import LabelPhantomSettings, make_case_from_labels
from hipseg.phantom.appearance import (
    CORTEX_OVER_CANCELLOUS_HU,
    AppearanceRanges,
    draw_appearance,
)
from hipseg.phantom.coarse import fill_joint_spaces, merge_femoral_heads
from hipseg.phantom.ct import TISSUES, scanner_effects, tissue_image
from hipseg.phantom.variants import (
    VariantSettings,
    deform_labels,
    femoral_head_sphere,
    make_variant,
    mirror_left_right,
    resample_labels,
    rotate_femur,
    rotation_matrix,
)
from synthetic import oblique_affine, touching_pairs


@pytest.fixture(scope="module")
def real_map() -> Volume:
    """A shipped real map (s27 at 2 mm, 144 x 81 x 100)."""
    return read_labels(demo_label_maps() / "s27.nii.gz", DEFAULT_LABELS)


def _centroid_x(labels: np.ndarray, affine: np.ndarray, class_id: int) -> float:
    return float(apply_affine(affine, np.argwhere(labels == class_id))[:, 0].mean())


def test_shipped_demo_maps_load_and_carry_their_licence():
    folder = demo_label_maps()
    settings = DemoSettings()
    for name in settings.train_maps + settings.test_maps:
        labels = read_labels(folder / f"{name}.nii.gz", DEFAULT_LABELS)
        assert set(np.unique(labels.data)) == set(range(6)), name
        np.testing.assert_allclose(voxel_spacing_mm(labels.affine), 2.0)
        # RAS: the right femur lies at larger x than the left one
        assert _centroid_x(labels.data, labels.affine, 1) > _centroid_x(labels.data, labels.affine, 2)
    licence = (folder / "LICENSE.AuToSeg").read_text()
    assert "MIT License" in licence and "Peidi Xu" in licence


def test_case_keeps_the_maps_grid_and_labels(real_map):
    affine = oblique_affine(spacing_mm=(2.0, 2.0, 2.0))
    labels = Volume(real_map.data, affine)
    case = make_case_from_labels(labels, np.random.default_rng(0))
    for volume in (case.image, case.labels, case.labels_coarse):
        assert volume.shape == labels.shape
        np.testing.assert_array_equal(volume.affine, affine)
    np.testing.assert_array_equal(case.labels.data, real_map.data)
    assert case.image.data.dtype == np.float32 and np.isfinite(case.image.data).all()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_tissue_lies_in_its_documented_range(real_map, seed):
    rng = np.random.default_rng(seed)
    ranges = AppearanceRanges()
    look = draw_appearance(rng, ranges)
    image, tissues = tissue_image(real_map.data, real_map.affine, rng, look)
    documented = {"muscle": ranges.muscle_hu, "fat": ranges.fat_hu, "joint": ranges.joint_hu,
                  "cortical": (ranges.cancellous_hu[0], ranges.cortical_hu[1]),
                  "cancellous": ranges.cancellous_hu, "vessel": (ranges.vessel_plain_hu[0],
                                                                  ranges.vessel_enhanced_hu[1]),
                  "gas": ranges.gas_hu, "marrow": ranges.marrow_hu, "table": ranges.table_hu}
    measured = 0
    for name, (low, high) in documented.items():
        mask = tissues == TISSUES.index(name)
        if mask.sum() < 20:
            continue  # not drawn in this case (gas pockets, table, ...)
        median = float(np.median(image[mask]))
        # textures and the density field spread bone values around the drawn level
        slack = 0.3 * (high - low) if name in ("cancellous", "marrow") else 1e-3
        assert low - slack <= median <= high + slack, (name, median, (low, high))
        measured += 1
    assert measured >= 6
    assert np.all(image[tissues == TISSUES.index("air")] == -1000.0)
    # cortical voxels are denser than cancellous ones of the same case
    assert (np.median(image[tissues == TISSUES.index("cortical")])
            > np.median(image[tissues == TISSUES.index("cancellous")]))
    # the body follows the anatomy: soft tissue all around the bones (>= 25 mm, the smallest
    # margin, less its 40 % modulation; these maps are cropped close to the body)
    body = ~np.isin(tissues, [TISSUES.index("air"), TISSUES.index("table")])
    around = ndimage.binary_dilation(real_map.data > 0, iterations=7)  # 14 mm at 2 mm voxels
    assert body[around].all()


def test_the_cortex_is_drawn_denser_than_the_densest_cancellous_bone_it_encloses():
    rng = np.random.default_rng(0)
    looks = [draw_appearance(rng) for _ in range(2000)]
    assert all(look.cortical_hu >= 1.25 * look.cancellous_hu + CORTEX_OVER_CANCELLOUS_HU
               for look in looks)
    # the floor bites only where the ranges overlap: the low cortex of the range is still drawn
    low = AppearanceRanges().cortical_hu[0]
    assert any(look.cortical_hu < low + 100.0 for look in looks)


def test_scanner_noise_has_the_drawn_level_and_blur_spreads_an_edge():
    rng = np.random.default_rng(0)
    look = dataclasses.replace(draw_appearance(rng), noise_hu=30.0, noise_grain_mm=0.5,
                               blur_fwhm_mm=1.0, slice_thickness_mm=1.0)
    affine = np.diag([1.0, 1.0, 1.0, 1.0])
    flat = np.zeros((60, 60, 60), np.float32)
    noisy = scanner_effects(flat, affine, rng, look)
    assert noisy.std() == pytest.approx(30.0, rel=0.05)
    step = np.zeros((60, 60, 60), np.float32)
    step[30:] = 1000.0
    blurred = scanner_effects(step, affine, rng, dataclasses.replace(look, noise_hu=0.0))
    profile = blurred[25:36, 30, 30]
    assert profile[0] == pytest.approx(0.0, abs=1.0) and profile[-1] == pytest.approx(1000.0, abs=1.0)
    assert 50.0 < profile[5] < 950.0  # the edge voxel is a partial-volume mix


def test_coarse_labels_close_every_joint_space_and_keep_bone_voxels(real_map):
    labels = real_map.data
    spacing = voxel_spacing_mm(real_map.affine)
    coarse = fill_joint_spaces(labels, spacing, 8.0)
    bone = labels > 0
    np.testing.assert_array_equal(coarse[bone], labels[bone])
    # every pair of bones closer than the closing width touches afterwards
    near_pairs = set()
    for a in DEFAULT_LABELS.foreground_ids:
        distance = ndimage.distance_transform_edt(labels != a, sampling=spacing)
        for b in DEFAULT_LABELS.foreground_ids:
            if b > a and distance[labels == b].min() <= 8.0:
                near_pairs.add((a, b))
    assert {(1, 3), (2, 4), (3, 5), (4, 5)} <= near_pairs  # hips, sacro-iliac joints
    assert near_pairs <= touching_pairs(coarse)


def test_merged_femoral_heads_change_only_femur_voxels_to_their_own_hip(real_map):
    spacing = voxel_spacing_mm(real_map.affine)
    coarse = fill_joint_spaces(real_map.data, spacing, 8.0)
    merged = merge_femoral_heads(coarse, spacing, reach_mm=12.0)
    changed = merged != coarse
    assert changed.any()
    moves = set(zip(coarse[changed].tolist(), merged[changed].tolist(), strict=True))
    assert moves <= {(1, 3), (2, 4)}


def test_mirrored_anatomy_swaps_side_ids_and_stays_ras(real_map):
    labels, affine = real_map.data, real_map.affine
    mirrored = mirror_left_right(labels, affine)
    assert set(np.unique(mirrored)) == set(np.unique(labels))
    for right, left in DEFAULT_LABELS.symmetric_pairs:
        assert (mirrored == right).sum() == (labels == left).sum()
        # right-side ids still lie at larger RAS x (patient's right), the affine unchanged
        assert _centroid_x(mirrored, affine, right) > _centroid_x(mirrored, affine, left)
    assert (mirrored == 5).sum() == (labels == 5).sum()


def test_mirror_follows_the_affine_not_the_array_order(real_map):
    """The same anatomy stored with x flipped in the array mirrors to the same scanner space."""
    labels, affine = real_map.data, real_map.affine
    flipped_affine = affine.copy()
    flipped_affine[:3, 0] *= -1
    flipped_affine[:3, 3] = apply_affine(affine, [[labels.shape[0] - 1, 0, 0]])[0]
    stored = labels[::-1]
    a = mirror_left_right(labels, affine)
    b = mirror_left_right(stored, flipped_affine)
    np.testing.assert_array_equal(a, b[::-1])


def test_variants_keep_the_label_set_and_the_grid(real_map):
    rng = np.random.default_rng(3)
    for mirror in (0.0, 1.0):
        settings = VariantSettings(mirror_probability=mirror)
        variant, mirrored = make_variant(real_map.data, real_map.affine, rng, settings)
        assert mirrored == bool(mirror)
        assert variant.shape == real_map.shape and variant.dtype == real_map.data.dtype
        assert set(np.unique(variant)) == set(range(6))
        affine = real_map.affine
        assert _centroid_x(variant, affine, 1) > _centroid_x(variant, affine, 2)
        assert not np.array_equal(variant, real_map.data)


def test_deformation_of_zero_is_the_identity(real_map):
    out = deform_labels(real_map.data, real_map.affine, np.random.default_rng(0), scale=1.0,
                        max_displacement_mm=0.0)
    np.testing.assert_array_equal(out, real_map.data)


def _ball_in_socket(affine: np.ndarray, shape: tuple[int, int, int], centre_mm: np.ndarray,
                    radius_mm: float, gap_mm: float) -> np.ndarray:
    """A femur (1: head ball and a shaft along -z) whose head sits in a hemispherical socket
    (hip bone 3) ``gap_mm`` away, all in RAS mm on an oblique grid."""
    points = apply_affine(affine, np.indices(shape).reshape(3, -1).T).reshape(*shape, 3)
    offset = points - centre_mm
    r = np.linalg.norm(offset, axis=-1)
    shaft = (np.linalg.norm(offset[..., :2], axis=-1) < 0.5 * radius_mm) & (offset[..., 2] < 0)
    labels = np.zeros(shape, np.uint8)
    labels[(r <= radius_mm) | shaft] = 1
    socket = (r >= radius_mm + gap_mm) & (r <= radius_mm + gap_mm + 5.0) & (offset[..., 2] > 0)
    labels[socket] = 3
    return labels


def test_femoral_head_sphere_finds_the_heads_centre_and_radius():
    affine = oblique_affine(spacing_mm=(1.0, 0.9, 1.2))
    shape = (50, 50, 60)
    centre = apply_affine(affine, np.array([25.0, 25.0, 38.0]))
    labels = _ball_in_socket(affine, shape, centre, radius_mm=10.0, gap_mm=3.0)
    found, radius = femoral_head_sphere(labels, affine, femur=1, hip=3)
    assert np.linalg.norm(found - centre) < 0.6
    assert abs(radius - 10.0) < 0.8
    assert femoral_head_sphere(labels, affine, femur=2, hip=4) is None
    no_socket = np.where(labels == 3, 0, labels)
    assert femoral_head_sphere(no_socket, affine, femur=1, hip=3) is None


def test_rotating_the_femur_about_its_head_turns_the_shaft_and_keeps_the_joint_space():
    affine = oblique_affine(spacing_mm=(1.0, 0.9, 1.2))
    shape = (50, 50, 60)
    centre = apply_affine(affine, np.array([25.0, 25.0, 38.0]))
    labels = _ball_in_socket(affine, shape, centre, radius_mm=10.0, gap_mm=3.0)
    rotation = rotation_matrix(np.array([12.0, 0.0, 0.0]))
    out = rotate_femur(labels, affine, 1, centre, rotation)
    np.testing.assert_array_equal(out == 3, labels == 3)
    spacing = voxel_spacing_mm(affine)
    head = np.linalg.norm(apply_affine(affine, np.argwhere(labels == 1)) - centre, axis=1) < 10
    gap = distance_to_class(labels, 3, spacing_mm=spacing)
    assert gap[out == 1].min() >= gap[labels == 1].min() - spacing.max()
    # the shaft's axis (-z from the centre) turns by 12 degrees about x, towards +y
    shaft = apply_affine(affine, np.argwhere(out == 1)) - centre
    below = shaft[shaft[:, 2] < -15.0]
    tilt = np.degrees(np.arctan2(below[:, 1].mean(), -below[:, 2].mean()))
    assert abs(tilt - 12.0) < 1.5
    assert np.count_nonzero(out == 1) == pytest.approx(np.count_nonzero(labels == 1), rel=0.1)
    assert head.any()
    np.testing.assert_array_equal(rotate_femur(labels, affine, 1, centre, np.eye(3)), labels)


def test_rotate_femur_matches_a_voxel_by_voxel_reference():
    rng = np.random.default_rng(5)
    affine = oblique_affine(spacing_mm=(1.1, 0.8, 1.3))
    labels = rng.integers(0, 3, size=(9, 8, 7)).astype(np.uint8) * 2  # ids 0, 2, 4
    labels[2:7, 2:6, 1:6] = np.where(rng.random((5, 4, 5)) < 0.7, 1, labels[2:7, 2:6, 1:6])
    centre = apply_affine(affine, np.array([4.0, 3.5, 3.0]))
    rotation = rotation_matrix(rng.uniform(-25, 25, size=3))
    out = rotate_femur(labels, affine, 1, centre, rotation)
    inverse = np.linalg.inv(affine)
    expected = np.where(labels == 1, 0, labels)
    for q in np.ndindex(labels.shape):
        mm = apply_affine(affine, np.array(q, float))
        source = np.rint(apply_affine(inverse, centre + rotation.T @ (mm - centre))).astype(int)
        inside = np.all(source >= 0) and np.all(source < labels.shape)
        if inside and labels[tuple(source)] == 1 and expected[q] == 0:
            expected[q] = 1
    np.testing.assert_array_equal(out, expected)


def test_rotation_matrix_turns_about_x_then_y_then_z():
    turn = rotation_matrix(np.array([90.0, 0.0, 0.0]))
    np.testing.assert_allclose(turn @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    both = rotation_matrix(np.array([90.0, 0.0, 90.0]))
    np.testing.assert_allclose(both @ [0, 1, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(both @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    np.testing.assert_allclose(both @ both.T, np.eye(3), atol=1e-12)


def test_resampling_keeps_the_box_and_round_trips_the_affine():
    affine = oblique_affine(spacing_mm=(1.0, 1.0, 1.5))
    labels = np.zeros((40, 30, 20), np.uint8)
    labels[10:30, 5:25, 4:16] = 3
    out, new_affine = resample_labels(labels, affine, (2.0, 2.0, 3.0))
    assert out.shape == (20, 15, 10)
    np.testing.assert_allclose(voxel_spacing_mm(new_affine), (2.0, 2.0, 3.0))
    # the outer corner of the box is the same point in scanner space
    np.testing.assert_allclose(apply_affine(new_affine, [[-0.5, -0.5, -0.5]]),
                               apply_affine(affine, [[-0.5, -0.5, -0.5]]), atol=1e-9)
    # the block is where it was, in mm (block of 20 x 20 x 12 voxels -> 10 x 10 x 6)
    assert (out == 3).sum() == 10 * 10 * 6
    same, same_affine = resample_labels(labels, affine, (1.0, 1.0, 1.5))
    np.testing.assert_array_equal(same, labels)
    np.testing.assert_allclose(same_affine, affine, atol=1e-12)


@pytest.mark.parametrize("shift", [(0.0, 0.0, 0.0), (0.23, -0.41, 0.37)])
def test_each_resampled_voxel_holds_the_label_nearest_to_its_centre_in_mm(shift):
    affine = oblique_affine(spacing_mm=(0.7, 0.8, 1.5))
    labels = np.random.default_rng(0).integers(0, 6, (17, 13, 9)).astype(np.uint8)
    out, new_affine = resample_labels(labels, affine, (1.03, 1.17, 1.91), shift)
    new_index = np.indices(out.shape).reshape(3, -1).T
    old_index = apply_affine(np.linalg.inv(affine), apply_affine(new_affine, new_index))
    nearest = np.clip(np.floor(old_index + 0.5).astype(int), 0, np.array(labels.shape) - 1)
    np.testing.assert_array_equal(out.ravel(), labels[tuple(nearest.T)])


def test_settings_resample_before_simulating(real_map):
    settings = LabelPhantomSettings(spacing_mm=(4.0, 4.0, 4.0))
    case = make_case_from_labels(real_map, np.random.default_rng(0), settings=settings)
    np.testing.assert_allclose(case.image.spacing_mm, 4.0)
    assert case.image.shape == tuple(np.round(np.asarray(real_map.shape) / 2).astype(int))
