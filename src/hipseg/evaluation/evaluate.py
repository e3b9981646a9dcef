"""Scoring predictions against reference label maps, per case and per class.

Metrics per class: Dice, GapDice (Dice inside the gap region G of the reference), Hausdorff
distance, HD95 and average symmetric surface distance (mm). A class missing from both maps is
skipped (nan, counted as skipped); missing from one gives Dice 0 and infinite distances, which
are counted and reported, never averaged into a finite mean.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hipseg.core.atomic import atomic_path, atomic_write_text
from hipseg.core.errors import InputError
from hipseg.core.labels import LabelTable
from hipseg.io import (
    PredictionFiles,
    case_id,
    find_images,
    find_label_maps,
    image_format,
    read_labels,
    write_labels,
)
from hipseg.io.sides import check_sides
from hipseg.metrics import (
    dice_per_class,
    gap_dice_per_class,
    gap_region,
    surface_metrics_per_class,
)

__all__ = ["METRICS", "Evaluation", "evaluate_case", "evaluate_folders", "format_table",
           "write_csv", "write_summary_json"]

#: Metric names, in table order; distances are in mm.
METRICS = ("dice", "gap_dice", "hd", "hd95", "assd")


@dataclass(frozen=True)
class Evaluation:
    """Per-case scores: ``rows[i] = {"case": id, "<metric>_<class>": value, ...}``."""

    labels: LabelTable
    rows: tuple[dict, ...]

    def columns(self) -> list[str]:
        per_class = [f"{m}_{self.labels.names[c]}" for m in METRICS for c in self.labels.foreground_ids]
        return [*per_class, *(f"{m}_mean" for m in METRICS)]

    def summary(self) -> dict[str, dict[str, float | int]]:
        """Per column: mean and std over finite values, and how many were finite, infinite
        (a class missing from one map) or skipped (missing from both)."""
        out = {}
        for column in self.columns():
            values = np.array([r[column] for r in self.rows], float)
            finite = values[np.isfinite(values)]
            out[column] = {
                "mean": float(finite.mean()) if len(finite) else math.nan,
                "std": float(finite.std()) if len(finite) else math.nan,
                "n": len(finite),
                "infinite": int(np.isinf(values).sum()),
                "skipped": int(np.isnan(values).sum()),
            }
        return out


def evaluate_case(prediction: np.ndarray, reference: np.ndarray, spacing_mm: np.ndarray,
                  labels: LabelTable) -> dict[str, float]:
    """All metrics of one case.

    Parameters
    ----------
    prediction, reference : ndarray, shape (X, Y, Z), uint8
    spacing_mm : ndarray, shape (3,)

    Returns
    -------
    dict
        ``{"<metric>_<class name>": value}`` and ``"<metric>_mean"`` over the classes scored.
    """
    ids = labels.foreground_ids
    region = gap_region(reference)
    per_metric = {
        "dice": dice_per_class(prediction, reference, ids),
        "gap_dice": gap_dice_per_class(prediction, reference, ids, region=region),
    }
    surfaces = surface_metrics_per_class(prediction, reference, ids, spacing_mm=spacing_mm)
    for name in ("hd", "hd95", "assd"):
        per_metric[name] = {c: _skip_if_absent(surfaces[c][name], per_metric["dice"][c]) for c in ids}
    row = {}
    for metric, scores in per_metric.items():
        row.update({f"{metric}_{labels.names[c]}": v for c, v in scores.items()})
        scored = [v for v in scores.values() if not math.isnan(v)]
        row[f"{metric}_mean"] = float(np.mean(scored)) if scored else math.nan
    return row


def _skip_if_absent(distance: float, dice: float) -> float:
    # A class absent from both maps has distance 0 by the metric's rule; here it is skipped.
    return math.nan if math.isnan(dice) else distance


def evaluate_folders(labels_dir: Path, predictions_dir: Path, labels: LabelTable, *,
                     gap_regions_dir: Path | None = None, strict: bool = False) -> Evaluation:
    """Score every reference label map against the prediction with the same case id.

    Other files in ``predictions_dir`` (probabilities, uncertainty maps) are ignored; a
    reference without a prediction is an error naming it. ``labels_dir`` is a folder of label
    maps or a dataset folder in any layout (:func:`hipseg.io.find_dataset`).

    ``gap_regions_dir``: also write each reference's gap region G there, uint8 in the
    reference's format. A reference whose side classes lie on the wrong side of the midline
    is a warning, or an error with ``strict`` (:func:`~hipseg.io.sides.check_sides`).
    """
    predictions = {case_id(p): p for p in find_images(predictions_dir)
                   if not PredictionFiles.is_derived(p)}
    rows = []
    for cid, reference_path in sorted(find_label_maps(labels_dir).items()):
        if cid not in predictions:
            raise InputError(reference_path, f"no prediction for case {cid!r} in {predictions_dir}")
        reference = read_labels(reference_path, labels)
        check_sides(reference_path, reference, labels, strict=strict)
        prediction = read_labels(predictions[cid], labels)
        if prediction.shape != reference.shape:
            raise InputError(predictions[cid], f"shape {prediction.shape} differs from reference {reference.shape}")
        if not np.allclose(prediction.affine, reference.affine, atol=1e-3):
            raise InputError(predictions[cid], "affine differs from the reference label map's")
        row = {"case": cid}
        row.update(evaluate_case(prediction.data, reference.data, reference.spacing_mm, labels))
        rows.append(row)
        if gap_regions_dir is not None:
            nifti = image_format(reference_path) == "nifti"
            write_labels(PredictionFiles.beside(reference_path).gap_region(gap_regions_dir),
                         gap_region(reference.data),
                         reference=reference_path if nifti else reference)
    return Evaluation(labels, tuple(rows))


def format_table(evaluation: Evaluation) -> str:
    """A plain-text table: one line per metric and class, mean ± std over cases."""
    lines = [f"{'metric':<22} {'mean':>9} {'std':>9} {'cases':>5} {'inf':>4} {'skipped':>7}"]
    for column, s in evaluation.summary().items():
        lines.append(f"{column:<22} {s['mean']:9.4f} {s['std']:9.4f} {s['n']:5d} "
                     f"{s['infinite']:4d} {s['skipped']:7d}")
    return "\n".join(lines)


def write_csv(evaluation: Evaluation, path: Path) -> None:
    """Per-case rows as CSV (atomically)."""
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["case", *evaluation.columns()])
        writer.writeheader()
        writer.writerows(evaluation.rows)


def write_summary_json(evaluation: Evaluation, path: Path) -> None:
    """The summary (mean, std, counts per column) as JSON; non-finite values as null."""
    def clean(value: float) -> float | int | None:
        return value if isinstance(value, int) or math.isfinite(value) else None

    summary = {column: {k: clean(v) for k, v in s.items()}
               for column, s in evaluation.summary().items()}
    atomic_write_text(Path(path), json.dumps({"cases": len(evaluation.rows), "metrics": summary},
                                             indent=2))
