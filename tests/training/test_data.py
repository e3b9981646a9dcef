"""Training planes: the weight map's slice is cut on the image's plane (trilinear)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hipseg.core.config import (
    AugmentConfig,
    HipsegConfig,
    PreprocessConfig,
    SamplingConfig,
    TrainConfig,
)
from hipseg.core.volume import Volume
from hipseg.io import find_cases, read_image, write_image, write_labels
from hipseg.preprocess import preprocess_image
from hipseg.training.data import (
    PlaneSampler,
    TrainingScan,
    coarsen_dim,
    load_training_scans,
    measure_plane_size,
)
from hipseg.training.train import complete_geometry, sample_batch
from hipseg.views.directions import view_directions
from synthetic import blob_labels, oblique_affine


def _scan(rng, weights: bool) -> TrainingScan:
    shape = (14, 12, 10)
    affine = oblique_affine()
    field = torch.from_numpy(rng.uniform(1, 21, size=shape).astype(np.float32))[None]
    labels = torch.from_numpy(rng.integers(0, 6, size=shape).astype(np.float32))[None]
    volume = Volume(field[0].numpy(), affine)
    return TrainingScan("a", field, labels, affine, shape, volume.extent_mm, volume.center_mm,
                        1.0, np.zeros((0, 3)), field if weights else None)


def test_weights_are_sampled_on_the_image_plane(rng):
    scan = _scan(rng, weights=True)  # image and weight map hold the same values
    sampler = PlaneSampler([scan], view_directions(4, 30.0, rng), 16, 1.5, 0.5)
    images, labels, weights = sampler.sample(6, np.random.default_rng(0))
    assert weights.shape == labels.shape == (6, 16, 16) and weights.dtype == torch.float32
    torch.testing.assert_close(weights, images[:, 0], rtol=1e-6, atol=1e-5)
    assert (weights > 1).any() and (weights == 1).any(), "planes reach inside and outside"


def test_no_weight_map_gives_ones(rng):
    sampler = PlaneSampler([_scan(rng, weights=False)], view_directions(3, 30.0, rng), 16, 1.5, 0.5)
    _, _, weights = sampler.sample(3, rng)
    assert torch.equal(weights, torch.ones(3, 16, 16))


def test_batches_get_the_appearance_augmentation_on_the_ct_alone(rng):
    sampler = PlaneSampler([_scan(rng, weights=True)], view_directions(3, 30.0, rng), 16, 1.5, 0.5)
    config = HipsegConfig(
        train=TrainConfig(batch_size=4),
        augment=AugmentConfig(fraction=0.0, appearance_fraction=1.0, contrast=(3.0, 3.0),
                              offset=(0.0, 0.0), blur_px=(0.0, 0.0), noise=(0.0, 0.0)))
    plain = sampler.sample(4, np.random.default_rng(5))
    augmented = sample_batch(sampler, config, np.random.default_rng(5))
    torch.testing.assert_close(augmented[0], 3.0 * plain[0])
    assert torch.equal(augmented[1], plain[1]) and torch.equal(augmented[2], plain[2])


def test_planes_are_aimed_at_joint_space_bone_and_anywhere_in_their_fractions(rng):
    scan = dataclasses.replace(_scan(rng, weights=False), foreground_mm=np.zeros((5, 3)),
                               joint_mm=np.ones((3, 3)))
    sampler = PlaneSampler([scan], view_directions(3, 30.0, rng), 16, 1.5, 0.5, 0.3)
    draws = np.random.default_rng(1)
    aims = [sampler._aim(scan, draws) for _ in range(4000)]
    joint = np.mean([a is scan.joint_mm for a in aims])
    bone = np.mean([a is scan.foreground_mm for a in aims])
    assert joint == pytest.approx(0.3, abs=0.03) and bone == pytest.approx(0.5, abs=0.03)
    no_joints = dataclasses.replace(scan, joint_mm=np.zeros((0, 3)))
    aims = [sampler._aim(no_joints, draws) for _ in range(4000)]
    assert np.mean([a is no_joints.foreground_mm for a in aims]) == pytest.approx(0.5, abs=0.03)


def test_plane_size_is_the_75th_percentile_over_axes_and_scans(rng):
    scans = [_scan(rng, weights=False) for _ in range(2)]
    scans[1] = TrainingScan("b", scans[1].image, scans[1].labels, scans[1].affine, (40, 7, 9),
                            np.array([100.0, 20.0, 30.0]), scans[1].center_mm, 1.0,
                            np.zeros((0, 3)))
    dim, diameter = measure_plane_size([s.shape for s in scans], [s.extent_mm for s in scans],
                                       75.0, 16)
    counts = sorted([14, 12, 10, 40, 7, 9])  # 75th percentile by linear interpolation: 13.5
    assert dim == 16 and np.percentile(counts, 75) == 13.5
    extents = np.concatenate([scans[0].extent_mm, [100.0, 20.0, 30.0]])
    assert diameter == np.percentile(extents, 75)


def test_set_plane_size_overrides_the_measured_one(rng):
    config = dataclasses.replace(HipsegConfig(), sampling=SamplingConfig(dim=32))
    completed = complete_geometry(config, [_scan(rng, weights=False)], 16)
    assert completed.sampling.dim == 32
    scan = _scan(rng, weights=False)
    assert completed.sampling.sphere_diameter_mm == measure_plane_size(
        [scan.shape], [scan.extent_mm], 75.0, 16)[1]
    assert len(completed.views.directions) == 6


def test_coarsen_dim_keeps_the_pixels_at_least_as_large_as_the_floor():
    assert coarsen_dim(352, 290.0, 2.0, 16) == 144  # 290 / 2 = 145 px, down to a multiple of 16
    assert 290.0 / 144 >= 2.0 > 290.0 / 160
    assert coarsen_dim(128, 340.0, 2.0, 16) == 128, "2.66 mm pixels are coarse enough already"
    assert coarsen_dim(352, 290.0, 0.0, 16) == 352, "no floor: the paper's rule"
    assert coarsen_dim(64, 20.0, 2.0, 16) == 16, "never below one multiple"


def test_measured_plane_size_honours_the_pixel_floor_but_not_an_explicit_dim(rng):
    scan = _scan(rng, weights=False)  # 14 x 12 x 10 voxels of 1 mm: ~1 mm pixels by the rule
    floor = dataclasses.replace(HipsegConfig(), sampling=SamplingConfig(min_pixel_spacing_mm=0.8))
    rule = dataclasses.replace(HipsegConfig(), sampling=SamplingConfig(min_pixel_spacing_mm=0.0))
    coarse = dataclasses.replace(HipsegConfig(), sampling=SamplingConfig(min_pixel_spacing_mm=2.0,
                                                                         sphere_diameter_mm=40.0))
    explicit = dataclasses.replace(coarse, sampling=dataclasses.replace(coarse.sampling, dim=48))
    by_rule = complete_geometry(rule, [scan], 8).sampling
    assert complete_geometry(floor, [scan], 8).sampling.dim == by_rule.dim == 16
    assert by_rule.pixel_spacing_mm < 2.0
    assert complete_geometry(coarse, [scan], 8).sampling.dim == 16  # 40 mm / 2 mm = 20 -> 16
    assert complete_geometry(explicit, [scan], 8).sampling.dim == 48


@pytest.mark.parametrize("scaling", ["robust", "fixed"])
def test_training_scans_are_scaled_as_the_config_says(tmp_path, scaling):
    rng = np.random.default_rng(4)
    labels = blob_labels((16, 14, 12), rng)
    image = np.where(labels > 0, 600.0, 40.0 + 30.0 * rng.standard_normal(labels.shape))
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    write_image(tmp_path / "images" / "a.nii.gz", image.astype(np.float32), oblique_affine())
    write_labels(tmp_path / "labels" / "a.nii.gz", labels, tmp_path / "images" / "a.nii.gz")
    config = dataclasses.replace(HipsegConfig(),
                                 preprocess=PreprocessConfig(intensity_scaling=scaling))
    scan, = load_training_scans(find_cases(tmp_path / "images", tmp_path / "labels"), config,
                                torch.device("cpu"), progress=False)
    expected = preprocess_image(read_image(tmp_path / "images" / "a.nii.gz").data,
                                scaling=scaling)
    np.testing.assert_array_equal(scan.image[0].numpy(), expected)
