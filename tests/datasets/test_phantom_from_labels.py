"""``hipseg phantom --from-labels``: one case per map (plus variants) on the map's own grid."""

from __future__ import annotations

import shutil

import nibabel as nib
import numpy as np
import pytest

from hipseg.cli import main
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.demo import demo_label_maps
from hipseg.io import read_image, read_labels
from synthetic import touching_pairs


@pytest.fixture
def map_dir(tmp_path):
    folder = tmp_path / "maps"
    folder.mkdir()
    shutil.copy(demo_label_maps() / "s27.nii.gz", folder / "s27.nii.gz")
    return folder


def test_writes_each_map_and_its_variants_on_the_maps_grid(map_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["phantom", str(out), "--from-labels", str(map_dir), "--variants", "1",
                 "--merge-femoral-head-mm", "10", "--no-progress"])
    assert code == 0
    assert "wrote 2 cases" in capsys.readouterr().out
    source = read_labels(map_dir / "s27.nii.gz", DEFAULT_LABELS)
    for name in ("s27", "s27_v01"):
        image = read_image(out / "images" / f"{name}.nii.gz")
        labels = read_labels(out / "labels" / f"{name}.nii.gz", DEFAULT_LABELS, reference=image)
        coarse = read_labels(out / "labels_coarse" / f"{name}.nii.gz", DEFAULT_LABELS,
                             reference=image)
        assert image.shape == source.shape
        np.testing.assert_allclose(image.affine, source.affine)
        assert {(1, 3), (2, 4)} <= touching_pairs(coarse.data)  # hip joints closed
        # the femoral head option moved femur voxels to the hip bone in the coarse labels
        assert (coarse.data == 1).sum() < (labels.data == 1).sum()
    np.testing.assert_array_equal(read_labels(out / "labels" / "s27.nii.gz",
                                              DEFAULT_LABELS).data, source.data)


def test_femur_rotation_turns_only_the_legs(map_dir, tmp_path):
    variants = {}
    for degrees in ("0", "20"):
        out = tmp_path / degrees
        assert main(["phantom", str(out), "--from-labels", str(map_dir), "--variants", "1",
                     "--femur-rotation-deg", degrees, "--no-progress"]) == 0
        variants[degrees] = read_labels(out / "labels" / "s27_v01.nii.gz", DEFAULT_LABELS).data
    still, turned = variants["0"], variants["20"]
    for pelvis in (3, 4, 5):
        np.testing.assert_array_equal(still == pelvis, turned == pelvis)
    for femur in (1, 2):
        assert np.count_nonzero(turned == femur) == pytest.approx(
            np.count_nonzero(still == femur), rel=0.15)
        assert np.count_nonzero((turned == femur) != (still == femur)) > 0.1 * np.count_nonzero(
            still == femur)


def test_workers_make_the_same_cases_as_one_process(map_dir, tmp_path):
    shutil.copy(map_dir / "s27.nii.gz", map_dir / "s28.nii.gz")  # a second map: index 1
    made = {}
    for workers in ("1", "3"):
        out = tmp_path / workers
        assert main(["phantom", str(out), "--from-labels", str(map_dir), "--variants", "1",
                     "--spacing", "5", "5", "5", "--workers", workers, "--no-progress"]) == 0
        made[workers] = {path.name: read_image(path).data
                         for path in sorted((out / "images").iterdir())}
    assert sorted(made["1"]) == ["s27.nii.gz", "s27_v01.nii.gz", "s28.nii.gz", "s28_v01.nii.gz"]
    assert sorted(made["3"]) == sorted(made["1"])
    for name, image in made["1"].items():
        np.testing.assert_array_equal(made["3"][name], image)
    # the same map at another index is drawn from another seed
    assert not np.array_equal(made["1"]["s27.nii.gz"], made["1"]["s28.nii.gz"])


def test_a_bad_map_in_a_worker_is_reported_by_name(map_dir, tmp_path, capsys):
    bad = map_dir / "s99.nii.gz"
    nib.save(nib.Nifti1Image(np.full((8, 8, 8), 9, np.uint8), np.eye(4)), bad)
    assert main(["phantom", str(tmp_path / "out"), "--from-labels", str(map_dir),
                 "--spacing", "5", "5", "5", "--workers", "2", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "s99.nii.gz" in err and "Traceback" not in err


def test_resamples_with_spacing(map_dir, tmp_path):
    out = tmp_path / "out"
    assert main(["phantom", str(out), "--from-labels", str(map_dir), "--spacing", "4", "4", "4",
                 "--no-progress"]) == 0
    image = read_image(out / "images" / "s27.nii.gz")
    np.testing.assert_allclose(image.spacing_mm, 4.0)


def test_bad_label_folders_are_one_line_errors(tmp_path, capsys):
    assert main(["phantom", str(tmp_path / "out"), "--from-labels", str(tmp_path / "none"),
                 "--no-progress"]) == 2
    assert "label-map folder not found" in capsys.readouterr().err
    folder = tmp_path / "maps"
    folder.mkdir()
    assert main(["phantom", str(tmp_path / "out"), "--from-labels", str(folder)]) == 2
    assert "no label maps" in capsys.readouterr().err
    bad = np.zeros((8, 8, 8), np.uint8)
    bad[2:4, 2:4, 2:4] = 9
    nib.save(nib.Nifti1Image(bad, np.eye(4)), folder / "bad.nii.gz")
    assert main(["phantom", str(tmp_path / "out"), "--from-labels", str(folder),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.nii.gz" in err[0] and "unknown label ids [9]" in err[0]
    assert not (tmp_path / "out" / "images" / "bad.nii.gz").exists()
