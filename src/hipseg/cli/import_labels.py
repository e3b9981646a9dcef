"""``hipseg import-labels``: other tools' segmentations as hipseg label maps (coarse labels)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hipseg.cli.options import add_common, add_model_labels, labels_of

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import-labels",
                       help="other tools' segmentations as hipseg label maps (coarse labels)")
    p.add_argument("inputs", type=Path, nargs="+", metavar="SEG",
                   help="TotalSegmentator 'total' multilabel maps, or folders of its masks")
    p.add_argument("--from", dest="source", choices=("totalsegmentator",), required=True,
                   help="the tool that made SEG (TotalSegmentator v2, task total)")
    p.add_argument("--out", type=Path, required=True, help="folder for <case>.nii.gz label maps")
    add_model_labels(p)
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.datasets.ecosystem import import_totalsegmentator

    for path, counts in import_totalsegmentator(args.inputs, args.out, labels_of(args)):
        empty = [name for name, count in counts.items() if count == 0]
        print(f"{path}: " + ", ".join(f"{name} {count}" for name, count in counts.items())
              + (f" (empty: {', '.join(empty)})" if empty else ""))
    print(f"wrote {len(args.inputs)} label map(s) to {args.out}; everything else is background")
