"""Hostile and careless use across the verbs (issue 16): no verb writes over its inputs, two
inputs never share an output, unwritable outputs and bad option values are refused before any
work, interrupted runs are detected, side swaps are caught, and every refusal is one line with
exit code 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from hipseg.cli import main
from hipseg.core.atomic import atomic_path, is_temporary, remove_stale_temporaries
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.labelmap import side_problems

SHAPE = (12, 10, 8)


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def _ct(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(100, 50, SHAPE).astype(np.float32)


def _pelvis(shape=SHAPE) -> np.ndarray:
    """Right bones at high x (RAS with an identity affine), left ones at low x, sacrum between."""
    labels = np.zeros(shape, np.uint8)
    x = shape[0]
    labels[x - 3 :, 2:4, 2:4] = 1
    labels[:3, 2:4, 2:4] = 2
    labels[x - 3 :, 6:8, 4:6] = 3
    labels[:3, 6:8, 4:6] = 4
    labels[x // 2 - 1 : x // 2 + 1, 6:8, 5:7] = 5
    return labels


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line_error(capsys, code: int, *phrases: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    errors = [line for line in err if "error" in line]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    for phrase in phrases:
        assert phrase in errors[0], errors[0]
    return errors[0]


def _dataset(root: Path, labels: np.ndarray | None = None, affine=None) -> Path:
    _nifti(root / "images" / "a.nii.gz", _ct(), affine)
    _nifti(root / "labels" / "a.nii.gz", _pelvis() if labels is None else labels, affine)
    return root


# 1. No verb writes over one of its inputs.

def test_predict_into_the_input_folder_never_replaces_the_ct(tmp_path, tiny_model_dir, capsys):
    ct = _nifti(tmp_path / "scans" / "x.nii.gz", _ct())
    before = _digest(tmp_path / "scans")
    for extra in ([], ["--overwrite"]):
        code = main(["predict", str(tiny_model_dir), str(ct), "--out", str(ct.parent),
                     "--no-progress", *extra])
        _one_line_error(capsys, code, str(ct), "would overwrite the input")
        assert _digest(tmp_path / "scans") == before


def test_predict_never_replaces_an_input_through_a_derived_name(tmp_path, tiny_model_dir,
                                                                capsys):
    """``a``'s probabilities would land on the input named ``a_probabilities``."""
    a = _nifti(tmp_path / "in" / "a.nii.gz", _ct())
    other = _nifti(tmp_path / "in" / "a_probabilities.nii.gz", _ct(1))
    before = _digest(tmp_path / "in")
    code = main(["predict", str(tiny_model_dir), str(a), str(other), "--out",
                 str(tmp_path / "in"), "--save-probabilities", "--overwrite", "--no-progress"])
    _one_line_error(capsys, code, "would overwrite the input")
    assert _digest(tmp_path / "in") == before


def test_postprocess_and_import_labels_never_overwrite_their_inputs(tmp_path, capsys):
    seg = _nifti(tmp_path / "maps" / "x.nii.gz", _pelvis())
    before = _digest(tmp_path / "maps")
    code = main(["postprocess", str(seg), "--out", str(seg.parent), "--no-progress"])
    _one_line_error(capsys, code, "would overwrite the input")
    code = main(["import-labels", str(seg), "--from", "totalsegmentator", "--out",
                 str(seg.parent), "--no-progress"])
    _one_line_error(capsys, code, "would overwrite the input")
    assert _digest(tmp_path / "maps") == before


def test_a_hard_link_to_an_input_counts_as_the_input(tmp_path, capsys):
    seg = _nifti(tmp_path / "maps" / "x.nii.gz", _pelvis())
    (tmp_path / "out").mkdir()
    os.link(seg, tmp_path / "out" / "x.nii.gz")
    before = _digest(tmp_path / "maps")
    code = main(["postprocess", str(seg), "--out", str(tmp_path / "out"), "--no-progress"])
    _one_line_error(capsys, code, "would overwrite the input")
    assert _digest(tmp_path / "maps") == before


# 2. Two inputs never write the same output.

