"""Training a network: from scratch (pre-training) or from another model (fine-tuning).

The loop is a handful of small functions: :func:`sample_batch` (planes or patches, elastic
augmentation), :func:`train_step` (weighted cross-entropy, one Adam step), :func:`run_epoch`,
:func:`validate`, and :func:`save_checkpoint` / :func:`load_checkpoint` for ``--resume``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from hipseg.augment import elastic_augment
from hipseg.core.atomic import atomic_path
from hipseg.core.config import HipsegConfig, load_config
from hipseg.core.errors import HipsegError, InputError
from hipseg.io import Case
from hipseg.models.checkpoint import load_state_dict, save_state_dict
from hipseg.views.directions import view_directions
from hipseg.workflows.data import (
    PlaneSampler,
    coarsen_dim,
    load_training_scans,
    measure_plane_size,
)
from hipseg.workflows.device import training_precision
from hipseg.workflows.distributed import (
    DistributedRun,
    broadcast_object,
    gather_objects,
    single_process,
    sync_buffers,
    wrap_model,
)
from hipseg.workflows.model_io import (
    WEIGHTS_NAME,
    build_network,
    load_weights_into,
    save_model,
)
from hipseg.workflows.patches import PatchSampler
from hipseg.workflows.progress import plot_progress

__all__ = [
    "Batch",
    "TrainResult",
    "TrainState",
    "complete_geometry",
    "load_checkpoint",
    "make_sampler",
    "prepare_config",
    "read_case_list",
    "run_epoch",
    "sample_batch",
    "sampling_rng",
    "save_checkpoint",
    "split_cases",
    "train",
    "train_step",
    "validate",
    "weighted_cross_entropy",
    "write_case_list",
]

logger = logging.getLogger(__name__)

LOG_NAME = "log.csv"
LAST_WEIGHTS_NAME = "last.pt"
TRAIN_STATE_NAME = "train_state.pt"
PROGRESS_NAME = "progress.png"
CASES_NAME = "training_cases.csv"

#: (inputs (B, 1, ...), labels (B, ...) int64, per-pixel loss weights (B, ...) float32)
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    epochs_run: int
    best_epoch: int
    best_val_loss: float


@dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped (mutable: the loop's state).

    ``network`` is the bare module (its state dict is what is saved); ``trained`` is what the
    steps run through: ``network`` itself, or its DDP wrapper in a distributed run.
    """

    network: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    rng: np.random.Generator
    trained: torch.nn.Module | None = None
    amp: AutocastPolicy | None = None
    epoch: int = 0
    rows: list[dict] = dataclasses.field(default_factory=list)
    best_loss: float = float("inf")
    best_epoch: int = 0
    stale: int = 0


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
    init_config = load_config(Path(init_model) / "config.yaml")
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
    (an override).
    """
    views, sampling = config.views, config.sampling
    if not views.directions:
        directions = view_directions(views.n_views, views.min_angle_deg,
                                     np.random.default_rng(views.seed))
        views = dataclasses.replace(views, directions=tuple(tuple(float(c) for c in d) for d in directions))
    if sampling.dim <= 0 or sampling.sphere_diameter_mm <= 0:
        dim, diameter = measure_plane_size([s.shape for s in scans], [s.extent_mm for s in scans],
                                           sampling.percentile, multiple_of)
        diameter = sampling.sphere_diameter_mm if sampling.sphere_diameter_mm > 0 else diameter
        if sampling.dim <= 0:
            dim = coarsen_dim(dim, diameter, sampling.min_pixel_spacing_mm, multiple_of)
        sampling = dataclasses.replace(sampling, dim=sampling.dim if sampling.dim > 0 else dim,
                                       sphere_diameter_mm=diameter)
    if sampling.dim % multiple_of:
        raise HipsegError(f"sampling.dim {sampling.dim} must be a multiple of {multiple_of}")
    if config.model.architecture == "unet3d" and config.model.patch_vox % multiple_of:
        raise HipsegError(f"model.patch_vox {config.model.patch_vox} must be a multiple of "
                          f"{multiple_of}")
    return dataclasses.replace(config, views=views, sampling=sampling)


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor,
                           weights: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy times the per-pixel weight, then the mean (SPEC step 4).

    Shapes: logits ``(B, C, ...)``, labels ``(B, ...)`` int64, weights ``(B, ...)`` float.
    """
    return (F.cross_entropy(logits, labels, reduction="none") * weights).mean()


def make_sampler(config: HipsegConfig, scans: list) -> PlaneSampler | PatchSampler:
    """Planes for the 2D UNet, cubic patches for the 3D one."""
    if config.model.architecture == "unet3d":
        return PatchSampler(scans, config.model.patch_vox,
                            config.sampling.foreground_plane_fraction)
    return PlaneSampler(scans, np.asarray(config.views.directions), config.sampling.dim,
                        config.sampling.pixel_spacing_mm, config.sampling.foreground_plane_fraction)


