"""``hipseg export-nnunet``: write a dataset as an nnU-Net v2 dataset."""

from __future__ import annotations

import argparse
from pathlib import Path

from hipseg.cli.options import add_common, add_labels_dir, add_model_labels, labels_of

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export-nnunet", help="write a dataset as an nnU-Net v2 dataset")
    p.add_argument("data", type=Path, help="dataset folder (hipseg/MPUNet layout)")
    p.add_argument("--out", type=Path, required=True,
                   help="nnU-Net dataset folder to write (e.g. nnUNet_raw/Dataset501_Hip)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --out folder (default: refuse it)")
    add_labels_dir(p)
    add_model_labels(p)
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.datasets.ecosystem import export_nnunet

    count = export_nnunet(args.data, args.out, labels_of(args), labels_dir=args.labels_dir,
                          overwrite=args.overwrite,
                          progress=not args.no_progress)
    print(f"wrote {count} cases as an nnU-Net v2 dataset to {args.out}")
