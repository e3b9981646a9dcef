"""Training a network: from scratch (pre-training) or from another model (fine-tuning).

The loop is a handful of small functions: :func:`sample_batch` (planes or patches, elastic
augmentation), :func:`train_step` (weighted cross-entropy, one Adam step), :func:`run_epoch`,
:func:`validate`; :mod:`hipseg.training.checkpoint` keeps what ``--resume`` needs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hipseg.augment import appearance_augment, elastic_augment
from hipseg.core.config import HipsegConfig, load_config
from hipseg.core.errors import HipsegError, InputError
from hipseg.io import Case
from hipseg.io.guard import check_output_folder
from hipseg.losses import class_overlaps, mean_foreground_dice, weighted_cross_entropy
from hipseg.models.registry import architecture
from hipseg.runtime.model_io import ModelFolder, build_network, load_weights_into, save_model
from hipseg.runtime.progress import plot_progress
from hipseg.training.checkpoint import (
    TrainState,
    load_checkpoint,
    save_checkpoint,
    write_case_list,
    write_log,
)
from hipseg.training.data import (
    PlaneSampler,
    coarsen_dim,
    load_training_scans,
    measure_plane_size,
)
from hipseg.training.distributed import (
    DistributedRun,
    broadcast_object,
    gather_objects,
    single_process,
    sync_buffers,
    wrap_model,
)
from hipseg.training.patches import PatchSampler
from hipseg.training.precision import AutocastPolicy
from hipseg.views.directions import view_directions

__all__ = [
    "Batch",
    "TrainResult",
    "complete_geometry",
    "make_sampler",
    "monitored_score",
    "monitored_value",
    "prepare_config",
    "run_epoch",
    "sample_batch",
    "sampling_rng",
    "split_cases",
    "train",
    "train_step",
    "validate",
]

logger = logging.getLogger(__name__)


#: (inputs (B, 1, ...), labels (B, ...) int64, per-pixel loss weights (B, ...) float32)
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    epochs_run: int
    best_epoch: int
    monitor: str
    best_value: float
    """The best epoch's validation Dice or loss (``monitor``)."""


def split_cases(cases: list[Case], val_fraction: float, rng: np.random.Generator) -> tuple[list[Case], list[Case]]:
    """Random train / validation split; at least one case each when there are two or more.

    With a single case, it is used for both, and a warning says so.
    """
    if len(cases) == 1:
        logger.warning("only one case: validating on the training case %s", cases[0].case_id)
        return list(cases), list(cases)
    n_val = min(len(cases) - 1, max(1, round(val_fraction * len(cases))))
    order = rng.permutation(len(cases))
    val = [cases[i] for i in sorted(order[:n_val])]
    train = [cases[i] for i in sorted(order[n_val:])]
    return train, val


def prepare_config(config: HipsegConfig, init_model: Path | None) -> HipsegConfig:
    """The config to train with: from scratch, or inherited from ``init_model``.

    Fine-tuning keeps the initial model's labels, views, plane size, pre-processing and
    architecture (the weights only make sense with them); training, loss-weight and
    augmentation settings are the new ones.

    Raises
    ------
    InputError
        The initial model's label table differs from ``config``'s.
    """
    if init_model is None:
        return config
    init_config = load_config(ModelFolder(init_model).config)
    if init_config.labels != config.labels:
        raise InputError(init_model, f"label table {list(init_config.labels.names)} differs from "
                                     f"the requested {list(config.labels.names)}")
    return dataclasses.replace(init_config, train=config.train, weight_map=config.weight_map,
                               augment=config.augment)


