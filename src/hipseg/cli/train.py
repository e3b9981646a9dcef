"""``hipseg train``: train a model (from scratch, or from --init to fine-tune)."""

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
from hipseg.cli.values import float_in, int_in
from hipseg.core.config import INTENSITY_SCALINGS, HipsegConfig
from hipseg.models.registry import ARCHITECTURES

__all__ = ["add_parser", "finest_pixel_mm", "run"]


def finest_pixel_mm(text: str) -> float:
    """``--finest-pixel-mm``: ``rule`` is -1 (measured with the plane size), else 0 or a
    spacing in 0.01..20 mm."""
    if text.strip().lower() == "rule":
        return -1.0
    value = float_in(0.0, 20.0)(text)
    if 0 < value < 0.01:
        raise argparse.ArgumentTypeError(f"{text!r}: 0 (one spacing), 'rule' or 0.01..20 mm")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model (from scratch, or from --init to fine-tune)")
    p.add_argument("data", type=Path,
                   help="dataset folder: images/ and a labels folder (MPUNet: train/ and val/ "
                        "with these), or an nnU-Net v2 dataset (imagesTr, labelsTr, dataset.json)")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    add_labels_dir(p, ": labels (accurate) or labels_coarse")
    p.add_argument("--init", type=Path, metavar="MODEL", help="start from this model (all layers)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out after its last completed epoch")
    defaults = HipsegConfig()
    add_optimiser_options(p, defaults.train)
    p.add_argument("--views", type=int_in(1, 64), default=defaults.views.n_views, help="number of views")
    p.add_argument("--base-width", type=int_in(1, 512), default=defaults.model.base_width)
    p.add_argument("--depth", type=int_in(1, 8), default=defaults.model.depth)
    p.add_argument("--architecture", choices=sorted(ARCHITECTURES),
                   default=defaults.model.architecture,
                   help="unet2d: the multi-planar method; unet3d: 3D UNet on patches (baseline)")
    p.add_argument("--patch-vox", type=int_in(8, 512), default=defaults.model.patch_vox,
                   help="unet3d: patch side in voxels")
    p.add_argument("--no-lateral-channel", action="store_true",
                   help="the CT alone as input, without the patient-side (RAS x) channel")
    p.add_argument("--dim", type=int_in(0, 4096), default=0,
                   help="plane side in pixels (default: 75th percentile of the training scans)")
    p.add_argument("--sphere-mm", type=float_in(0.0, 5000.0), default=0.0,
                   help="sampling sphere diameter in mm (default: 75th percentile)")
    p.add_argument("--min-pixel-mm", type=float_in(0.0, 20.0), default=defaults.sampling.min_pixel_spacing_mm,
                   help="floor on the pixel spacing in mm: a measured dim is lowered until its "
                        "pixels are at least this large (default %(default)s; 0: the paper's "
                        "rule, pixels as fine as the training scans' voxels)")
    p.add_argument("--finest-pixel-mm", type=finest_pixel_mm, default=0.0, metavar="MM|rule",
                   help="also train at finer pixels: each plane's spacing drawn between MM (or "
                        "'rule': the paper's rule, the training scans' own resolution) and the "
                        "floored one, so predict --pixel-mm can use any in between (default 0: "
                        "one spacing)")
    p.add_argument("--fine-plane-fraction", type=float_in(0.0, 1.0),
                   default=defaults.sampling.fine_plane_fraction, metavar="F",
                   help="with --finest-pixel-mm: fraction of training planes at a finer spacing, "
                        "aimed at the joint spaces (default %(default)s)")
    p.add_argument("--joint-plane-fraction", type=float_in(0.0, 1.0 - defaults.sampling.foreground_plane_fraction),
                   default=defaults.sampling.joint_plane_fraction, metavar="F",
                   help="fraction of training planes aimed at a joint-space voxel (background "
                        "between two bones); default %(default)s")
    p.add_argument("--intensity-scaling", choices=INTENSITY_SCALINGS, default=None,
                   help="how HU become the network's input: robust, the paper's per-scan "
                        "(x - median) / IQR; fixed, one map of calibrated HU for every scan "
                        f"(default {defaults.preprocess.intensity_scaling}; with --init the "
                        "initial model's)")
    p.add_argument("--weight-map", action="store_true",
                   help="weight the loss by the distance weight map (off for pre-training on "
                        "coarse labels, as the paper; finetune has it on)")
    add_weight_map_options(p)
    add_strict(p)
    add_training_device(p)
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.core.errors import ConfigError
    from hipseg.io import find_dataset
    from hipseg.training.train import train

    if args.finest_pixel_mm != 0 and (args.init is not None or args.architecture != "unet2d"):
        raise ConfigError("--finest-pixel-mm: planes of several spacings need a 2D UNet trained "
                          "from scratch (--init keeps the initial model's plane geometry)")
    if args.intensity_scaling is not None and args.init is not None:
        raise ConfigError("--intensity-scaling: --init keeps the initial model's pre-processing")
    defaults = HipsegConfig()
    config = dataclasses.replace(
        defaults,
        preprocess=dataclasses.replace(
            defaults.preprocess,
            intensity_scaling=args.intensity_scaling or defaults.preprocess.intensity_scaling),
        views=dataclasses.replace(defaults.views, n_views=args.views),
        sampling=dataclasses.replace(defaults.sampling, dim=args.dim,
                                     sphere_diameter_mm=args.sphere_mm,
                                     min_pixel_spacing_mm=args.min_pixel_mm,
                                     finest_pixel_spacing_mm=args.finest_pixel_mm,
                                     fine_plane_fraction=args.fine_plane_fraction,
                                     joint_plane_fraction=args.joint_plane_fraction),
        model=dataclasses.replace(defaults.model, base_width=args.base_width, depth=args.depth,
                                  architecture=args.architecture, patch_vox=args.patch_vox,
                                  lateral_channel=not args.no_lateral_channel),
        train=train_settings(args, defaults.train),
        weight_map=weight_map_config(args, args.weight_map),
        augment=dataclasses.replace(defaults.augment, fraction=args.elastic_fraction,
                                    appearance_fraction=args.appearance_fraction),
    )
    # MPUNet's test split stays out of training; train() draws its own validation cases.
    cases = find_dataset(args.data, labels_dir=args.labels_dir, splits=("train", "val")).cases()
    with training_run(args) as run:
        result = train(cases, config, args.out, device=run.device, init_model=args.init,
                       resume=args.resume, weight_cache=args.weight_cache,
                       progress=not args.no_progress, run=run, precision=args.precision,
                       overwrite=args.overwrite,
                       resume_epochs=args.epochs if args.resume else None,
                       strict_sides=args.strict)
        print_result(result, run)
