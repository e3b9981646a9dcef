"""Hostile and broken input files: each refused with one line naming the file, never a traceback.

Every bad file is built here in ``tmp_path``; nothing binary is checked in.
"""

from __future__ import annotations

import gzip
import json
import locale
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from hipseg.cli import main
from hipseg.core.errors import InputError
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.io import itk, read_image, read_labels, write_image

RGB = [("R", "u1"), ("G", "u1"), ("B", "u1")]


def _ct(shape=(6, 5, 4)) -> np.ndarray:
    return np.random.default_rng(0).normal(100, 50, shape).astype(np.float32)


def _nifti(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    return path


def _refused(call, path: Path, phrase: str) -> InputError:
    """``call()`` raises an InputError naming ``path`` and containing ``phrase``."""
    with pytest.raises(InputError) as caught:
        call()
    assert caught.value.path == Path(path)
    assert str(path) in str(caught.value) and phrase in str(caught.value), str(caught.value)
    return caught.value


def _cli_refuses(capture, argv: list[str], path: Path, phrase: str) -> None:
    """The command exits 2 with one stderr line naming ``path`` and ``phrase``, no traceback.

    ``capture`` is pytest's ``capsys`` or ``capfd``.
    """
    assert main(argv) == 2
    err = capture.readouterr().err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert str(path) in err and phrase in err, err


def _predict(model: Path, path: Path, tmp_path: Path) -> list[str]:
    return ["predict", str(model), str(path), "--out", str(tmp_path / "out"), "--no-progress"]


# -- DICOM series with a missing slice ---------------------------------------------------------

def _dicom_series(folder: Path, data: np.ndarray, uid: str = "1.2.826.7", step_mm: float = 2.5
                  ) -> list[Path]:
    """Axial int16 slices of ``data`` (X, Y, Z), one file each, with positions and orientation.

    GDCM's writer switches the C locale; it is restored, or later text reads break.
    """
    folder.mkdir(parents=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    saved_locale = locale.setlocale(locale.LC_ALL)
    files = []
    try:
        for k in range(data.shape[2]):
            plane = sitk.GetImageFromArray(data[:, :, k].T[None].copy())
            position = (-20.0, 10.0, 30.0 + k * step_mm)
            plane.SetSpacing((0.8, 0.7, step_mm))
            plane.SetOrigin(position)
            for tag, value in [("0008|0060", "CT"), ("0020|000e", uid), ("0020|000d", "1.2.3"),
                               ("0020|0013", str(k + 1)), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                               ("0020|0032", "\\".join(map(str, position))),
                               ("0018|0050", str(step_mm)), ("0008|0018", f"{uid}.{k + 1}")]:
                plane.SetMetaData(tag, value)
            files.append(folder / f"slice_{k:03d}.dcm")
            writer.SetFileName(str(files[-1]))
            writer.Execute(plane)
    finally:
        locale.setlocale(locale.LC_ALL, saved_locale)
    return files


def test_dicom_series_with_a_missing_slice_is_refused_naming_the_gap(tmp_path, tiny_model_dir,
                                                                    capfd):
    data = np.random.default_rng(1).integers(-1000, 1500, (6, 5, 7)).astype(np.int16)
    complete = tmp_path / "complete"
    _dicom_series(complete, data)
    volume = read_image(complete)
    np.testing.assert_allclose(volume.spacing_mm, (0.8, 0.7, 2.5), atol=1e-4)
    np.testing.assert_array_equal(volume.data, data)

    gappy = tmp_path / "gappy"
    _dicom_series(gappy, data)[3].unlink()
    _refused(lambda: read_image(gappy), gappy, "DICOM series 1.2.826.7: slices 3 and 4 are 5 mm "
                                               "apart, the others 2.5 mm (missing slice?)")
    capfd.readouterr()
    # capfd: ITK's own warning would reach the stderr file descriptor, not sys.stderr.
    _cli_refuses(capfd, _predict(tiny_model_dir, gappy, tmp_path), gappy, "missing slice?")


# -- MetaImage and NRRD headers naming data outside their folder -------------------------------

_MHD = "ObjectType = Image\nNDims = 3\nDimSize = 4 4 4\nElementType = MET_UCHAR\n"
_NHDR = ("NRRD0004\ntype: unsigned char\ndimension: 3\nsizes: 4 4 4\nencoding: raw\n"
         "space: left-posterior-superior\nspace directions: (1,0,0) (0,1,0) (0,0,1)\n")
_VOXELS = np.arange(64, dtype=np.uint8).tobytes()


def _header(tmp_path: Path, name: str, text: str) -> Path:
    """``tmp_path/case/<name>`` holding ``text``; the same 4³ voxels in ``case/inside.raw``
    and in ``outside.raw``, outside the header's folder."""
    (tmp_path / "case").mkdir()
    (tmp_path / "outside.raw").write_bytes(_VOXELS)
    (tmp_path / "case" / "inside.raw").write_bytes(_VOXELS)
    header = tmp_path / "case" / name
    header.write_text(text)
    return header


@pytest.mark.parametrize("name, text, shown", [
    ("abs.mhd", _MHD + "ElementDataFile = /etc/passwd\n", "/etc/passwd"),
    ("up.mhd", _MHD + "ElementDataFile = ../outside.raw\n", "../outside.raw"),
    ("up.mha", _MHD + "ElementDataFile = ../outside.raw\n", "../outside.raw"),
    ("list.mhd", _MHD.replace("4 4 4", "4 4 2") + "ElementDataFile = LIST 2D\ninside.raw\n"
     "../outside.raw\n", "../outside.raw"),
    ("pattern.mhd", _MHD + "ElementDataFile = ../s%02d.raw 1 4 1\n", "../s%02d.raw"),
    ("up.nhdr", _NHDR + "data file: ../outside.raw\n", "../outside.raw"),
    ("abs.nhdr", _NHDR + "datafile: /etc/passwd\n", "/etc/passwd"),
    ("list.nhdr", _NHDR + "data file: LIST 2\ninside.raw\n/etc/passwd\n", "/etc/passwd"),
    ("attached.nrrd", _NHDR + "data file: ../outside.raw\n\n", "../outside.raw"),
])
def test_header_naming_data_outside_its_folder_is_refused(tmp_path, name, text, shown):
    header = _header(tmp_path, name, text)
    error = _refused(lambda: read_image(header), header, f"data file {shown!r} is outside the "
                                                         "header's folder")
    assert "HIPSEG_ALLOW_EXTERNAL_DATA=1" in str(error)


def test_header_hiding_its_data_file_past_64_kib_is_refused(tmp_path):
    header = _header(tmp_path, "padded.mhd", _MHD + "Comment = x\n" * 7000
                     + "ElementDataFile = /etc/passwd\n")
    _refused(lambda: read_image(header), header, "does not end within its first 64 KiB")


@pytest.mark.parametrize("name, text", [
    ("ok.mhd", _MHD + "ElementDataFile = inside.raw\n"),
    ("ok.nhdr", _NHDR + "data file: ./inside.raw\n"),
])
def test_header_with_data_beside_it_reads(tmp_path, name, text):
    header = _header(tmp_path, name, text)
    np.testing.assert_array_equal(read_image(header).data.ravel(order="F"), np.arange(64))


def test_external_data_reads_when_the_environment_allows_it(tmp_path, monkeypatch):
    header = _header(tmp_path, "up.mhd", _MHD + "ElementDataFile = ../outside.raw\n")
    monkeypatch.setenv("HIPSEG_ALLOW_EXTERNAL_DATA", "1")
    np.testing.assert_array_equal(read_image(header).data.ravel(order="F"), np.arange(64))


# -- headers claiming more voxels than the file or memory hold ---------------------------------

def _lying_nifti_bytes() -> bytes:
    """A valid 4³ float32 NIfTI-1 whose dim[1..3] (int16 at byte 42) then claim 30000³."""
    raw = bytearray(nib.Nifti1Image(_ct((4, 4, 4)), np.eye(4)).to_bytes())
    raw[42:48] = np.int16([30000, 30000, 30000]).tobytes()
    return bytes(raw)


def test_tiny_gzipped_nifti_claiming_30000_cubed_voxels_is_refused_quickly(tmp_path,
                                                                           tiny_model_dir, capsys):
    path = tmp_path / "huge.nii.gz"
    path.write_bytes(gzip.compress(_lying_nifti_bytes()))
    start = time.monotonic()
    _refused(lambda: read_image(path), path, "header claims 108000.0 GB of voxels (shape "
                                             "(30000, 30000, 30000) float32) but the compressed "
                                             "file is only")
    assert time.monotonic() - start < 5
    _cli_refuses(capsys, _predict(tiny_model_dir, path, tmp_path), path,
                 "truncated or corrupt header")


def test_uncompressed_nifti_shorter_than_its_header_claims_is_refused(tmp_path):
    path = tmp_path / "huge.nii"
    path.write_bytes(_lying_nifti_bytes())
    _refused(lambda: read_labels(path, DEFAULT_LABELS), path,
             f"truncated: header claims {30000**3 * 4} bytes of voxels, the file holds 256")


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.mha", "ct.nrrd"])
def test_image_larger_than_free_memory_is_refused_before_reading(tmp_path, monkeypatch, name):
    path = tmp_path / name
    write_image(path, _ct(), np.eye(4))
    monkeypatch.setattr(itk, "available_memory_bytes", lambda: 100)
    _refused(lambda: read_image(path), path, "header claims shape (6, 5, 4) ")
    _refused(lambda: read_image(path), path, " = 0.0 GB, more than the 0.0 GB of free memory")


def test_dicom_series_larger_than_free_memory_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "series"
    _dicom_series(folder, np.zeros((6, 5, 4), np.int16))
    monkeypatch.setattr(itk, "available_memory_bytes", lambda: 100)
    _refused(lambda: read_image(folder), folder, "header claims shape (6, 5, 4) 16-bit signed "
                                                 "integer")


# -- voxels that are not one real value --------------------------------------------------------

@pytest.mark.parametrize("dtype, phrase", [
    (RGB, "RGB voxels (3 values per voxel): expected one value per voxel"),
    (RGB + [("A", "u1")], "RGBA voxels (4 values per voxel): expected one value per voxel"),
    (np.complex64, "complex64 voxels: expected one real value per voxel"),
])
def test_rgb_and_complex_nifti_are_refused(tmp_path, dtype, phrase):
    path = _nifti(tmp_path / "colour.nii.gz", np.zeros((4, 4, 4), dtype=dtype))
    _refused(lambda: read_image(path), path, phrase)
    _refused(lambda: read_labels(path, DEFAULT_LABELS), path, phrase)


# -- label values and paths reported as they are -----------------------------------------------

def test_huge_float_label_value_is_reported_as_stored(tmp_path):
    labels = np.zeros((4, 4, 4), np.float64)
    labels[1, 1, 1] = 1e20
    path = _nifti(tmp_path / "labels.nii.gz", labels)
    _refused(lambda: read_labels(path, DEFAULT_LABELS), path,
             "unknown label values [1e+20] (table has 0..5)")


def test_symbolic_link_loop_and_broken_link_are_named(tmp_path, tiny_model_dir, capsys):
    (tmp_path / "a.nii.gz").symlink_to(tmp_path / "b.nii.gz")
    (tmp_path / "b.nii.gz").symlink_to(tmp_path / "a.nii.gz")
    _refused(lambda: read_image(tmp_path / "a.nii.gz"), tmp_path / "a.nii.gz",
             "symbolic link loop")
    (tmp_path / "dangling.nii.gz").symlink_to(tmp_path / "gone.nii.gz")
    _refused(lambda: read_image(tmp_path / "dangling.nii.gz"), tmp_path / "dangling.nii.gz",
             f"broken symbolic link to {tmp_path / 'gone.nii.gz'}")
    _cli_refuses(capsys, _predict(tiny_model_dir, tmp_path / "a.nii.gz", tmp_path),
                 tmp_path / "a.nii.gz", "symbolic link loop")


# -- malformed nnU-Net dataset.json ------------------------------------------------------------

_GOOD_JSON = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "sacrum": 1},
              "numTraining": 1, "file_ending": ".nii.gz"}


