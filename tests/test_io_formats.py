"""NRRD, MetaImage and DICOM input: same arrays and RAS affines as written, geometry as SimpleITK says."""

from __future__ import annotations

import locale
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from hipseg.cli import main
from hipseg.core.errors import InputError
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.core.volume import Volume, apply_affine
from hipseg.io import case_id, find_images, read_image, read_labels, write_image, write_labels
from hipseg.io.itk import itk_geometry, read_itk
from shared_data import REAL_CT
from synthetic import oblique_affine

REAL_DICOM = REAL_CT / "torso_ct_dicom"


def _sitk_image(data: np.ndarray, affine: np.ndarray) -> sitk.Image:
    """An ITK image of ``data`` (X, Y, Z) placed by ``affine``, built with SimpleITK's own API."""
    image = sitk.GetImageFromArray(data.transpose(2, 1, 0).copy())
    origin, spacing, direction = itk_geometry(affine)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    return image


def _ras_of_index(image: sitk.Image, ijk: tuple[int, int, int]) -> np.ndarray:
    """SimpleITK's physical point (LPS) of an index, flipped to RAS by hand."""
    x, y, z = image.TransformIndexToPhysicalPoint(tuple(int(v) for v in ijk))
    return np.array([-x, -y, z])


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_write_read_round_trip_keeps_array_and_affine(tmp_path, rng, suffix):
    data = rng.integers(-1000, 2000, size=(7, 8, 9)).astype(np.int16)
    affine = oblique_affine()
    write_image(tmp_path / f"ct{suffix}", data, affine, dtype=np.int16)
    volume = read_image(tmp_path / f"ct{suffix}")
    np.testing.assert_array_equal(volume.data, data)
    np.testing.assert_allclose(volume.affine, affine, atol=1e-6)


@pytest.mark.parametrize("suffix", [".nhdr", ".mhd"])
def test_detached_headers_are_read(tmp_path, rng, suffix):
    data = rng.normal(size=(6, 5, 4)).astype(np.float32)
    affine = oblique_affine()
    sitk.WriteImage(_sitk_image(data, affine), str(tmp_path / f"ct{suffix}"))
    volume = read_image(tmp_path / f"ct{suffix}")
    np.testing.assert_array_equal(volume.data, data)
    np.testing.assert_allclose(volume.affine, affine, atol=1e-6)
    assert find_images(tmp_path) == [tmp_path / f"ct{suffix}"]


@pytest.mark.parametrize("suffix", [".nrrd", ".mha", ".nii.gz"])
def test_label_maps_round_trip_in_every_format(tmp_path, rng, suffix):
    labels = rng.integers(0, 6, size=(7, 8, 9))
    reference = Volume(np.zeros((7, 8, 9), np.float32), oblique_affine())
    write_labels(tmp_path / f"l{suffix}", labels, reference=reference)
    read = read_labels(tmp_path / f"l{suffix}", DEFAULT_LABELS, reference=reference)
    assert read.data.dtype == np.uint8
    np.testing.assert_array_equal(read.data, labels)


def test_affine_places_voxels_where_simpleitk_does(tmp_path, rng):
    affine = oblique_affine()
    data = rng.normal(size=(5, 6, 7)).astype(np.float32)
    image = _sitk_image(data, affine)
    sitk.WriteImage(image, str(tmp_path / "a.mha"))
    volume = read_image(tmp_path / "a.mha")
    for ijk in [(0, 0, 0), (4, 0, 0), (0, 5, 0), (0, 0, 6), (3, 2, 5)]:
        np.testing.assert_allclose(apply_affine(volume.affine, np.array(ijk)),
                                   _ras_of_index(image, ijk), atol=1e-6)
        assert volume.data[ijk] == image[ijk]


