"""Batch prediction: parts as nnU-Net splits them, worker processes; same files as one run."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from hipseg.cli import main
from hipseg.core.errors import HipsegError
from hipseg.inference.batch import predict_files_in_workers, select_part
from hipseg.runtime.model_io import load_model
from synthetic import oblique_affine

CPU = torch.device("cpu")


def _scans(folder: Path, rng, n: int) -> list[Path]:
    folder.mkdir()
    paths = []
    for index in range(n):
        shape = (12 + index, 10, 9)
        grid = np.indices(shape).astype(float)
        bone = ((grid[0] - 5) ** 2 + (grid[1] - 5) ** 2 + (grid[2] - 4) ** 2) < 10 + 3 * index
        image = np.where(bone, 700.0, 40.0) + rng.normal(0, 30, shape)
        path = folder / f"case_{index:02d}.nii.gz"
        nib.save(nib.Nifti1Image(image.astype(np.float32), oblique_affine()), path)
        paths.append(path)
    return paths


def _label_data(folder: Path) -> dict[str, tuple[bytes, bytes]]:
    return {p.name: (np.asarray(nib.load(p).dataobj).tobytes(), nib.load(p).affine.tobytes())
            for p in sorted(folder.glob("*.nii.gz"))}


def test_parts_are_disjoint_cover_everything_and_ignore_the_input_order():
    inputs = [Path(f"/data/case_{i}.nii.gz") for i in (5, 1, 9, 3, 7, 2, 8)]
    parts = [select_part(inputs, 3, i) for i in range(3)]
    assert sorted(p for part in parts for p in part) == sorted(inputs)
    assert [len(part) for part in parts] == [3, 2, 2]
    assert parts == [select_part(list(reversed(inputs)), 3, i) for i in range(3)]
    assert parts[0] == [Path(f"/data/case_{i}.nii.gz") for i in (1, 5, 9)]


@pytest.mark.parametrize("num_parts, part_id", [(0, 0), (2, 2), (2, -1)])
def test_bad_parts_are_errors(num_parts, part_id):
    with pytest.raises(HipsegError, match="part"):
        select_part([Path("a.nii.gz")], num_parts, part_id)


def test_inputs_with_the_same_case_id_are_an_error():
    with pytest.raises(HipsegError, match="case ids"):
        select_part([Path("x/a.nii.gz"), Path("y/a.nii")], 1, 0)


def test_two_parts_give_exactly_the_files_of_one_run(tiny_model_dir, tmp_path, rng):
    inputs = _scans(tmp_path / "images", rng, 3)
    common = [str(tiny_model_dir), *map(str, inputs), "--no-progress", "--threads", "1"]
    assert main(["predict", *common, "--out", str(tmp_path / "one")]) == 0
    for part in ("0", "1"):
        assert main(["predict", *common, "--out", str(tmp_path / "parts"), "--num-parts", "2",
                     "--part-id", part]) == 0
    one = _label_data(tmp_path / "one")
    assert len(one) == 3
    assert _label_data(tmp_path / "parts") == one


def test_worker_processes_give_the_files_of_one_worker(tiny_model_dir, tmp_path, rng):
    inputs = _scans(tmp_path / "images", rng, 3)
    model = load_model(tiny_model_dir, CPU)
    single = predict_files_in_workers(model, tiny_model_dir, inputs, tmp_path / "one",
                                      progress=False)
    several = predict_files_in_workers(model, tiny_model_dir, inputs, tmp_path / "workers",
                                       workers=2, threads=1, progress=False)
    assert [s.case_id for s in several] == [s.case_id for s in single] == [
        "case_00", "case_01", "case_02"]
    assert [s.collisions for s in several] == [s.collisions for s in single]
    assert _label_data(tmp_path / "workers") == _label_data(tmp_path / "one")


def test_a_failing_input_in_a_worker_is_named(tiny_model_dir, tmp_path, rng):
    inputs = _scans(tmp_path / "images", rng, 2)
    bad = tmp_path / "images" / "case_99.nii.gz"
    nib.save(nib.Nifti1Image(np.full((5, 5, 5), np.nan, np.float32), np.eye(4)), bad)
    model = load_model(tiny_model_dir, CPU)
    with pytest.raises(HipsegError, match="case_99.nii.gz"):
        predict_files_in_workers(model, tiny_model_dir, [*inputs, bad], tmp_path / "out",
                                 workers=2, threads=1, progress=False)
    assert (tmp_path / "out" / "case_00.nii.gz").exists()
