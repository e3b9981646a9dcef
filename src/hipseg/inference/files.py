"""Predicting files: read each input, predict, post-process, measure |E|, write every output
(:class:`~hipseg.io.PredictionFiles`) on the input's exact grid."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hipseg.collisions import count_collisions, default_eps_mm
from hipseg.core.atomic import remove_stale_temporaries
from hipseg.core.errors import HipsegError, InputError, VolumeError
from hipseg.core.labels import LabelTable
from hipseg.core.volume import Volume
from hipseg.inference.localize import predict_hip_region
from hipseg.inference.volume import Prediction, predict_volume
from hipseg.io import PredictionFiles, image_format, read_image, write_image, write_labels
from hipseg.io.guard import check_output_folder, refuse_name_clashes, refuse_overwriting_inputs
from hipseg.postprocess import enforce_min_gap, symmetric_components_with_report
from hipseg.runtime.model_io import LoadedModel

__all__ = ["PredictOptions", "PredictionSummary", "finish_prediction", "plan_outputs",
           "predict_files"]

logger = logging.getLogger(__name__)


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
    #: Also predict the scan mirrored across the body's midline and fuse both (twice the network's work).
    mirror: bool = False
    #: Plane pixel spacing in mm, within the model's trained range (None: the model's own).
    pixel_spacing_mm: float | None = None
    #: A second pass at the model's finest trained spacing around the joints.
    refine_joints: bool = False


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


def _requested(outputs: PredictionFiles, options: PredictOptions) -> list[Path]:
    """Every file one case writes, the label map last: it marks the case as finished."""
    extra = [outputs.probabilities] if options.save_probabilities else []
    extra += [outputs.uncertainty] if options.save_uncertainty else []
    return [*extra, outputs.labels]


def plan_outputs(inputs: list[Path], out_dir: Path, options: PredictOptions
                 ) -> list[PredictionFiles]:
    """The outputs of every input, checked before any work: ``out_dir`` writable, no output on
    an input or on another input's output. Removes temporaries left by killed runs.

    Raises
    ------
    InputError
        A format that cannot be written for an input, an unwritable ``out_dir``, an output
        that would replace an input, or two inputs with the same case id.
    """
    planned = []
    for path in inputs:
        try:
            planned.append(PredictionFiles.for_input(out_dir, path, options.output_format))
        except ValueError as err:
            raise InputError(path, str(err)) from None
    check_output_folder(out_dir)
    pairs = [(path, target) for path, outputs in zip(inputs, planned)
             for target in _requested(outputs, options)]
    refuse_overwriting_inputs(inputs, [target for _, target in pairs])
    refuse_name_clashes(pairs)
    for stale in remove_stale_temporaries(out_dir):
        logger.info("removed %s, left by an interrupted run", stale)
    return planned


def _write_outputs(path: Path, image: Volume, labels: np.ndarray, prediction: Prediction,
                   outputs: PredictionFiles, options: PredictOptions) -> None:
    if options.save_probabilities:
        write_image(outputs.probabilities, np.moveaxis(prediction.probabilities, 0, -1),
                    image.affine)
    if options.save_uncertainty:
        write_image(outputs.uncertainty, prediction.disagreement, image.affine)
    # Last, so that an existing label map means every requested output exists. A NIfTI
    # input's header is copied; other inputs give their geometry through `image`.
    write_labels(outputs.labels, labels,
                 reference=path if image_format(path) == "nifti" else image)


def _check_finite(prediction: Prediction, model: LoadedModel) -> None:
    if not np.all(np.isfinite(prediction.probabilities)):
        raise InputError(model.source, "the network gave non-finite probabilities (NaN or inf): "
                                       "the model file is corrupt")


def predict_files(model: LoadedModel, inputs: list[Path], out_dir: Path, *,
                  options: PredictOptions | None = None,
                  progress: bool = True) -> list[PredictionSummary]:
    """Predict each input and write ``OUT/<case id>.nii.gz`` on the input's exact grid.

    Inputs are image files or DICOM series folders; ``options.output_format`` picks the
    output's format (NIfTI by default).

    Also ``<case id>_probabilities.nii.gz`` (fused, classes last) and
    ``<case id>_uncertainty.nii.gz`` (fraction of views voting against the fused label) when
    asked. The label map is written last; an input whose requested outputs all exist is
    skipped unless ``options.overwrite``. Nothing is written before every output has been
    checked (:func:`plan_outputs`). Raises ``HipsegError`` after trying every input if some
    failed, naming them.
    """
    options = PredictOptions() if options is None else options
    max_memory = None if options.max_memory_gb is None else int(options.max_memory_gb * 2**30)
    planned = plan_outputs(inputs, out_dir, options)
    summaries, failed = [], []
    for path, outputs in tqdm(list(zip(inputs, planned)), desc="predicting",
                              disable=not progress or len(inputs) < 2):
        target = outputs.labels
        if not options.overwrite and all(p.exists() for p in _requested(outputs, options)):
            logger.info("skipping %s: %s exists (--overwrite to redo)", path, target)
            continue
        try:
            image = read_image(path, series_uid=options.series_uid)
            try:
                if options.crop_margin_mm is None:
                    prediction = predict_volume(model, image, max_memory_bytes=max_memory,
                                                progress=progress, precision=options.precision,
                                                mirror=options.mirror,
                                                pixel_spacing_mm=options.pixel_spacing_mm,
                                                refine_joints=options.refine_joints)
                else:
                    prediction = predict_hip_region(model, image, margin_mm=options.crop_margin_mm,
                                                    max_memory_bytes=max_memory, progress=progress,
                                                    precision=options.precision,
                                                    mirror=options.mirror,
                                                    pixel_spacing_mm=options.pixel_spacing_mm,
                                                    refine_joints=options.refine_joints)
            except VolumeError as err:
                raise InputError(path, str(err)) from None
            _check_finite(prediction, model)
            labels, summary = finish_prediction(prediction, image, model.config.labels, options)
            present = np.bincount(labels.ravel(), minlength=model.config.labels.n_classes) > 0
            summary = dataclasses.replace(summary, empty_classes=tuple(
                model.config.labels.names[c] for c in model.config.labels.foreground_ids
                if not present[c]))
            try:
                _write_outputs(path, image, labels, prediction, outputs, options)
            except OSError as err:
                raise InputError(out_dir, f"cannot write the outputs of {path.name} "
                                          f"({err.strerror or err})") from None
            summaries.append(dataclasses.replace(summary, case_id=outputs.case, path=target))
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