def test_nifti_geometry_agrees_between_nibabel_and_simpleitk(tmp_path, rng):
    affine = oblique_affine()
    img = nib.Nifti1Image(rng.normal(size=(5, 6, 7)).astype(np.float32), affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    nib.save(img, tmp_path / "a.nii.gz")
    data, itk_affine = read_itk(tmp_path / "a.nii.gz")
    np.testing.assert_allclose(itk_affine, read_image(tmp_path / "a.nii.gz").affine, atol=1e-5)
    np.testing.assert_array_equal(data, np.asarray(img.dataobj))


def _write_dicom_series(folder: Path, data: np.ndarray, uid: str, origin_lps=(-20.0, 10.0, 30.0),
                        spacing=(0.8, 0.7, 2.5)) -> None:
    """An axial CT series of int16 slices ``data`` (X, Y, Z), written slice by slice.

    GDCM's writer switches the C locale to ASCII; it is restored, or later text reads break.
    """
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    saved_locale = locale.setlocale(locale.LC_ALL)
    try:
        _write_slices(writer, folder, data, uid, origin_lps, spacing)
    finally:
        locale.setlocale(locale.LC_ALL, saved_locale)


def _write_slices(writer, folder, data, uid, origin_lps, spacing) -> None:
    for k in range(data.shape[2]):
        plane = sitk.GetImageFromArray(data[:, :, k].T[None].copy())
        plane.SetSpacing(spacing)
        position = (origin_lps[0], origin_lps[1], origin_lps[2] + k * spacing[2])
        plane.SetOrigin(position)
        for tag, value in [("0008|0060", "CT"), ("0020|000e", uid), ("0020|000d", "1.2.3"),
                           ("0020|0013", str(k + 1)), ("0020|0037", "1\\0\\0\\0\\1\\0"),
                           ("0020|0032", "\\".join(map(str, position))),
                           ("0018|0050", str(spacing[2])), ("0008|0018", f"{uid}.{k + 1}")]:
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{uid}_{k:03d}.dcm"))
        writer.Execute(plane)


def test_dicom_folder_reads_the_largest_series_or_the_one_asked_for(tmp_path, rng):
    big = rng.integers(-1000, 1500, size=(6, 5, 4)).astype(np.int16)
    small = rng.integers(-1000, 1500, size=(6, 5, 3)).astype(np.int16)
    _write_dicom_series(tmp_path / "scan", big, "1.2.3.4")
    _write_dicom_series(tmp_path / "scan", small, "1.2.3.5")
    volume = read_image(tmp_path / "scan")
    np.testing.assert_array_equal(volume.data, big)
    expected = np.diag([-0.8, -0.7, 2.5, 1.0])
    expected[:3, 3] = [20.0, -10.0, 30.0]
    np.testing.assert_allclose(volume.affine, expected, atol=1e-4)
    np.testing.assert_array_equal(read_image(tmp_path / "scan", series_uid="1.2.3.5").data, small)
    with pytest.raises(InputError, match="no DICOM series with UID '9.9'.*'1.2.3.4'"):
        read_image(tmp_path / "scan", series_uid="9.9")
    assert find_images(tmp_path) == [tmp_path / "scan"]
    assert case_id(tmp_path / "scan") == "scan"


def test_real_dicom_series_has_the_geometry_simpleitk_reports():
    if not REAL_DICOM.is_dir():
        pytest.skip("shared real-ct data not present")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(REAL_DICOM)))
    image = reader.Execute()
    volume = read_image(REAL_DICOM)
    assert volume.shape == image.GetSize() == (512, 512, 20)
    np.testing.assert_allclose(volume.spacing_mm, image.GetSpacing())
    for ijk in [(0, 0, 0), (511, 0, 0), (0, 511, 0), (0, 0, 19), (100, 200, 7)]:
        np.testing.assert_allclose(apply_affine(volume.affine, np.array(ijk)),
                                   _ras_of_index(image, ijk), atol=1e-6)
        assert volume.data[ijk] == image[ijk]
    # Array axis 0 runs towards the patient's left (LPS +x), so RAS x decreases along it.
    assert volume.affine[0, 0] < 0 and volume.affine[1, 1] < 0 and volume.affine[2, 2] > 0


@pytest.mark.parametrize(
    ("make", "problem"),
    [
        (lambda p: p / "missing.nrrd", "file not found"),
        (lambda p: (p / "scan.png").write_bytes(b"x") and p / "scan.png", "unknown image format"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no DICOM series in folder"),
        (lambda p: sitk.WriteImage(sitk.Image(4, 5, sitk.sitkInt16), str(p / "flat.mha"))
         or p / "flat.mha", "expected a 3D volume"),
        (lambda p: sitk.WriteImage(sitk.Image([4, 5, 6], sitk.sitkVectorFloat32, 3),
                                   str(p / "vector.nrrd")) or p / "vector.nrrd", "components"),
    ],
)
def test_bad_inputs_name_the_file_and_the_problem(tmp_path, make, problem):
    path = make(tmp_path)
    with pytest.raises(InputError, match=problem) as err:
        read_image(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_truncated_files_are_reported(tmp_path, rng, suffix):
    path = tmp_path / f"t{suffix}"
    write_image(path, rng.normal(size=(20, 20, 20)), np.eye(4))
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="unreadable or truncated") as err:
        read_image(path)
    assert str(path) in str(err.value)


def test_predict_writes_input_format_and_refuses_dicom_output(tmp_path, rng, tiny_model_dir, capsys):
    data = rng.integers(-1000, 1500, size=(12, 10, 8)).astype(np.int16)
    write_image(tmp_path / "in" / "scan.nrrd", data, oblique_affine(), dtype=np.int16)
    _write_dicom_series(tmp_path / "in" / "series", data, "1.2.3.4")
    out = tmp_path / "out"
    assert main(["predict", str(tiny_model_dir), str(tmp_path / "in" / "scan.nrrd"), "--out",
                 str(out), "--output-format", "input", "--no-progress"]) == 0
    written = read_labels(out / "scan.nrrd", DEFAULT_LABELS,
                          reference=read_image(tmp_path / "in" / "scan.nrrd"))
    assert written.shape == data.shape
    capsys.readouterr()
    assert main(["predict", str(tiny_model_dir), str(tmp_path / "in" / "series"), "--out",
                 str(out), "--output-format", "input", "--no-progress"]) == 2
    assert "not written as DICOM" in capsys.readouterr().err
    assert main(["predict", str(tiny_model_dir), str(tmp_path / "in" / "series"), "--out",
                 str(out), "--no-progress"]) == 0
    series = read_image(tmp_path / "in" / "series")
    written = nib.load(out / "series.nii.gz")
    assert written.shape == series.shape
    np.testing.assert_allclose(written.affine, series.affine, atol=1e-5)


@pytest.mark.slow  # about 30 s on 2 CPU cores: 512 x 512 x 20 voxels through 4 views
def test_prediction_on_the_real_dicom_series_is_on_its_grid(tmp_path, tiny_model_dir):
    if not REAL_DICOM.is_dir():
        pytest.skip("shared real-ct data not present")
    assert main(["predict", str(tiny_model_dir), str(REAL_DICOM), "--out", str(tmp_path),
                 "--no-postprocess", "--no-progress"]) == 0
    out = nib.load(tmp_path / "torso_ct_dicom.nii.gz")
    image = read_image(REAL_DICOM)
    assert out.shape == image.shape
    np.testing.assert_allclose(out.affine, image.affine, atol=1e-5)
