"""The ``hipseg`` command: parses arguments, builds the config, calls one workflow.

The only place that configures logging and turns a :class:`HipsegError` into one line on
stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from hipseg.core.config import (
    FINETUNE_TRAIN,
    AugmentConfig,
    HipsegConfig,
    TrainConfig,
    WeightMapConfig,
)
from hipseg.core.errors import HipsegError, InputError
from hipseg.core.labels import LabelTable
from hipseg.phantom.from_labels import LabelPhantomSettings

if TYPE_CHECKING:
    from hipseg.workflows.distributed import DistributedRun
    from hipseg.workflows.train import TrainResult

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


def _add_weight_map_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-erosion", action="store_true",
                        help="weight map of the labels as given (paper: w0 = 10 then)")
    parser.add_argument("--w0", type=float, help="weight map height (default 20, 10 with "
                                                 "--no-erosion)")
    parser.add_argument("--sigma", type=float, default=5.0, help="weight map width, voxels (5)")
    parser.add_argument("--weight-cache", type=Path, metavar="DIR",
                        help="weight-map cache folder (default DATA/weightmaps)")


def _add_optimiser_options(parser: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    parser.add_argument("--epochs", type=int, default=defaults.epochs,
                        help=f"at most this many epochs (default {defaults.epochs})")
    parser.add_argument("--steps-per-epoch", type=int, default=defaults.steps_per_epoch)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.learning_rate,
                        help=f"Adam learning rate (default {defaults.learning_rate:g})")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--validation", choices=("auto", "split", "planes"),
                        default=defaults.validation,
                        help="hold out scans for validation (split), or train on every scan and "
                             "validate on fixed planes of them (planes); auto: planes below "
                             f"{defaults.min_split_cases} scans (default {defaults.validation})")
    parser.add_argument("--elastic-fraction", type=float, default=AugmentConfig().fraction,
                        help="fraction of each batch elastically deformed (default 1/3; 0: off)")


def _train_settings(args: argparse.Namespace, defaults: TrainConfig) -> TrainConfig:
    return dataclasses.replace(defaults, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                               batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed,
                               validation=args.validation)


def _weight_map_config(args: argparse.Namespace, enabled: bool) -> WeightMapConfig:
    w0 = args.w0 if args.w0 is not None else (10.0 if args.no_erosion else 20.0)
    return WeightMapConfig(enabled=enabled, w0=w0, sigma_vox=args.sigma, erode=not args.no_erosion)


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")


def _add_training_device(parser: argparse.ArgumentParser) -> None:
    _add_device(parser)
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help="training autocast: auto (bf16 on CUDA, fp16 with a gradient scaler "
                             "where bf16 is missing; fp32 on the CPU), fp32 turns it off. Under "
                             "torchrun every process trains on its own device (docs/scaling.md)")


def _add_predict_scaling(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16", "fp16"), default="auto",
                        help="network autocast: auto (bf16 on CUDA and on CPUs with native bf16, "
                             "else fp32), fp32 turns mixed precision off")
    parser.add_argument("--threads", type=int, metavar="N",
                        help="torch threads per worker (default: the cores divided by --workers)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="worker processes on this machine, each predicting its share")
    parser.add_argument("--num-parts", type=int, default=1, metavar="K",
                        help="split the inputs into K parts (as nnU-Net; e.g. one per SLURM "
                             "array task) ...")
    parser.add_argument("--part-id", type=int, default=0, metavar="I",
                        help="... and predict part I (0 to K-1): every K-th input in sorted order")


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
    p.add_argument("--from-labels", type=Path, metavar="DIR",
                   help="build a CT for every real label map in DIR, on the map's own grid "
                        "(--cases is ignored: one case per map, plus --variants)")
    p.add_argument("--variants", type=int, default=0, metavar="N",
                   help="with --from-labels: N new anatomies per map (smooth deformation, "
                        "scaling, left/right mirroring with the side ids swapped); default 0")
    p.add_argument("--coarse-gap-mm", type=float, default=LabelPhantomSettings.coarse_gap_mm,
                   help="with --from-labels: coarse labels close joint spaces up to this "
                        f"width (default {LabelPhantomSettings.coarse_gap_mm:g})")
    p.add_argument("--merge-femoral-head-mm", type=float, default=0.0, metavar="MM",
                   help="with --from-labels: coarse labels also give the femoral head within "
                        "MM of the acetabulum to the hip bone, as TotalSegmentator does")
    p.add_argument("--spacing", type=float, nargs=3, default=None, metavar="MM",
                   help="voxel spacing in mm: --from-meshes default 1.5 1.5 1.5; "
                        "--from-labels resamples the maps (nearest) to it, default their own")
    _add_common(p)

    p = sub.add_parser("train", help="train a model (from scratch, or from --init to fine-tune)")
    p.add_argument("data", type=Path,
                   help="dataset folder: images/ and a labels folder (MPUNet: train/ and val/ "
                        "with these), or an nnU-Net v2 dataset (imagesTr, labelsTr, dataset.json)")
    p.add_argument("--out", type=Path, required=True, help="model folder to write")
    p.add_argument("--labels-dir", default="labels",
                   help="labels subfolder: labels (accurate) or labels_coarse (default labels)")
    p.add_argument("--init", type=Path, metavar="MODEL", help="start from this model (all layers)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out after its last completed epoch")
    defaults = HipsegConfig()
    _add_optimiser_options(p, defaults.train)
    p.add_argument("--views", type=int, default=defaults.views.n_views, help="number of views")
    p.add_argument("--base-width", type=int, default=defaults.model.base_width)
    p.add_argument("--depth", type=int, default=defaults.model.depth)
    p.add_argument("--architecture", choices=("unet2d", "unet3d"), default="unet2d",
                   help="unet2d: the multi-planar method; unet3d: 3D UNet on patches (baseline)")
    p.add_argument("--patch-vox", type=int, default=defaults.model.patch_vox,
                   help="unet3d: patch side in voxels")
    p.add_argument("--no-lateral-channel", action="store_true",
                   help="the CT alone as input, without the patient-side (RAS x) channel")
    p.add_argument("--dim", type=int, default=0,
                   help="plane side in pixels (default: 75th percentile of the training scans)")
    p.add_argument("--sphere-mm", type=float, default=0.0,
                   help="sampling sphere diameter in mm (default: 75th percentile)")
    p.add_argument("--min-pixel-mm", type=float, default=defaults.sampling.min_pixel_spacing_mm,
                   help="floor on the pixel spacing in mm: a measured dim is lowered until its "
                        "pixels are at least this large (default %(default)s; 0: the paper's "
                        "rule, pixels as fine as the training scans' voxels)")
    p.add_argument("--weight-map", action="store_true",
                   help="weight the loss by the distance weight map (off for pre-training on "
                        "coarse labels, as the paper; finetune has it on)")
    _add_weight_map_options(p)
    _add_training_device(p)
    _add_common(p)

    p = sub.add_parser("finetune", help="fine-tune every layer of MODEL on accurate scans")
    p.add_argument("model", type=Path, help="model folder to start from (e.g. pre-trained)")
    p.add_argument("data", type=Path, help="folder with images/ and a labels folder")
    p.add_argument("--out", type=Path, required=True, help="new model folder to write")
    p.add_argument("--labels-dir", default="labels", help="labels subfolder (default labels)")
    p.add_argument("--continue", dest="continue_training", action="store_true",
                   help="interactive round: also train on the scans MODEL was fine-tuned on")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted fine-tuning in --out (same arguments)")
    _add_optimiser_options(p, FINETUNE_TRAIN)
    p.add_argument("--no-weight-map", action="store_true", help="unweighted cross-entropy")
    _add_weight_map_options(p)
    _add_training_device(p)
    _add_common(p)

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
    p.add_argument("--crop-margin-mm", type=float, default=20.0, metavar="MM",
                   help="margin around the coarsely found bones (default 20)")
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
    _add_predict_scaling(p)
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
    p.add_argument("--labels", type=Path, required=True,
                   help="folder of reference label maps, or a dataset folder (any layout)")
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

    p = sub.add_parser("weightmap", help="precompute the loss weight maps of a dataset (cached)")
    p.add_argument("data", type=Path, help="folder with images/ and a labels folder")
    p.add_argument("--labels-dir", default="labels", help="labels subfolder (default labels)")
    _add_weight_map_options(p)
    p.add_argument("--write-nifti", action="store_true",
                   help="also write <case>_weights.nii.gz beside each cached map, to look at")
    _add_model_labels(p)
    _add_common(p)

    p = sub.add_parser("check", help="check every image and label map of a dataset folder")
    p.add_argument("data", type=Path, help="dataset folder (hipseg/MPUNet or nnU-Net v2 layout)")
    p.add_argument("--labels-dir", default="labels", help="labels subfolder (default labels)")
    _add_model_labels(p)
    _add_common(p)

    p = sub.add_parser("import-labels",
                       help="other tools' segmentations as hipseg label maps (coarse labels)")
    p.add_argument("inputs", type=Path, nargs="+", metavar="SEG",
                   help="TotalSegmentator 'total' multilabel maps, or folders of its masks")
    p.add_argument("--from", dest="source", choices=("totalsegmentator",), required=True,
                   help="the tool that made SEG (TotalSegmentator v2, task total)")
    p.add_argument("--out", type=Path, required=True, help="folder for <case>.nii.gz label maps")
    _add_model_labels(p)
    _add_common(p)

    p = sub.add_parser("export-nnunet", help="write a dataset as an nnU-Net v2 dataset")
    p.add_argument("data", type=Path, help="dataset folder (hipseg/MPUNet layout)")
    p.add_argument("out", type=Path, help="nnU-Net dataset folder to write (e.g. Dataset501_Hip)")
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
    from hipseg.workflows.phantom import (
        write_label_dataset,
        write_mesh_dataset,
        write_procedural_dataset,
    )

    if args.cases < 1:
        raise HipsegError("--cases must be at least 1")
    if args.spacing is not None and min(args.spacing) <= 0:
        raise HipsegError("--spacing must be 3 positive numbers")
    if args.from_labels is not None and args.from_meshes is not None:
        raise HipsegError("give --from-labels or --from-meshes, not both")
    if args.from_labels is not None:
        settings = LabelPhantomSettings(
            coarse_gap_mm=args.coarse_gap_mm, merge_femoral_head_mm=args.merge_femoral_head_mm,
            spacing_mm=None if args.spacing is None else tuple(args.spacing))
        names = write_label_dataset(args.out, args.from_labels, args.seed,
                                    variants=args.variants, settings=settings,
                                    progress=not args.no_progress)
    elif args.from_meshes is not None:
        names = write_mesh_dataset(args.out, args.from_meshes, args.cases, args.seed,
                                   spacing_mm=args.spacing or (1.5, 1.5, 1.5), mirror=args.mirror,
                                   progress=not args.no_progress)
    else:
        names = write_procedural_dataset(args.out, args.cases, args.seed,
                                         progress=not args.no_progress)
    print(f"wrote {len(names)} cases to {args.out}")


@contextlib.contextmanager
def _training_run(args: argparse.Namespace) -> Iterator[DistributedRun]:
    """This process's place in a (``torchrun``) training run; only rank 0 logs below warnings."""
    from hipseg.workflows.distributed import start_run, stop_run

    run = start_run(args.device)
    if not run.is_main:
        logging.getLogger().setLevel(logging.WARNING)
    try:
        yield run
    finally:
        stop_run(run)