def sample_batch(sampler: PlaneSampler | PatchSampler, config: HipsegConfig,
                 rng: np.random.Generator) -> Batch:
    """A training batch; planes are elastically deformed (a fraction, weighted 1/3 in the loss)."""
    images, labels, weights = sampler.sample(config.train.batch_size, rng)
    augment = config.augment
    if isinstance(sampler, PlaneSampler) and augment.fraction > 0:
        images, labels, weights, _ = elastic_augment(
            images, labels, weights, fraction=augment.fraction, alpha_px=augment.alpha_px,
            sigma_px=augment.sigma_px, deformed_weight=augment.deformed_weight, rng=rng)
    return images, labels, weights


@dataclass
class AutocastPolicy:
    """Mixed precision for training: the autocast dtype, and a gradient scaler for float16."""

    device: torch.device
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None = None

    @classmethod
    def for_device(cls, device: torch.device, precision: str) -> AutocastPolicy:
        dtype = training_precision(device, precision)
        scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
        return cls(device, dtype, scaler)

    def autocast(self):
        return torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None)


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
    total_loss, intersections, sizes = 0.0, torch.zeros(n_classes), torch.zeros(n_classes)
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            part = slice(start, start + batch_size)
            logits = network(images[part])
            target = labels[part]
            total_loss += weighted_cross_entropy(logits, target, weights[part]).item() * len(target)
            pred = logits.argmax(1)
            for c in range(1, n_classes):
                intersections[c] += ((pred == c) & (target == c)).sum().cpu()
                sizes[c] += ((pred == c).sum() + (target == c).sum()).cpu()
    present = sizes[1:] > 0
    dice = (2 * intersections[1:][present] / sizes[1:][present]).mean().item() if present.any() else float("nan")
    network.train()
    return total_loss / len(images), dice


def save_checkpoint(state: TrainState, path: Path, rank_rng_states: list[dict] | None = None) -> None:
    """Model, optimizer, scheduler, random state and the loop's counters, atomically.

    ``rank_rng_states``: every rank's random state in rank order (a distributed run); by
    default this process's own.
    """
    rng_states = rank_rng_states or [state.rng.bit_generator.state]
    saved = {
        "model": state.network.state_dict(), "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(), "numpy_rng": rng_states,
        "epoch": state.epoch, "rows": state.rows, "best_val_loss": state.best_loss,
        "best_epoch": state.best_epoch, "stale": state.stale,
    }
    if state.amp is not None and state.amp.scaler is not None:
        saved["grad_scaler"] = state.amp.scaler.state_dict()
    save_state_dict(saved, path)


def load_checkpoint(state: TrainState, path: Path, device: torch.device, rank: int = 0,
                    world_size: int = 1) -> None:
    """Restore what :func:`save_checkpoint` wrote into ``state`` (in place), for ``rank``.

    Raises
    ------
    InputError
        The run was saved with another number of processes.
    """
    saved = load_state_dict(path, map_location=device)
    if len(saved["numpy_rng"]) != world_size:
        raise InputError(path, f"saved by a run of {len(saved['numpy_rng'])} process(es); resume "
                               f"it with as many, not {world_size}")
    state.network.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    if "grad_scaler" in saved and state.amp is not None and state.amp.scaler is not None:
        state.amp.scaler.load_state_dict(saved["grad_scaler"])
    state.rng.bit_generator.state = saved["numpy_rng"][rank]
    state.rows, state.best_loss = list(saved["rows"]), saved["best_val_loss"]
    state.best_epoch, state.stale, state.epoch = saved["best_epoch"], saved["stale"], saved["epoch"]


def sampling_rng(seed: int, rank: int, split_rng: np.random.Generator) -> np.random.Generator:
    """The random stream that draws a rank's training samples.

    Rank 0 goes on with the stream that split the cases (a one-process run is unchanged);
    every other rank gets its own stream seeded from ``(seed, rank)``, so ranks draw
    different planes in the same step.
    """
    return split_rng if rank == 0 else np.random.default_rng((seed, rank))


