"""What a training run keeps on disk besides the model: the resumable state (``--resume``),
the per-epoch log and the list of training scans (``finetune --continue``)."""

from __future__ import annotations

import csv
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hipseg.core.atomic import atomic_path
from hipseg.core.errors import InputError
from hipseg.io import Case
from hipseg.models.checkpoint import load_state_dict, save_state_dict
from hipseg.training.precision import AutocastPolicy

__all__ = ["TrainState", "load_checkpoint", "read_case_list", "save_checkpoint",
           "write_case_list", "write_log"]


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
    monitor: str = "dice"  # what best_loss scores: the validation "dice" or "loss"
    best_loss: float = float("inf")  # the monitored score (loss or -Dice), lower is better
    best_epoch: int = 0
    stale: int = 0


def save_checkpoint(state: TrainState, path: Path, rank_rng_states: list[dict] | None = None) -> None:
    """Model, optimizer, scheduler, random state and the loop's counters, atomically.

    ``rank_rng_states``: every rank's random state in rank order (a distributed run); by
    default this process's own.
    """
    rng_states = rank_rng_states or [state.rng.bit_generator.state]
    saved = {
        "model": state.network.state_dict(), "optimizer": state.optimizer.state_dict(),
        "scheduler": state.scheduler.state_dict(), "numpy_rng": rng_states,
        "epoch": state.epoch, "rows": state.rows, "monitor": state.monitor,
        "best_val_loss": state.best_loss,
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
        The run was saved with another number of processes, or while following another
        validation value than ``state.monitor`` (its best score and lr schedule would be
        compared with the wrong quantity).
    """
    saved = load_state_dict(path, map_location=device)
    if len(saved["numpy_rng"]) != world_size:
        raise InputError(path, f"saved by a run of {len(saved['numpy_rng'])} process(es); resume "
                               f"it with as many, not {world_size}")
    saved_monitor = saved.get("monitor") or _monitor_of_best(saved, state.monitor)
    if saved_monitor != state.monitor:
        raise InputError(path, f"saved while following the validation {saved_monitor}, but "
                               f"config.yaml now says train.monitor: {state.monitor}; set it "
                               f"back to {saved_monitor} to resume")
    state.network.load_state_dict(saved["model"])
    state.optimizer.load_state_dict(saved["optimizer"])
    state.scheduler.load_state_dict(saved["scheduler"])
    if "grad_scaler" in saved and state.amp is not None and state.amp.scaler is not None:
        state.amp.scaler.load_state_dict(saved["grad_scaler"])
    state.rng.bit_generator.state = saved["numpy_rng"][rank]
    state.rows, state.best_loss = list(saved["rows"]), saved["best_val_loss"]
    state.best_epoch, state.stale, state.epoch = saved["best_epoch"], saved["stale"], saved["epoch"]


def _monitor_of_best(saved: dict, default: str) -> str:
    """What a state saved before it stored its monitor followed: the value its best score
    equals in its best epoch's row (``default`` while it has none)."""
    if not saved["best_epoch"]:
        return default
    row = saved["rows"][saved["best_epoch"] - 1]
    return "dice" if saved["best_val_loss"] == -row["val_dice"] else "loss"


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


def write_log(path: Path, rows: list[dict]) -> None:
    """The per-epoch rows (losses, validation Dice, lr, seconds) as CSV, atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
