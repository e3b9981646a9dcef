"""The fast prediction path against a slow, straightforward reference of SPEC step 7."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from hipseg.core.volume import Volume
from hipseg.inference.volume import planes_per_batch, predict_volume
from hipseg.preprocess import network_input
from hipseg.runtime.model_io import load_model
from hipseg.views.grid import prediction_grid
from hipseg.views.sampling import sample_planes
from synthetic import oblique_affine

CPU = torch.device("cpu")


def _ct(rng, shape=(18, 14, 12)):
    grid = np.indices(shape).astype(float)
    bone = ((grid[0] - 7) ** 2 + (grid[1] - 6) ** 2 + (grid[2] - 5) ** 2) < 16
    return (np.where(bone, 1500.0, 40.0) + rng.normal(0, 30, shape)).astype(np.float32)


def reference_sums(model, image: Volume) -> np.ndarray:
    """Every plane of every whole view in float32, 3D grid_sample back, summed."""
    config, network = model.config, model.network
    channels, fills = network_input(image.data, image.affine,
                                    clip_below_hu=config.preprocess.clip_below_hu,
                                    scaling=config.preprocess.intensity_scaling,
                                    lateral_channel=config.model.lateral_channel)
    scaled = torch.from_numpy(channels)
    total = torch.zeros((config.labels.n_classes, *image.shape))
    for direction in np.asarray(config.views.directions):
        grid = prediction_grid(direction, image.center_mm, image.extent_mm,
                               config.sampling.pixel_spacing_mm, network.size_multiple)
        to_voxel = grid.stack_to_voxel(image.affine)
        planes = sample_planes(scaled, to_voxel, torch.arange(grid.n_planes).float(), grid.dim,
                               fill_value=tuple(fills.tolist()))
        with torch.no_grad():
            stack = torch.softmax(network(planes), dim=1).permute(1, 0, 2, 3)
        # Independent of the package's mapping: stack index of every voxel, 3D grid_sample.
        voxels = np.indices(image.shape).reshape(3, -1)
        coords = (np.linalg.inv(to_voxel) @ np.vstack([voxels, np.ones(voxels.shape[1])]))[:3]
        normalised = 2 * coords / (np.asarray(stack.shape[1:])[:, None] - 1) - 1
        sample_grid = torch.from_numpy(normalised[::-1].T.copy()).float().reshape(
            1, *image.shape, 3)
        total += F.grid_sample(stack[None], sample_grid, align_corners=True)[0]
    return total.numpy()


def reference_probabilities(model, image: Volume) -> np.ndarray:
    """:func:`reference_sums`, normalised to sum to 1 in every voxel."""
    total = reference_sums(model, image)
    return total / np.maximum(total.sum(0), 1e-12)


def test_fast_path_equals_the_reference_in_float32(tiny_model_dir, rng):
    model = load_model(tiny_model_dir, CPU)
    image = Volume(_ct(rng), oblique_affine())
    fast = predict_volume(model, image, progress=False, precision="fp32", context_px=None)
    reference = reference_probabilities(model, image)
    # the output varies by far more than the tolerance below, so the comparison means something
    assert np.ptp(reference, axis=(1, 2, 3)).max() > 50 * 1e-4
    np.testing.assert_allclose(fast.probabilities, reference, atol=1e-4)
    np.testing.assert_array_equal(fast.labels, fast.probabilities.argmax(0))


def test_bf16_argmax_mostly_agrees_with_float32(tiny_model_dir, rng):
    """Measured, not promised: bf16 may flip near-ties; a tiny untrained net has many."""
    model = load_model(tiny_model_dir, CPU)
    image = Volume(_ct(rng), oblique_affine())
    fp32 = predict_volume(model, image, progress=False, precision="fp32")
    bf16 = predict_volume(model, image, progress=False, precision="bf16")
    assert np.mean(fp32.labels == bf16.labels) > 0.9
    assert np.abs(fp32.probabilities - bf16.probabilities).max() < 0.1


def test_large_planes_go_through_the_network_in_smaller_batches():
    assert planes_per_batch(16, 64, 64) == 16
    assert planes_per_batch(16, 512, 512) == 4  # 2**20 pixels a batch
    assert planes_per_batch(16, 2048, 2048) == 1, "at least one plane"


def test_a_small_pixel_budget_changes_the_batches_not_the_result(tiny_model_dir, rng,
                                                                 monkeypatch):
    model = load_model(tiny_model_dir, CPU)
    image = Volume(_ct(rng), oblique_affine())
    whole = predict_volume(model, image, progress=False, precision="fp32")
    seen = []
    model.network.register_forward_hook(lambda _m, args, _out: seen.append(len(args[0])))
    monkeypatch.setattr("hipseg.inference.volume.MAX_BATCH_PIXELS", 1)
    one_plane = predict_volume(model, image, progress=False, precision="fp32")
    assert seen and set(seen) == {1}
    np.testing.assert_allclose(one_plane.probabilities, whole.probabilities, atol=1e-5)
