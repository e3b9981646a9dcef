"""The paper's protocol on real anatomy at full resolution: the project's main accuracy table.

Data: the real hip label maps in ``../shared/data/hip-labels`` (23 maps, 0.6-1.0 mm), each
turned into a CT on its own grid by ``hipseg phantom --from-labels``. The maps are shuffled
with ``--seed`` and split into test scans (used for nothing else), accurate fine-tuning scans
(the first 2 for the "2" rows) and pre-training scans (coarse labels: joint spaces closed).

Every model is trained and every scan predicted through the ``hipseg`` command line, each in
its own process, so the minutes and the peak memory (``ru_maxrss`` of that process) are what
a user would see. Rows:

- ``full``: pre-trained on coarse labels, fine-tuned with the weight map (the method, at the
  product's defaults: 2 mm pixel floor, lateral channel, validation on fixed planes of the
  fine-tuning scans when there are fewer than 5);
- ``split-val``: as ``full`` with 2 scans, but one of them held out for validation (the old
  behaviour), to measure what training on both is worth;
- ``no-weightmap``: fine-tuned with plain cross-entropy;
- ``no-pretrain``: trained from scratch on the 2 (``no-pretrain-2``) and the 4
  (``no-pretrain-4``) accurate scans, as many steps as pre-training and fine-tuning together;
- ``no-lateral``: pre-trained and fine-tuned without the patient-side input channel;
- ``ignore-contacts``: pre-trained with loss weight 0 within ``IGNORE_CONTACTS_MM`` of where
  two bones touch in the coarse labels (where they closed a joint space), then as ``full``;
- ``ignore-contacts-long``: the same pre-trained model fine-tuned 3x as long (as many steps
  as ``no-pretrain`` trains from scratch), to tell the fine-tuning length from the pre-training;
- ``ignore-contacts-lr``: the same pre-trained model fine-tuned at pre-training's learning rate
  (``no-pretrain`` trains at it; fine-tuning's is 6.7x lower);
- ``weightmap-pretrain``: pre-trained with the weight map and the contact band (the joint
  spaces' edges weighted from the first step, the closed gaps not at all), then as ``full``;
- ``no-pretrain-variants``: as ``no-pretrain-2``, on the 2 accurate maps and ``--variants`` new
  anatomies made from each (smooth deformation, scaling, mirroring with the side swap, each
  femur turned about its head by up to ``--femur-rotation-deg``), so the network sees more
  than two people's bones;
- ``mixed``: one training from scratch on the accurate labels of those 2 maps and their
  variants *and* the coarse labels of the pre-training scans, the loss ignoring
  ``IGNORE_CONTACTS_MM`` around every bone contact (where the coarse labels closed a joint
  space): the variety of many people's bones and the gaps of the accurate ones at once,
  instead of one after the other;
- ``unet3d-variants``: the ablation's 3D UNet baseline on the data of ``no-pretrain-variants``
  (from scratch, weight map, as many epochs): cubic patches of ``UNET3D`` voxels of the scan's
  own grid, predicted by a sliding window, instead of the multi-planar 2D UNet.

Scores per test scan, mean +- std: Dice, GapDice, HD95, ASSD (mm), per class and mean; |E|
(eps 2 mm) after symmetric connected components and before the gap guarantee; "sides": the
scans in which every bone is found (Dice > 0.5) on its own side of the midline.

``--finest-pixel-mm MM|rule`` trains every model at pixel spacings from MM (``rule``: the
paper's rule on the training scans) up to the floored one; each such model is then scored
three times on the same scans: at its floored spacing, at its finest (row ``NAME @ S mm``) and
at the floored one with the joint pass at its finest (``predict --refine-joints``, row ``NAME +
joint pass``): the same model at the product's speed, at the paper's full resolution, and
at full resolution only where two bones meet.

Usage: .venv/bin/python benchmarks/real_anatomy.py --out DIR [--rows full no-lateral ...]
       [--quick]
Results are written to DIR/results.json after every model, and the table is printed then, so
an interrupted run keeps what it measured. ``--quick`` checks the wiring (minutes, meaningless).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ablation import mean_std
from measure import run_measured

from hipseg.cli.train import finest_pixel_mm
from hipseg.collisions import count_collisions
from hipseg.core.atomic import atomic_write_text
from hipseg.core.config import (
    FINETUNE_TRAIN,
    INTENSITY_SCALINGS,
    PreprocessConfig,
    SamplingConfig,
    load_config,
)
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.core.volume import apply_affine
from hipseg.datasets.phantom import (
    IMAGES,
    LABELS,
    LABELS_COARSE,
    label_case_jobs,
    label_case_name,
    write_label_job,
)
from hipseg.evaluation.evaluate import evaluate_case
from hipseg.io import case_id, find_cases, read_image, read_labels
from hipseg.phantom import LabelPhantomSettings
from hipseg.phantom.variants import VariantSettings
from hipseg.postprocess import symmetric_components
from hipseg.runtime.model_io import ModelFolder

LABEL_MAPS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hip-labels"
HIPSEG = [sys.executable, "-m", "hipseg"]
ROWS = ("full", "no-lateral", "split-val", "no-weightmap", "no-pretrain", "ignore-contacts",
        "ignore-contacts-long", "ignore-contacts-lr", "weightmap-pretrain", "no-pretrain-variants", "mixed",
        "unet3d-variants")
#: Rows that train from scratch on accurate labels: they need no coarse pre-training scans.
FROM_SCRATCH_ROWS = {"no-pretrain", "no-pretrain-variants", "unet3d-variants"}
#: New anatomies made from each of the 2 accurate maps for ``no-pretrain-variants``.
VARIANTS = 4
#: The 3D UNet baseline's ``hipseg train`` options, as ``benchmarks/ablation.py`` sizes it.
UNET3D = ("--architecture", "unet3d", "--base-width", "8", "--depth", "3", "--patch-vox", "48",
          "--batch-size", "2")
#: Half-width of the ignored band: half the widest joint space (5 mm) plus 1.5 mm of margin.
IGNORE_CONTACTS_MM = 4.0
#: Written into a model folder when its training has finished.
TRAINED = "trained.json"
METRICS = ("dice", "gap_dice", "hd95", "assd")
EPS_MM = 2.0

logger = logging.getLogger("real_anatomy")


@dataclass(frozen=True)
class Schedule:
    """Scans per role, training length (epochs of ``steps`` steps of 10 planes), and the
    pixel-spacing floor, joint-aimed planes and appearance augmentation of every training
    (fine-tuning keeps its pre-trained model's plane geometry).

    The early-stopping patience is the paper's 5 and the appearance augmentation off, as the
    runs of docs/accuracy.md before run 7 used; ``hipseg train``'s defaults are
    ``--epochs-factor 3 --patience 15 --appearance-fraction 0.5`` of the from-scratch rows
    (108 epochs of 40 steps at lr 2e-3). The intensity scaling is the product's; runs 1-9 used
    the paper's robust one (``--intensity-scaling robust`` reproduces them).
    """

    test: int = 4
    finetune: int = 4
    pretrain_epochs: int = 24
    finetune_epochs: int = 12
    steps: int = 40
    pretrain_lr: float = 2e-3
    finetune_lr: float = 3e-4
    early_stop_patience: int = FINETUNE_TRAIN.early_stop_patience
    spacing_mm: tuple[float, float, float] | None = None
    min_pixel_mm: float = SamplingConfig().min_pixel_spacing_mm
    joint_plane_fraction: float = SamplingConfig().joint_plane_fraction
    appearance_fraction: float = 0.0
    finest_pixel_mm: float = 0.0
    intensity_scaling: str = PreprocessConfig().intensity_scaling


def quick_schedule() -> Schedule:
    return Schedule(test=1, finetune=4, pretrain_epochs=1, finetune_epochs=1, steps=2,
                    spacing_mm=(4.0, 4.0, 4.0))


def scaled(schedule: Schedule, factor: float) -> Schedule:
    """``schedule`` with ``factor`` times its pre-training and fine-tuning epochs (at least 1)."""
    if factor <= 0:
        raise SystemExit(f"--epochs-factor must be positive, not {factor}")
    return dataclasses.replace(
        schedule, pretrain_epochs=max(1, round(schedule.pretrain_epochs * factor)),
        finetune_epochs=max(1, round(schedule.finetune_epochs * factor)))


def run_cli(args: list[str], log: Path) -> tuple[float, float]:
    """Run ``hipseg ARGS`` in its own process; returns (seconds, peak resident GiB)."""
    try:
        return run_measured([*HIPSEG, *args, "--no-progress"], log)
    except RuntimeError as err:
        raise SystemExit(f"hipseg {' '.join(args)} failed: {err}") from None


def train_once(model: Path, cli_args: list[str], log: Path) -> tuple[float, float]:
    """Train ``model`` unless an earlier run finished it; ``(seconds, peak GiB)`` of training.

    A finished training leaves ``TRAINED`` (its seconds and peak) in the model folder. A folder
    without it was stopped part-way: its training resumes from the saved state, and the
    seconds and peak reported are those of the resumed part only (logged as such).
    """
    marker = model / TRAINED
    if marker.is_file():
        done = json.loads(marker.read_text())
        return done["seconds"], done["peak_gib"]
    resumed = (model / "train_state.pt").is_file()
    if resumed:
        logger.info("%s: training stopped part-way; resuming it (its time and peak below are "
                    "the resumed part's only)", model)
    seconds, peak = run_cli([*cli_args, "--resume"] if resumed else cli_args, log)
    atomic_write_text(marker, json.dumps({"seconds": seconds, "peak_gib": peak,
                                          "resumed": resumed}))
    logger.info("trained %s in %.1f min", model.name, seconds / 60)
    return seconds, peak


def case_jobs(out: Path, maps: list[Path], seed: int, variants: int,
              settings: LabelPhantomSettings) -> list[tuple]:
    """``write_label_job``'s jobs for the cases of ``out`` an earlier run has not written (as
    ``write_label_cases`` numbers them: the same phantoms whatever the number of workers;
    ``labels_coarse`` is the last file a case writes)."""
    return [job for job in label_case_jobs(out, maps, seed, variants, settings)
            if not (out / LABELS_COARSE / f"{label_case_name(job[1], job[4])}.nii.gz").is_file()]


def make_data(root: Path, label_maps: Path, schedule: Schedule, seed: int, *, pretrain: bool,
              variants: tuple[int, float] | None, workers: int) -> dict[str, Path]:
    """Split the maps, link each role's maps into a folder, make the phantoms (``workers``
    processes, one case each).

    ``pretrain``: make the coarse pre-training scans (rows that train from scratch do not read
    them). ``variants``: ``(per map, largest femur turn in degrees)`` also makes the 2 accurate
    maps' new anatomies (``finetune2-variants``).
    """
    maps = sorted(label_maps.glob("*.nii.gz"))
    if len(maps) < schedule.test + schedule.finetune + 1:
        raise SystemExit(f"{label_maps}: {len(maps)} label maps, too few for this split")
    order = np.random.default_rng(seed).permutation(len(maps))
    roles = {"test": order[: schedule.test],
             "finetune": order[schedule.test : schedule.test + schedule.finetune],
             "pretrain": order[schedule.test + schedule.finetune :]}
    plain = LabelPhantomSettings(spacing_mm=schedule.spacing_mm)
    folders, jobs = {}, []
    for role, indices in roles.items():
        source = root / "maps" / role
        source.mkdir(parents=True, exist_ok=True)
        for i in indices:
            link = source / maps[i].name
            if not link.exists():
                link.symlink_to(maps[i].resolve())
        folders[role] = root / role
        if role != "pretrain" or pretrain:
            jobs += case_jobs(folders[role], sorted(source.iterdir(), key=case_id), seed, 0,
                              plain)
    if variants is not None:
        per_map, femur_rotation_deg = variants
        folders["finetune2-variants"] = root / f"finetune2-variants{variants_suffix(per_map)}"
        turned = dataclasses.replace(
            plain, variant=VariantSettings(max_femur_rotation_deg=femur_rotation_deg))
        jobs += case_jobs(folders["finetune2-variants"],
                          sorted((root / "maps" / "finetune").iterdir())[:2], seed, per_map,
                          turned)
    logger.info("making %d phantoms in %d processes", len(jobs), workers)
    with ProcessPoolExecutor(workers) as pool:
        for _ in pool.map(write_label_job, jobs):
            pass
    subset = root / "finetune2"
    for sub in (IMAGES, LABELS):
        (subset / sub).mkdir(parents=True, exist_ok=True)
        for path in sorted((folders["finetune"] / sub).iterdir())[:2]:
            if not (subset / sub / path.name).exists():
                (subset / sub / path.name).symlink_to(path.resolve())
    folders["finetune2"] = subset
    return folders


def variants_suffix(variants: int) -> str:
    """Names of the variant folder and model: ``VARIANTS`` keeps the plain name."""
    return "" if variants == VARIANTS else str(variants)


def make_mixed(root: Path, coarse: Path, accurate: Path) -> Path:
    """A folder whose ``labels/`` are ``coarse``'s coarse labels and ``accurate``'s labels."""
    out = root / "mixed"
    for source, labels in ((coarse, LABELS_COARSE), (accurate, LABELS)):
        for image in sorted((source / IMAGES).iterdir()):
            for sub, target in ((IMAGES, image), (LABELS, source / labels / image.name)):
                link = out / sub / image.name
                if not link.exists():
                    link.parent.mkdir(parents=True, exist_ok=True)
                    link.symlink_to(target.resolve())
    return out


def train_args(data: Path, out: Path, schedule: Schedule, *, coarse: bool, lateral: bool,
               epochs: int, weight_map: bool, ignore_contacts_mm: float = 0.0) -> list[str]:
    args = ["train", str(data), "--out", str(out), "--epochs", str(epochs),
            "--steps-per-epoch", str(schedule.steps), "--lr", str(schedule.pretrain_lr),
            "--early-stop-patience", str(schedule.early_stop_patience),
            "--min-pixel-mm", str(schedule.min_pixel_mm),
            "--joint-plane-fraction", str(schedule.joint_plane_fraction),
            "--appearance-fraction", str(schedule.appearance_fraction),
            "--intensity-scaling", schedule.intensity_scaling,
            "--finest-pixel-mm",
            "rule" if schedule.finest_pixel_mm < 0 else str(schedule.finest_pixel_mm)]
    if coarse:
        args += ["--labels-dir", LABELS_COARSE]
    if ignore_contacts_mm > 0:
        args += ["--ignore-contacts-mm", str(ignore_contacts_mm)]
    if weight_map:
        args.append("--weight-map")
    if not lateral:
        args.append("--no-lateral-channel")
    return args


def finetune_args(model: Path, data: Path, out: Path, schedule: Schedule, *,
                  weight_map: bool = True, validation: str = "auto") -> list[str]:
    args = ["finetune", str(model), str(data), "--out", str(out), "--epochs",
            str(schedule.finetune_epochs), "--steps-per-epoch", str(schedule.steps),
            "--lr", str(schedule.finetune_lr), "--validation", validation,
            "--early-stop-patience", str(schedule.early_stop_patience),
            "--appearance-fraction", str(schedule.appearance_fraction)]
    if not weight_map:
        args.append("--no-weight-map")
    return args


def models_of_row(row: str, root: Path, data: dict[str, Path], schedule: Schedule,
                  variants: int = VARIANTS) -> list[tuple[str, list[str]]]:
    """``(model name, hipseg arguments)`` to run for a row, pre-training first when needed."""
    models = root / "models"
    pre = models / "pretrained"
    pre_step = ("pretrained", train_args(data["pretrain"], pre, schedule, coarse=True,
                                         lateral=True, epochs=schedule.pretrain_epochs,
                                         weight_map=False))
    if row == "full":
        return [pre_step] + [(f"full-{n}", finetune_args(pre, data[key], models / f"full-{n}",
                                                        schedule))
                             for n, key in ((2, "finetune2"), (4, "finetune"))]
    if row == "split-val":
        return [pre_step, ("split-val-2", finetune_args(pre, data["finetune2"],
                                                        models / "split-val-2", schedule,
                                                        validation="split"))]
    if row == "no-weightmap":
        return [pre_step, ("no-weightmap-2", finetune_args(pre, data["finetune2"],
                                                           models / "no-weightmap-2", schedule,
                                                           weight_map=False))]
    if row == "no-pretrain":
        return [(f"no-pretrain-{n}", train_args(
            data[key], models / f"no-pretrain-{n}", schedule, coarse=False, lateral=True,
            epochs=schedule.pretrain_epochs + schedule.finetune_epochs, weight_map=True))
            for n, key in ((2, "finetune2"), (4, "finetune"))]
    if row == "no-lateral":
        pre_flat = models / "pretrained-no-lateral"
        return [("pretrained-no-lateral", train_args(
                    data["pretrain"], pre_flat, schedule, coarse=True, lateral=False,
                    epochs=schedule.pretrain_epochs, weight_map=False)),
                ("no-lateral-2", finetune_args(pre_flat, data["finetune2"],
                                               models / "no-lateral-2", schedule))]
    if row in ("ignore-contacts", "ignore-contacts-long", "ignore-contacts-lr"):
        pre_masked = models / "pretrained-ignore-contacts"
        tune = {"ignore-contacts": schedule,
                "ignore-contacts-long": dataclasses.replace(
                    schedule, finetune_epochs=3 * schedule.finetune_epochs),
                "ignore-contacts-lr": dataclasses.replace(
                    schedule, finetune_lr=schedule.pretrain_lr)}[row]
        return [("pretrained-ignore-contacts", train_args(
                    data["pretrain"], pre_masked, schedule, coarse=True, lateral=True,
                    epochs=schedule.pretrain_epochs, weight_map=False,
                    ignore_contacts_mm=IGNORE_CONTACTS_MM)),
                (f"{row}-2", finetune_args(pre_masked, data["finetune2"], models / f"{row}-2",
                                           tune))]
    if row == "weightmap-pretrain":
        pre_weighted = models / "pretrained-weightmap"
        return [("pretrained-weightmap", train_args(
                    data["pretrain"], pre_weighted, schedule, coarse=True, lateral=True,
                    epochs=schedule.pretrain_epochs, weight_map=True,
                    ignore_contacts_mm=IGNORE_CONTACTS_MM)),
                ("weightmap-pretrain-2", finetune_args(pre_weighted, data["finetune2"],
                                                       models / "weightmap-pretrain-2", schedule))]
    if row == "no-pretrain-variants":
        name = f"no-pretrain-variants{variants_suffix(variants)}-2"
        return [(name, train_args(
            data["finetune2-variants"], models / name, schedule, coarse=False,
            lateral=True, epochs=schedule.pretrain_epochs + schedule.finetune_epochs,
            weight_map=True))]
    if row == "unet3d-variants":
        return [("unet3d-variants-2", [*train_args(
            data["finetune2-variants"], models / "unet3d-variants-2", schedule, coarse=False,
            lateral=True, epochs=schedule.pretrain_epochs + schedule.finetune_epochs,
            weight_map=True), *UNET3D])]
    if row == "mixed":
        return [("mixed-2", train_args(
            data["mixed"], models / "mixed-2", schedule, coarse=False, lateral=True,
            epochs=schedule.pretrain_epochs + schedule.finetune_epochs, weight_map=True,
            ignore_contacts_mm=IGNORE_CONTACTS_MM))]
    raise SystemExit(f"unknown row {row!r}; rows: {', '.join(ROWS)}")


def sides_ok(prediction: np.ndarray, reference: np.ndarray, affine: np.ndarray,
             dice: dict[str, float]) -> bool:
    """Every bone found (Dice > 0.5) with its centroid on the reference's side of the midline."""
    centroid = {}
    for name, data in (("pred", prediction), ("ref", reference)):
        for c in DEFAULT_LABELS.foreground_ids:
            ijk = np.argwhere(data[::2, ::2, ::2] == c) * 2
            centroid[name, c] = apply_affine(affine, ijk.mean(0)[None])[0, 0] if len(ijk) else None
    midline = (centroid["ref", 1] + centroid["ref", 2]) / 2.0
    for pair in DEFAULT_LABELS.symmetric_pairs:
        for c in pair:
            if centroid["pred", c] is None or dice[DEFAULT_LABELS.names[c]] <= 0.5:
                return False
            if np.sign(centroid["pred", c] - midline) != np.sign(centroid["ref", c] - midline):
                return False
    return True


