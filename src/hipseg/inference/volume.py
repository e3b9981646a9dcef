"""Predicting one volume: every plane of every view, mapped back onto the voxel grid, summed,
argmax. No files: a :class:`~hipseg.core.volume.Volume` in, a :class:`Prediction` out."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from hipseg.core.errors import ConfigError, VolumeError
from hipseg.core.volume import Volume, mirrored_affine
from hipseg.crop import Box, joint_boxes
from hipseg.fusion import ViewAggregator
from hipseg.inference.predict3d import predict_probabilities_3d
from hipseg.models.unet2d import fused_for_inference
from hipseg.preprocess import body_midline_x_mm, model_input
from hipseg.runtime.device import autocast_dtype, physical_memory_bytes
from hipseg.runtime.model_io import LoadedModel
from hipseg.views.grid import StackWindow, ViewGrid, prediction_grid, stack_window
from hipseg.views.sampling import sample_planes

__all__ = [
    "DEFAULT_CONTEXT_PX",
    "JOINT_MARGIN_MM",
    "JOINT_REGION_MM",
    "MAX_BATCH_PIXELS",
    "Prediction",
    "estimate_joint_pass_bytes",
    "estimate_prediction_bytes",
    "planes_per_batch",
    "predict_stack",
    "predict_volume",
    "view_geometry",
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

#: The joint pass (``refine_joints``) re-predicts where two first-pass bones come within this
#: many mm of each other: the widest joint spaces (5 mm) plus a closed one's overlap.
JOINT_REGION_MM = 8.0
#: ... and this many mm around it, so the seams lie in bone or soft tissue, not in a gap. The
#: planes are cut from the whole scan, so the margin is not the network's context. On the 23
#: real maps (a perfect first pass) the boxes cover 7.3 % of the scan at 4 mm and 12.8 % at
#: 10 mm (benchmarks/joint_boxes.py).
JOINT_MARGIN_MM = 4.0


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


def estimate_joint_pass_bytes(boxes: list[Box], scan_shape: tuple[int, int, int],
                              spacing_mm: np.ndarray, pixel_spacing_mm: float, n_classes: int,
                              context_px: int | None, stack_dim: int) -> int:
    """Bytes the joint pass adds to the first pass's: every box's aggregator (``C`` float32
    sums, ``C + 1`` vote bytes per voxel, all held at once), the temporaries of the largest
    box where it is written back (two ``C`` float32 and 36 bytes per voxel: the running mean's
    weights, the normaliser, the argmax), and that box's tiled stack, at most ``C``
    float32 per pixel of a cube whose side is the box's diagonal at ``pixel_spacing_mm`` plus
    the context on both sides, and never more than the whole scan's ``stack_dim`` pixels (all
    of it with ``context_px=None``); and two bytes per voxel of the scan that count how often
    the boxes cover it."""
    if not boxes:
        return 0
    sizes_mm = [np.asarray(hi - lo) * np.asarray(spacing_mm) for lo, hi in boxes]
    aggregators = (sum(int(np.prod(hi - lo)) for lo, hi in boxes) * (5 * n_classes + 1)
                   + max(int(np.prod(hi - lo)) for lo, hi in boxes) * (8 * n_classes + 36)
                   + 2 * int(np.prod(scan_shape)))
    side = stack_dim if context_px is None else min(
        stack_dim, max(float(np.linalg.norm(size)) for size in sizes_mm) / pixel_spacing_mm
        + 2 * context_px)
    return aggregators + 4 * n_classes * int(side + 2) ** 3


def view_geometry(model: LoadedModel, image: Volume, context_px: int | None = DEFAULT_CONTEXT_PX,
                  pixel_spacing_mm: float | None = None, region: Box | None = None
                  ) -> list[tuple[ViewGrid, StackWindow, np.ndarray, np.ndarray]]:
    """Per view of ``model``: its plane grid over ``image`` at ``pixel_spacing_mm`` (default:
    the model's), the window of that stack the network runs on, and two ``(4, 4)`` matrices
    from that window's stack index: to ``image``'s voxel index (where the planes are cut) and
    to the voxel index of ``region`` (where they are mapped back).

    ``region`` is a voxel box ``(lo, hi)`` of ``image`` (default: all of it); the window
    covers its voxels plus ``context_px`` pixels (as :func:`hipseg.views.grid.stack_window`),
    and the planes still sample the whole image, so the context is the scan's, not air.
    """
    multiple = model.network.size_multiple
    spacing = model.config.sampling.prediction_pixel_spacing_mm(pixel_spacing_mm)
    lo, hi = (np.zeros(3, int), np.array(image.shape)) if region is None else region
    region_affine = np.asarray(image.affine, float).copy()
    region_affine[:3, 3] += region_affine[:3, :3] @ np.asarray(lo, float)
    region_shape = tuple(int(n) for n in np.asarray(hi) - np.asarray(lo))
    geometry = []
    for direction in np.asarray(model.config.views.directions):
        grid = prediction_grid(direction, image.center_mm, image.extent_mm, spacing, multiple)
        window = stack_window(grid, region_affine, region_shape, context_px=context_px,
                              multiple_of=multiple)
        geometry.append((grid, window, grid.stack_to_voxel(image.affine) @ window.shift(),
                         grid.stack_to_voxel(region_affine) @ window.shift()))
    return geometry


def mirrored_volume(image: Volume) -> Volume:
    """``image`` seen mirrored across the body's midline (:func:`body_midline_x_mm`): the same
    voxels, the patient's sides exchanged in scanner space."""
    return Volume(image.data, mirrored_affine(image.affine,
                                              body_midline_x_mm(image.data, image.affine)))


def predict_volume(model: LoadedModel, image: Volume, *, batch_size: int = 16,
                   max_memory_bytes: int | None = None, progress: bool = True,
                   precision: str = "auto", context_px: int | None = DEFAULT_CONTEXT_PX,
                   mirror: bool = False, pixel_spacing_mm: float | None = None,
                   refine_joints: bool = False) -> Prediction:
    """Segment one scan with all of the model's views (SPEC step 7), or with the 3D
    baseline's sliding window (:data:`PREDICTORS` by ``model.architecture``).

    Each view's planes are cut from the scan in batches, run through the network (batch norms
    folded, channels-last, autocast per ``precision``) under ``torch.inference_mode``, kept as
    one tiled stack, and mapped back slab by slab straight into the running sum, so memory does
    not grow with the number of views.

    Parameters
    ----------
    image : Volume
        CT intensities in HU, shape (X, Y, Z).
    max_memory_bytes : int, optional
        Refuse (:class:`VolumeError` with the estimate and the limit) a scan whose prediction would
        need more; default 80 % of the physical memory.
    precision : {"auto", "fp32", "bf16", "fp16"}
        Autocast dtype of the network (:func:`hipseg.runtime.device.autocast_dtype`).
    context_px : int or None
        Pixels of air kept around the scan in each plane; ``None`` predicts whole planes.
    mirror : bool
        Also predict the scan mirrored across the body's midline (:func:`mirrored_volume`),
        swap the side ids of that prediction back, and fuse both: twice the network's work,
        the same memory. A test-time augmentation, measured in docs/accuracy.md.
    pixel_spacing_mm : float, optional
        Plane pixel spacing (mm) within the range the model was trained at
        (:meth:`~hipseg.core.config.SamplingConfig.prediction_pixel_spacing_mm`); default the
        model's. The 3D baseline has no planes and refuses one.
    refine_joints : bool
        A second pass at the finest spacing the model was trained at, over boxes around the
        places where two bones of the first pass come within :data:`JOINT_REGION_MM` (plus
        :data:`JOINT_MARGIN_MM`); its probabilities replace the first pass's there (where
        boxes overlap, by the mean of theirs). Needs a
        model trained at several spacings (``train --finest-pixel-mm``).

    Raises
    ------
    VolumeError
        The scan is too large, or its intensities cannot be scaled.
    ConfigError
        ``pixel_spacing_mm`` is outside the model's trained range, or given to a 3D UNet;
        ``refine_joints`` for a model trained at one spacing or a 3D UNet.
    """
    return PREDICTORS[model.config.model.architecture](
        model, image, batch_size=batch_size, max_memory_bytes=max_memory_bytes,
        progress=progress, precision=precision, context_px=context_px, mirror=mirror,
        pixel_spacing_mm=pixel_spacing_mm, refine_joints=refine_joints)


def _predict_patches(model: LoadedModel, image: Volume, *, progress: bool = True,
                     mirror: bool = False, pixel_spacing_mm: float | None = None,
                     refine_joints: bool = False, **_: object) -> Prediction:
    """The ablation's 3D baseline: a sliding window, no views to fuse (no disagreement)."""
    if pixel_spacing_mm is not None or refine_joints:
        raise ConfigError("a pixel spacing or a joint pass was asked for, but a 3D UNet "
                          "predicts on the scan's own voxels, not on planes")
    probabilities = predict_probabilities_3d(model, image, progress=progress)
    if mirror:
        swapped = list(model.config.labels.mirrored_ids)
        probabilities += predict_probabilities_3d(model, mirrored_volume(image),
                                                  progress=progress)[swapped]
        probabilities /= 2.0
    return Prediction(probabilities.argmax(0).astype(np.uint8), probabilities,
                      np.zeros(image.shape, np.float32))


def _predict_views(model: LoadedModel, image: Volume, *, batch_size: int,
                   max_memory_bytes: int | None, progress: bool, precision: str,
                   context_px: int | None, mirror: bool,
                   pixel_spacing_mm: float | None, refine_joints: bool) -> Prediction:
    """Every plane of every view of the model, fused (see :func:`predict_volume`)."""
    config, network, device = model.config, model.network, model.device
    limit = int(0.8 * physical_memory_bytes()) if max_memory_bytes is None else max_memory_bytes
    spacing = config.sampling.prediction_pixel_spacing_mm(pixel_spacing_mm)
    finest = config.sampling.trained_pixel_spacings_mm[0]
    if refine_joints and not config.sampling.several_spacings:
        raise ConfigError("a joint pass needs a model trained at several pixel spacings "
                          "(train --finest-pixel-mm); this one knows only "
                          f"{config.sampling.pixel_spacing_mm:.3g} mm")
    largest = prediction_grid(np.eye(3)[0], image.center_mm, image.extent_mm, spacing,
                              network.size_multiple)
    needed = estimate_prediction_bytes(image.shape, config.labels.n_classes, largest.dim,
                                       config.model.in_channels)
    if needed > limit:
        raise VolumeError(f"predicting this {image.shape} scan needs about {needed / 2**30:.3g} "
                          f"GiB, more than the limit of {limit / 2**30:.3g} GiB (--max-memory-gb); "
                         "crop the scan or raise the limit")
    passes = {"fast": fused_for_inference(network).to(memory_format=torch.channels_last),
              "dtype": autocast_dtype(device, precision), "mirror": mirror,
              "batch_size": batch_size, "context_px": context_px, "progress": progress}
    [(summed, labels, disagreement)] = _fused_views(model, image, [None], spacing, **passes)
    summed /= summed.sum(0).clamp(min=1e-12)  # in place: the sum is not needed any more
    if refine_joints:
        boxes = joint_boxes(labels.cpu().numpy(), image.spacing_mm, max_gap_mm=JOINT_REGION_MM,
                            margin_mm=JOINT_MARGIN_MM)
        logger.info("joint pass at %.2f mm pixels over %d boxes (summed volume %.0f%% of the "
                    "scan's; overlaps count twice)",
                    finest, len(boxes), 100 * sum(np.prod(hi - lo) for lo, hi in boxes)
                    / np.prod(image.shape))
        fine_dim = prediction_grid(np.eye(3)[0], image.center_mm, image.extent_mm, finest,
                                   network.size_multiple).dim
        joint_bytes = estimate_joint_pass_bytes(boxes, image.shape, image.spacing_mm, finest,
                                                config.labels.n_classes, context_px, fine_dim)
        if needed + joint_bytes > limit:
            raise VolumeError(f"the joint pass over {len(boxes)} boxes needs about "
                              f"{(needed + joint_bytes) / 2**30:.3g} GiB with the first pass, "
                              f"more than the limit of {limit / 2**30:.3g} GiB "
                              "(--max-memory-gb); predict without --refine-joints")
        fine = _fused_views(model, image, boxes, finest, **passes) if boxes else []
        times_refined = torch.zeros(image.shape, dtype=torch.int16, device=summed.device)
        for (lo, hi), (box_summed, _, box_disagreement) in zip(boxes, fine):
            inside = tuple(slice(a, b) for a, b in zip(lo, hi))
            # Where boxes overlap (two joints a few mm apart) the joint pass is their mean; the
            # first pass's weight is 0 there the first time.
            before = times_refined[inside].float()
            keep = before / (before + 1)
            region = summed[(slice(None), *inside)]
            region.mul_(keep).add_(box_summed / box_summed.sum(0).clamp(min=1e-12) * (1 - keep))
            disagreement[inside].mul_(keep).add_(box_disagreement * (1 - keep))
            labels[inside] = region.argmax(0).to(labels.dtype)
            times_refined[inside] += 1
    return Prediction(labels=labels.cpu().numpy(), probabilities=summed.cpu().numpy(),
                      disagreement=disagreement.cpu().numpy())


def _fused_views(model: LoadedModel, image: Volume, regions: list[Box | None],
                 pixel_spacing_mm: float, *, fast: torch.nn.Module, dtype: torch.dtype | None,
                 mirror: bool, batch_size: int, context_px: int | None, progress: bool
                 ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Every view's planes at ``pixel_spacing_mm`` mapped into each region (None: the whole
    scan), fused per region: ``(summed probabilities, labels, disagreement)`` as
    :meth:`hipseg.fusion.ViewAggregator.finalize` gives them. The scan's input channels are
    made once per side (plain, mirrored) for all regions."""
    config, device = model.config, model.device
    shapes = [image.shape if r is None else tuple(int(n) for n in r[1] - r[0]) for r in regions]
    aggregators = [ViewAggregator(config.labels.n_classes, shape, device=device)
                   for shape in shapes]
    n_views = len(config.views.directions)
    seen_as = [image, mirrored_volume(image)] if mirror else [image]
    for i, seen in enumerate(seen_as):
        if i:  # the mirrored views call the patient's right side left
            for aggregator in aggregators:
                aggregator.swap_classes(config.labels.symmetric_pairs)
        channels, fill_values = model_input(seen.data, seen.affine, config)
        volume = torch.from_numpy(channels).to(device)
        del channels
        fill_value = tuple(fill_values.tolist())
        for r, (region, aggregator) in enumerate(zip(regions, aggregators)):
            geometry = view_geometry(model, seen, context_px, pixel_spacing_mm, region)
            for view, (_, window, to_image, to_region) in enumerate(geometry):
                label = (f"view {view + 1}/{n_views}" + (" mirrored" if i else "")
                         + ("" if region is None else f", joint box {r + 1}/{len(regions)}"))
                stack = predict_stack(fast, volume, to_image, window, fill_value=fill_value,
                                      batch_size=batch_size, autocast=dtype,
                                      progress_desc=label if progress else None)
                aggregator.add_stack(stack, to_region)
                del stack
        del volume
        if i:
            for aggregator in aggregators:
                aggregator.swap_classes(config.labels.symmetric_pairs)
    return [aggregator.finalize() for aggregator in aggregators]


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


#: How each architecture predicts a volume (keys of
#: :data:`hipseg.models.registry.ARCHITECTURES`).
PREDICTORS = {"unet2d": _predict_views, "unet3d": _predict_patches}
