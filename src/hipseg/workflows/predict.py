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
from hipseg.io import case_id, image_format, output_suffix, read_image, write_image, write_labels
from hipseg.models.unet2d import fused_for_inference
from hipseg.postprocess import enforce_min_gap, symmetric_components_with_report
from hipseg.preprocess import network_input
from hipseg.views.grid import StackWindow, ViewGrid, prediction_grid, stack_window
from hipseg.views.sampling import sample_planes
from hipseg.workflows.device import autocast_dtype, physical_memory_bytes
from hipseg.workflows.model_io import LoadedModel
from hipseg.workflows.predict3d import predict_probabilities_3d

__all__ = [
    "PredictOptions",
    "Prediction",
    "PredictionSummary",
    "finish_prediction",
    "predict_files",
    "predict_stack",
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


#: Pixels of air kept around a scan's projection in each plane (``context_px``); see
#: :func:`hipseg.views.grid.stack_window` and ``docs/performance.md`` for the agreement measured.
DEFAULT_CONTEXT_PX = 32

#: Pixels per network batch at most: the activations grow with a batch's pixels, and 16 planes
#: of ~400 x 400 px (a 415 x 244 x 266 CT at 0.8 mm pixels) helped that scan to a 4.4 GiB peak.
MAX_BATCH_PIXELS = 2**20


def estimate_prediction_bytes(shape: tuple[int, int, int], n_classes: int,
                              stack_dim: int, in_channels: int = 2) -> int:
    """Peak bytes :func:`predict_volume` needs for a scan, from its arrays.

    Per voxel: the image and the network's ``in_channels`` input channels (float32), the summed probabilities (``C``
    float32), the vote counters (``C + 1`` bytes), one slab's mapped values, the output maps;
    plus one view's tiled probability stack, at most ``C * (dim + 2)**3`` float32. The fusion
    streams, so nothing grows with the number of views.
    """
    voxels = int(np.prod(shape))
    per_voxel = 4 * (1 + in_channels) + 4 * n_classes + (n_classes + 1) + 4 + 1
    return voxels * per_voxel + 4 * n_classes * (stack_dim + 2) ** 3


def view_geometry(model: LoadedModel, image: Volume, context_px: int | None = DEFAULT_CONTEXT_PX
                  ) -> list[tuple[ViewGrid, StackWindow, np.ndarray]]:
    """Per view of ``model``: its plane grid over ``image``, the window of that stack the
    network runs on (``context_px`` as :func:`hipseg.views.grid.stack_window`), and the
    ``(4, 4)`` matrix from that window's stack index to voxel index."""
    multiple = model.network.size_multiple
    geometry = []
    for direction in np.asarray(model.config.views.directions):
        grid = prediction_grid(direction, image.center_mm, image.extent_mm,
                               model.config.sampling.pixel_spacing_mm, multiple)
        window = stack_window(grid, image.affine, image.shape, context_px=context_px,
                              multiple_of=multiple)
        geometry.append((grid, window, grid.stack_to_voxel(image.affine) @ window.shift()))
    return geometry


def predict_volume(model: LoadedModel, image: Volume, *, batch_size: int = 16,
                   max_memory_bytes: int | None = None, progress: bool = True,
                   precision: str = "auto", context_px: int | None = DEFAULT_CONTEXT_PX
                   ) -> Prediction:
    """Segment one scan with all of the model's views (SPEC step 7).

    Each view's planes are cut from the scan in batches, run through the network (batch norms
    folded, channels-last, autocast per ``precision``) under ``torch.inference_mode``, kept as
    one tiled stack, and mapped back slab by slab straight into the running sum, so memory does
    not grow with the number of views.

    Parameters
    ----------
    image : Volume
        CT intensities in HU, shape (X, Y, Z).
    max_memory_bytes : int, optional
        Refuse (``ValueError`` with the estimate and the limit) a scan whose prediction would
        need more; default 80 % of the physical memory.
    precision : {"auto", "fp32", "bf16", "fp16"}
        Autocast dtype of the network (:func:`hipseg.workflows.device.autocast_dtype`).
    context_px : int or None
        Pixels of air kept around the scan in each plane; ``None`` predicts whole planes.

    Raises
    ------
    ValueError
        The scan is too large, or its intensities cannot be scaled.
    """
    config, network, device = model.config, model.network, model.device
    if config.model.architecture == "unet3d":  # the ablation's baseline: no views to fuse
        probabilities = predict_probabilities_3d(model, image, progress=progress)
        return Prediction(probabilities.argmax(0).astype(np.uint8), probabilities,
                          np.zeros(image.shape, np.float32))
    limit = int(0.8 * physical_memory_bytes()) if max_memory_bytes is None else max_memory_bytes
    largest = prediction_grid(np.eye(3)[0], image.center_mm, image.extent_mm,
                              config.sampling.pixel_spacing_mm, network.size_multiple)
    needed = estimate_prediction_bytes(image.shape, config.labels.n_classes, largest.dim,
                                       config.model.in_channels)
    if needed > limit:
        raise ValueError(f"predicting this {image.shape} scan needs about {needed / 2**30:.1f} GiB, "
                         f"more than the limit of {limit / 2**30:.1f} GiB (--max-memory-gb); "
                         "crop the scan or raise the limit")
    channels, fill_values = network_input(image.data, image.affine,
                                          clip_below_hu=config.preprocess.clip_below_hu,
                                          lateral_channel=config.model.lateral_channel)
    volume = torch.from_numpy(channels).to(device)
    fill_value = tuple(fill_values.tolist())
    fast = fused_for_inference(network).to(memory_format=torch.channels_last)
    dtype = autocast_dtype(device, precision)
    aggregator = ViewAggregator(config.labels.n_classes, image.shape, device=device)
    directions = np.asarray(config.views.directions)
    for view, (_, window, to_voxel) in enumerate(view_geometry(model, image, context_px)):
        stack = predict_stack(fast, volume, to_voxel, window, fill_value=fill_value,
                              batch_size=batch_size, autocast=dtype,
                              progress_desc=f"view {view + 1}/{len(directions)}" if progress
                              else None)
        aggregator.add_stack(stack, to_voxel)
        del stack
    summed, labels, disagreement = aggregator.finalize()
    summed /= summed.sum(0).clamp(min=1e-12)  # in place: the sum is not needed any more
    return Prediction(labels=labels.cpu().numpy(), probabilities=summed.cpu().numpy(),
                      disagreement=disagreement.cpu().numpy())


def planes_per_batch(batch_size: int, n_rows: int, n_cols: int) -> int:
    """At most ``batch_size`` planes of ``n_rows x n_cols`` pixels, and at most
    :data:`MAX_BATCH_PIXELS` pixels per batch (always at least one plane)."""
    return max(1, min(batch_size, MAX_BATCH_PIXELS // (n_rows * n_cols)))


def predict_stack(network: torch.nn.Module, volume: torch.Tensor, to_voxel: np.ndarray,
                  window: StackWindow, *, fill_value: float | tuple[float, ...], batch_size: int = 16,
                  autocast: torch.dtype | None = None,
                  progress_desc: str | None = None) -> torch.Tensor:
    """Class probabilities of every plane of one view's (cropped) stack.

    Planes go through the network ``batch_size`` at a time, fewer where they are so large that
    a batch would pass :data:`MAX_BATCH_PIXELS`.

    Parameters
    ----------
    network : Module
        In eval mode, on the volume's device; returns logits ``(B, C, R, K)``.
    volume : Tensor, shape (C, X, Y, Z), float32
        The pre-processed scan.
    to_voxel : ndarray, shape (4, 4)
        From cropped-stack index to voxel index.
    window : StackWindow
        Planes, rows and columns of the cropped stack.
    autocast : torch.dtype, optional
        Run the network under autocast to this dtype (softmax stays float32).

    Returns
    -------
    Tensor, shape (window.n_planes, window.n_rows, window.n_cols, C), float32
        Classes last, as :meth:`hipseg.fusion.ViewAggregator.add_stack` reads them.
    """
    stack: torch.Tensor | None = None
    batch_size = planes_per_batch(batch_size, window.n_rows, window.n_cols)
    starts = range(0, window.n_planes, batch_size)
    with torch.inference_mode(), torch.autocast(volume.device.type, dtype=autocast,
                                                enabled=autocast is not None):
        for start in tqdm(starts, desc=progress_desc, disable=progress_desc is None, leave=False):
            planes = torch.arange(start, min(start + batch_size, window.n_planes),
                                  device=volume.device)
            slices = sample_planes(volume, to_voxel, planes, (window.n_rows, window.n_cols),
                                   fill_value=fill_value)
            logits = network(slices.contiguous(memory_format=torch.channels_last))
            probabilities = torch.softmax(logits.float(), dim=1)
            if stack is None:
                stack = torch.empty((window.n_planes, window.n_rows, window.n_cols,
                                     probabilities.shape[1]), device=volume.device)
            stack[start : start + len(planes)] = probabilities.permute(0, 2, 3, 1)
    return stack


def output_path(out_dir: Path, input_path: Path, suffix: str = "", ext: str = ".nii.gz") -> Path:
    """``OUT/<case id><suffix><ext>``."""
    return Path(out_dir) / f"{case_id(input_path)}{suffix}{ext}"


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
    #: ``nifti``, ``nrrd``, ``metaimage``, or ``input`` (each input's own format, not DICOM).
    output_format: str = "nifti"
    #: Which series of a DICOM folder to read (default: the one with the most slices).
    series_uid: str | None = None
    #: Network autocast: ``auto``, ``fp32`` (off), ``bf16`` or ``fp16`` (see ``device.py``).
    precision: str = "auto"
    #: Crop to the hip region found by a coarse pass, with this margin in mm (None: no crop).
    crop_margin_mm: float | None = None


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
    #: Names of the classes with no voxel in the final label map.
    empty_classes: tuple[str, ...] = ()


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

    Inputs are image files or DICOM series folders; ``options.output_format`` picks the
    output's format (NIfTI by default).

    Also ``<case id>_probabilities.nii.gz`` (fused, classes last) and
    ``<case id>_uncertainty.nii.gz`` (fraction of views voting against the fused label) when
    asked. An input whose label map already exists is skipped unless ``options.overwrite``.
    Raises ``HipsegError`` after trying every input if some failed, naming them.
    """
    options = PredictOptions() if options is None else options
    max_memory = None if options.max_memory_gb is None else int(options.max_memory_gb * 2**30)
    summaries, failed = [], []
    for path in tqdm(inputs, desc="predicting", disable=not progress or len(inputs) < 2):
        try:
            ext = output_suffix(options.output_format, path)
        except ValueError as err:
            raise InputError(path, str(err)) from None
        target = output_path(out_dir, path, ext=ext)
        if target.exists() and not options.overwrite:
            logger.info("skipping %s: %s exists (--overwrite to redo)", path, target)
            continue
        try:
            image = read_image(path, series_uid=options.series_uid)
            try:
                if options.crop_margin_mm is None:
                    prediction = predict_volume(model, image, max_memory_bytes=max_memory,
                                                progress=progress, precision=options.precision)
                else:
                    # Imported here: localize builds on this module's predict_volume.
                    from hipseg.workflows.localize import predict_hip_region

                    prediction = predict_hip_region(model, image, margin_mm=options.crop_margin_mm,
                                                    max_memory_bytes=max_memory, progress=progress,
                                                    precision=options.precision)
            except ValueError as err:
                raise InputError(path, str(err)) from None
            labels, summary = finish_prediction(prediction, image, model.config.labels, options)
            present = np.bincount(labels.ravel(), minlength=model.config.labels.n_classes) > 0
            summary = dataclasses.replace(summary, empty_classes=tuple(
                model.config.labels.names[c] for c in model.config.labels.foreground_ids
                if not present[c]))
            # A NIfTI input's header is copied; other inputs give their geometry through `image`.
            write_labels(target, labels, reference=path if image_format(path) == "nifti" else image)
            if options.save_probabilities:
                write_image(output_path(out_dir, path, "_probabilities", ext),
                            np.moveaxis(prediction.probabilities, 0, -1), image.affine)
            if options.save_uncertainty:
                write_image(output_path(out_dir, path, "_uncertainty", ext), prediction.disagreement,
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
