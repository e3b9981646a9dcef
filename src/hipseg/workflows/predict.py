"""Prediction: every plane of every view, mapped back onto the voxel grid, summed, argmax."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hipseg.collisions import count_collisions, default_eps_mm
from hipseg.core.errors import HipsegError, InputError
from hipseg.core.labels import LabelTable
from hipseg.core.volume import Volume
from hipseg.fusion import ViewAggregator
from hipseg.io import case_id, read_image, write_image, write_labels
from hipseg.postprocess import enforce_min_gap, symmetric_components_with_report
from hipseg.preprocess import preprocess_image
from hipseg.views.grid import prediction_grid
from hipseg.views.mapping import map_stack_to_voxels
from hipseg.views.sampling import sample_planes
from hipseg.workflows.device import physical_memory_bytes
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


def estimate_prediction_bytes(shape: tuple[int, int, int], n_classes: int, n_views: int,
                              stack_dim: int) -> int:
    """Peak bytes :func:`predict_volume` needs for a scan, from its arrays.

    Per voxel: the image and its scaled copy (float32), the summed and one mapped view's
    probabilities (``2 C`` float32), each view's vote and coverage (2 bytes a view), the output
    maps; plus one view's probability stack ``C * dim**3`` float32.
    """
    voxels = int(np.prod(shape))
    per_voxel = 4 * 2 + 4 * 2 * n_classes + 2 * n_views + 4 * 2 + 1
    return voxels * per_voxel + 4 * n_classes * stack_dim**3


def predict_volume(model: LoadedModel, image: Volume, *, batch_size: int = 16,
                   max_memory_bytes: int | None = None, progress: bool = True) -> Prediction:
    """Segment one scan with all of the model's views (SPEC step 7).

    Parameters
    ----------
    image : Volume
        CT intensities in HU, shape (X, Y, Z).
    max_memory_bytes : int, optional
        Refuse (``ValueError`` with the estimate and the limit) a scan whose prediction would
        need more; default 80 % of the physical memory.

    Raises
    ------
    ValueError
        The scan is too large, or its intensities cannot be scaled.
    """
    config, network, device = model.config, model.network, model.device
    limit = int(0.8 * physical_memory_bytes()) if max_memory_bytes is None else max_memory_bytes
    largest = prediction_grid(np.eye(3)[0], image.center_mm, image.extent_mm,
                              config.sampling.pixel_spacing_mm, network.size_multiple)
    needed = estimate_prediction_bytes(image.shape, config.labels.n_classes,
                                       len(config.views.directions), largest.dim)
    if needed > limit:
        raise ValueError(f"predicting this {image.shape} scan needs about {needed / 2**30:.1f} GiB, "
                         f"more than the limit of {limit / 2**30:.1f} GiB (--max-memory-gb); "
                         "crop the scan or raise the limit")
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
    min_gap_mm: float | None = None
    collision_eps_mm: float | None = None
    save_probabilities: bool = False
    save_uncertainty: bool = False
    overwrite: bool = False
    max_memory_gb: float | None = None


@dataclass(frozen=True)
class PredictionSummary:
    """One written prediction: where, its |E|, and what post-processing changed."""

    case_id: str
    path: Path
    collisions: int
    collision_eps_mm: float
    mean_disagreement: float
    voxels_moved: int
    voxels_removed: int
    gap_voxels_changed: int


def finish_prediction(prediction: Prediction, image: Volume, labels_table: LabelTable,
                      options: PredictOptions) -> tuple[np.ndarray, PredictionSummary]:
    """Post-process the fused labels and measure them (no files).

    Post-processing is the symmetric connected components (SPEC step 8), then the gap
    guarantee: no voxel of one bone touches another bone (or comes closer than
    ``options.min_gap_mm``); contested voxels go to background, the one with the lower summed
    view probability of its own class losing.

    Returns the final uint8 label map and a summary whose ``path`` is still empty.
    """
    labels, moved, removed, gap_changed = prediction.labels, 0, 0, 0
    if options.postprocess:
        labels, report = symmetric_components_with_report(labels, labels_table,
                                                           connectivity=options.connectivity)
        moved, removed = report.total_moved, report.total_removed
        labels, gap_changed = enforce_min_gap(labels, image.spacing_mm,
                                              min_gap_mm=options.min_gap_mm,
                                              probabilities=prediction.probabilities)
    eps_mm = (default_eps_mm(image.spacing_mm) if options.collision_eps_mm is None
              else options.collision_eps_mm)
    collisions, _ = count_collisions(labels, image.spacing_mm, eps_mm)
    foreground = labels > 0
    disagreement = float(prediction.disagreement[foreground].mean()) if foreground.any() else 0.0
    return labels, PredictionSummary("", Path(), collisions, eps_mm, disagreement, moved, removed,
                                     gap_changed)


def predict_files(model: LoadedModel, inputs: list[Path], out_dir: Path, *,
                  options: PredictOptions | None = None,
                  progress: bool = True) -> list[PredictionSummary]:
    """Predict each input and write ``OUT/<case id>.nii.gz`` on the input's exact grid.

    Also ``<case id>_probabilities.nii.gz`` (fused, classes last) and
    ``<case id>_uncertainty.nii.gz`` (fraction of views voting against the fused label) when
    asked. An input whose label map already exists is skipped unless ``options.overwrite``.
    Raises ``HipsegError`` after trying every input if some failed, naming them.
    """
    options = PredictOptions() if options is None else options
    max_memory = None if options.max_memory_gb is None else int(options.max_memory_gb * 2**30)
    summaries, failed = [], []
    for path in tqdm(inputs, desc="predicting", disable=not progress or len(inputs) < 2):
        target = output_path(out_dir, path)
        if target.exists() and not options.overwrite:
            logger.info("skipping %s: %s exists (--overwrite to redo)", path, target)
            continue
        try:
            image = read_image(path)
            try:
                prediction = predict_volume(model, image, max_memory_bytes=max_memory,
                                            progress=progress)
            except ValueError as err:
                raise InputError(path, str(err)) from None
            labels, summary = finish_prediction(prediction, image, model.config.labels, options)
            write_labels(target, labels, reference=path)
            if options.save_probabilities:
                write_image(output_path(out_dir, path, "_probabilities"),
                            np.moveaxis(prediction.probabilities, 0, -1), image.affine)
            if options.save_uncertainty:
                write_image(output_path(out_dir, path, "_uncertainty"), prediction.disagreement,
                            image.affine)
            summaries.append(dataclasses.replace(summary, case_id=case_id(path), path=target))
            logger.info("wrote %s: |E| = %d collision voxels (eps %.1f mm), mean view "
                        "disagreement %.3f, post-processing moved %d, removed %d and cleared "
                        "%d voxels to keep the bones apart", target, summary.collisions,
                        summary.collision_eps_mm, summary.mean_disagreement, summary.voxels_moved,
                        summary.voxels_removed, summary.gap_voxels_changed)
        except InputError as err:
            if len(inputs) > 1:
                logger.error("%s", err)
            failed.append(err)
    if len(failed) == 1 and len(inputs) == 1:
        raise failed[0]
    if failed:
        raise HipsegError(f"{len(failed)} of {len(inputs)} inputs failed: "
                          + "; ".join(str(err) for err in failed))
    return summaries
