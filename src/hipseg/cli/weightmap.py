"""``hipseg weightmap``: precompute the loss weight maps of a dataset (cached)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hipseg.cli.options import (
    add_common,
    add_labels_dir,
    add_model_labels,
    add_weight_map_options,
    labels_of,
    weight_map_config,
)

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("weightmap", help="precompute the loss weight maps of a dataset (cached)")
    p.add_argument("data", type=Path, help="folder with images/ and a labels folder")
    add_labels_dir(p)
    add_weight_map_options(p)
    p.add_argument("--write-nifti", action="store_true",
                   help="also write <case>_weights.nii.gz beside each cached map, to look at")
    add_model_labels(p)
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.io import find_cases
    from hipseg.training.weightmaps import precompute_weight_maps

    cases = find_cases(args.data / "images", args.data / args.labels_dir)
    paths = precompute_weight_maps(cases, labels_of(args), weight_map_config(args, True),
                                   cache_root=args.weight_cache, write_nifti=args.write_nifti,
                                   progress=not args.no_progress)
    print(f"{len(paths)} weight map(s) in {paths[0].parent}"
          + (" (with <case>_weights.nii.gz)" if args.write_nifti else ""))
