"""Training at several pixel spacings (``train --finest-pixel-mm``): the rule's spacing, the
planes' spacings and where they lie."""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pytest
import torch

from hipseg.cli import main
from hipseg.cli.train import finest_pixel_mm
from hipseg.core.config import ConfigError, HipsegConfig, SamplingConfig
from hipseg.core.volume import Volume
from hipseg.training.data import PlaneSampler, TrainingScan
from hipseg.training.train import complete_geometry
from hipseg.views.directions import view_directions
from hipseg.views.grid import view_basis
from synthetic import oblique_affine

#: Intensity = x + 2 y - z (RAS mm) + 300: trilinear interpolation reproduces it exactly.
GRADIENT = np.array([1.0, 2.0, -1.0])


def _linear_scan(shape=(48, 40, 36), affine=None) -> TrainingScan:
    affine = oblique_affine() if affine is None else affine
    ijk = np.indices(shape).reshape(3, -1)
    world = affine[:3, :3] @ ijk + affine[:3, 3:4]
    field = (GRADIENT @ world + 300.0).reshape(shape).astype(np.float32)
    volume = Volume(field, affine)
    foreground = volume.center_mm + np.array([[6.0, -4.0, 3.0], [-5.0, 2.0, -2.0]])
    return TrainingScan("a", torch.from_numpy(field)[None], torch.zeros((1, *shape)), affine,
                        shape, volume.extent_mm, volume.center_mm, 0.0, foreground)


def test_rule_is_measured_with_the_plane_size_and_the_floor_applies_to_dim_only():
    scan = _linear_scan((64, 64, 64), np.eye(4))  # 1 mm voxels: the rule's dim is 64
    config = dataclasses.replace(HipsegConfig(), sampling=SamplingConfig(
        min_pixel_spacing_mm=2.0, finest_pixel_spacing_mm=-1.0))
    sampling = complete_geometry(config, [scan], 8).sampling
    assert sampling.dim == 32 and sampling.pixel_spacing_mm == pytest.approx(2.0)
    assert sampling.finest_pixel_spacing_mm == pytest.approx(sampling.sphere_diameter_mm / 64)
    assert sampling.trained_pixel_spacings_mm == pytest.approx((1.0, 2.0))
    set_value = dataclasses.replace(config, sampling=dataclasses.replace(
        config.sampling, finest_pixel_spacing_mm=0.8))
    assert complete_geometry(set_value, [scan], 8).sampling.finest_pixel_spacing_mm == 0.8


@pytest.mark.parametrize("bad", [-0.5, 0.005, 101.0])
def test_finest_spacing_must_be_the_rule_off_or_a_spacing(bad):
    with pytest.raises(ConfigError, match="finest_pixel_spacing_mm"):
        SamplingConfig(finest_pixel_spacing_mm=bad)


def test_finest_spacing_coarser_than_the_planes_is_refused():
    with pytest.raises(ConfigError, match="finest_pixel_spacing_mm"):
        SamplingConfig(dim=16, sphere_diameter_mm=32.0, finest_pixel_spacing_mm=2.5)


def test_planes_draw_log_uniform_spacings_and_pass_through_their_aimed_point():
    scan = _linear_scan()
    directions = view_directions(3, 30.0, np.random.default_rng(0))
    sampler = PlaneSampler([scan], directions, 16, 2.0, 1.0, finest_pixel_spacing_mm=0.5,
                           fine_plane_fraction=1.0)
    rng = np.random.default_rng(4)
    spacings = []
    for _ in range(2000):
        view = int(rng.integers(3))
        grid, index = sampler._plane(scan, view, rng)
        spacings.append(grid.pixel_spacing_mm)
        assert index == 0.0 and grid.n_planes == 1
        u, v, n = view_basis(directions[view])
        # Every plane is aimed at one of the two bone points: it contains one, within a
        # quarter of its side of the centre.
        offsets = scan.foreground_mm - grid.center_mm
        hit = np.abs(offsets @ n) < 1e-9
        assert hit.any()
        assert np.abs(offsets[hit][0] @ np.stack([u, v]).T).max() <= 0.25 * 16 * grid.pixel_spacing_mm + 1e-9
    logs = np.log(spacings)
    assert 0.5 <= min(spacings) and max(spacings) <= 2.0
    assert np.median(logs) == pytest.approx(np.log(1.0), abs=0.06), "log-uniform: median 1 mm"
    assert np.mean(logs < np.log(0.7)) == pytest.approx(np.log(0.7 / 0.5) / np.log(4.0), abs=0.03)


