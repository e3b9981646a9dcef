"""``hipseg finetune``: fine-tune every layer of MODEL on accurate scans."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from hipseg.cli.options import (
    add_common,
    add_labels_dir,
    add_optimiser_options,
    add_strict,
    add_training_device,
    add_weight_map_options,
    print_result,
    train_settings,
    training_run,
    weight_map_config,
)
from hipseg.core.config import (
    FINETUNE_TRAIN,
    HipsegConfig,
)

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune", help="fine-tune every layer of MODEL on accurate scans")
    p.add_argument("model", type=Path, help="model folder to start from (e.g. pre-trained)")
    p.add_argument("data", type=Path, help="folder with images/ and a labels folder")
    p.add_argument("--out", type=Path, required=True, help="new model folder to write")
    add_labels_dir(p)
    p.add_argument("--continue", dest="continue_training", action="store_true",
                   help="interactive round: also train on the scans MODEL was fine-tuned on")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted fine-tuning in --out (same arguments)")
    add_optimiser_options(p, FINETUNE_TRAIN)
    p.add_argument("--no-weight-map", action="store_true", help="unweighted cross-entropy")
    add_weight_map_options(p)
    add_strict(p)
    add_training_device(p)
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.io import find_dataset
    from hipseg.training.finetune import finetune

    defaults = HipsegConfig()
    config = dataclasses.replace(
        defaults, train=train_settings(args, FINETUNE_TRAIN),
        weight_map=weight_map_config(args, not args.no_weight_map),
        augment=dataclasses.replace(defaults.augment, fraction=args.elastic_fraction,
                                    appearance_fraction=args.appearance_fraction))
    cases = find_dataset(args.data, labels_dir=args.labels_dir, splits=("train", "val")).cases()
    with training_run(args) as run:
        result = finetune(args.model, cases, config, args.out, device=run.device,
                          continue_training=args.continue_training, resume=args.resume,
                          weight_cache=args.weight_cache, progress=not args.no_progress, run=run,
                          precision=args.precision, overwrite=args.overwrite,
                       resume_epochs=args.epochs if args.resume else None,
                       strict_sides=args.strict)
        print_result(result, run)