@pytest.mark.parametrize("change, phrase", [
    ({"labels": ["background", "sacrum"]}, "labels must map class names to ids"),
    ({"labels": {}}, "labels must map class names to ids"),
    ({"labels": {"sacrum": 1}}, "labels have no background (id 0)"),
    ({"labels": {"background": 0, "sacrum": True}}, 'integer ids 0..65535, not {"sacrum": true}'),
    ({"labels": {"background": 0, "sacrum": 10**12}}, "integer ids 0..65535"),
    ({"labels": {"background": 0, "sacrum": 1, "hip_left": 1}}, "one id to several classes"),
    ({"labels": {"background": 0, "sacrum": [1, 2]}}, "region-based labels are not supported"),
    ({"file_ending": 5}, 'file_ending must be a file name ending like ".nii.gz", not 5'),
    ({"file_ending": ""}, "file_ending must be"),
    ({"channel_names": ["CT"]}, "channel_names must map channel numbers to names"),
    ({"channel_names": "C"}, "channel_names must map channel numbers to names"),
    ({"channel_names": {}}, "hipseg reads one CT channel, the dataset has 0"),
    (None, "not a JSON object"),
])
def test_malformed_dataset_json_is_one_line_naming_it(tmp_path, capsys, change, phrase):
    root = tmp_path / "Dataset001_Hip"
    write_image(root / "imagesTr" / "case_0000.nii.gz", _ct(), np.eye(4))
    labels = np.zeros((6, 5, 4), np.uint8)
    labels[2:4, 2:4, 1:3] = 1
    write_image(root / "labelsTr" / "case.nii.gz", labels, np.eye(4), dtype=np.uint8)
    info = [] if change is None else {**_GOOD_JSON, **change}
    (root / "dataset.json").write_text(json.dumps(info))
    _cli_refuses(capsys, ["check", str(root)], root / "dataset.json", phrase)
