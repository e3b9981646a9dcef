"""``hipseg phantom``: make synthetic hip CTs with accurate and coarse labels."""

from __future__ import annotations

import argparse
from pathlib import Path

from hipseg.cli.options import add_common
from hipseg.cli.values import float_in, int_in, nonnegative_int
from hipseg.core.errors import HipsegError
from hipseg.phantom.from_labels import LabelPhantomSettings
from hipseg.phantom.variants import VariantSettings

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("phantom", help="make synthetic hip CTs with accurate and coarse labels")
    p.add_argument("out", type=Path, help="output folder (images/, labels/, labels_coarse/)")
    p.add_argument("--cases", type=int_in(1, 10000), default=4, help="number of cases (default 4)")
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--from-meshes", type=Path, metavar="DIR",
                   help="build cases from closed bone meshes (STL/OBJ, mm) in DIR")
    p.add_argument("--mirror", action="store_true",
                   help="with --from-meshes: mirror one-sided meshes to the other side")
    p.add_argument("--from-labels", type=Path, metavar="DIR",
                   help="build a CT for every real label map in DIR, on the map's own grid "
                        "(--cases is ignored: one case per map, plus --variants)")
    p.add_argument("--variants", type=int_in(0, 10000), default=0, metavar="N",
                   help="with --from-labels: N new anatomies per map (smooth deformation, "
                        "scaling, each leg turned about its femoral head, left/right "
                        "mirroring with the side ids swapped); default 0")
    p.add_argument("--femur-rotation-deg", type=float_in(0.0, 45.0),
                   default=VariantSettings.max_femur_rotation_deg, metavar="DEG",
                   help="with --variants: largest turn of each femur about its head, per RAS "
                        f"axis (default {VariantSettings.max_femur_rotation_deg:g}; 0 keeps "
                        "the map's leg pose)")
    p.add_argument("--coarse-gap-mm", type=float_in(0.0, 50.0), default=LabelPhantomSettings.coarse_gap_mm,
                   help="with --from-labels: coarse labels close joint spaces up to this "
                        f"width (default {LabelPhantomSettings.coarse_gap_mm:g})")
    p.add_argument("--merge-femoral-head-mm", type=float_in(0.0, 50.0), default=0.0, metavar="MM",
                   help="with --from-labels: coarse labels also give the femoral head within "
                        "MM of the acetabulum to the hip bone, as TotalSegmentator does")
    p.add_argument("--spacing", type=float_in(0.05, 20.0), nargs=3, default=None, metavar="MM",
                   help="voxel spacing in mm: --from-meshes default 1.5 1.5 1.5; "
                        "--from-labels resamples the maps (nearest) to it, default their own")
    p.add_argument("--workers", type=int_in(1, 256), default=1, metavar="N",
                   help="with --from-labels: make N cases at once in N processes (each holds "
                        "one case, 2-4 GiB at full resolution; same cases as with 1); default 1")
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.datasets.phantom import (
        write_label_dataset,
        write_mesh_dataset,
        write_procedural_dataset,
    )
    from hipseg.io.guard import check_output_folder

    if args.from_labels is not None and args.from_meshes is not None:
        raise HipsegError("give --from-labels or --from-meshes, not both")
    check_output_folder(args.out)
    if args.from_labels is not None:
        settings = LabelPhantomSettings(
            coarse_gap_mm=args.coarse_gap_mm, merge_femoral_head_mm=args.merge_femoral_head_mm,
            spacing_mm=None if args.spacing is None else tuple(args.spacing),
            variant=VariantSettings(max_femur_rotation_deg=args.femur_rotation_deg))
        names = write_label_dataset(args.out, args.from_labels, args.seed,
                                    variants=args.variants, settings=settings,
                                    progress=not args.no_progress, workers=args.workers)
    elif args.from_meshes is not None:
        names = write_mesh_dataset(args.out, args.from_meshes, args.cases, args.seed,
                                   spacing_mm=args.spacing or (1.5, 1.5, 1.5), mirror=args.mirror,
                                   progress=not args.no_progress)
    else:
        names = write_procedural_dataset(args.out, args.cases, args.seed,
                                         progress=not args.no_progress)
    print(f"wrote {len(names)} cases to {args.out}")
