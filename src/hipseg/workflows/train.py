"""Training a multi-planar 2D UNet: from scratch (pre-training) or from another model (fine-tuning)."""

from __future__ import annotations

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

from hipseg.core.atomic import atomic_path
from hipseg.core.config import HipsegConfig, load_config
from hipseg.core.errors import HipsegError, InputError
from hipseg.io import Case
from hipseg.models.checkpoint import load_state_dict, save_state_dict
from hipseg.views.directions import view_directions
from hipseg.workflows.data import PlaneSampler, load_training_scans, measure_plane_size
from hipseg.workflows.model_io import (
    WEIGHTS_NAME,
    build_network,
    load_weights_into,
    save_model,
)

__all__ = ["TrainResult", "prepare_config", "split_cases", "train"]

logger = logging.getLogger(__name__)

LOG_NAME = "log.csv"
LAST_WEIGHTS_NAME = "last.pt"
TRAIN_STATE_NAME = "train_state.pt"


@dataclass(frozen=True)
class TrainResult:
    """What a training run produced."""

    model_dir: Path
    epochs_run: int
    best_epoch: int
    best_val_loss: float


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
    architecture (the weights only make sense with them); training settings are the new ones.
    """
    if init_model is None:
        return config
    init_config = load_config(Path(init_model) / "config.yaml")
    if init_config.labels != config.labels:
        raise InputError(init_model, f"label table {init_config.labels.names} differs from "
                                     f"the requested {config.labels.names}")
    return dataclasses.replace(init_config, train=config.train)


def _complete_geometry(config: HipsegConfig, scans: list, multiple_of: int) -> HipsegConfig:
    views, sampling = config.views, config.sampling
    if not views.directions:
        directions = view_directions(views.n_views, views.min_angle_deg,
                                     np.random.default_rng(views.seed))
        views = dataclasses.replace(views, directions=tuple(tuple(float(c) for c in d) for d in directions))
    if sampling.dim <= 0 or sampling.sphere_diameter_mm <= 0:
        dim, diameter = measure_plane_size(scans, sampling.percentile, multiple_of)
        sampling = dataclasses.replace(sampling, dim=dim, sphere_diameter_mm=diameter)
    if sampling.dim % multiple_of:
        raise HipsegError(f"sampling.dim {sampling.dim} must be a multiple of {multiple_of}")
    return dataclasses.replace(config, views=views, sampling=sampling)


def _evaluate(network: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
              n_classes: int, batch_size: int) -> tuple[float, float]:
    """Mean cross-entropy and mean foreground Dice over fixed validation planes."""
    network.eval()
    total_loss, intersections, sizes = 0.0, torch.zeros(n_classes), torch.zeros(n_classes)
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = network(images[start : start + batch_size])
            target = labels[start : start + batch_size]
            total_loss += F.cross_entropy(logits, target, reduction="sum").item() / target[0].numel()
            pred = logits.argmax(1)
            for c in range(1, n_classes):
                intersections[c] += ((pred == c) & (target == c)).sum().cpu()
                sizes[c] += ((pred == c).sum() + (target == c).sum()).cpu()
    present = sizes[1:] > 0
    dice = (2 * intersections[1:][present] / sizes[1:][present]).mean().item() if present.any() else float("nan")
    network.train()
    return total_loss / len(images), dice


def train(cases: list[Case], config: HipsegConfig, out_dir: Path, *, device: torch.device,
          init_model: Path | None = None, resume: bool = False,
          progress: bool = True) -> TrainResult:
    """Train and write ``out_dir/{model.pt, last.pt, config.yaml, log.csv}``.

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
    """
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
    train_cases, val_cases = split_cases(cases, tc.val_fraction, rng)
    logger.info("training on %d cases, validating on %d", len(train_cases), len(val_cases))
    train_scans = load_training_scans(train_cases, config, device, progress)
    val_scans = train_scans if val_cases == train_cases else load_training_scans(val_cases, config, device, progress)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(tc.seed)
        network = build_network(config)
    config = _complete_geometry(config, train_scans, network.size_multiple)
    if init_model is not None and not resume:
        load_weights_into(network, Path(init_model) / WEIGHTS_NAME)
    network.to(device).train()
    logger.info("plane size %d px, sphere %.1f mm, %d views", config.sampling.dim,
                config.sampling.sphere_diameter_mm, len(config.views.directions))

    def sampler(scans: list) -> PlaneSampler:
        return PlaneSampler(scans, np.asarray(config.views.directions), config.sampling.dim,
                            config.sampling.pixel_spacing_mm, config.sampling.foreground_plane_fraction)

    val_images, val_labels = sampler(val_scans).sample(tc.val_planes, np.random.default_rng(tc.seed + 1))
    train_sampler = sampler(train_scans)
    optimizer = torch.optim.Adam(network.parameters(), lr=tc.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=tc.lr_factor,
                                                           patience=tc.lr_patience)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    best_loss, best_epoch, stale, first_epoch = float("inf"), 0, 0, 1
    if resume:
        state = load_state_dict(state_path, map_location=device)
        network.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["numpy_rng"]
        rows, best_loss = list(state["rows"]), state["best_val_loss"]
        best_epoch, stale, first_epoch = state["best_epoch"], state["stale"], state["epoch"] + 1
    for epoch in range(first_epoch, tc.epochs + 1):
        if stale >= tc.early_stop_patience:
            logger.info("early stop: no validation improvement for %d epochs", stale)
            break
        started = time.perf_counter()
        losses = []
        bar = tqdm(range(tc.steps_per_epoch), desc=f"epoch {epoch}/{tc.epochs}",
                   disable=not progress, leave=False)
        for _ in bar:
            images, labels = train_sampler.sample(tc.batch_size, rng)
            optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(network(images), labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        val_loss, val_dice = _evaluate(network, val_images, val_labels,
                                       config.labels.n_classes, tc.batch_size)
        scheduler.step(val_loss)
        rows.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val_loss": val_loss,
                     "val_dice": val_dice, "lr": optimizer.param_groups[0]["lr"],
                     "seconds": time.perf_counter() - started})
        logger.info("epoch %d: train loss %.4f, val loss %.4f, val Dice %.3f", epoch,
                    rows[-1]["train_loss"], val_loss, val_dice)
        save_model(network, config, out_dir, LAST_WEIGHTS_NAME)
        if val_loss < best_loss:
            best_loss, best_epoch, stale = val_loss, epoch, 0
            save_model(network, config, out_dir, WEIGHTS_NAME)
        else:
            stale += 1
        save_state_dict({
            "model": network.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "numpy_rng": rng.bit_generator.state,
            "epoch": epoch, "rows": rows, "best_val_loss": best_loss, "best_epoch": best_epoch,
            "stale": stale,
        }, state_path)
        _write_log(out_dir / LOG_NAME, rows)
    return TrainResult(out_dir, len(rows), best_epoch, best_loss)


def _write_log(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
