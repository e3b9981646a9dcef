"""Every bad input: exit code 2, one error line naming the file, no traceback, nothing written.

The corpus is built here by the test itself; nothing binary is checked in.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from hipseg.cli import main


def _nifti(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def _ct(shape=(12, 10, 8)) -> np.ndarray:
    return np.random.default_rng(0).normal(100, 50, shape).astype(np.float32)


def _truncated(path: Path) -> Path:
    _nifti(path, _ct((30, 30, 30)))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    return path


def _patched(*fields: tuple[int, bytes]):
    """A valid file whose NIfTI-1 header bytes are then overwritten at ``(offset, value)``
    (nibabel repairs these fields when they are set through its API before saving)."""
    def make(path: Path) -> Path:
        _nifti(path, _ct())
        raw = bytearray(gzip.decompress(path.read_bytes()))
        for offset, value in fields:
            raw[offset : offset + len(value)] = value
        path.write_bytes(gzip.compress(bytes(raw)))
        return path
    return make


# qform_code is the int16 at byte 252, srow_x the 4 float32 at 280, srow_y at 296.
_QFORM_OFF = (252, np.int16(0).tobytes())
_zero_spacing = _patched(_QFORM_OFF, (280, np.float32([0, 0, 0, 5]).tobytes()))
_non_finite_affine = _patched(_QFORM_OFF, (296, np.float32([0, np.nan, 0, 0]).tobytes()))


def _with(value: float):
    def make(path: Path) -> Path:
        data = _ct()
        data[3, 3, 3] = value
        return _nifti(path, data)
    return make


BAD_IMAGES = {
    "missing": (lambda p: p, "file not found"),
    "truncated": (_truncated, "unreadable or truncated"),
    "not_nifti": (lambda p: (p.write_text("hello"), p)[1], "unreadable or truncated"),
    "flat_2d": (lambda p: _nifti(p, _ct((12, 10))), "expected a 3D volume"),
    "two_volumes": (lambda p: _nifti(p, _ct((12, 10, 8, 2))), "expected a 3D volume"),
    "nan": (_with(np.nan), "NaN or infinite"),
    "infinite": (_with(np.inf), "NaN or infinite"),
    "zero_spacing": (_zero_spacing, "zero voxel spacing"),
    "non_finite_affine": (_non_finite_affine, "non-finite affine"),
    "constant": (lambda p: _nifti(p, np.full((12, 10, 8), -1000, np.int16)), "constant"),
}


def _files_under(folder: Path) -> set[Path]:
    return set(folder.rglob("*")) if folder.exists() else set()


def _assert_one_clean_error(capsys, code: int, path: Path, problem: str) -> None:
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, err
    assert errors[0].startswith("hipseg: error: ")
    assert str(path) in errors[0] and problem in errors[0]


@pytest.mark.parametrize("name", sorted(BAD_IMAGES))
def test_predict_refuses_bad_images(name, tmp_path, tiny_model_dir, capsys):
    make, problem = BAD_IMAGES[name]
    suffix = ".txt" if name == "not_nifti" else ".nii.gz"
    path = make(tmp_path / f"{name}{suffix}")
    if name == "not_nifti":
        problem = "not a NIfTI file"
    out = tmp_path / "out"
    out.mkdir()
    before = _files_under(out)
    code = main(["predict", str(tiny_model_dir), str(path), "--out", str(out), "--no-progress"])
    _assert_one_clean_error(capsys, code, path, problem)
    assert _files_under(out) == before


def test_predict_refuses_a_scan_too_large_for_the_memory_limit(tmp_path, tiny_model_dir, capsys):
    path = _nifti(tmp_path / "big.nii.gz", _ct())
    code = main(["predict", str(tiny_model_dir), str(path), "--out", str(tmp_path / "out"),
                 "--max-memory-gb", "0.000001", "--no-progress"])
    _assert_one_clean_error(capsys, code, path, "GiB, more than the limit")
    assert not (tmp_path / "out" / "big.nii.gz").exists()


def _label_case(folder: Path, labels: np.ndarray, label_affine: np.ndarray | None = None) -> Path:
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    _nifti(folder / "images" / "a.nii.gz", _ct())
    return _nifti(folder / "labels" / "a.nii.gz", labels, label_affine)


BAD_LABELS = {
    "unknown_id": (lambda: np.full((12, 10, 8), 9, np.uint8), None, "unknown label ids [9]"),
    "fractional": (lambda: np.full((12, 10, 8), 1.5, np.float32), None, "non-integer"),
    "wrong_shape": (lambda: np.zeros((12, 10, 9), np.uint8), None, "differs from image shape"),
    "wrong_affine": (lambda: np.zeros((12, 10, 8), np.uint8), np.diag([1.0, 1.0, 2.0, 1.0]),
                     "affine differs"),
}


@pytest.mark.parametrize("name", sorted(BAD_LABELS))
def test_train_and_check_refuse_bad_label_maps(name, tmp_path, capsys):
    make, affine, problem = BAD_LABELS[name]
    label_path = _label_case(tmp_path / "data", make(), affine)
    code = main(["train", str(tmp_path / "data"), "--out", str(tmp_path / "model"), "--no-progress"])
    _assert_one_clean_error(capsys, code, label_path, problem)
    assert not (tmp_path / "model").exists()
    assert main(["check", str(tmp_path / "data"), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert problem in captured.out and "1 of 1 cases have problems" in captured.err


def test_check_names_a_missing_partner(tmp_path, capsys):
    label_path = _label_case(tmp_path, np.zeros((12, 10, 8), np.uint8))
    _nifti(tmp_path / "images" / "b.nii.gz", _ct())
    assert main(["check", str(tmp_path)]) == 2
    out = capsys.readouterr().out
    assert "no label map for case 'b'" in out
    assert label_path.exists()
