"""``hipseg fe``: a finite-element model (tetrahedra, cartilage, contacts, load case) from a
label map whose gaps are kept."""

from __future__ import annotations

import argparse
from pathlib import Path

from hipseg.cli.options import add_common, add_model_labels, labels_of
from hipseg.cli.values import float_in
from hipseg.core.errors import ConfigError
from hipseg.fe import FORMATS

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fe", help="FE model (FEBio / Abaqus / gmsh / VTU) from a label map")
    p.add_argument("labels", type=Path, help="label map (NIfTI) whose joint spaces are kept")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--format", nargs="+", choices=FORMATS, default=["feb"], dest="formats",
                   help="file formats to write (default: feb)")
    p.add_argument("--size", type=float_in(0.2, 10.0), default=1.0, metavar="MM",
                   help="element grid spacing in mm (default 1.0: about 1 mm elements across "
                        "the 1-2.5 mm cartilage layers)")
    p.add_argument("--max-gap-mm", type=float_in(0.0, 20.0, low_open=True), default=4.0,
                   metavar="MM", help="widest joint space filled with cartilage (default 4)")
    p.add_argument("--enforce-gap", action="store_true",
                   help="run the gap guarantee on the map first (default: bones that touch "
                        "are refused, naming the pair and where)")
    p.add_argument("--contact-gap-mm", type=float_in(0.0, 3.0), default=0.0, metavar="MM",
                   help="open every contact pair (the two cartilage layers of a hip joint) to "
                        "this gap (default 0: touching, as FEBio's contact needs; a small gap, "
                        "below a third of --size, gives a start free of penetration)")
    p.add_argument("--template", type=Path, metavar="YAML",
                   help="materials and load case (default: the built-in template; each run "
                        "writes the one it used beside the model)")
    add_model_labels(p)
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.fe.files import fe_file, format_fe_summary
    from hipseg.fe.model import FeSettings
    from hipseg.fe.template import FeTemplate, load_template

    try:
        settings = FeSettings(size_mm=args.size, max_gap_mm=args.max_gap_mm,
                              enforce_gap=args.enforce_gap, contact_gap_mm=args.contact_gap_mm)
    except ValueError as err:
        raise ConfigError(f"--contact-gap-mm: {err}") from None
    template = load_template(args.template) if args.template else FeTemplate()
    report = fe_file(args.labels, args.out, labels_of(args), settings=settings,
                     template=template, formats=tuple(args.formats))
    print(format_fe_summary(report))
    print(f"{', '.join(report['files'])} and {report['case']}_fe.json written to {args.out}")
