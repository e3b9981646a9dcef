"""`evaluate` on hand-built label maps with known scores, through files."""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pytest

from hipseg.cli import main
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.evaluation.evaluate import evaluate_folders


def _save(path, data, spacing=(1.0, 2.0, 1.5)):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(np.uint8), np.diag([*spacing, 1.0])), path)


@pytest.fixture
def folders(tmp_path):
    reference = np.zeros((20, 12, 12), np.uint8)
    reference[2:8, 2:8, 2:8] = 1       # femur_right
    reference[10:16, 2:8, 2:8] = 3     # hip_right, 2 voxels (2 mm) from the femur
    reference[2:6, 9:11, 9:11] = 2     # femur_left: missed by the prediction
    prediction = np.zeros_like(reference)
    prediction[3:9, 2:8, 2:8] = 1      # shifted one voxel (1 mm) along x
    prediction[10:16, 2:8, 2:8] = 3
    _save(tmp_path / "ref" / "a.nii.gz", reference)
    _save(tmp_path / "pred" / "a.nii.gz", prediction)
    return tmp_path


def test_known_scores_and_missing_classes(folders):
    evaluation = evaluate_folders(folders / "ref", folders / "pred", DEFAULT_LABELS)
    [row] = evaluation.rows
    assert row["dice_femur_right"] == pytest.approx(2 * 5 * 36 / (2 * 216))
    assert row["hd_femur_right"] == pytest.approx(1.0)
    assert row["dice_hip_right"] == 1.0 and row["hd_hip_right"] == 0.0
    assert row["dice_femur_left"] == 0.0 and math.isinf(row["hd_femur_left"])
    assert math.isnan(row["dice_sacrum"]) and math.isnan(row["hd_sacrum"])
    summary = evaluation.summary()
    assert summary["hd_femur_left"]["infinite"] == 1
    assert summary["dice_sacrum"]["skipped"] == 1
    # the femur's shift moves its far face, outside the gap region: GapDice of the hip is perfect
    assert row["gap_dice_hip_right"] == 1.0


def test_cli_writes_table_csv_json_and_gap_regions(folders, capsys):
    code = main(["evaluate", "--labels", str(folders / "ref"), "--predictions", str(folders / "pred"),
                 "--out", str(folders / "scores.csv"), "--save-gap-regions", str(folders / "gaps"),
                 "--no-progress"])
    assert code == 0
    table = capsys.readouterr().out
    assert "gap_dice_hip_right" in table and "hd95_mean" in table
    summary = json.loads((folders / "scores.json").read_text())
    assert summary["cases"] == 1
    assert summary["metrics"]["dice_hip_right"]["mean"] == 1.0
    assert summary["metrics"]["hd_femur_left"]["mean"] is None
    gap = np.asarray(nib.load(folders / "gaps" / "a_gap.nii.gz").dataobj)
    assert gap[9, 4, 4] == 1 and gap[0, 0, 0] == 0
