"""Scoring predictions against reference label maps, per case and per class."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hipseg.core.atomic import atomic_path
from hipseg.core.errors import InputError
from hipseg.core.labels import LabelTable
from hipseg.io import find_cases, read_labels
from hipseg.metrics import dice_per_class

__all__ = ["Evaluation", "evaluate_folders", "format_table", "write_csv"]


@dataclass(frozen=True)
class Evaluation:
    """Per-case scores: ``rows[i] = {"case": id, "dice_<class>": value, ...}``."""

    labels: LabelTable
    rows: tuple[dict, ...]

    def columns(self) -> list[str]:
        return [f"dice_{self.labels.names[c]}" for c in self.labels.foreground_ids]

    def summary(self) -> dict[str, tuple[float, float, int]]:
        """``{column: (mean, std, n)}`` over cases where the class was scored (not nan)."""
        out = {}
        for column in [*self.columns(), "dice_mean"]:
            values = np.array([r[column] for r in self.rows], float)
            values = values[~np.isnan(values)]
            out[column] = (float(values.mean()) if len(values) else math.nan,
                           float(values.std()) if len(values) else math.nan, len(values))
        return out


def evaluate_folders(labels_dir: Path, predictions_dir: Path, labels: LabelTable) -> Evaluation:
    """Dice per class for every case, predictions and references paired by case id."""
    rows = []
    for case in find_cases(predictions_dir, labels_dir):
        reference = read_labels(case.labels, labels)
        prediction = read_labels(case.image, labels)
        if prediction.shape != reference.shape:
            raise InputError(case.image, f"shape {prediction.shape} differs from reference {reference.shape}")
        if not np.allclose(prediction.affine, reference.affine, atol=1e-3):
            raise InputError(case.image, "affine differs from the reference label map's")
        scores = dice_per_class(prediction.data, reference.data, labels.foreground_ids)
        row = {"case": case.case_id}
        row.update({f"dice_{labels.names[c]}": v for c, v in scores.items()})
        scored = [v for v in scores.values() if not math.isnan(v)]
        row["dice_mean"] = float(np.mean(scored)) if scored else math.nan
        rows.append(row)
    return Evaluation(labels, tuple(rows))


def format_table(evaluation: Evaluation) -> str:
    """A plain-text table: one line per metric column, mean ± std over cases."""
    lines = [f"{'metric':<22} {'mean':>7} {'std':>7} {'cases':>5}"]
    for column, (mean, std, n) in evaluation.summary().items():
        lines.append(f"{column:<22} {mean:7.4f} {std:7.4f} {n:5d}")
    return "\n".join(lines)


def write_csv(evaluation: Evaluation, path: Path) -> None:
    """Per-case rows as CSV (atomically)."""
    with atomic_path(Path(path)) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["case", *evaluation.columns(), "dice_mean"])
        writer.writeheader()
        writer.writerows(evaluation.rows)