def complete_geometry(config: HipsegConfig, scans: list, multiple_of: int) -> HipsegConfig:
    """Fill in what is unset: view directions (from ``views.seed``) and the plane size.

    ``dim`` and the sphere diameter not set in ``config`` are measured on the training scans
    (``sampling.percentile``, 75 by default, SPEC step 2); a measured ``dim`` is then lowered
    until the pixel spacing is at least ``sampling.min_pixel_spacing_mm``. A set value is kept
    (an override). ``sampling.finest_pixel_spacing_mm`` of -1 becomes the measured spacing
    before that floor (the paper's rule).
    """
    views, sampling = config.views, config.sampling
    if not views.directions:
        directions = view_directions(views.n_views, views.min_angle_deg,
                                     np.random.default_rng(views.seed))
        views = dataclasses.replace(views, directions=tuple(tuple(float(c) for c in d) for d in directions))
    if sampling.dim <= 0 or sampling.sphere_diameter_mm <= 0 or sampling.finest_pixel_spacing_mm < 0:
        rule_dim, diameter = measure_plane_size([s.shape for s in scans],
                                                [s.extent_mm for s in scans],
                                                sampling.percentile, multiple_of)
        diameter = sampling.sphere_diameter_mm if sampling.sphere_diameter_mm > 0 else diameter
        dim = sampling.dim if sampling.dim > 0 else coarsen_dim(
            rule_dim, diameter, sampling.min_pixel_spacing_mm, multiple_of)
        finest = sampling.finest_pixel_spacing_mm
        if finest < 0:  # the paper's rule, never coarser than the planes themselves
            finest = min(diameter / rule_dim, diameter / dim)
        sampling = dataclasses.replace(sampling, dim=dim, sphere_diameter_mm=diameter,
                                       finest_pixel_spacing_mm=finest)
    if sampling.dim % multiple_of:
        raise HipsegError(f"sampling.dim {sampling.dim} must be a multiple of {multiple_of}")
    if not architecture(config.model.architecture).uses_views and \
            config.model.patch_vox % multiple_of:
        raise HipsegError(f"model.patch_vox {config.model.patch_vox} must be a multiple of "
                          f"{multiple_of}")
    return dataclasses.replace(config, views=views, sampling=sampling)


def _planes(config: HipsegConfig, scans: list) -> PlaneSampler:
    return PlaneSampler(scans, np.asarray(config.views.directions), config.sampling.dim,
                        config.sampling.pixel_spacing_mm, config.sampling.foreground_plane_fraction,
                        config.sampling.joint_plane_fraction,
                        finest_pixel_spacing_mm=config.sampling.finest_pixel_spacing_mm,
                        fine_plane_fraction=config.sampling.fine_plane_fraction)


def _patches(config: HipsegConfig, scans: list) -> PatchSampler:
    return PatchSampler(scans, config.model.patch_vox, config.sampling.foreground_plane_fraction)


#: How each architecture's training samples are cut (keys of
#: :data:`hipseg.models.registry.ARCHITECTURES`): planes of the views, or cubic patches.
SAMPLERS = {"unet2d": _planes, "unet3d": _patches}


def make_sampler(config: HipsegConfig, scans: list) -> PlaneSampler | PatchSampler:
    """The architecture's sampler (:data:`SAMPLERS`) over ``scans``."""
    return SAMPLERS[config.model.architecture](config, scans)


def sample_batch(sampler: PlaneSampler | PatchSampler, config: HipsegConfig,
                 rng: np.random.Generator) -> Batch:
    """A training batch; planes are elastically deformed (a fraction, weighted 1/3 in the loss)
    and, when ``augment.appearance_fraction`` > 0, their CT's appearance changed (patches are
    not augmented: ``sampler.elastic``)."""
    images, labels, weights = sampler.sample(config.train.batch_size, rng)
    augment = config.augment
    if sampler.elastic and augment.fraction > 0:
        images, labels, weights, _ = elastic_augment(
            images, labels, weights, fraction=augment.fraction, alpha_px=augment.alpha_px,
            sigma_px=augment.sigma_px, deformed_weight=augment.deformed_weight, rng=rng)
    if sampler.elastic and augment.appearance_fraction > 0:
        images = appearance_augment(
            images, fraction=augment.appearance_fraction, contrast=augment.contrast,
            offset=augment.offset, blur_px=augment.blur_px, noise=augment.noise, rng=rng)
    return images, labels, weights


