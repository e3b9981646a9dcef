"""Option groups shared by several verbs, with defaults taken from the config."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from hipseg.cli.values import cores, float_in, fraction, int_in, nonnegative_int, positive_int
from hipseg.core.config import (
    W0_WITHOUT_EROSION,
    AugmentConfig,
    HipsegConfig,
    TrainConfig,
    WeightMapConfig,
)
from hipseg.core.labels import LabelTable

if TYPE_CHECKING:  # imported when training runs, not for every verb's --help
    from hipseg.training.distributed import DistributedRun
    from hipseg.training.train import TrainResult


#: The accurate labels' subfolder of a dataset (coarse ones: ``labels_coarse``).
LABELS_DIR = "labels"


def add_labels_dir(parser: argparse.ArgumentParser, extra_help: str = "") -> None:
    parser.add_argument("--labels-dir", default=LABELS_DIR,
                        help=f"labels subfolder{extra_help} (default {LABELS_DIR})")


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def add_strict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strict", action="store_true",
                        help="refuse label maps whose right/left classes lie on the wrong side of "
                             "the body's midline (RAS, from the affine); default: warn")


def add_connectivity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=26,
                        help="voxel connectivity of components (default 26)")


def add_min_gap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-gap-mm", type=float_in(0.0, 100.0, low_open=True), metavar="MM",
                        help="voxels of different bones closer than this (centre to centre) are "
                             "cleared; default: bones may not be 26-neighbours")


def add_eps(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eps", type=float_in(0.0, 100.0, low_open=True), metavar="MM",
                        help="collision distance in mm: |E| counts bone voxels this close to "
                             "another bone (default: the paper's 2 mm, or the largest voxel "
                             "spacing if larger, so touching bones always count)")


def add_model_labels(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path,
                        help="model folder whose label table to use (default: built-in)")


def labels_of(args: argparse.Namespace) -> LabelTable:
    if args.model is None:
        return HipsegConfig().labels
    from hipseg.core.config import load_config
    from hipseg.runtime.model_io import ModelFolder

    return load_config(ModelFolder(args.model).config).labels


def add_weight_map_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-erosion", action="store_true",
                        help="weight map of the labels as given (paper: w0 = "
                             f"{W0_WITHOUT_EROSION:g} then)")
    parser.add_argument("--w0", type=float_in(0.0, 1000.0), help=f"weight map height (default "
                                                 f"{WeightMapConfig().w0:g}, {W0_WITHOUT_EROSION:g} with "
                                                 "--no-erosion)")
    sigma = WeightMapConfig().sigma_vox
    parser.add_argument("--sigma", type=float_in(0.0, 1000.0, low_open=True), default=sigma,
                        help=f"weight map width, voxels (default {sigma:g})")
    parser.add_argument("--ignore-contacts-mm", type=float_in(0.0, 100.0), default=0.0,
                        metavar="MM",
                        help="loss weight 0 within MM of where two bones touch in the labels: "
                             "for coarse labels, whose joint spaces are closed (default 0: off)")
    parser.add_argument("--weight-cache", type=Path, metavar="DIR",
                        help="weight-map cache folder (default DATA/weightmaps)")


def add_optimiser_options(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    parser.add_argument("--epochs", type=positive_int,
                        help=f"at most this many epochs (default {defaults.epochs}; with "
                             "--resume: the saved run's, or this many in all)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the model in an --out folder that already holds one "
                             "(default: refuse it)")
    parser.add_argument("--steps-per-epoch", type=positive_int, default=defaults.steps_per_epoch)
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float_in(0.0, 1.0, low_open=True), default=defaults.learning_rate,
                        help=f"Adam learning rate (default {defaults.learning_rate:g})")
    parser.add_argument("--seed", type=nonnegative_int, default=defaults.seed)
    parser.add_argument("--early-stop-patience", type=positive_int,
                        default=defaults.early_stop_patience, metavar="EPOCHS",
                        help="stop after this many epochs without a better validation --monitor "
                             f"(default {defaults.early_stop_patience})")
    parser.add_argument("--monitor", choices=("dice", "loss"), default=defaults.monitor,
                        help="what the best model, the lr schedule and early stopping follow: "
                             "validation Dice or loss (default %(default)s)")
    parser.add_argument("--validation", choices=("auto", "split", "planes"),
                        default=defaults.validation,
                        help="hold out scans for validation (split), or train on every scan and "
                             "validate on fixed planes of them (planes); auto: planes below "
                             f"{defaults.min_split_cases} scans (default {defaults.validation})")
    defaults_augment = AugmentConfig()
    parser.add_argument("--elastic-fraction", type=fraction, default=defaults_augment.fraction,
                        help="fraction of each batch elastically deformed (default 1/3; 0: off)")
    parser.add_argument("--appearance-fraction", type=fraction,
                        default=defaults_augment.appearance_fraction,
                        help="fraction of each batch whose CT contrast, offset, blur and noise "
                             "are redrawn (augment.appearance_*; default "
                             f"{defaults_augment.appearance_fraction:g}; 0: off)")


def train_settings(args: argparse.Namespace, defaults: TrainConfig) -> TrainConfig:
    return dataclasses.replace(defaults, epochs=args.epochs or defaults.epochs, steps_per_epoch=args.steps_per_epoch,
                               batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                               validation=args.validation, monitor=args.monitor,
                               early_stop_patience=args.early_stop_patience)


def weight_map_config(args: argparse.Namespace, enabled: bool) -> WeightMapConfig:
    if args.w0 is not None:
        w0 = args.w0
    else:
        w0 = W0_WITHOUT_EROSION if args.no_erosion else WeightMapConfig().w0
    return WeightMapConfig(enabled=enabled, w0=w0, sigma_vox=args.sigma, erode=not args.no_erosion,
                           ignore_contacts_mm=args.ignore_contacts_mm)


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")


def add_training_device(parser: argparse.ArgumentParser) -> None:
    add_device(parser)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help="training autocast: auto (bf16 on CUDA, fp16 with a gradient scaler "
                             "where bf16 is missing; fp32 on the CPU), fp32 turns it off. Under "
                             "torchrun every process trains on its own device (docs/scaling.md)")


def add_predict_scaling(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help="network autocast: auto (bf16 on CUDA and on CPUs with native bf16, "
                             "else fp32), fp32 turns mixed precision off")
    parser.add_argument("--threads", type=int_in(1, cores()), metavar="N",
                        help="torch threads per worker (default: the cores divided by --workers)")
    parser.add_argument("--workers", type=int_in(1, cores()), default=1, metavar="N",
                        help="worker processes on this machine, each predicting its share")
    parser.add_argument("--num-parts", type=positive_int, default=1, metavar="K",
                        help="split the inputs into K parts (as nnU-Net; e.g. one per SLURM "
                             "array task) ...")
    parser.add_argument("--part-id", type=nonnegative_int, default=0, metavar="I",
                        help="... and predict part I (0 to K-1): every K-th input in sorted order")


@contextlib.contextmanager
def training_run(args: argparse.Namespace) -> Iterator[DistributedRun]:
    """This process's place in a (``torchrun``) training run; only rank 0 logs below warnings."""
    from hipseg.training.distributed import start_run, stop_run

    run = start_run(args.device)
    if not run.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        yield run
    finally:
        stop_run(run)


def print_result(result: TrainResult, run: DistributedRun) -> None:
    if not run.is_main:
        return
    print(f"model written to {result.model_dir} (best epoch {result.best_epoch} of "
          f"{result.epochs_run}, validation {result.monitor} {result.best_value:.4f}; curves in "
          f"{result.model_dir / 'progress.png'})")
