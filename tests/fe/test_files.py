"""``hipseg fe`` end to end on a small map: files, summary, clear errors, nothing half-written."""

from __future__ import annotations

import json

import meshio
import nibabel as nib
import numpy as np
import pytest

from hipseg.cli import main


def _hip(gap_vox: int = 4) -> np.ndarray:
    """Right femur, right hip bone, sacrum; the hip joint ``gap_vox`` voxels wide."""
    labels = np.zeros((34, 14, 24), np.uint8)
    labels[2:8, 2:12, 2:12] = 1
    labels[8 + gap_vox:14 + gap_vox, 2:12, 2:16] = 3
    labels[18 + gap_vox:24 + gap_vox, 2:12, 8:22] = 5
    return labels


def _write(path, labels):
    nib.save(nib.Nifti1Image(labels, np.diag([1.0, 1.0, 1.0, 1.0])), path)
    return path


def test_fe_writes_every_format_and_a_summary(tmp_path, capsys):
    labels = _hip()
    source = _write(tmp_path / "case_7.nii.gz", labels)
    out = tmp_path / "out"
    assert main(["fe", str(source), "--out", str(out), "--format", "feb", "vtu", "--size", "1",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "hip_right_femur_right_cartilage" in printed and "min gap femur_right-hip_right" in printed
    summary = json.loads((out / "case_7_fe.json").read_text())
    assert summary["inverted"] == 0 and summary["min_dihedral_deg"] == pytest.approx(45.0)
    bodies = {b["name"]: b for b in summary["bodies"]}
    assert bodies["femur_right"]["map_volume_ml"] == pytest.approx(
        np.count_nonzero(labels == 1) / 1000.0)
    assert all(b["closed"] and b["pieces"] == 1 for b in bodies.values())
    assert all(abs(b["volume_error_pct"]) < 1e-9 for b in bodies.values())
    assert summary["min_bone_gap_mm"]["femur_right-hip_right"] == pytest.approx(4.0)
    assert sorted(p.name for p in out.iterdir()) == [
        "case_7_fe.feb", "case_7_fe.json", "case_7_fe.vtu", "case_7_fe_bodies.nii.gz",
        "case_7_fe_template.yaml"]
    back = meshio.read(out / "case_7_fe.vtu")
    assert len(back.cells_dict["tetra"]) == summary["elements"]
    # the body map holds 6 elements per voxel of each body, on the element grid in mm
    body_map = nib.load(out / "case_7_fe_bodies.nii.gz")
    np.testing.assert_allclose(body_map.affine, np.eye(4), atol=1e-9)
    counts = np.bincount(np.asarray(body_map.dataobj).ravel())
    assert all(6 * counts[b["body_id"]] == b["elements"] for b in bodies.values())


def test_touching_bones_are_one_clean_error_and_enforce_gap_opens_them(tmp_path, capsys):
    source = _write(tmp_path / "touch.nii.gz", _hip(gap_vox=0))
    out = tmp_path / "out"
    assert main(["fe", str(source), "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"hipseg: error: {source}: femur_right and hip_right touch at")
    assert "RAS (" in err and "\n" not in err
    assert not out.exists() or not any(out.iterdir())
    assert main(["fe", str(source), "--out", str(out), "--enforce-gap", "--format", "msh",
                 "--no-progress"]) == 0
    assert json.loads((out / "touch_fe.json").read_text())["gap_voxels_changed"] > 0


def test_a_tampered_template_is_refused_before_any_work(tmp_path, capsys):
    source = _write(tmp_path / "case.nii.gz", _hip())
    template = tmp_path / "fe.yaml"
    template.write_text("bone: {model: steel, youngs_modulus_mpa: 1, poisson_ratio: 0.3}\n")
    assert main(["fe", str(source), "--out", str(tmp_path / "out"), "--template", str(template),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"hipseg: error: {template}: material model 'steel' is not one of "
                   "['isotropic elastic', 'neo-Hookean']")


def test_a_map_without_a_sacrum_is_refused_for_the_load_case(tmp_path, capsys):
    labels = _hip()
    labels[labels == 5] = 0
    source = _write(tmp_path / "nosacrum.nii.gz", labels)
    assert main(["fe", str(source), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"hipseg: error: {source}: the model has no sacrum: the load case fixes it"
    assert not list((tmp_path / "out").glob("*.feb"))


def test_predict_fe_writes_the_fe_model_of_each_label_map_it_wrote(tmp_path, tiny_model_dir,
                                                                    monkeypatch, capsys):
    """The network is replaced by one that "predicts" a known map: what is under test is that
    ``predict --fe`` builds the FE model of exactly the label map it wrote, into OUT/fe."""
    from hipseg.inference import batch
    from hipseg.inference.files import PredictionSummary

    scan = _write(tmp_path / "scan.nii.gz", np.zeros((4, 4, 4), np.int16))

    def predicted(model, model_dir, inputs, out, **kwargs):
        path = _write(tmp_path / "out" / "scan.nii.gz", _hip())
        return [PredictionSummary("scan", path, 0, 2.0, 0.0, 0, 0, 0)]

    monkeypatch.setattr(batch, "predict_files_in_workers", predicted)
    out = tmp_path / "out"
    out.mkdir()
    assert main(["predict", str(tiny_model_dir), str(scan), "--out", str(out), "--fe",
                 "--no-progress"]) == 0
    assert f"FE models written to {out / 'fe'}" in capsys.readouterr().out
    from_predict = json.loads((out / "fe" / "scan_fe.json").read_text())
    assert (out / "fe" / "scan_fe.feb").is_file()
    assert main(["fe", str(out / "scan.nii.gz"), "--out", str(tmp_path / "direct"),
                 "--format", "vtu", "--no-progress"]) == 0
    direct = json.loads((tmp_path / "direct" / "scan_fe.json").read_text())
    assert from_predict["elements"] == direct["elements"] > 0
    assert from_predict["bodies"] == direct["bodies"]


def test_predict_fe_without_a_sacrum_is_one_line_and_keeps_the_label_map(tmp_path, tiny_model_dir,
                                                                         capsys):
    # This tiny untrained network labels every voxel hip_left: no sacrum to fix.
    noise = np.random.default_rng(0).normal(40, 30, (24, 20, 18)).astype(np.int16)
    scan = _write(tmp_path / "scan.nii.gz", noise)
    out = tmp_path / "out"
    assert main(["predict", str(tiny_model_dir), str(scan), "--out", str(out), "--fe",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"hipseg: error: {out / 'scan.nii.gz'}: the model has no sacrum: the load case fixes it"
    assert nib.load(out / "scan.nii.gz").shape == (24, 20, 18)
    assert not list((out / "fe").glob("*.feb"))


def test_a_contact_gap_too_wide_for_the_elements_is_one_line(tmp_path, capsys):
    source = _write(tmp_path / "case.nii.gz", _hip())
    assert main(["fe", str(source), "--out", str(tmp_path / "out"), "--size", "1",
                 "--contact-gap-mm", "0.5", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hipseg: error: --contact-gap-mm: contact_gap_mm (0.5 mm) must be below")
    assert "\n" not in err and not (tmp_path / "out").exists()


def test_quality_measured_in_chunks_equals_the_whole_mesh_at_once(monkeypatch):
    from hipseg.fe import files
    from hipseg.tetmesh import dihedral_angles_deg, radius_ratios, tet_volumes_mm3

    rng = np.random.default_rng(0)
    nodes = rng.normal(size=(40, 3))
    tets = np.stack([rng.choice(40, 4, replace=False) for _ in range(53)])
    whole = {"inverted": int(np.count_nonzero(tet_volumes_mm3(nodes, tets) <= 0)),
             "min_dihedral_deg": float(dihedral_angles_deg(nodes, tets).min()),
             "max_dihedral_deg": float(dihedral_angles_deg(nodes, tets).max()),
             "min_radius_ratio": float(radius_ratios(nodes, tets).min())}
    assert 0 < whole["inverted"] < 53  # random corners: some elements turned inside out
    monkeypatch.setattr(files, "QUALITY_CHUNK", 7)
    assert files._quality(nodes, tets) == whole
