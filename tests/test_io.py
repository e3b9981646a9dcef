"""Image I/O: geometry kept exactly, validation errors name the file and the problem."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from hipseg.core.errors import InputError
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.io import case_id, find_cases, read_image, read_labels, write_labels
from synthetic import oblique_affine


def _write_nifti(path, data, affine, qform_code=1, sform_code=2):
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=qform_code)
    img.set_sform(affine, code=sform_code)
    nib.save(img, path)
    return path


def test_label_map_written_for_an_input_has_its_shape_qform_and_sform(tmp_path, rng):
    affine = oblique_affine()
    image_path = _write_nifti(tmp_path / "ct.nii.gz", rng.normal(size=(7, 8, 9)).astype(np.int16),
                              affine)
    labels = rng.integers(0, 6, size=(7, 8, 9))
    write_labels(tmp_path / "out" / "ct.nii.gz", labels, reference=image_path)
    src, out = nib.load(image_path), nib.load(tmp_path / "out" / "ct.nii.gz")
    assert out.shape == src.shape
    assert out.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(out.get_qform(), src.get_qform())
    np.testing.assert_array_equal(out.get_sform(), src.get_sform())
    assert int(out.header["qform_code"]) == 1 and int(out.header["sform_code"]) == 2
    np.testing.assert_array_equal(np.asarray(out.dataobj), labels)


def test_read_image_is_float32_with_affine(tmp_path):
    affine = oblique_affine()
    path = _write_nifti(tmp_path / "a.nii", np.arange(60, dtype=np.int32).reshape(3, 4, 5), affine)
    volume = read_image(path)
    assert volume.data.dtype == np.float32
    np.testing.assert_allclose(volume.affine, affine, atol=1e-5)


def test_single_volume_4d_is_accepted(tmp_path):
    path = _write_nifti(tmp_path / "a.nii.gz", np.arange(60, dtype=np.float32).reshape(3, 4, 5, 1),
                        np.eye(4))
    assert read_image(path).shape == (3, 4, 5)


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (np.ones((4, 5), np.float32), "expected a 3D volume"),
        (np.ones((3, 4, 5, 2), np.float32), "expected a 3D volume"),
        (np.full((3, 4, 5), np.nan, np.float32), "NaN or infinite"),
    ],
)
def test_bad_images_are_rejected_with_the_file_named(tmp_path, data, problem):
    path = _write_nifti(tmp_path / "bad.nii.gz", data, np.eye(4))
    with pytest.raises(InputError, match=problem) as err:
        read_image(path)
    assert "bad.nii.gz" in str(err.value)


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(InputError, match="file not found"):
        read_image(tmp_path / "nope.nii.gz")
    path = _write_nifti(tmp_path / "t.nii.gz", np.ones((20, 20, 20), np.float32), np.eye(4))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(InputError, match="unreadable or truncated"):
        read_image(path)


def test_labels_checked_against_table_and_image(tmp_path):
    image = read_image(_write_nifti(tmp_path / "i.nii.gz", np.arange(60, dtype=np.float32).reshape(3, 4, 5),
                                    np.eye(4)))
    bad_ids = _write_nifti(tmp_path / "l1.nii.gz", np.full((3, 4, 5), 7, np.uint8), np.eye(4))
    with pytest.raises(InputError, match=r"unknown label ids \[7\]"):
        read_labels(bad_ids, DEFAULT_LABELS)
    fractional = _write_nifti(tmp_path / "l2.nii.gz", np.full((3, 4, 5), 0.5, np.float32), np.eye(4))
    with pytest.raises(InputError, match="non-integer"):
        read_labels(fractional, DEFAULT_LABELS)
    wrong_shape = _write_nifti(tmp_path / "l3.nii.gz", np.zeros((3, 4, 6), np.uint8), np.eye(4))
    with pytest.raises(InputError, match="shape"):
        read_labels(wrong_shape, DEFAULT_LABELS, reference=image)
    shifted = np.eye(4)
    shifted[0, 3] = 1.0
    wrong_affine = _write_nifti(tmp_path / "l4.nii.gz", np.zeros((3, 4, 5), np.uint8), shifted)
    with pytest.raises(InputError, match="affine"):
        read_labels(wrong_affine, DEFAULT_LABELS, reference=image)


def test_cases_pair_by_id_and_name_the_missing_partner(tmp_path):
    for folder, names in (("images", ["b", "a"]), ("labels", ["a", "b"])):
        (tmp_path / folder).mkdir()
        for name in names:
            _write_nifti(tmp_path / folder / f"{name}.nii.gz", np.zeros((2, 2, 2), np.uint8), np.eye(4))
    cases = find_cases(tmp_path / "images", tmp_path / "labels")
    assert [(c.case_id, c.image.name, c.labels.name) for c in cases] == [
        ("a", "a.nii.gz", "a.nii.gz"), ("b", "b.nii.gz", "b.nii.gz")]
    _write_nifti(tmp_path / "images" / "c.nii.gz", np.zeros((2, 2, 2), np.uint8), np.eye(4))
    with pytest.raises(InputError, match="no label map for case 'c'"):
        find_cases(tmp_path / "images", tmp_path / "labels")


def test_case_id_strips_nifti_suffixes(tmp_path):
    assert case_id(tmp_path / "case_001.nii.gz") == "case_001"
    assert case_id(tmp_path / "x.y.nii") == "x.y"