def test_same_file_names_from_two_folders_are_refused(tmp_path, capsys):
    a = _nifti(tmp_path / "a" / "x.nii.gz", _pelvis())
    b = _nifti(tmp_path / "b" / "x.nii.gz", _pelvis())
    code = main(["postprocess", str(a), str(b), "--out", str(tmp_path / "c"), "--no-progress"])
    _one_line_error(capsys, code, str(a), str(b))
    assert not (tmp_path / "c").exists()
    seg_a = _nifti(tmp_path / "s1" / "seg.nii.gz", np.zeros(SHAPE, np.uint8))
    seg_b = _nifti(tmp_path / "s2" / "seg.nii.gz", np.zeros(SHAPE, np.uint8))
    code = main(["import-labels", str(seg_a), str(seg_b), "--from", "totalsegmentator",
                 "--out", str(tmp_path / "d"), "--no-progress"])
    _one_line_error(capsys, code, "same file name")
    assert not (tmp_path / "d").exists()


# 4. Sides come from the affine.

def test_side_problems_finds_swapped_sides_from_the_affine():
    labels = _pelvis()
    assert side_problems(labels, np.eye(4), DEFAULT_LABELS) == []
    # The same array under an x-flipped affine: now the "right" bones lie on the left.
    flipped = np.diag([-1.0, 1.0, 1.0, 1.0])
    problems = side_problems(labels, flipped, DEFAULT_LABELS)
    assert {p.split()[0] for p in problems} == {"femur_right", "femur_left", "hip_right",
                                                "hip_left"}
    # Flipping the array as well puts everything back: array order does not matter.
    assert side_problems(labels[::-1].copy(), flipped, DEFAULT_LABELS) == []


def test_check_warns_on_swapped_sides_and_strict_refuses(tmp_path, capsys):
    swapped = _pelvis()
    for right, left in DEFAULT_LABELS.symmetric_pairs:
        swapped = np.where(_pelvis() == right, left, np.where(_pelvis() == left, right, swapped))
    data = _dataset(tmp_path / "data", swapped.astype(np.uint8))
    assert main(["check", str(data)]) == 0
    out = capsys.readouterr().out
    assert "WARNING" in out and "femur_right lies" in out and "left of the midline" in out
    assert main(["check", str(data), "--strict"]) == 2
    assert "femur_right lies" in capsys.readouterr().out
    code = main(["evaluate", "--labels", str(data / "labels"), "--predictions",
                 str(data / "labels"), "--strict"])
    _one_line_error(capsys, code, "left and right swapped?")


def test_check_is_quiet_on_correct_sides(tmp_path, capsys):
    assert main(["check", str(_dataset(tmp_path / "data"))]) == 0
    assert "WARNING" not in capsys.readouterr().out


def test_nnunet_dataset_json_with_swapped_names_is_caught(tmp_path, capsys):
    root = tmp_path / "Dataset001_Hip"
    _nifti(root / "imagesTr" / "a_0000.nii.gz", _ct())
    _nifti(root / "labelsTr" / "a.nii.gz", _pelvis())
    names = dict(zip(DEFAULT_LABELS.names, range(6)))
    names["femur_right"], names["femur_left"] = names["femur_left"], names["femur_right"]
    (root / "dataset.json").write_text(json.dumps({
        "labels": names, "channel_names": {"0": "CT"}, "file_ending": ".nii.gz",
        "numTraining": 1}))
    assert main(["check", str(root), "--strict"]) == 2
    assert "femur_right lies" in capsys.readouterr().out


# 5., 10. Training never replaces a model silently; --epochs is honoured or refused.

def test_train_refuses_a_folder_that_holds_a_model(tmp_path, tiny_model_dir, capsys):
    data = _dataset(tmp_path / "data")
    before = _digest(tiny_model_dir)
    code = main(["train", str(data), "--out", str(tiny_model_dir), "--epochs", "1",
                 "--no-progress"])
    _one_line_error(capsys, code, "already holds a model", "--overwrite")
    code = main(["finetune", str(tiny_model_dir), str(data), "--out", str(tiny_model_dir),
                 "--epochs", "1", "--no-progress"])
    assert code == 2
    capsys.readouterr()
    assert _digest(tiny_model_dir) == before


def test_resume_honours_a_larger_epochs_and_refuses_a_smaller_one(tmp_path, capsys):
    data = _dataset(tmp_path / "data")
    model = tmp_path / "m"
    common = ["--steps-per-epoch", "1", "--batch-size", "2", "--dim", "16", "--base-width", "4",
              "--depth", "2", "--views", "3", "--no-progress"]
    assert main(["train", str(data), "--out", str(model), "--epochs", "1", *common]) == 0
    capsys.readouterr()
    code = main(["train", str(data), "--out", str(model), "--resume", "--epochs", "1", *common])
    _one_line_error(capsys, code, "already trained 1 epochs")
    assert main(["train", str(data), "--out", str(model), "--resume", "--epochs", "2",
                 *common]) == 0
    log = (model / "log.csv").read_text().strip().splitlines()
    assert len(log) == 3  # header and two epochs
    assert "epochs: 2" in (model / "config.yaml").read_text()


