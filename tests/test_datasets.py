"""Dataset layouts: hipseg/MPUNet and nnU-Net v2 give the same cases, arrays and label ids."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest

from hipseg.cli import main
from hipseg.core.errors import InputError
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.datasets.ecosystem import export_nnunet
from hipseg.evaluation.check import check_dataset
from hipseg.io import find_dataset, find_label_maps, read_image, read_labels, write_image
from synthetic import blob_labels, oblique_affine


def _case(folder, cid, rng, labels_dir="labels", suffix=".nii.gz"):
    affine = oblique_affine(origin_mm=rng.uniform(-50, 50, 3))
    write_image(folder / "images" / f"{cid}{suffix}",
                rng.integers(-1000, 1500, (9, 8, 7)).astype(np.int16), affine, dtype=np.int16)
    write_image(folder / labels_dir / f"{cid}{suffix}", blob_labels((9, 8, 7), rng), affine,
                dtype=np.uint8)


def _arrays(dataset):
    return {c.case_id: (read_image(c.image), read_labels(c.labels, DEFAULT_LABELS))
            for c in dataset.cases()}


def test_hipseg_layout_exports_to_nnunet_and_reads_back_the_same(tmp_path, rng):
    for cid in ("a", "b", "c"):
        _case(tmp_path / "data", cid, rng)
    _case(tmp_path / "data", "d", rng, suffix=".nrrd")
    assert main(["export-nnunet", str(tmp_path / "data"), "--out", str(tmp_path / "nn"),
                 "--no-progress"]) == 0
    info = json.loads((tmp_path / "nn" / "dataset.json").read_text())
    assert info == {"channel_names": {"0": "CT"}, "numTraining": 4, "file_ending": ".nii.gz",
                    "labels": {n: i for i, n in enumerate(DEFAULT_LABELS.names)}}
    assert (tmp_path / "nn" / "imagesTr" / "a_0000.nii.gz").is_file()
    assert (tmp_path / "nn" / "labelsTr" / "d.nii.gz").is_file()
    source, exported = find_dataset(tmp_path / "data"), find_dataset(tmp_path / "nn")
    assert (source.layout, exported.layout) == ("hipseg", "nnunet")
    before, after = _arrays(source), _arrays(exported)
    assert sorted(before) == sorted(after) == ["a", "b", "c", "d"]
    for cid, (image, labels) in before.items():
        np.testing.assert_array_equal(after[cid][0].data, image.data)
        np.testing.assert_allclose(after[cid][0].affine, image.affine, atol=1e-5)
        np.testing.assert_array_equal(after[cid][1].data, labels.data)
        np.testing.assert_allclose(after[cid][1].affine, labels.affine, atol=1e-5)


def test_nnunet_label_ids_are_mapped_by_name(tmp_path, rng):
    root = tmp_path / "Dataset001_Hip"
    names = ["background", "sacrum", "femur_left", "hip_left", "femur_right", "hip_right"]
    (root).mkdir()
    (root / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT"}, "labels": {n: i for i, n in enumerate(names)},
         "numTraining": 1, "file_ending": ".nii.gz"}))
    nn_labels = blob_labels((9, 8, 7), rng)
    write_image(root / "imagesTr" / "x_0000.nii.gz", rng.normal(size=(9, 8, 7)), np.eye(4))
    write_image(root / "labelsTr" / "x.nii.gz", nn_labels, np.eye(4), dtype=np.uint8)
    [case] = find_dataset(root).cases()
    assert case.case_id == "x"
    read = read_labels(case.labels, DEFAULT_LABELS).data
    for nn_id, name in enumerate(names):
        assert np.all(read[nn_labels == nn_id] == DEFAULT_LABELS.id_of(name))
    checks = check_dataset(find_dataset(root), DEFAULT_LABELS)
    assert checks[0].problem is None and checks[0].classes == (1, 2, 3, 4, 5)
    assert set(find_label_maps(root)) == {"x"}


def test_nnunet_unknown_names_and_ids_are_clear_errors(tmp_path, rng):
    root = tmp_path / "nn"
    write_image(root / "imagesTr" / "x_0000.nii.gz", rng.normal(size=(4, 4, 4)), np.eye(4))
    write_image(root / "labelsTr" / "x.nii.gz", np.full((4, 4, 4), 2), np.eye(4), dtype=np.uint8)
    (root / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1},
         "numTraining": 1, "file_ending": ".nii.gz"}))
    with pytest.raises(InputError, match="dataset.json: unknown class 'liver'"):
        read_labels(root / "labelsTr" / "x.nii.gz", DEFAULT_LABELS)
    (root / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT"}, "labels": {"background": 0, "sacrum": 1},
         "numTraining": 1, "file_ending": ".nii.gz"}))
    with pytest.raises(InputError, match=r"label ids \[2\] are not named"):
        read_labels(root / "labelsTr" / "x.nii.gz", DEFAULT_LABELS)
    (root / "dataset.json").write_text(json.dumps(
        {"channel_names": {"0": "CT", "1": "PET"}, "labels": {"background": 0},
         "file_ending": ".nii.gz"}))
    with pytest.raises(InputError, match="one CT channel"):
        find_dataset(root)


def test_mpunet_splits_are_found_and_training_leaves_test_out(tmp_path, rng):
    for split, cid in (("train", "a"), ("train", "b"), ("val", "c"), ("test", "d")):
        _case(tmp_path / split, cid, rng)
    assert sorted(find_dataset(tmp_path).images) == ["a", "b", "c", "d"]
    assert sorted(c.case_id for c in find_dataset(tmp_path, splits=("train", "val")).cases()) \
        == ["a", "b", "c"]
    _case(tmp_path / "val", "a", rng)
    with pytest.raises(InputError, match="case 'a' also in"):
        find_dataset(tmp_path)


def test_not_a_dataset_and_missing_partners(tmp_path, rng):
    with pytest.raises(InputError, match="not a dataset folder"):
        find_dataset(tmp_path)
    _case(tmp_path, "a", rng)
    _case(tmp_path, "b", rng)
    (tmp_path / "labels" / "a.nii.gz").unlink()
    with pytest.raises(InputError, match="no label map for case 'a'"):
        find_dataset(tmp_path).cases()


def test_evaluate_reads_reference_labels_from_an_nnunet_dataset(tmp_path, rng, capsys):
    _case(tmp_path / "data", "a", rng)
    export_nnunet(tmp_path / "data", tmp_path / "nn", DEFAULT_LABELS, progress=False)
    nib.save(nib.load(tmp_path / "data" / "labels" / "a.nii.gz"), tmp_path / "pred.nii.gz")
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred.nii.gz").rename(tmp_path / "pred" / "a.nii.gz")
    assert main(["evaluate", "--labels", str(tmp_path / "nn"), "--predictions",
                 str(tmp_path / "pred"), "--no-progress"]) == 0
    assert "dice_mean                 1.0000" in capsys.readouterr().out