def read_scored(case, prediction: Path) -> tuple:
    """A test scan's image, its reference labels and the predicted labels (arrays), checked
    against the image's grid."""
    image = read_image(case.image)
    reference = read_labels(case.labels, DEFAULT_LABELS, reference=image).data
    return image, reference, read_labels(prediction, DEFAULT_LABELS, reference=image).data


def scan_scores(labels: np.ndarray, reference: np.ndarray, spacing_mm) -> dict[str, float]:
    """Dice, GapDice, HD95, ASSD per class and mean, and |E| (eps ``EPS_MM``) of one scan."""
    metrics = evaluate_case(labels, reference, spacing_mm, DEFAULT_LABELS)
    row = {key: float(value) for key, value in metrics.items()}
    row["collisions"] = float(count_collisions(labels, spacing_mm, EPS_MM)[0])
    return row


def finest_spacing_mm(model: Path) -> float | None:
    """The finest pixel spacing ``model`` was trained at, or None for one spacing."""
    sampling = load_config(ModelFolder(model).config).sampling
    return sampling.trained_pixel_spacings_mm[0] if sampling.several_spacings else None


#: How a model trained at several spacings is scored besides plainly (``--fine-scorings``):
#: (row suffix, folder suffix, ``hipseg predict`` options); ``{finest}`` is its finest
#: trained spacing.
FINE_SCORINGS = {"finest": (" @ {finest:.2f} mm", "@{finest:.3f}mm", ("--pixel-mm", "{finest!r}")),
                 "joint": (" + joint pass", "+joints", ("--refine-joints",))}