# 6. export-nnunet: no stale cases, no half exports.

def test_export_nnunet_refuses_a_non_empty_folder_and_never_leaves_half_an_export(tmp_path,
                                                                                  capsys):
    data = _dataset(tmp_path / "data")
    out = tmp_path / "export"
    out.mkdir()
    (out / "stale.txt").write_text("old case")
    code = main(["export-nnunet", str(data), "--out", str(out), "--no-progress"])
    _one_line_error(capsys, code, "not empty")
    assert main(["export-nnunet", str(data), "--out", str(out), "--overwrite",
                 "--no-progress"]) == 0
    assert not (out / "stale.txt").exists()
    assert json.loads((out / "dataset.json").read_text())["numTraining"] == 1
    # A failing second case: the export is not made, and nothing is left beside it.
    _nifti(data / "images" / "b.nii.gz", _ct())
    _nifti(data / "labels" / "b.nii.gz", np.full(SHAPE, 9, np.uint8))
    fresh = tmp_path / "fresh"
    code = main(["export-nnunet", str(data), "--out", str(fresh), "--no-progress"])
    _one_line_error(capsys, code, "unknown label ids [9]")
    assert not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "export"]


# 9. Interrupted writes.

def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_writer_leaves_a_temporary_that_the_next_run_removes(tmp_path):
    with atomic_path(tmp_path / "x.nii.gz") as tmp:
        live = tmp.name
        tmp.write_bytes(b"partial")
        # Renamed as if written by a process that was killed.
        dead = tmp.with_name(live.replace(f"-{os.getpid()}-", f"-{_dead_pid()}-"))
        os.link(tmp, dead)
        assert is_temporary(tmp) and is_temporary(dead)
        assert remove_stale_temporaries(tmp_path) == [dead]  # this writer's file survives
    assert not dead.exists() and (tmp_path / "x.nii.gz").read_bytes() == b"partial"


def test_predict_redoes_a_case_whose_requested_outputs_are_missing(tmp_path, tiny_model_dir,
                                                                   capsys):
    ct = _nifti(tmp_path / "in" / "x.nii.gz", _ct())
    out = tmp_path / "out"
    assert main(["predict", str(tiny_model_dir), str(ct), "--out", str(out),
                 "--no-progress"]) == 0
    stale = out / f".x_probabilities.nii.gz.host-{_dead_pid()}-abcdefgh.tmp.nii.gz"
    stale.write_bytes(b"half")
    assert main(["predict", str(tiny_model_dir), str(ct), "--out", str(out),
                 "--save-probabilities", "--no-progress"]) == 0
    assert (out / "x_probabilities.nii.gz").is_file()
    capsys.readouterr()
    # `check` never takes a temporary for a case.
    (out / "images").mkdir()
    _nifti(out / "images" / "x.nii.gz", _ct())
    (out / "images" / ".x.nii.gz.host-1-abcdefgh.tmp.nii.gz").write_bytes(b"half")
    (out / "labels").mkdir()
    _nifti(out / "labels" / "x.nii.gz", _pelvis())
    assert main(["check", str(out)]) == 0
    assert "1 cases, 0 with problems" in capsys.readouterr().out


def test_the_label_map_is_written_last(tmp_path, tiny_model_dir, monkeypatch):
    """Killed after the probabilities, the case is not finished: no label map yet."""
    from hipseg.inference import files

    written = []
    real_write_image, real_write_labels = files.write_image, files.write_labels
    monkeypatch.setattr(files, "write_image",
                        lambda path, *a, **k: (written.append(Path(path).name),
                                               real_write_image(path, *a, **k)))
    monkeypatch.setattr(files, "write_labels",
                        lambda path, *a, **k: (written.append(Path(path).name),
                                               real_write_labels(path, *a, **k)))
    ct = _nifti(tmp_path / "x.nii.gz", _ct())
    assert main(["predict", str(tiny_model_dir), str(ct), "--out", str(tmp_path / "out"),
                 "--save-probabilities", "--save-uncertainty", "--no-progress"]) == 0
    assert written[-1] == "x.nii.gz" and len(written) == 3