def train_step(network: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Batch,
               amp: AutocastPolicy | None = None) -> float:
    """One optimiser step on a batch (under ``amp``'s autocast when given); returns its loss."""
    images, labels, weights = batch
    optimizer.zero_grad(set_to_none=True)
    with amp.autocast() if amp is not None else contextlib.nullcontext():
        logits = network(images)
    # The loss in float32 (a no-op for float32 logits): a bf16/fp16 log-softmax loses the small
    # per-pixel differences.
    loss = weighted_cross_entropy(logits.float(), labels, weights)
    if amp is None or amp.scaler is None:
        loss.backward()
        optimizer.step()
    else:
        amp.scaler.scale(loss).backward()
        amp.scaler.step(optimizer)
        amp.scaler.update()
    return loss.item()


def run_epoch(state: TrainState, sampler: PlaneSampler | PatchSampler, config: HipsegConfig,
              progress: bool) -> float:
    """``steps_per_epoch`` steps; returns the mean training loss."""
    tc = config.train
    losses = []
    bar = tqdm(range(tc.steps_per_epoch), desc=f"epoch {state.epoch + 1}/{tc.epochs}",
               disable=not progress, leave=False)
    for _ in bar:
        losses.append(train_step(state.trained or state.network, state.optimizer,
                                 sample_batch(sampler, config, state.rng), state.amp))
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    return float(np.mean(losses))


def validate(network: torch.nn.Module, batch: Batch, n_classes: int,
             batch_size: int) -> tuple[float, float]:
    """Mean weighted cross-entropy and mean foreground Dice over fixed validation samples."""
    images, labels, weights = batch
    network.eval()
    total_loss = 0.0
    intersections, sizes = torch.zeros(n_classes), torch.zeros(n_classes)
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            part = slice(start, start + batch_size)
            logits = network(images[part])
            target = labels[part]
            total_loss += weighted_cross_entropy(logits, target, weights[part]).item() * len(target)
            inter, size = class_overlaps(logits.argmax(1), target, n_classes)
            intersections += inter
            sizes += size
    network.train()
    return total_loss / len(images), mean_foreground_dice(intersections, sizes)


def sampling_rng(seed: int, rank: int, split_rng: np.random.Generator) -> np.random.Generator:
    """The random stream that draws a rank's training samples.

    Rank 0 goes on with the stream that split the cases (a one-process run is unchanged);
    every other rank gets its own stream seeded from ``(seed, rank)``, so ranks draw
    different planes in the same step.
    """
    return split_rng if rank == 0 else np.random.default_rng((seed, rank))