def score(model: Path, test: Path, work: Path, tag: str | None = None,
          options: tuple[str, ...] = ()) -> list[dict]:
    """Predict every test scan in its own process (with the extra ``hipseg predict``
    ``options``; predictions and logs under ``tag``, default the model's name) and score it."""
    rows = []
    tag = model.name if tag is None else tag
    for case in find_cases(test / IMAGES, test / LABELS):
        out = work / "predictions" / tag
        out.mkdir(parents=True, exist_ok=True)
        seconds, peak = run_cli(["predict", str(model), str(case.image), "--out", str(out),
                                 "--no-postprocess", "--overwrite", *options],
                                work / "logs" / f"predict-{tag}-{case.case_id}.log")
        image, reference, raw = read_scored(case, out / f"{case.case_id}.nii.gz")
        labels = symmetric_components(raw, DEFAULT_LABELS)
        row = scan_scores(labels, reference, image.spacing_mm)
        dice = {DEFAULT_LABELS.names[c]: row[f"dice_{DEFAULT_LABELS.names[c]}"]
                for c in DEFAULT_LABELS.foreground_ids}
        row["sides_ok"] = float(sides_ok(labels, reference, image.affine, dice))
        row.update(case=case.case_id, predict_s=seconds, predict_peak_gib=peak,
                   shape=list(image.shape))
        rows.append(row)
        logger.info("%s %s: Dice %.4f GapDice %.4f |E| %d, %.0f s, %.2f GiB", tag,
                    case.case_id, row["dice_mean"], row["gap_dice_mean"], row["collisions"],
                    seconds, peak)
    return rows


