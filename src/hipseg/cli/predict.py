"""``hipseg predict``: segment CT scans."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from hipseg.cli.options import (
    add_common,
    add_connectivity,
    add_device,
    add_eps,
    add_min_gap,
    add_predict_scaling,
)
from hipseg.cli.values import float_in

if TYPE_CHECKING:
    from hipseg.runtime.model_io import LoadedModel

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="segment CT scans")
    p.add_argument("model", type=Path, help="model folder")
    p.add_argument("inputs", type=Path, nargs="+",
                   help="images (NIfTI, NRRD, MetaImage) or DICOM series folders")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--output-format", choices=("nifti", "nrrd", "metaimage", "input"),
                   default="nifti",
                   help="format of the written maps: nifti (default), nrrd, metaimage (.mha), or "
                        "input (each input's own; not for DICOM)")
    p.add_argument("--series-uid", metavar="UID",
                   help="DICOM series to read from a folder (default: the one with most slices)")
    p.add_argument("--crop", action="store_true",
                   help="segment only the hip region of a larger scan: a coarse pass of the model "
                        "finds the bones, the box around them plus --crop-margin-mm is segmented "
                        "and pasted back onto the input's grid (background elsewhere)")
    p.add_argument("--crop-margin-mm", type=float_in(0.0, 500.0), default=20.0, metavar="MM",
                   help="margin around the coarsely found bones (default 20)")
    p.add_argument("--mirror", action="store_true",
                   help="also predict the scan mirrored across the body's midline (side ids "
                        "swapped back) and fuse both: twice the network's work (1.5-1.6x the "
                        "time measured), the same memory; docs/accuracy.md run 6")
    p.add_argument("--save-probabilities", action="store_true",
                   help="also write <case>_probabilities.nii.gz (fused, classes last)")
    p.add_argument("--save-uncertainty", action="store_true",
                   help="also write <case>_uncertainty.nii.gz: fraction of views voting against "
                        "the fused label")
    p.add_argument("--no-postprocess", action="store_true",
                   help="skip post-processing (symmetric connected components, then the gap "
                        "guarantee: no two bones touch)")
    add_min_gap(p)
    p.add_argument("--meshes", action="store_true",
                   help="also write one closed surface mesh per bone to OUT/meshes (STL)")
    p.add_argument("--fe", action="store_true",
                   help="also write an FE model per scan to OUT/fe (hipseg fe at its defaults: "
                        "FEBio .feb, 1 mm grid)")
    p.add_argument("--report", action="store_true",
                   help="also write an HTML QC report per scan to OUT/reports (implies "
                        "--save-uncertainty)")
    p.add_argument("--overwrite", action="store_true",
                   help="predict again where OUT/<case>.nii.gz exists (default: skip it)")
    p.add_argument("--pixel-mm", type=float_in(0.0, 100.0, low_open=True), metavar="MM",
                   help="plane pixel spacing in mm (default: the model's); a model trained "
                        "with --finest-pixel-mm takes any spacing in its trained range")
    p.add_argument("--refine-joints", action="store_true",
                   help="predict again around the joints (where two bones come within 8 mm) "
                        "at the finest pixel spacing the model was trained at "
                        "(train --finest-pixel-mm); the rest keeps the first pass")
    p.add_argument("--max-memory-gb", type=float_in(0.0, low_open=True),
                   help="refuse scans whose prediction needs more (default: 80%% of the memory)")
    add_connectivity(p)
    add_eps(p)
    add_device(p)
    add_predict_scaling(p)
    add_common(p)


def run(args: argparse.Namespace) -> None:
    from hipseg.inference.batch import predict_files_in_workers, select_part
    from hipseg.inference.files import PredictOptions
    from hipseg.runtime.device import select_device
    from hipseg.runtime.model_io import load_model

    options = PredictOptions(postprocess=not args.no_postprocess, connectivity=args.connectivity,
                             min_gap_mm=args.min_gap_mm,
                             collision_eps_mm=args.eps, save_probabilities=args.save_probabilities,
                             save_uncertainty=args.save_uncertainty or args.report,
                             overwrite=args.overwrite,
                             max_memory_gb=args.max_memory_gb,
                             output_format=args.output_format, series_uid=args.series_uid,
                             precision=args.precision,
                             crop_margin_mm=args.crop_margin_mm if args.crop else None,
                             mirror=args.mirror, pixel_spacing_mm=args.pixel_mm,
                             refine_joints=args.refine_joints)
    device = select_device(args.device)
    inputs = select_part(args.inputs, args.num_parts, args.part_id)
    model = load_model(args.model, device)
    check_pixel_spacing(model, args.model, args.pixel_mm, args.refine_joints)
    summaries = predict_files_in_workers(model, args.model, inputs, args.out, options=options,
                                         workers=args.workers, threads=args.threads,
                                         progress=not args.no_progress)
    print(f"{'case':<24} {'|E|':>8} {'eps mm':>7} {'disagreement':>12} {'moved':>7} "
          f"{'removed':>8} {'gap':>6}  empty classes")
    for s in summaries:
        print(f"{s.case_id:<24} {s.collisions:>8} {s.collision_eps_mm:>7.2f} "
              f"{s.mean_disagreement:>12.3f} {s.voxels_moved:>7} {s.voxels_removed:>8} "
              f"{s.gap_voxels_changed:>6}  {', '.join(s.empty_classes) or '-'}")
    print(f"wrote {len(summaries)} label map(s) to {args.out} (|E|: bone voxels within eps of "
          "another bone; gap: voxels cleared so no two bones touch)")
    fe_dir = None
    if args.fe and summaries:
        from hipseg.fe.files import fe_file, format_fe_summary

        fe_dir = Path(args.out) / "fe"
        for s in summaries:
            print(format_fe_summary(fe_file(s.path, fe_dir, model.config.labels)))
        print(f"FE models written to {fe_dir}")
    if args.meshes or args.report:
        from hipseg.qc.after_prediction import meshes_and_reports

        mesh_dir, report_dir = meshes_and_reports(
            summaries, args.inputs, args.out, model.config.labels, meshes=args.meshes,
            reports=args.report, min_gap_mm=args.min_gap_mm, eps_mm=args.eps, fe_dir=fe_dir)
        if mesh_dir is not None:
            print(f"meshes and their QC written to {mesh_dir}")
        if report_dir is not None:
            print(f"QC reports written to {report_dir}")


def check_pixel_spacing(model: LoadedModel, model_dir: Path, pixel_spacing_mm: float | None,
                        refine_joints: bool = False) -> None:
    """Refuse, naming the model folder, a ``--pixel-mm`` the model cannot predict at or a
    ``--refine-joints`` it has no finer spacing for (before any scan is read)."""
    from hipseg.core.errors import ConfigError, InputError
    from hipseg.models.registry import architecture

    if pixel_spacing_mm is None and not refine_joints:
        return
    option = "--pixel-mm" if pixel_spacing_mm is not None else "--refine-joints"
    if not architecture(model.config.model.architecture).uses_views:
        raise InputError(model_dir, f"{option}: a 3D UNet predicts on the scan's own voxels, "
                                    "it has no planes")
    try:
        model.config.sampling.prediction_pixel_spacing_mm(pixel_spacing_mm)
    except ConfigError as err:
        raise InputError(model_dir, f"--pixel-mm: {err}") from None
    if refine_joints and not model.config.sampling.several_spacings:
        raise InputError(model_dir, "--refine-joints: the model was trained at "
                                    f"{model.config.sampling.pixel_spacing_mm:.3g} "
                                    "mm pixels only; train it with --finest-pixel-mm")
