"""Prediction: every plane of every view, mapped back onto the voxel grid, summed, argmax."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hipseg.collisions import count_collisions
from hipseg.core.errors import HipsegError, InputError
from hipseg.core.labels import LabelTable
from hipseg.core.volume import Volume
from hipseg.fusion import ViewAggregator
from hipseg.io import case_id, read_image, write_image, write_labels
from hipseg.postprocess import symmetric_components_with_report
from hipseg.preprocess import preprocess_image
from hipseg.views.grid import prediction_grid
from hipseg.views.mapping import map_stack_to_voxels
from hipseg.views.sampling import sample_planes
from hipseg.workflows.model_io import LoadedModel

__all__ = [
    "PredictOptions",
    "Prediction",
    "PredictionSummary",
    "finish_prediction",
    "predict_files",
    "predict_volume",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Prediction:
    """A fused prediction on the input's voxel grid.

    ``labels`` ``(X, Y, Z)`` uint8; ``probabilities`` ``(C, X, Y, Z)`` float32, the views'
    summed probabilities normalised to sum to 1 in every voxel (a view that does not reach a
    voxel adds nothing to it); ``disagreement`` ``(X, Y, Z)`` float32.
    """

    labels: np.ndarray
    probabilities: np.ndarray
    disagreement: np.ndarray


def predict_volume(model: LoadedModel, image: Volume, *, batch_size: int = 16,
                   progress: bool = True) -> Prediction:
    """Segment one scan with all of the model's views (SPEC step 7).

    Parameters
    ----------
    image : Volume
        CT intensities in HU, shape (X, Y, Z).
    """
    config, network, device = model.config, model.network, model.device
    scaled = preprocess_image(image.data, config.preprocess.clip_below_hu)
    volume = torch.from_numpy(scaled)[None].to(device)
    fill_value = float(scaled.min())
    aggregator = ViewAggregator(config.labels.n_classes, image.shape, device=device)
    directions = np.asarray(config.views.directions)
    for view, direction in enumerate(directions):
        grid = prediction_grid(direction, image.center_mm, image.extent_mm,
                               config.sampling.pixel_spacing_mm, network.size_multiple)
        to_voxel = grid.stack_to_voxel(image.affine)
        stack = torch.empty((config.labels.n_classes, grid.n_planes, grid.dim, grid.dim),
                            dtype=torch.float32, device=device)
        starts = range(0, grid.n_planes, batch_size)
        for start in tqdm(starts, desc=f"view {view + 1}/{len(directions)}", disable=not progress,
                          leave=False):
            planes = torch.arange(start, min(start + batch_size, grid.n_planes), device=device)
            slices = sample_planes(volume, to_voxel, planes, grid.dim, mode="bilinear",
                                   fill_value=fill_value)
            with torch.no_grad():
                probabilities = torch.softmax(network(slices), dim=1)
            stack[:, start : start + len(planes)] = probabilities.permute(1, 0, 2, 3)
        aggregator.add(map_stack_to_voxels(stack, to_voxel, image.shape))
    summed, labels, disagreement = aggregator.finalize()
    return Prediction(
        labels=labels.cpu().numpy(),
        probabilities=(summed / summed.sum(0).clamp(min=1e-12)).cpu().numpy(),
        disagreement=disagreement.cpu().numpy(),
    )


def output_path(out_dir: Path, input_path: Path, suffix: str = "") -> Path:
    """``OUT/<case id><suffix>.nii.gz``."""
    return Path(out_dir) / f"{case_id(input_path)}{suffix}.nii.gz"


@dataclass(frozen=True)
class PredictOptions:
    """What ``predict`` does after fusion and what it writes besides the label map."""

    postprocess: bool = True
    connectivity: int = 26
    collision_eps_mm: float = 2.0
    save_probabilities: bool = False
    save_uncertainty: bool = False


@dataclass(frozen=True)
class PredictionSummary:
    """One written prediction: where, its |E|, and what post-processing changed."""

    case_id: str
    path: Path
    collisions: int
    mean_disagreement: float
    voxels_moved: int
    voxels_removed: int


def finish_prediction(prediction: Prediction, image: Volume, labels_table: LabelTable,
                      options: PredictOptions) -> tuple[np.ndarray, PredictionSummary]:
    """Post-process the fused labels and measure them (no files).

    Returns the final uint8 label map and a summary whose ``path`` is still empty.
    """
    labels, moved, removed = prediction.labels, 0, 0
    if options.postprocess:
        labels, report = symmetric_components_with_report(labels, labels_table,
                                                           connectivity=options.connectivity)
        moved, removed = report.total_moved, report.total_removed
    collisions, _ = count_collisions(labels, image.spacing_mm, options.collision_eps_mm)
    foreground = labels > 0
    disagreement = float(prediction.disagreement[foreground].mean()) if foreground.any() else 0.0
    return labels, PredictionSummary("", Path(), collisions, disagreement, moved, removed)


def predict_files(model: LoadedModel, inputs: list[Path], out_dir: Path, *,
                  options: PredictOptions | None = None,
                  progress: bool = True) -> list[PredictionSummary]:
    """Predict each input and write ``OUT/<case id>.nii.gz`` on the input's exact grid.

    Also ``<case id>_probabilities.nii.gz`` (fused, classes last) and
    ``<case id>_uncertainty.nii.gz`` (fraction of views voting against the fused label) when
    asked. Raises ``HipsegError`` after trying every input if some failed, naming them.
    """
    options = PredictOptions() if options is None else options
    summaries, failed = [], []
    for path in tqdm(inputs, desc="predicting", disable=not progress or len(inputs) < 2):
        try:
            image = read_image(path)
            try:
                prediction = predict_volume(model, image, progress=progress)
            except ValueError as err:
                raise InputError(path, str(err)) from None
            labels, summary = finish_prediction(prediction, image, model.config.labels, options)
            target = output_path(out_dir, path)
            write_labels(target, labels, reference=path)
            if options.save_probabilities:
                write_image(output_path(out_dir, path, "_probabilities"),
                            np.moveaxis(prediction.probabilities, 0, -1), image.affine)
            if options.save_uncertainty:
                write_image(output_path(out_dir, path, "_uncertainty"), prediction.disagreement,
                            image.affine)
            summaries.append(dataclasses.replace(summary, case_id=case_id(path), path=target))
            logger.info("wrote %s: |E| = %d collision voxels (eps %.1f mm), mean view "
                        "disagreement %.3f, post-processing moved %d and removed %d voxels",
                        target, summary.collisions, options.collision_eps_mm,
                        summary.mean_disagreement, summary.voxels_moved, summary.voxels_removed)
        except InputError as err:
            logger.error("%s", err)
            failed.append(path)
    if failed:
        raise HipsegError(f"{len(failed)} of {len(inputs)} inputs failed: "
                          + ", ".join(str(p) for p in failed))
    return summaries
