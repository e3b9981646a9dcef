"""``hipseg demo``: phantoms of real anatomy -> train -> predict -> evaluate."""

from __future__ import annotations

import argparse
from pathlib import Path

from hipseg.cli.options import add_common, add_device
from hipseg.cli.values import nonnegative_int

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="phantoms of real anatomy -> train -> predict -> evaluate")
    p.add_argument("--out", type=Path, default=Path("demo_output"))
    p.add_argument("--seed", type=nonnegative_int, default=0)
    add_device(p)
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.demo import run_demo
    from hipseg.runtime.device import select_device

    run_demo(args.out, seed=args.seed, device=select_device(args.device),
             progress=not args.no_progress)