def test_a_fine_plane_samples_the_scan_at_its_own_pixel_positions():
    """Against an independent reference: the linear field evaluated at the plane's pixel
    positions in mm, computed from the grid's basis by hand (0 outside the scan)."""
    scan = _linear_scan()
    directions = view_directions(3, 30.0, np.random.default_rng(0))
    sampler = PlaneSampler([scan], directions, 16, 2.0, 1.0, finest_pixel_spacing_mm=0.5,
                           fine_plane_fraction=1.0)
    images, _, _ = sampler.sample(6, np.random.default_rng(9))
    replay = np.random.default_rng(9)
    to_voxel = np.linalg.inv(scan.affine)
    for image in images:
        replay.integers(1)  # which scan: the only one
        view = int(replay.integers(3))
        grid, _ = sampler._plane(scan, view, replay)
        u, v, _ = view_basis(directions[view])
        a, b = np.meshgrid(np.arange(16) - 7.5, np.arange(16) - 7.5, indexing="ij")
        world = grid.center_mm + grid.pixel_spacing_mm * (a[..., None] * u + b[..., None] * v)
        ijk = world @ to_voxel[:3, :3].T + to_voxel[:3, 3]
        inside = np.all((ijk > 0.01) & (ijk < np.array(scan.shape) - 1.01), axis=-1)
        assert inside.mean() > 0.5
        np.testing.assert_allclose(image[0].numpy()[inside], (world @ GRADIENT + 300.0)[inside],
                                   atol=0.02)


def test_a_fraction_of_the_planes_is_fine_and_aimed_at_the_joints():
    scan = dataclasses.replace(_linear_scan(), joint_mm=_linear_scan().center_mm[None] + 1.0)
    directions = view_directions(3, 30.0, np.random.default_rng(0))
    sampler = PlaneSampler([scan], directions, 16, 2.0, 1.0, finest_pixel_spacing_mm=0.5,
                           fine_plane_fraction=0.3)
    rng = np.random.default_rng(5)
    planes = [sampler._plane(scan, int(rng.integers(3)), rng)[0] for _ in range(3000)]
    fine = [g for g in planes if g.n_planes == 1]
    assert len(fine) / len(planes) == pytest.approx(0.3, abs=0.03)
    assert all(g.pixel_spacing_mm == 2.0 and g.n_planes == 16 for g in planes if g.n_planes != 1)
    for grid in fine:  # through the joint point, never a bone point
        n = view_basis(grid.direction)[2]
        assert abs(np.dot(scan.joint_mm[0] - grid.center_mm, n)) < 1e-9


def test_single_spacing_planes_keep_the_models_spacing():
    scan = _linear_scan()
    sampler = PlaneSampler([scan], view_directions(3, 30.0, np.random.default_rng(0)), 16, 2.0,
                           1.0)
    rng = np.random.default_rng(2)
    for view in range(3):
        grid, _ = sampler._plane(scan, view, rng)
        assert grid.pixel_spacing_mm == 2.0 and grid.n_planes == 16
        np.testing.assert_array_equal(grid.center_mm, scan.center_mm)


def test_train_option_reads_the_rule_and_spacings():
    assert finest_pixel_mm("rule") == -1.0 and finest_pixel_mm("0") == 0.0
    assert finest_pixel_mm("0.8") == 0.8
    for bad in ("0.005", "-1", "abc"):
        with pytest.raises(argparse.ArgumentTypeError, match=bad):
            finest_pixel_mm(bad)


@pytest.mark.parametrize("option", [("--finest-pixel-mm", "rule"),
                                    ("--intensity-scaling", "fixed")])
def test_train_refuses_what_an_initial_model_fixes(tmp_path, tiny_model_dir, capsys, option):
    """The initial model's plane geometry and pre-processing are kept; asking for others is an
    error, not silently ignored."""
    code = main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "new"), "--init",
                 str(tiny_model_dir), *option, "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and option[0] in err[0] and "--init" in err[0]
    assert not (tmp_path / "new").exists()
