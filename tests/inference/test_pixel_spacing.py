"""Predicting at another pixel spacing (``predict --pixel-mm``) and the joint pass
(``predict --refine-joints``) of a model trained at several spacings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from hipseg.cli import main
from hipseg.core.config import ConfigError
from hipseg.core.volume import Volume
from hipseg.inference import volume as volume_module
from hipseg.inference.volume import predict_volume, view_geometry
from hipseg.runtime.model_io import load_model, save_model
from synthetic import oblique_affine

CPU = torch.device("cpu")

def _multi_spacing_model(tiny_model_dir):
    model = load_model(tiny_model_dir, CPU)  # 16 px over 40 mm: 2.5 mm pixels
    config = dataclasses.replace(model.config, sampling=dataclasses.replace(
        model.config.sampling, finest_pixel_spacing_mm=1.0))
    save_model(model.network, config, tiny_model_dir)
    return load_model(tiny_model_dir, CPU)


def test_prediction_spacing_is_checked_against_the_trained_range(tiny_model_dir):
    single = load_model(tiny_model_dir, CPU).config.sampling
    assert single.prediction_pixel_spacing_mm() == 2.5
    with pytest.raises(ConfigError, match="outside the 2.5-2.5 mm.*--finest-pixel-mm"):
        single.prediction_pixel_spacing_mm(1.0)
    multi = _multi_spacing_model(tiny_model_dir).config.sampling
    assert multi.prediction_pixel_spacing_mm(1.0) == 1.0
    assert multi.prediction_pixel_spacing_mm(1.7) == 1.7
    with pytest.raises(ConfigError, match="outside the 1-2.5 mm"):
        multi.prediction_pixel_spacing_mm(0.9)


def test_prediction_at_a_finer_spacing_uses_finer_planes(tiny_model_dir, rng):
    model = _multi_spacing_model(tiny_model_dir)
    image = Volume(rng.normal(300, 200, (14, 12, 10)).astype(np.float32), oblique_affine())
    coarse = view_geometry(model, image)
    fine = view_geometry(model, image, pixel_spacing_mm=1.0)
    for (coarse_grid, coarse_window, *_), (fine_grid, fine_window, *_) in zip(coarse, fine):
        assert coarse_grid.pixel_spacing_mm == 2.5 and fine_grid.pixel_spacing_mm == 1.0
        assert fine_window.n_planes > 2 * coarse_window.n_planes
    prediction = predict_volume(model, image, progress=False, pixel_spacing_mm=1.0)
    assert prediction.labels.shape == image.shape
    np.testing.assert_allclose(prediction.probabilities.sum(0), 1.0, atol=1e-4)
    differs = predict_volume(model, image, progress=False).probabilities
    assert np.abs(differs - prediction.probabilities).max() > 1e-3, "the spacing reached the net"


def test_predict_refuses_a_spacing_outside_the_trained_range(tiny_model_dir, tmp_path, capsys):
    code = main(["predict", str(tiny_model_dir), str(tmp_path / "missing.nii.gz"), "--out",
                 str(tmp_path / "out"), "--pixel-mm", "1.0", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert str(tiny_model_dir) in err[0] and "--pixel-mm" in err[0] and "outside" in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("mirror", [False, True])
def test_joint_pass_replaces_the_boxes_with_the_fine_prediction_and_keeps_the_rest(
        tiny_model_dir, rng, monkeypatch, mirror):
    """Against an independent reference: with whole planes the joint pass inside its box is
    the whole-scan prediction at the finest spacing; outside it the first pass is untouched."""
    model = _multi_spacing_model(tiny_model_dir)
    image = Volume(rng.normal(300, 200, (14, 12, 10)).astype(np.float32), oblique_affine())
    box = (np.array([3, 2, 1]), np.array([9, 8, 6]))
    found = []

    def one_box(labels, spacing_mm, *, max_gap_mm, margin_mm):
        found.append((labels.shape, max_gap_mm, margin_mm))
        return [box]

    monkeypatch.setattr(volume_module, "joint_boxes", one_box)
    options = {"progress": False, "precision": "fp32", "context_px": None, "mirror": mirror}
    refined = predict_volume(model, image, refine_joints=True, **options)
    coarse = predict_volume(model, image, **options)
    fine = predict_volume(model, image, pixel_spacing_mm=1.0, **options)
    assert found[0] == (image.shape, volume_module.JOINT_REGION_MM, volume_module.JOINT_MARGIN_MM)
    inside = np.zeros(image.shape, bool)
    inside[3:9, 2:8, 1:6] = True
    np.testing.assert_allclose(refined.probabilities[:, inside], fine.probabilities[:, inside],
                               atol=1e-5)
    np.testing.assert_array_equal(refined.probabilities[:, ~inside],
                                  coarse.probabilities[:, ~inside])
    np.testing.assert_array_equal(refined.labels[inside], fine.labels[inside])
    # The two spacings must differ there by far more than the tolerance, or this proves nothing.
    assert np.abs(fine.probabilities - coarse.probabilities)[:, inside].max() > 20 * 1e-5


def test_overlapping_joint_boxes_give_the_mean_of_their_predictions(tiny_model_dir, rng,
                                                                    monkeypatch):
    """Two boxes that overlap: each box's own voxels take its prediction, the shared ones
    the mean of both (probabilities, disagreement, and the labels as their argmax)."""
    model = _multi_spacing_model(tiny_model_dir)
    image = Volume(rng.normal(300, 200, (14, 12, 10)).astype(np.float32), oblique_affine())
    boxes = [(np.array([2, 2, 1]), np.array([9, 8, 6])), (np.array([6, 3, 2]), np.array([12, 10, 8]))]
    n_classes = model.config.labels.n_classes
    made = {}
    real_fused_views = volume_module._fused_views

    def fake_box_passes(model, image, regions, spacing, **passes):
        if regions == [None]:
            return real_fused_views(model, image, regions, spacing, **passes)
        out = []
        for k, (lo, hi) in enumerate(regions):
            shape = tuple(int(n) for n in hi - lo)
            summed = torch.from_numpy(3.0 * rng.dirichlet(np.ones(n_classes), shape)
                                      .transpose(3, 0, 1, 2).astype(np.float32))
            disagreement = torch.full(shape, 0.2 + 0.4 * k)
            made[k] = (summed / 3.0, disagreement)
            out.append((summed, summed.argmax(0).to(torch.uint8), disagreement))
        return out

    monkeypatch.setattr(volume_module, "joint_boxes", lambda *a, **k: boxes)
    monkeypatch.setattr(volume_module, "_fused_views", fake_box_passes)
    refined = predict_volume(model, image, refine_joints=True, progress=False)
    expected = predict_volume(model, image, progress=False)
    probabilities = expected.probabilities.copy()
    disagreement = expected.disagreement.copy()
    covered = np.zeros(image.shape)
    sums = np.zeros_like(probabilities)
    votes = np.zeros(image.shape)
    for k, (lo, hi) in enumerate(boxes):
        inside = tuple(slice(a, b) for a, b in zip(lo, hi))
        sums[(slice(None), *inside)] += made[k][0].numpy()
        votes[inside] += made[k][1].numpy()
        covered[inside] += 1
    refined_voxels = covered > 0
    assert (covered == 2).sum() == 3 * 5 * 4, "the boxes share 3 x 5 x 4 voxels"
    probabilities[:, refined_voxels] = sums[:, refined_voxels] / covered[refined_voxels]
    disagreement[refined_voxels] = votes[refined_voxels] / covered[refined_voxels]
    np.testing.assert_allclose(refined.probabilities, probabilities, atol=1e-6)
    np.testing.assert_allclose(refined.disagreement, disagreement, atol=1e-6)
    np.testing.assert_array_equal(refined.labels[refined_voxels],
                                  probabilities.argmax(0)[refined_voxels])
    np.testing.assert_array_equal(refined.labels[~refined_voxels],
                                  expected.labels[~refined_voxels])


def test_joint_pass_needs_a_model_trained_at_several_spacings(tiny_model_dir, rng, tmp_path,
                                                             capsys):
    image = Volume(rng.normal(300, 200, (14, 12, 10)).astype(np.float32), oblique_affine())
    with pytest.raises(ConfigError, match="several pixel spacings"):
        predict_volume(load_model(tiny_model_dir, CPU), image, progress=False,
                       refine_joints=True)
    code = main(["predict", str(tiny_model_dir), str(tmp_path / "missing.nii.gz"), "--out",
                 str(tmp_path / "out"), "--refine-joints", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--refine-joints" in err[0]
    assert str(tiny_model_dir) in err[0]


def test_joint_pass_windows_cover_the_box_only(tiny_model_dir, rng):
    model = _multi_spacing_model(tiny_model_dir)
    image = Volume(rng.normal(300, 200, (40, 36, 30)).astype(np.float32), oblique_affine())
    box = (np.array([10, 8, 6]), np.array([18, 16, 14]))
    whole = view_geometry(model, image, 4, 1.0)
    boxed = view_geometry(model, image, 4, 1.0, box)
    for (grid, window, to_image, _), (box_grid, box_window, box_to_image, to_box) in zip(
            whole, boxed):
        assert box_grid.dim == grid.dim and box_window.n_planes < window.n_planes
        assert box_window.n_rows * box_window.n_cols < window.n_rows * window.n_cols
        # Mapping back into the box is the mapping into the scan shifted by the box corner.
        shift = np.eye(4)
        shift[:3, 3] = -box[0]
        np.testing.assert_allclose(to_box, shift @ box_to_image, atol=1e-9)
        # Every box voxel centre falls inside the box's window.
        corners = np.array(np.meshgrid(*[(a, b - 1) for a, b in zip(*box)], indexing="ij"))
        corners = np.concatenate([corners.reshape(3, -1), np.ones((1, 8))])
        stack = (np.linalg.inv(box_to_image) @ corners)[:3]
        assert stack.min() >= -1e-6
        assert np.all(stack.max(axis=1) <= np.array([box_window.n_planes, box_window.n_rows,
                                                     box_window.n_cols]) - 1 + 1e-6)


def test_joint_pass_is_refused_when_it_would_pass_the_memory_limit(tiny_model_dir, rng,
                                                                   monkeypatch):
    model = _multi_spacing_model(tiny_model_dir)
    image = Volume(rng.normal(300, 200, (14, 12, 10)).astype(np.float32), oblique_affine())
    monkeypatch.setattr(volume_module, "joint_boxes",
                        lambda *a, **k: [(np.array([0, 0, 0]), np.array([14, 12, 10]))])
    first = volume_module.estimate_prediction_bytes(
        image.shape, model.config.labels.n_classes,
        volume_module.prediction_grid(np.eye(3)[0], image.center_mm, image.extent_mm, 2.5,
                                      model.network.size_multiple).dim,
        model.config.model.in_channels)
    predict_volume(model, image, progress=False, max_memory_bytes=first + 1)
    with pytest.raises(volume_module.VolumeError, match="joint pass over 1 boxes"):
        predict_volume(model, image, progress=False, max_memory_bytes=first + 1,
                       refine_joints=True)