def write_case_list(cases: list[Case], path: Path) -> None:
    """The scans a model was trained on (``case_id,image,labels``, absolute paths)."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["case_id", "image", "labels"])
        writer.writerows([c.case_id, str(Path(c.image).resolve()), str(Path(c.labels).resolve())]
                         for c in cases)


def read_case_list(path: Path) -> list[Case]:
    """The cases :func:`write_case_list` wrote; an error naming the file when it is missing."""
    try:
        with open(path, newline="") as handle:
            return [Case(row["case_id"], Path(row["image"]), Path(row["labels"]))
                    for row in csv.DictReader(handle)]
    except FileNotFoundError:
        raise InputError(path, "no list of training scans (was the model trained by this "
                               "version of hipseg?)") from None
    except (KeyError, csv.Error) as err:
        raise InputError(path, f"not a list of training scans ({err})") from None


def train(cases: list[Case], config: HipsegConfig, out_dir: Path, *, device: torch.device,
          init_model: Path | None = None, resume: bool = False, weight_cache: Path | None = None,
          val_cases: list[Case] | None = None, progress: bool = True,
          run: DistributedRun | None = None, precision: str = "auto") -> TrainResult:
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
        ``config.weight_map.enabled``.
    val_cases : list of Case, optional
        Validation scans; by default as ``train.validation`` says: a ``train.val_fraction`` of
        ``cases`` held out, or fixed planes of the training scans themselves.
    run : DistributedRun, optional
        This process's place in a ``torchrun`` run (:func:`hipseg.workflows.distributed.start_run`);
        by default one process on ``device``. Every rank draws its own samples, gradients are
        averaged by DDP, rank 0 alone validates and writes files.
    precision : str
        ``auto`` (bf16 autocast on CUDA, fp16 with a gradient scaler where bf16 is missing;
        float32 on the CPU), ``fp32``, ``bf16`` or ``fp16``.
    """
    run = run or single_process(device)
    progress = progress and run.is_main
    out_dir = Path(out_dir)
    state_path = out_dir / TRAIN_STATE_NAME
    if resume:
        if not state_path.is_file():
            raise InputError(state_path, "nothing to resume: no training state in this folder")
        config = load_config(out_dir / "config.yaml")
        logger.info("resuming %s with the settings in its config.yaml", out_dir)
    else:
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
    train_scans = load_training_scans(train_cases, config, device, progress, weight_cache=weight_cache)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(tc.seed)
        network = build_network(config)
    config = complete_geometry(config, train_scans, network.size_multiple)
    if init_model is not None and not resume:
        load_weights_into(network, Path(init_model) / WEIGHTS_NAME)
    network.to(device).train()
    logger.info("%s; plane size %d px, sphere %.1f mm, %d views; weight map %s",
                config.model.architecture, config.sampling.dim, config.sampling.sphere_diameter_mm,
                len(config.views.directions), "on" if config.weight_map.enabled else "off")

    val_batch = None
    if run.is_main:  # only rank 0 validates: the others neither load nor sample these scans
        val_scans = (train_scans if val_cases == train_cases else
                     load_training_scans(val_cases, config, device, progress,
                                         weight_cache=weight_cache))
        val_batch = make_sampler(config, val_scans).sample(tc.val_planes,
                                                           np.random.default_rng(tc.seed + 1))
    train_sampler = make_sampler(config, train_scans)
    optimizer = torch.optim.Adam(network.parameters(), lr=tc.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=tc.lr_factor,
                                                           patience=tc.lr_patience)
    state = TrainState(network, optimizer, scheduler, rng, trained=wrap_model(network, run),
                       amp=AutocastPolicy.for_device(device, precision))
    if resume:
        load_checkpoint(state, state_path, device, run.rank, run.world_size)
    elif run.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_case_list(cases, out_dir / CASES_NAME)
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
        scheduler.step(val_loss)
        state.epoch += 1
        state.rows.append({"epoch": state.epoch, "train_loss": train_loss, "val_loss": val_loss,
                           "val_dice": val_dice, "lr": optimizer.param_groups[0]["lr"],
                           "seconds": time.perf_counter() - started})
        logger.info("epoch %d: train loss %.4f, val loss %.4f, val Dice %.3f", state.epoch,
                    train_loss, val_loss, val_dice)
        _end_of_epoch(state, config, out_dir, val_loss, run)
    return TrainResult(out_dir, len(state.rows), state.best_epoch, state.best_loss)


def _end_of_epoch(state: TrainState, config: HipsegConfig, out_dir: Path, val_loss: float,
                  run: DistributedRun) -> None:
    """Write the last and (if better) the best model, the resumable state, log and curves.

    Every rank keeps the same counters (the validation loss is rank 0's, broadcast); only
    rank 0 writes, with every rank's random state in the resumable state.
    """
    improved = val_loss < state.best_loss
    if improved:
        state.best_loss, state.best_epoch, state.stale = val_loss, state.epoch, 0
    else:
        state.stale += 1
    rng_states = gather_objects(state.rng.bit_generator.state, run)
    if not run.is_main:
        return
    save_model(state.network, config, out_dir, LAST_WEIGHTS_NAME)
    if improved:
        save_model(state.network, config, out_dir, WEIGHTS_NAME)
    save_checkpoint(state, out_dir / TRAIN_STATE_NAME, rng_states)
    _write_log(out_dir / LOG_NAME, state.rows)
    plot_progress(state.rows, out_dir / PROGRESS_NAME)


def _write_log(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
