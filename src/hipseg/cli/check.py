"""``hipseg check``: check every image and label map of a dataset folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from hipseg.cli.options import add_common, add_labels_dir, add_model_labels, add_strict, labels_of
from hipseg.core.errors import InputError

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="check every image and label map of a dataset folder")
    p.add_argument("data", type=Path, help="dataset folder (hipseg/MPUNet or nnU-Net v2 layout)")
    add_labels_dir(p)
    add_model_labels(p)
    add_strict(p)
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.evaluation.check import check_dataset, format_checks
    from hipseg.io import find_dataset

    labels = labels_of(args)
    results = check_dataset(find_dataset(args.data, labels_dir=args.labels_dir), labels,
                            strict=args.strict)
    print(format_checks(results, labels))
    bad = [r for r in results if r.problem is not None]
    if bad:
        raise InputError(args.data, f"{len(bad)} of {len(results)} cases have problems (see above)")