# 13. Numeric options are validated when parsed.

BAD_OPTIONS = [
    (["predict", "m", "x", "--out", "o", "--threads", "100000"], "--threads"),
    (["predict", "m", "x", "--out", "o", "--threads", "0"], "--threads"),
    (["predict", "m", "x", "--out", "o", "--workers", "0"], "--workers"),
    (["predict", "m", "x", "--out", "o", "--min-gap-mm", "nan"], "--min-gap-mm"),
    (["predict", "m", "x", "--out", "o", "--min-gap-mm", "-1"], "--min-gap-mm"),
    (["predict", "m", "x", "--out", "o", "--eps", "0"], "--eps"),
    (["predict", "m", "x", "--out", "o", "--max-memory-gb", "0"], "--max-memory-gb"),
    (["predict", "m", "x", "--out", "o", "--max-memory-gb", "inf"], "--max-memory-gb"),
    (["predict", "m", "x", "--out", "o", "--crop-margin-mm", "-5"], "--crop-margin-mm"),
    (["predict", "m", "x", "--out", "o", "--num-parts", "0"], "--num-parts"),
    (["mesh", "x", "--out", "o", "--smooth", "-1"], "--smooth"),
    (["finetune", "m", "d", "--out", "o", "--sigma", "0"], "--sigma"),
    (["finetune", "m", "d", "--out", "o", "--w0", "-3"], "--w0"),
    (["finetune", "m", "d", "--out", "o", "--lr", "nan"], "--lr"),
    (["finetune", "m", "d", "--out", "o", "--lr", "0"], "--lr"),
    (["finetune", "m", "d", "--out", "o", "--elastic-fraction", "2"], "--elastic-fraction"),
    (["train", "d", "--out", "o", "--appearance-fraction", "-1"], "--appearance-fraction"),
    (["train", "d", "--out", "o", "--views", "0"], "--views"),
    (["train", "d", "--out", "o", "--epochs", "0"], "--epochs"),
    (["finetune", "m", "d", "--out", "o", "--epochs", "-2"], "--epochs"),
    (["train", "d", "--out", "o", "--steps-per-epoch", "0"], "--steps-per-epoch"),
    (["train", "d", "--out", "o", "--batch-size", "0"], "--batch-size"),
    (["train", "d", "--out", "o", "--depth", "40"], "--depth"),
    (["train", "d", "--out", "o", "--seed", "-1"], "--seed"),
    (["collisions", "x", "--top", "0"], "--top"),
    (["phantom", "o", "--cases", "0"], "--cases"),
    (["phantom", "o", "--spacing", "1", "0", "1"], "--spacing"),
]


@pytest.mark.parametrize(("argv", "option"), BAD_OPTIONS, ids=lambda v: " ".join(v)
                         if isinstance(v, list) else v)