def train(cases: list[Case], config: HipsegConfig, out_dir: Path, *, device: torch.device,
          init_model: Path | None = None, resume: bool = False, weight_cache: Path | None = None,
          val_cases: list[Case] | None = None, progress: bool = True,
          run: DistributedRun | None = None, precision: str = "auto", overwrite: bool = False,
          resume_epochs: int | None = None, strict_sides: bool = False) -> TrainResult:
    """Train and write ``out_dir/{model.pt, last.pt, config.yaml, log.csv, progress.png}``.

    Parameters
    ----------
    cases : list of Case
        Images with the label maps to learn (accurate or coarse).
    config : HipsegConfig
        Unset geometry (views, plane size) is measured from the training data.
    init_model : Path, optional
        A model folder to start from: every layer, output layer included, is loaded and trained.
    resume : bool
        Continue an interrupted run in ``out_dir`` after its last completed epoch, with the
        model, optimizer, scheduler and random state saved then; the settings are those in
        ``out_dir/config.yaml``, so the result equals an uninterrupted run.
    weight_cache : Path, optional
        Folder of cached weight maps (default ``DATA/weightmaps``), used when
        ``config.weight_map.needs_weights``.
    val_cases : list of Case, optional
        Validation scans; by default as ``train.validation`` says: a ``train.val_fraction`` of
        ``cases`` held out, or fixed planes of the training scans themselves.
    run : DistributedRun, optional
        This process's place in a ``torchrun`` run (:func:`hipseg.training.distributed.start_run`);
        by default one process on ``device``. Every rank draws its own samples, gradients are
        averaged by DDP, rank 0 alone validates and writes files.
    precision : str
        ``auto`` (bf16 autocast on CUDA, fp16 with a gradient scaler where bf16 is missing;
        float32 on the CPU), ``fp32``, ``bf16`` or ``fp16``.
    overwrite : bool
        Replace the model in ``out_dir``; without it (or ``resume``) a folder that already
        holds a model is refused, so no trained model is lost by a repeated command.
    resume_epochs : int, optional
        With ``resume``: train until this many epochs in all instead of the saved
        ``train.epochs`` (to extend or shorten a run); the new value is saved in config.yaml.
    strict_sides : bool
        Refuse a label map whose side classes lie on the wrong side of the midline (default:
        a warning).

    Raises
    ------
    InputError
        ``out_dir`` holds a model and neither ``resume`` nor ``overwrite`` is given; it cannot
        be written; nothing to resume; ``resume_epochs`` not beyond the epochs already run.
    """
    run = run or single_process(device)
    progress = progress and run.is_main
    out_dir = Path(out_dir)
    folder = ModelFolder(out_dir)
    state_path = folder.train_state
    if resume:
        if not state_path.is_file():
            raise InputError(state_path, "nothing to resume: no training state in this folder")
        config = load_config(folder.config)
        if resume_epochs is not None and resume_epochs != config.train.epochs:
            logger.info("resuming %s until epoch %d (--epochs; config.yaml said %d), other "
                        "settings from its config.yaml", out_dir, resume_epochs,
                        config.train.epochs)
            config = dataclasses.replace(config, train=dataclasses.replace(
                config.train, epochs=resume_epochs))
        else:
            logger.info("resuming %s with the settings in its config.yaml", out_dir)
    else:
        existing = [p.name for p in (folder.weights, folder.last_weights, folder.train_state,
                                      folder.config, folder.cases) if p.exists()]
        if existing and not overwrite:
            raise InputError(out_dir, f"already holds a model ({', '.join(existing)}): "
                                      "--resume to continue it, --overwrite to replace it")
        if run.is_main:
            check_output_folder(out_dir)
        config = prepare_config(config, init_model)
    tc = config.train
    rng = np.random.default_rng(tc.seed)
    if val_cases is not None:
        train_cases = list(cases)
    elif tc.validates_on_planes(len(cases)):
        train_cases = val_cases = list(cases)
        logger.info("validating on fixed planes of the %d training scans (train.validation %s)",
                    len(cases), tc.validation)
    else:
        train_cases, val_cases = split_cases(cases, tc.val_fraction, rng)
    rng = sampling_rng(tc.seed, run.rank, rng)
    logger.info("training on %d cases, validating on %d", len(train_cases), len(val_cases))
    train_scans = load_training_scans(train_cases, config, device, progress,
                                      weight_cache=weight_cache, strict_sides=strict_sides)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(tc.seed)
        network = build_network(config)
    config = complete_geometry(config, train_scans, network.size_multiple)
    if init_model is not None and not resume:
        load_weights_into(network, ModelFolder(init_model).weights)
    network.to(device).train()
    finest, coarsest = config.sampling.trained_pixel_spacings_mm
    logger.info("%s; plane size %d px of %s mm, sphere %.1f mm, %d views; weight map %s; "
                "contacts %s", config.model.architecture, config.sampling.dim,
                f"{finest:.2f}-{coarsest:.2f}" if config.sampling.several_spacings else f"{coarsest:.2f}",
                config.sampling.sphere_diameter_mm,
                len(config.views.directions), "on" if config.weight_map.enabled else "off",
                f"ignored within {config.weight_map.ignore_contacts_mm:g} mm"
                if config.weight_map.ignore_contacts_mm > 0 else "trained on")

    val_batch = None
    if run.is_main:  # only rank 0 validates: the others neither load nor sample these scans
        val_scans = (train_scans if val_cases == train_cases else
                     load_training_scans(val_cases, config, device, progress,
                                         weight_cache=weight_cache, strict_sides=strict_sides))
        # Validation stays at the model's spacing, the one predict uses by default: finer
        # planes would make early stopping follow a mixture of tasks.
        at_one_spacing = dataclasses.replace(config, sampling=dataclasses.replace(
            config.sampling, finest_pixel_spacing_mm=0.0))
        val_batch = make_sampler(at_one_spacing, val_scans).sample(
            tc.val_planes, np.random.default_rng(tc.seed + 1))
    train_sampler = make_sampler(config, train_scans)
    optimizer = torch.optim.Adam(network.parameters(), lr=tc.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=tc.lr_factor,
                                                           patience=tc.lr_patience)
    state = TrainState(network, optimizer, scheduler, rng, trained=wrap_model(network, run),
                       amp=AutocastPolicy.for_device(device, precision), monitor=tc.monitor)
    if resume:
        load_checkpoint(state, state_path, device, run.rank, run.world_size)
        if state.epoch >= tc.epochs:
            raise InputError(out_dir, f"already trained {state.epoch} epochs, as many as asked "
                                      f"({tc.epochs}): give a larger --epochs to train more")
    elif run.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_case_list(cases, folder.cases)
    while state.epoch < tc.epochs:
        if state.stale >= tc.early_stop_patience:
            logger.info("early stop: no validation improvement for %d epochs", state.stale)
            break
        started = time.perf_counter()
        train_loss = float(np.mean(gather_objects(run_epoch(state, train_sampler, config, progress),
                                                  run)))
        sync_buffers(network, run)
        measured = (validate(network, val_batch, config.labels.n_classes, tc.batch_size)
                    if run.is_main else None)
        val_loss, val_dice = broadcast_object(measured, run)
        score = monitored_score(tc.monitor, val_loss, val_dice)
        scheduler.step(score)
        state.epoch += 1
        state.rows.append({"epoch": state.epoch, "train_loss": train_loss, "val_loss": val_loss,
                           "val_dice": val_dice, "lr": optimizer.param_groups[0]["lr"],
                           "seconds": time.perf_counter() - started})
        logger.info("epoch %d: train loss %.4f, val loss %.4f, val Dice %.3f", state.epoch,
                    train_loss, val_loss, val_dice)
        _end_of_epoch(state, config, out_dir, score, run)
    return TrainResult(out_dir, len(state.rows), state.best_epoch, tc.monitor,
                       monitored_value(tc.monitor, state.best_loss))