def _run_train(args: argparse.Namespace) -> None:
    from hipseg.io import find_dataset
    from hipseg.workflows.train import train

    defaults = HipsegConfig()
    config = dataclasses.replace(
        defaults,
        views=dataclasses.replace(defaults.views, n_views=args.views),
        sampling=dataclasses.replace(defaults.sampling, dim=args.dim,
                                     sphere_diameter_mm=args.sphere_mm,
                                     min_pixel_spacing_mm=args.min_pixel_mm),
        model=dataclasses.replace(defaults.model, base_width=args.base_width, depth=args.depth,
                                  architecture=args.architecture, patch_vox=args.patch_vox,
                                  lateral_channel=not args.no_lateral_channel),
        train=_train_settings(args, defaults.train),
        weight_map=_weight_map_config(args, args.weight_map),
        augment=dataclasses.replace(defaults.augment, fraction=args.elastic_fraction),
    )
    # MPUNet's test split stays out of training; train() draws its own validation cases.
    cases = find_dataset(args.data, labels_dir=args.labels_dir, splits=("train", "val")).cases()
    with _training_run(args) as run:
        result = train(cases, config, args.out, device=run.device, init_model=args.init,
                       resume=args.resume, weight_cache=args.weight_cache,
                       progress=not args.no_progress, run=run, precision=args.precision)
        _print_result(result, run)