def format_tables(results: dict[str, dict]) -> str:
    """The summary table (a row per model) and the per-class table of each model."""
    lines = [("| model | Dice | GapDice | HD95 (mm) | ASSD (mm) | abs(E) | sides ok | "
              "train min | train GiB | predict s | predict GiB |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, entry in results.items():
        rows = entry["scans"]
        cells = [mean_std([r[f"{m}_mean"] for r in rows], d)
                 for m, d in zip(METRICS, (4, 4, 2, 2))]
        cells.append(mean_std([r["collisions"] for r in rows], 0))
        cells.append(f"{int(sum(r['sides_ok'] for r in rows))}/{len(rows)}")
        cells.append(f"{entry['train_min']:.1f}")
        cells.append(f"{entry['train_peak_gib']:.2f}")
        cells.append(f"{statistics.median(r['predict_s'] for r in rows):.0f}")
        cells.append(f"{max(r['predict_peak_gib'] for r in rows):.2f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    for name, entry in results.items():
        lines += ["", f"{name}, per class (mean ± std over the test scans):", "",
                  "| class | Dice | GapDice | HD95 (mm) | ASSD (mm) |", "|---|---|---|---|---|"]
        for c in DEFAULT_LABELS.foreground_ids:
            label = DEFAULT_LABELS.names[c]
            cells = [mean_std([r[f"{m}_{label}"] for r in entry["scans"]], d)
                     for m, d in zip(METRICS, (4, 4, 2, 2))]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="work folder")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--accurate", type=int, nargs="+", choices=(2, 4), default=[2, 4],
                        help="run the rows' models on these numbers of accurate scans")
    parser.add_argument("--epochs-factor", type=float, default=1.0, metavar="K",
                        help="train K times as many epochs as the default schedule (use a new "
                             "--out: model folders are reused by name)")
    parser.add_argument("--patience", type=int, default=Schedule.early_stop_patience,
                        metavar="EPOCHS", help="early-stopping patience of every training "
                                               "(default %(default)s, the paper's; the "
                                               "product's is 15)")
    parser.add_argument("--min-pixel-mm", type=float, default=Schedule.min_pixel_mm,
                        metavar="MM", help="pixel-spacing floor of every training (default "
                                           "%(default)s, the product's; 0: the paper's rule; use "
                                           "a new --out)")
    parser.add_argument("--joint-plane-fraction", type=float,
                        default=Schedule.joint_plane_fraction, metavar="F",
                        help="training planes aimed at the joint spaces in every training "
                             "(default %(default)s, the product's; use a new --out)")
    parser.add_argument("--appearance-fraction", type=float,
                        default=Schedule.appearance_fraction, metavar="F",
                        help="planes whose CT appearance is redrawn in every training (default "
                             "%(default)s as in runs 1-6; the product's is 0.5; use a new --out)")
    parser.add_argument("--intensity-scaling", choices=INTENSITY_SCALINGS,
                        default=Schedule.intensity_scaling,
                        help="how every training maps HU to the network's input (default "
                             "%(default)s, the product's; use a new --out)")
    parser.add_argument("--finest-pixel-mm", type=finest_pixel_mm, default=0.0,
                        metavar="MM|rule",
                        help="train every model at spacings from MM ('rule': the paper's) to "
                             "the floor's, and score it at both (default 0: one spacing; use "
                             "a new --out)")
    parser.add_argument("--fine-scorings", nargs="*", choices=tuple(FINE_SCORINGS),
                        default=list(FINE_SCORINGS),
                        help="how a --finest-pixel-mm model is scored besides plainly: at its "
                             "finest spacing over the whole scan (the paper's cost), with the "
                             "joint pass (default: both)")
    parser.add_argument("--variants", type=int, default=VARIANTS, metavar="N",
                        help="new anatomies per accurate map for the no-pretrain-variants and "
                             "mixed rows (default %(default)s)")
    parser.add_argument("--femur-rotation-deg", type=float,
                        default=VariantSettings.max_femur_rotation_deg, metavar="DEG",
                        help="largest turn of each femur about its head in the variants "
                             "(default %(default)s, the product's; use a new --out)")
    parser.add_argument("--label-maps", type=Path, default=LABEL_MAPS, metavar="DIR",
                        help="the real label maps (default %(default)s); the split is drawn "
                             "over their sorted names")
    parser.add_argument("--workers", type=int, default=2, metavar="N",
                        help="processes making phantoms, one case each (2-4 GiB at full "
                             "resolution; default %(default)s)")
    parser.add_argument("--quick", action="store_true", help="smoke test of the wiring")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    schedule = dataclasses.replace(
        scaled(quick_schedule() if args.quick else Schedule(), args.epochs_factor),
        early_stop_patience=args.patience, min_pixel_mm=args.min_pixel_mm,
        joint_plane_fraction=args.joint_plane_fraction,
        appearance_fraction=args.appearance_fraction, finest_pixel_mm=args.finest_pixel_mm,
        intensity_scaling=args.intensity_scaling)
    skipped = tuple(f"-{n}" for n in {2, 4} - set(args.accurate))
    root = args.out.resolve()
    (root / "logs").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.variants < 1 or (args.variants != VARIANTS and "mixed" in args.rows):
        raise SystemExit(f"--variants must be at least 1, and {VARIANTS} with the mixed row")
    wants_variants = bool({"no-pretrain-variants", "unet3d-variants", "mixed"} & set(args.rows))
    data = make_data(root / "data", args.label_maps.resolve(), schedule, args.seed,
                     pretrain=not set(args.rows) <= FROM_SCRATCH_ROWS,
                     variants=(args.variants, args.femur_rotation_deg) if wants_variants else None,
                     workers=args.workers)
    if "mixed" in args.rows:
        data["mixed"] = make_mixed(root / "data", data["pretrain"], data["finetune2-variants"])
    logger.info("phantoms ready after %.1f min", (time.perf_counter() - started) / 60)
    results_path = root / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    trained: dict[str, tuple[float, float]] = {}
    for row in args.rows:
        steps = [(name, cli_args) for name, cli_args in models_of_row(row, root, data, schedule,
                                                                   args.variants)
                 if not (skipped and name.endswith(skipped))]
        pre_name = next((name for name, _ in steps if name.startswith("pretrained")), None)
        for name, cli_args in steps:
            model = root / "models" / name
            if name not in trained:
                trained[name] = train_once(model, cli_args, root / "logs" / f"train-{name}.log")
            if name == pre_name:
                continue
            seconds, peak = trained[name]
            pre = trained.get(pre_name, (0.0, 0.0))
            finest = finest_spacing_mm(model)
            scored = [(name, name, ())] + ([] if finest is None else [
                (name + row.format(finest=finest), model.name + folder.format(finest=finest),
                 tuple(o.format(finest=finest) for o in options))
                for row, folder, options in (FINE_SCORINGS[k] for k in args.fine_scorings)])
            for key, tag, options in scored:
                if key in results:
                    continue
                results[key] = {"train_min": (seconds + pre[0]) / 60,
                                "train_peak_gib": max(peak, pre[1]),
                                "scans": score(model, data["test"], root, tag, options)}
                results_path.write_text(json.dumps(results, indent=1))
                print(format_tables(results), flush=True)
    print(f"\ntest scans: {', '.join(r['case'] for r in next(iter(results.values()))['scans'])}; "
          f"total {(time.perf_counter() - started) / 60:.1f} min")


if __name__ == "__main__":
    main()
