"""TotalSegmentator v2 'total' maps and mask folders become hipseg label maps by class name."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from hipseg.cli import main
from hipseg.core.errors import InputError
from hipseg.core.labels import DEFAULT_LABELS, LabelTable
from hipseg.io import read_labels, write_image
from hipseg.io.totalsegmentator import read_totalsegmentator
from synthetic import oblique_affine

# A few entries of TotalSegmentator v2's class_map["total"], written out here independently.
TOTAL = {5: "liver", 25: "sacrum", 26: "vertebrae_S1", 75: "femur_left", 76: "femur_right",
         77: "hip_left", 78: "hip_right", 79: "spinal_cord", 88: "iliopsoas_left",
         117: "costal_cartilages"}


def _multilabel(rng, shape=(10, 9, 8)):
    return rng.choice([0, *TOTAL], size=shape).astype(np.uint8)


def _expected(seg):
    hip = {total_id: DEFAULT_LABELS.id_of(name) for total_id, name in TOTAL.items()
           if name in DEFAULT_LABELS.names}
    return np.vectorize(lambda v: hip.get(int(v), 0))(seg).astype(np.uint8)


def test_multilabel_map_is_mapped_by_name(tmp_path, rng):
    seg = _multilabel(rng)
    write_image(tmp_path / "ct01.nii.gz", seg, oblique_affine(), dtype=np.uint8)
    volume = read_totalsegmentator(tmp_path / "ct01.nii.gz", DEFAULT_LABELS)
    np.testing.assert_array_equal(volume.data, _expected(seg))
    np.testing.assert_allclose(volume.affine, oblique_affine(), atol=1e-5)


def test_mask_folder_gives_the_same_map(tmp_path, rng):
    seg = _multilabel(rng)
    for total_id, name in TOTAL.items():
        write_image(tmp_path / "ct01" / f"{name}.nii.gz", seg == total_id, np.eye(4),
                    dtype=np.uint8)
    volume = read_totalsegmentator(tmp_path / "ct01", DEFAULT_LABELS)
    np.testing.assert_array_equal(volume.data, _expected(seg))
    write_image(tmp_path / "ct01" / "sacrum.nii.gz", seg == 75, np.eye(4), dtype=np.uint8)
    with pytest.raises(InputError, match="also belong to another mask"):
        read_totalsegmentator(tmp_path / "ct01", DEFAULT_LABELS)
    (tmp_path / "ct01" / "hip_left.nii.gz").unlink()
    with pytest.raises(InputError, match="no hip_left.nii.gz"):
        read_totalsegmentator(tmp_path / "ct01", DEFAULT_LABELS)


def test_bad_maps_and_tables_are_clear_errors(tmp_path):
    write_image(tmp_path / "big.nii.gz", np.full((3, 3, 3), 118), np.eye(4), dtype=np.uint8)
    with pytest.raises(InputError, match=r"unknown label ids \[118\]"):
        read_totalsegmentator(tmp_path / "big.nii.gz", DEFAULT_LABELS)
    table = LabelTable(("background", "femur_left", "patella"))
    with pytest.raises(InputError, match="'patella' has no TotalSegmentator"):
        read_totalsegmentator(tmp_path / "big.nii.gz", table)


def test_cli_writes_label_maps_and_reports_empty_classes(tmp_path, rng, capsys):
    seg = _multilabel(rng)
    seg[seg == 25] = 0
    write_image(tmp_path / "ct01.nii.gz", seg, oblique_affine(), dtype=np.uint8)
    assert main(["import-labels", "--from", "totalsegmentator", str(tmp_path / "ct01.nii.gz"),
                 "--out", str(tmp_path / "out")]) == 0
    assert "(empty: sacrum)" in capsys.readouterr().out
    written = read_labels(tmp_path / "out" / "ct01.nii.gz", DEFAULT_LABELS)
    np.testing.assert_array_equal(written.data, _expected(seg))
    np.testing.assert_array_equal(nib.load(tmp_path / "out" / "ct01.nii.gz").get_sform(),
                                  nib.load(tmp_path / "ct01.nii.gz").get_sform())
