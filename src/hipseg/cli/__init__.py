"""The ``hipseg`` command: one small module per verb (``add_parser`` + ``run``), shared option
groups in :mod:`hipseg.cli.options`.

The only place that configures logging and turns a :class:`HipsegError` into one line on
stderr and a non-zero exit code; every verb parses, calls one workflow and returns.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from hipseg.cli.values import Parser
from hipseg.core.errors import HipsegError

__all__ = ["VERBS", "build_parser", "main"]

#: Verb -> module of this package, in the order ``hipseg --help`` lists them.
VERBS = {
    "phantom": "phantom",
    "train": "train",
    "finetune": "finetune",
    "predict": "predict",
    "postprocess": "postprocess",
    "collisions": "collisions",
    "evaluate": "evaluate",
    "mesh": "mesh",
    "fe": "fe",
    "report": "report",
    "weightmap": "weightmap",
    "check": "check",
    "import-labels": "import_labels",
    "export-nnunet": "export_nnunet",
    "demo": "demo",
}


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="hipseg",
        description="Hip-joint CT segmentation with anatomically correct gaps (multi-planar UNet).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in VERBS.values():
        importlib.import_module(f"hipseg.cli.{module}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hipseg`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        importlib.import_module(f"hipseg.cli.{VERBS[args.command]}").run(args)
    except HipsegError as err:
        print(f"hipseg: error: {err}", file=sys.stderr)
        return err.exit_code
    except OSError as err:
        # The file system refused (disk full, permissions, a vanished folder): the user's to
        # fix, so one line naming the file rather than a traceback.
        where = f"{err.filename}: " if err.filename else ""
        print(f"hipseg: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hipseg: interrupted", file=sys.stderr)
        return 130
    return 0