def test_bad_option_values_are_one_line_errors(argv, option, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and option in err[0] and "error" in err[0], err
    assert list(tmp_path.iterdir()) == []


# 14. Unwritable outputs are refused before any work.

@pytest.mark.parametrize("where", ["file", "proc"])
def test_unwritable_out_is_refused_before_any_work(where, tmp_path, tiny_model_dir, capsys):
    ct = _nifti(tmp_path / "x.nii.gz", _ct())
    if where == "file":
        out = tmp_path / "taken.txt"
        out.write_text("a file")
    else:
        out = Path("/proc/hipseg-out")
    code = main(["predict", str(tiny_model_dir), str(ct), "--out", str(out), "--no-progress"])
    _one_line_error(capsys, code, str(out))
    code = main(["postprocess", str(_nifti(tmp_path / "m.nii.gz", _pelvis())), "--out",
                 str(out), "--no-progress"])
    _one_line_error(capsys, code, str(out))
    code = main(["phantom", str(out / "sub"), "--cases", "1", "--no-progress"])
    _one_line_error(capsys, code, str(out))


def test_a_batch_goes_on_after_a_scan_that_cannot_be_written(tmp_path, tiny_model_dir, capsys):
    good = _nifti(tmp_path / "in" / "good.nii.gz", _ct())
    bad = _nifti(tmp_path / "in" / "bad.nii.gz", _ct(1))
    out = tmp_path / "out"
    (out / "bad.nii.gz").mkdir(parents=True)  # a folder where the label map should go
    (out / "bad.nii.gz" / "keep").write_text("x")
    code = main(["predict", str(tiny_model_dir), str(bad), str(good), "--out", str(out),
                 "--overwrite", "--no-progress"])
    assert code == 2
    assert (out / "good.nii.gz").is_file()
    err = capsys.readouterr().err
    assert "1 of 2 inputs failed" in err and "bad.nii.gz" in err and "Traceback" not in err


# 15. Derived files and QC inputs of the wrong shape.

def test_collisions_refuses_an_uncertainty_map_of_another_shape(tmp_path, capsys):
    seg = _nifti(tmp_path / "x.nii.gz", _pelvis())
    wrong = _nifti(tmp_path / "x_uncertainty.nii.gz", np.zeros((5, 5, 5), np.float32))
    code = main(["collisions", str(seg)])
    _one_line_error(capsys, code, str(wrong), "shape")


@pytest.mark.parametrize("qc", [[1, 2], {"bones": []}, {"bones": {"femur_right": 3}, "pairs": []},
                                {"bones": {}, "pairs": [{"bones": ["a"]}]}])
def test_report_refuses_a_mesh_qc_of_the_wrong_shape_and_writes_nothing(qc, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    ct = _nifti(tmp_path / "x.nii.gz", _ct())
    seg = _nifti(tmp_path / "seg.nii.gz", _pelvis())
    qc_file = tmp_path / "qc.json"
    qc_file.write_text(json.dumps(qc))
    code = main(["report", str(ct), str(seg), "--mesh-qc", str(qc_file), "--out",
                 str(tmp_path / "out")])
    _one_line_error(capsys, code, str(qc_file))
    assert not (tmp_path / "out").exists()


# 16. Messages and exit codes.

def test_memory_limit_is_printed_with_its_digits(tmp_path, tiny_model_dir, capsys):
    ct = _nifti(tmp_path / "x.nii.gz", _ct())
    code = main(["predict", str(tiny_model_dir), str(ct), "--out", str(tmp_path / "o"),
                 "--max-memory-gb", "0.00005", "--no-progress"])
    _one_line_error(capsys, code, "limit of 5e-05 GiB")


def test_batch_and_option_errors_exit_2(tmp_path, tiny_model_dir, capsys):
    a = _nifti(tmp_path / "a.nii.gz", _ct())
    code = main(["predict", str(tiny_model_dir), str(a), str(tmp_path / "missing.nii.gz"),
                 "--out", str(tmp_path / "o"), "--no-progress"])
    assert code == 2
    capsys.readouterr()
    code = main(["predict", str(tiny_model_dir), str(a), "--out", str(tmp_path / "o"),
                 "--num-parts", "2", "--part-id", "5", "--no-progress"])
    _one_line_error(capsys, code, "--part-id")


# 8. Finite weights can still give non-finite probabilities (a negative BatchNorm variance).

def test_non_finite_probabilities_are_an_error_naming_the_model_file(tmp_path, tiny_model_dir,
                                                                     capsys):
    import torch

    from hipseg.runtime.model_io import ModelFolder

    weights = ModelFolder(tiny_model_dir).weights
    state = torch.load(weights, weights_only=True)
    key = next(k for k in state if k.endswith("running_var"))
    state[key] = -torch.ones_like(state[key])
    torch.save(state, weights)
    ct = _nifti(tmp_path / "x.nii.gz", _ct())
    code = main(["predict", str(tiny_model_dir), str(ct), "--out", str(tmp_path / "out"),
                 "--no-progress"])
    _one_line_error(capsys, code, str(weights), "non-finite probabilities")
    assert not (tmp_path / "out" / "x.nii.gz").exists()


def test_out_as_a_symbolic_link_loop_is_refused(tmp_path, capsys):
    seg = _nifti(tmp_path / "x.nii.gz", _pelvis())
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    code = main(["postprocess", str(seg), "--out", str(tmp_path / "loop"), "--no-progress"])
    _one_line_error(capsys, code, "link loop")


def test_a_file_system_error_while_writing_is_one_line(tmp_path, capsys, monkeypatch):
    from hipseg.inference import postprocessing

    def full_disk(path, *args, **kwargs):
        raise OSError(28, "No space left on device", str(path))

    monkeypatch.setattr(postprocessing, "write_labels", full_disk)
    seg = _nifti(tmp_path / "x.nii.gz", _pelvis())
    code = main(["postprocess", str(seg), "--out", str(tmp_path / "out"), "--no-progress"])
    _one_line_error(capsys, code, "No space left on device", "x.nii.gz")