def _print_result(result: TrainResult, run: DistributedRun) -> None:
    if not run.is_main:
        return
    print(f"model written to {result.model_dir} (best epoch {result.best_epoch} of "
          f"{result.epochs_run}, validation loss {result.best_val_loss:.4f}; curves in "
          f"{result.model_dir / 'progress.png'})")


def _run_finetune(args: argparse.Namespace) -> None:
    from hipseg.io import find_dataset
    from hipseg.workflows.finetune import finetune

    defaults = HipsegConfig()
    config = dataclasses.replace(
        defaults, train=_train_settings(args, FINETUNE_TRAIN),
        weight_map=_weight_map_config(args, not args.no_weight_map),
        augment=dataclasses.replace(defaults.augment, fraction=args.elastic_fraction))
    cases = find_dataset(args.data, labels_dir=args.labels_dir, splits=("train", "val")).cases()
    with _training_run(args) as run:
        result = finetune(args.model, cases, config, args.out, device=run.device,
                          continue_training=args.continue_training, resume=args.resume,
                          weight_cache=args.weight_cache, progress=not args.no_progress, run=run,
                          precision=args.precision)
        _print_result(result, run)


def _run_predict(args: argparse.Namespace) -> None:
    from hipseg.io import case_id
    from hipseg.workflows.batch import predict_files_in_workers, select_part
    from hipseg.workflows.device import select_device
    from hipseg.workflows.model_io import load_model
    from hipseg.workflows.predict import PredictOptions

    options = PredictOptions(postprocess=not args.no_postprocess, connectivity=args.connectivity,
                             min_gap_mm=args.min_gap_mm,
                             collision_eps_mm=args.eps, save_probabilities=args.save_probabilities,
                             save_uncertainty=args.save_uncertainty or args.report,
                             overwrite=args.overwrite,
                             max_memory_gb=args.max_memory_gb,
                             output_format=args.output_format, series_uid=args.series_uid,
                             precision=args.precision,
                             crop_margin_mm=args.crop_margin_mm if args.crop else None)
    device = select_device(args.device)
    inputs = select_part(args.inputs, args.num_parts, args.part_id)
    model = load_model(args.model, device)
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
    mesh_reports = {}
    if args.meshes and summaries:
        from hipseg.workflows.meshing import mesh_files

        reports = mesh_files([s.path for s in summaries], args.out / "meshes", model.config.labels,
                             min_gap_mm=args.min_gap_mm)
        mesh_reports = {report["case"]: report for report in reports}
        print(f"meshes and their QC written to {args.out / 'meshes'}")
    if args.report and summaries:
        from hipseg.workflows.predict import output_path
        from hipseg.workflows.report import write_case_report

        images = {case_id(path): path for path in args.inputs}
        for s in summaries:
            ext = s.path.name[len(s.case_id):]  # the label map's own format
            write_case_report(images[s.case_id], s.path, args.out / "reports", model.config.labels,
                              uncertainty_path=output_path(args.out, s.path, "_uncertainty", ext),
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


def _run_weightmap(args: argparse.Namespace) -> None:
    from hipseg.io import find_cases
    from hipseg.workflows.weightmaps import precompute_weight_maps

    cases = find_cases(args.data / "images", args.data / args.labels_dir)
    paths = precompute_weight_maps(cases, _labels_of(args), _weight_map_config(args, True),
                                   cache_root=args.weight_cache, write_nifti=args.write_nifti,
                                   progress=not args.no_progress)
    print(f"{len(paths)} weight map(s) in {paths[0].parent}"
          + (" (with <case>_weights.nii.gz)" if args.write_nifti else ""))


def _run_check(args: argparse.Namespace) -> None:
    from hipseg.io import find_dataset
    from hipseg.workflows.check import check_dataset, format_checks

    labels = _labels_of(args)
    results = check_dataset(find_dataset(args.data, labels_dir=args.labels_dir), labels)
    print(format_checks(results, labels))
    bad = [r for r in results if r.problem is not None]
    if bad:
        raise InputError(args.data, f"{len(bad)} of {len(results)} cases have problems (see above)")


def _run_import_labels(args: argparse.Namespace) -> None:
    from hipseg.workflows.ecosystem import import_totalsegmentator

    for path, counts in import_totalsegmentator(args.inputs, args.out, _labels_of(args)):
        empty = [name for name, count in counts.items() if count == 0]
        print(f"{path}: " + ", ".join(f"{name} {count}" for name, count in counts.items())
              + (f" (empty: {', '.join(empty)})" if empty else ""))
    print(f"wrote {len(args.inputs)} label map(s) to {args.out}; everything else is background")


def _run_export_nnunet(args: argparse.Namespace) -> None:
    from hipseg.workflows.ecosystem import export_nnunet

    count = export_nnunet(args.data, args.out, _labels_of(args), labels_dir=args.labels_dir,
                          progress=not args.no_progress)
    print(f"wrote {count} cases as an nnU-Net v2 dataset to {args.out}")


def _run_demo(args: argparse.Namespace) -> None:
    from hipseg.workflows.demo import run_demo
    from hipseg.workflows.device import select_device

    run_demo(args.out, seed=args.seed, device=select_device(args.device),
             progress=not args.no_progress)


COMMANDS = {
    "phantom": _run_phantom,
    "train": _run_train,
    "finetune": _run_finetune,
    "predict": _run_predict,
    "evaluate": _run_evaluate,
    "postprocess": _run_postprocess,
    "collisions": _run_collisions,
    "check": _run_check,
    "export-nnunet": _run_export_nnunet,
    "import-labels": _run_import_labels,
    "weightmap": _run_weightmap,
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
