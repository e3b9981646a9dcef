"""`collisions` and `postprocess` through the command line on hand-built label maps."""

from __future__ import annotations

import csv
import json

import nibabel as nib
import numpy as np

from hipseg.cli import main


def _save(path, data, spacing=(1.0, 1.0, 1.0)):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(np.uint8), np.diag([*spacing, 1.0])), path)


def _two_boxes(gap_voxels: int) -> np.ndarray:
    labels = np.zeros((20, 8, 8), np.uint8)
    labels[2:6, 2:6, 2:6] = 1
    labels[6 + gap_voxels : 10 + gap_voxels, 2:6, 2:6] = 3
    return labels


def test_collisions_rank_scans_and_locate_regions(tmp_path, capsys):
    _save(tmp_path / "pred" / "touching.nii.gz", _two_boxes(0))   # facing layers at 1 mm and 2 mm
    _save(tmp_path / "pred" / "gap1.nii.gz", _two_boxes(1))       # only the facing layers, 2 mm
    _save(tmp_path / "pred" / "apart.nii.gz", _two_boxes(4))      # 5 mm apart: no collision
    files = sorted((tmp_path / "pred").iterdir())
    code = main(["collisions", *map(str, files), "--eps", "2", "--out", str(tmp_path / "out"),
                 "--threshold", "10", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out
    with open(tmp_path / "out" / "collisions.csv") as handle:
        rows = list(csv.DictReader(handle))
    # 4x4 faces: touching -> two layers per box (64), one empty layer -> one per box (32)
    assert [(r["case"], int(r["collisions"])) for r in rows] == [
        ("touching", 64), ("gap1", 32), ("apart", 0)]
    assert rows[0]["femur_right-hip_right"] == "64"
    assert "some scans are above the threshold" in printed
    assert "touching: femur_right-hip_right, 64 voxels around RAS (5.5, 3.5, 3.5) mm" in printed
    assert "gap1: femur_right-hip_right, 16 voxels around RAS (7.0, 3.5, 3.5) mm" in printed
    codes = np.asarray(nib.load(tmp_path / "out" / "gap1_collisions.nii.gz").dataobj)
    assert set(np.unique(codes)) == {0, 2}  # pair code 2 = (1, 3)
    assert (codes > 0).sum() == 32


def test_postprocess_moves_a_stray_blob_and_keeps_the_gap(tmp_path, capsys):
    labels = np.zeros((30, 10, 10), np.uint8)
    labels[2:8, 2:8, 2:8] = 1           # femur_right
    labels[9:12, 2:8, 2:8] = 3          # hip_right, one empty layer from the femur
    labels[20:26, 2:8, 2:8] = 2         # femur_left
    labels[3:5, 9, 9] = 2               # a stray femur_left blob touching nothing of its own
    labels[28, 0, 0] = 5                # a floating sacrum voxel... the only sacrum: kept
    _save(tmp_path / "in" / "a.nii.gz", labels)
    assert main(["postprocess", str(tmp_path / "in" / "a.nii.gz"), "--out", str(tmp_path / "out"),
                 "--no-progress"]) == 0
    out = np.asarray(nib.load(tmp_path / "out" / "a.nii.gz").dataobj)
    assert out[3, 9, 9] != 2
    assert (out == 2).sum() == 216
    assert np.all(out[8] == 0), "the one-voxel gap between femur and hip must survive"
    assert out[28, 0, 0] == 5
    assert "moved 2 voxels" in capsys.readouterr().out


def test_mesh_command_writes_libhip_meshes_and_qc(tmp_path, capsys):
    labels = np.zeros((24, 14, 14), np.uint8)
    labels[3:10, 3:11, 3:11] = 2        # femur_left
    labels[10:16, 3:11, 3:11] = 4       # hip_left, touching the femur face to face
    _save(tmp_path / "in" / "c.nii.gz", labels, spacing=(1.5, 1.0, 1.2))
    assert main(["mesh", str(tmp_path / "in" / "c.nii.gz"), "--out", str(tmp_path / "m"),
                 "--format", "ply", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "c_lfemur_mm.ply", "c_lpelvis_mm.ply", "c_mesh_qc.json"]
    assert "closed, manifold, outward" in printed
    qc = json.loads((tmp_path / "m" / "c_mesh_qc.json").read_text())
    assert qc["gap_voxels_changed"] == 64
    [pair] = qc["pairs"]
    assert pair["distance_mm"] > 0.5, "the touching bones must be pulled apart"


def test_report_command_writes_a_page_with_metrics(tmp_path, capsys):
    from hipseg.io import write_image, write_labels
    from hipseg.phantom import make_procedural_case

    case = make_procedural_case(np.random.default_rng(2))
    write_image(tmp_path / "ct.nii.gz", case.image.data, case.image.affine)
    write_labels(tmp_path / "labels.nii.gz", case.labels.data, case.labels)
    assert main(["report", str(tmp_path / "ct.nii.gz"), str(tmp_path / "labels.nii.gz"),
                 "--reference", str(tmp_path / "labels.nii.gz"), "--out", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    page = (tmp_path / "r" / "ct_report.html").read_text()
    assert page.count("data:image/png;base64,") >= 6
    assert "1.0000" in page and "femur_left" in page
    assert "report written to" in capsys.readouterr().out


def test_nrrd_predictions_keep_their_disagreement_for_collisions_and_report(tmp_path, rng,
                                                                            tiny_model_dir):
    """Issue 15's two bugs: with ``--output-format nrrd`` the uncertainty map lies beside the
    label map as NRRD; ``collisions`` and the report must read it, not look for NIfTI."""
    import csv

    from hipseg.io import PredictionFiles, write_image

    data = rng.normal(300, 300, size=(14, 12, 10)).astype(np.float32)
    write_image(tmp_path / "scan.nii.gz", data, np.diag([2.0, 2.0, 2.0, 1.0]))
    out = tmp_path / "pred"
    assert main(["predict", str(tiny_model_dir), str(tmp_path / "scan.nii.gz"), "--out",
                 str(out), "--output-format", "nrrd", "--report", "--save-uncertainty",
                 "--no-progress"]) == 0
    files = PredictionFiles(out, "scan", ".nrrd")
    assert files.labels.is_file() and files.uncertainty.is_file()
    assert files.report(out / "reports").is_file()
    assert main(["collisions", str(files.labels), str(files.uncertainty), "--out",
                 str(tmp_path / "review"), "--no-progress"]) == 0
    with open(tmp_path / "review" / "collisions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["case"] for row in rows] == ["scan"]  # the uncertainty map is not a scan
    assert np.isfinite(float(rows[0]["mean_disagreement"]))
    assert (tmp_path / "review" / "scan_collisions.nrrd").is_file()