def monitored_score(monitor: str, val_loss: float, val_dice: float) -> float:
    """The value the best model, lr schedule and early stopping minimise: the loss, or -Dice."""
    return -val_dice if monitor == "dice" else val_loss


def monitored_value(monitor: str, score: float) -> float:
    """The validation Dice or loss that :func:`monitored_score` made ``score`` from."""
    return -score if monitor == "dice" else score


def _end_of_epoch(state: TrainState, config: HipsegConfig, out_dir: Path, score: float,
                  run: DistributedRun) -> None:
    """Write the last and (if better) the best model, the resumable state, log and curves.

    ``score``: :func:`monitored_score`, lower is better. Every rank keeps the same counters
    (the validation is rank 0's, broadcast); only rank 0 writes, with every rank's random
    state in the resumable state.
    """
    improved = score < state.best_loss
    if improved:
        state.best_loss, state.best_epoch, state.stale = score, state.epoch, 0
    else:
        state.stale += 1
    rng_states = gather_objects(state.rng.bit_generator.state, run)
    if not run.is_main:
        return
    folder = ModelFolder(out_dir)
    save_model(state.network, config, out_dir, last=True)
    if improved:
        save_model(state.network, config, out_dir)
    save_checkpoint(state, folder.train_state, rng_states)
    write_log(folder.log, state.rows)
    plot_progress(state.rows, folder.progress)


