"""The ``hipseg`` command: parses arguments, builds the config, calls one workflow.

The only place that configures logging and turns a :class:`HipsegError` into one line on
stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from hipseg.core.config import HipsegConfig
from hipseg.core.errors import HipsegError, InputError
from hipseg.core.labels import LabelTable

__all__ = ["build_parser", "main"]

logger = logging.getLogger("hipseg")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")


def _add_connectivity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--connectivity", type=int, choices=(6, 18, 26), default=26,
                        help="voxel connectivity of components (default 26)")


def _add_min_gap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--min-gap-mm", type=float, metavar="MM",
                        help="voxels of different bones closer than this (centre to centre) are "
                             "cleared; default: bones may not be 26-neighbours")


def _add_eps(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--eps", type=float, metavar="MM",
                        help="collision distance in mm: |E| counts bone voxels this close to "
                             "another bone (default: the paper's 2 mm, or the largest voxel "
                             "spacing if larger, so touching bones always count)")


def _add_model_labels(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path,
                        help="model folder whose label table to use (default: built-in)")


def _labels_of(args: argparse.Namespace) -> LabelTable:
    if args.model is None:
        return HipsegConfig().labels
    from hipseg.core.config import load_config

    return load_config(args.model / "config.yaml").labels


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hipseg",
        description="Hip-joint CT segmentation with anatomically correct gaps (multi-planar UNet).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("phantom", help="make synthetic hip CTs with accurate and coarse labels")
    p.add_argument("out", type=Path, help="output folder (images/, labels/, labels_coarse/)")
    p.add_argument("--cases", type=int, default=4, help="number of cases (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--from-meshes", type=Path, metavar="DIR",
                   help="build cases from closed bone meshes (STL/OBJ, mm) in DIR")
    p.add_argument("--mirror", action="store_true",
                   help="with --from-meshes: mirror one-sided meshes to the other side")
    p.add_argument("--spacing", type=float, nargs=3, default=(1.5, 1.5, 1.5), metavar="MM",
                   help="with --from-meshes: voxel spacing in mm (default 1.5 1.5 1.5)")
    _add_common(p)

    p = sub.add_parser("train", help="train a model (from scratch, or from --init to fine-tune)")
    p.add_argument("data", type=Path, help="folder with images/ and a labels folder")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--labels-dir", default="labels",
                   help="labels subfolder: labels (accurate) or labels_coarse (default labels)")
    p.add_argument("--init", type=Path, metavar="MODEL", help="start from this model (all layers)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out after its last completed epoch")
    defaults = HipsegConfig()
    p.add_argument("--epochs", type=int, default=defaults.train.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=defaults.train.steps_per_epoch)
    p.add_argument("--batch-size", type=int, default=defaults.train.batch_size)
    p.add_argument("--lr", type=float, default=defaults.train.learning_rate)
    p.add_argument("--seed", type=int, default=defaults.train.seed)
    p.add_argument("--views", type=int, default=defaults.views.n_views, help="number of views")
    p.add_argument("--base-width", type=int, default=defaults.model.base_width)
    p.add_argument("--depth", type=int, default=defaults.model.depth)
    _add_device(p)
    _add_common(p)

    p = sub.add_parser("predict", help="segment CT scans")
    p.add_argument("model", type=Path, help="model folder")
    p.add_argument("inputs", type=Path, nargs="+", help="NIfTI images")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--save-probabilities", action="store_true",
                   help="also write <case>_probabilities.nii.gz (fused, classes last)")
    p.add_argument("--save-uncertainty", action="store_true",
                   help="also write <case>_uncertainty.nii.gz: fraction of views voting against "
                        "the fused label")
    p.add_argument("--no-postprocess", action="store_true",
                   help="skip post-processing (symmetric connected components, then the gap "
                        "guarantee: no two bones touch)")
    _add_min_gap(p)
    p.add_argument("--meshes", action="store_true",
                   help="also write one closed surface mesh per bone to OUT/meshes (STL)")
    p.add_argument("--report", action="store_true",
                   help="also write an HTML QC report per scan to OUT/reports (implies "
                        "--save-uncertainty)")
    p.add_argument("--overwrite", action="store_true",
                   help="predict again where OUT/<case>.nii.gz exists (default: skip it)")
    p.add_argument("--max-memory-gb", type=float,
                   help="refuse scans whose prediction needs more (default: 80%% of the memory)")
    _add_connectivity(p)
    _add_eps(p)
    _add_device(p)
    _add_common(p)

    p = sub.add_parser("postprocess", help="symmetric connected components on existing label maps")
    p.add_argument("inputs", type=Path, nargs="+", help="label maps (NIfTI)")
    p.add_argument("--out", type=Path, required=True, help="output folder (same file names)")
    _add_connectivity(p)
    _add_model_labels(p)
    _add_common(p)

    p = sub.add_parser("collisions",
                       help="|E| per scan and class pair, ranked worst first, with regions to correct")
    p.add_argument("inputs", type=Path, nargs="+", help="predicted label maps (NIfTI)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write <case>_collisions.nii.gz (pair codes) and collisions.csv to DIR")
    p.add_argument("--top", type=int, default=3, help="regions listed per scan (default 3)")
    p.add_argument("--threshold", type=int,
                   help="say whether every scan has |E| at or below this (the loop's stop rule)")
    _add_eps(p)
    _add_model_labels(p)
    _add_common(p)

    p = sub.add_parser("evaluate", help="score predictions against reference labels")
    p.add_argument("--labels", type=Path, required=True, help="folder of reference label maps")
    p.add_argument("--predictions", type=Path, required=True, help="folder of predicted label maps")
    _add_model_labels(p)
    p.add_argument("--out", type=Path, help="per-case CSV to write (a JSON summary goes beside it)")
    p.add_argument("--save-gap-regions", type=Path, metavar="DIR",
                   help="write each reference's gap region G (d1 + d2 < 10 voxels) as NIfTI to DIR")
    _add_common(p)

    p = sub.add_parser("mesh", help="FE-ready bone surface meshes from label maps, with QC")
    p.add_argument("inputs", type=Path, nargs="+", help="label maps (NIfTI)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--format", choices=("stl", "obj", "ply", "vtk"), default="stl")
    p.add_argument("--smooth", type=int, default=0, metavar="N",
                   help="Taubin smoothing iterations, backed off so no joint space closes")
    _add_min_gap(p)
    p.add_argument("--lps", action="store_true", help="write LPS coordinates instead of RAS")
    _add_model_labels(p)
    _add_common(p)

    p = sub.add_parser("report", help="HTML QC page of one scan: overlays, collisions, meshes, tables")
    p.add_argument("image", type=Path, help="CT image (NIfTI)")
    p.add_argument("labels", type=Path, help="its label map (a prediction)")
    p.add_argument("--out", type=Path, required=True, help="output folder")
    p.add_argument("--reference", type=Path, help="reference label map: adds a metrics table")
    p.add_argument("--uncertainty", type=Path, help="view-disagreement map (predict --save-uncertainty)")
    p.add_argument("--mesh-qc", type=Path, help="<case>_mesh_qc.json to show (default: computed)")
    _add_eps(p)
    _add_model_labels(p)
    _add_common(p)

    p = sub.add_parser("check", help="check every image and label map of a dataset folder")
    p.add_argument("data", type=Path, help="folder with images/ and a labels folder")
    p.add_argument("--labels-dir", default="labels", help="labels subfolder (default labels)")
    _add_model_labels(p)
    _add_common(p)

    p = sub.add_parser("demo", help="phantoms -> pre-train -> fine-tune -> predict -> evaluate")
    p.add_argument("--out", type=Path, default=Path("demo_output"))
    p.add_argument("--seed", type=int, default=0)
    _add_device(p)
    _add_common(p)
    return parser


def _run_phantom(args: argparse.Namespace) -> None:
    from hipseg.workflows.phantom import write_mesh_dataset, write_procedural_dataset

    if args.cases < 1:
        raise HipsegError("--cases must be at least 1")
    if args.from_meshes is not None:
        write_mesh_dataset(args.out, args.from_meshes, args.cases, args.seed,
                           spacing_mm=args.spacing, mirror=args.mirror, progress=not args.no_progress)
    else:
        write_procedural_dataset(args.out, args.cases, args.seed, progress=not args.no_progress)
    print(f"wrote {args.cases} cases to {args.out}")


def _run_train(args: argparse.Namespace) -> None:
    from hipseg.io import find_cases
    from hipseg.workflows.device import select_device
    from hipseg.workflows.train import train

    defaults = HipsegConfig()
    config = dataclasses.replace(
        defaults,
        views=dataclasses.replace(defaults.views, n_views=args.views),
        model=dataclasses.replace(defaults.model, base_width=args.base_width, depth=args.depth),
        train=dataclasses.replace(defaults.train, epochs=args.epochs,
                                  steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size,
                                  learning_rate=args.lr, seed=args.seed),
    )
    cases = find_cases(args.data / "images", args.data / args.labels_dir)
    result = train(cases, config, args.out, device=select_device(args.device),
                   init_model=args.init, resume=args.resume, progress=not args.no_progress)
    print(f"model written to {result.model_dir} (best epoch {result.best_epoch} of "
          f"{result.epochs_run}, validation loss {result.best_val_loss:.4f})")


def _run_predict(args: argparse.Namespace) -> None:
    from hipseg.io import case_id
    from hipseg.workflows.device import select_device
    from hipseg.workflows.model_io import load_model
    from hipseg.workflows.predict import PredictOptions, predict_files

    options = PredictOptions(postprocess=not args.no_postprocess, connectivity=args.connectivity,
                             min_gap_mm=args.min_gap_mm,
                             collision_eps_mm=args.eps, save_probabilities=args.save_probabilities,
                             save_uncertainty=args.save_uncertainty or args.report,
                             overwrite=args.overwrite,
                             max_memory_gb=args.max_memory_gb)
    model = load_model(args.model, select_device(args.device))
    summaries = predict_files(model, args.inputs, args.out, options=options,
                              progress=not args.no_progress)
    print(f"{'case':<24} {'|E|':>8} {'eps mm':>7} {'disagreement':>12} {'moved':>7} "
          f"{'removed':>8} {'gap':>6}")
    for s in summaries:
        print(f"{s.case_id:<24} {s.collisions:>8} {s.collision_eps_mm:>7.2f} "
              f"{s.mean_disagreement:>12.3f} {s.voxels_moved:>7} {s.voxels_removed:>8} "
              f"{s.gap_voxels_changed:>6}")
    print(f"wrote {len(summaries)} label map(s) to {args.out} (|E|: bone voxels within eps of "
          "another bone; gap: voxels cleared so no two bones touch)")
    mesh_reports = {}
    if args.meshes and summaries:
        from hipseg.workflows.meshing import mesh_files

        reports = mesh_files([s.path for s in summaries], args.out / "meshes", model.config.labels,
                             min_gap_mm=args.min_gap_mm)
        mesh_reports = {report["case"]: report for report in reports}
        print(f"meshes and their QC written to {args.out / 'meshes'}")
    if args.report and summaries:
        from hipseg.workflows.report import write_case_report

        images = {case_id(path): path for path in args.inputs}
        for s in summaries:
            write_case_report(images[s.case_id], s.path, args.out / "reports", model.config.labels,
                              uncertainty_path=args.out / f"{s.case_id}_uncertainty.nii.gz",
                              mesh_qc=mesh_reports.get(s.case_id), eps_mm=args.eps)
        print(f"QC reports written to {args.out / 'reports'}")


def _run_report(args: argparse.Namespace) -> None:
    import json

    from hipseg.workflows.report import write_case_report

    mesh_qc = None
    if args.mesh_qc is not None:
        try:
            mesh_qc = json.loads(args.mesh_qc.read_text())
        except (OSError, ValueError) as err:
            raise InputError(args.mesh_qc, f"cannot read mesh QC JSON ({err})") from None
    page = write_case_report(args.image, args.labels, args.out, _labels_of(args),
                             uncertainty_path=args.uncertainty, reference_labels_path=args.reference,
                             mesh_qc=mesh_qc, eps_mm=args.eps)
    print(f"report written to {page}")


def _run_mesh(args: argparse.Namespace) -> None:
    from hipseg.workflows.meshing import format_mesh_qc, mesh_files

    reports = mesh_files(args.inputs, args.out, _labels_of(args), fmt=args.format,
                         smoothing_iterations=args.smooth, min_gap_mm=args.min_gap_mm,
                         lps=args.lps)
    for report in reports:
        print(format_mesh_qc(report))
    print(f"meshes and <case>_mesh_qc.json written to {args.out}")


def _run_postprocess(args: argparse.Namespace) -> None:
    from hipseg.workflows.postprocessing import postprocess_files

    reports = postprocess_files(args.inputs, _labels_of(args), args.out,
                                connectivity=args.connectivity)
    for path, report in zip(args.inputs, reports):
        print(f"{path.name}: moved {report.total_moved} voxels to the other side, "
              f"removed {report.total_removed}")


def _run_collisions(args: argparse.Namespace) -> None:
    from hipseg.workflows.review import format_review, review_files, write_review_csv

    reviews = review_files(args.inputs, _labels_of(args), eps_mm=args.eps, top_regions=args.top,
                           collisions_dir=args.out)
    print(format_review(reviews, args.threshold))
    if args.out is not None:
        write_review_csv(reviews, args.out / "collisions.csv")
        print(f"collision maps and collisions.csv written to {args.out}")


def _run_evaluate(args: argparse.Namespace) -> None:
    from hipseg.workflows.evaluate import (
        evaluate_folders,
        format_table,
        write_csv,
        write_summary_json,
    )

    labels = _labels_of(args)
    evaluation = evaluate_folders(args.labels, args.predictions, labels,
                                  gap_regions_dir=args.save_gap_regions)
    print(format_table(evaluation))
    if args.out is not None:
        write_csv(evaluation, args.out)
        summary = args.out.with_suffix(".json")
        write_summary_json(evaluation, summary)
        print(f"per-case scores written to {args.out}, summary to {summary}")


def _run_check(args: argparse.Namespace) -> None:
    from hipseg.workflows.check import check_dataset, format_checks

    labels = _labels_of(args)
    results = check_dataset(args.data / "images", args.data / args.labels_dir, labels)
    print(format_checks(results, labels))
    bad = [r for r in results if r.problem is not None]
    if bad:
        raise InputError(args.data, f"{len(bad)} of {len(results)} cases have problems (see above)")


def _run_demo(args: argparse.Namespace) -> None:
    from hipseg.workflows.demo import run_demo
    from hipseg.workflows.device import select_device

    run_demo(args.out, seed=args.seed, device=select_device(args.device),
             progress=not args.no_progress)


COMMANDS = {
    "phantom": _run_phantom,
    "train": _run_train,
    "predict": _run_predict,
    "evaluate": _run_evaluate,
    "postprocess": _run_postprocess,
    "collisions": _run_collisions,
    "check": _run_check,
    "mesh": _run_mesh,
    "report": _run_report,
    "demo": _run_demo,
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``hipseg`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        COMMANDS[args.command](args)
    except HipsegError as err:
        print(f"hipseg: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("hipseg: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
