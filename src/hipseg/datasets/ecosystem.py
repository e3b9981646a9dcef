"""Other tools' data: nnU-Net v2 export, TotalSegmentator label import."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hipseg.core.atomic import atomic_folder, atomic_path, atomic_write_text
from hipseg.core.errors import InputError
from hipseg.core.labels import LabelTable
from hipseg.io import (
    case_id,
    find_dataset,
    image_format,
    read_image,
    read_labels,
    write_image,
    write_labels,
)
from hipseg.io.guard import check_output_folder, refuse_name_clashes, refuse_overwriting_inputs
from hipseg.io.nnunet import DATASET_JSON, dataset_json
from hipseg.io.totalsegmentator import read_totalsegmentator

__all__ = ["export_nnunet", "import_totalsegmentator"]


def _copy(source: Path, target: Path) -> None:
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def export_nnunet(data: Path, out: Path, labels: LabelTable, *, labels_dir: str = "labels",
                  overwrite: bool = False, progress: bool = True) -> int:
    """Write the dataset in ``data`` (any layout) as an nnU-Net v2 dataset in ``out``.

    ``out/imagesTr/<case>_0000.nii.gz``, ``out/labelsTr/<case>.nii.gz`` and
    ``out/dataset.json`` (the label table's names and ids, ``channel_names {"0": "CT"}``).
    ``.nii.gz`` images are copied byte for byte; other formats are converted (float32 HU).
    Every label map is validated against its image first. The export is written into a
    temporary folder beside ``out`` and renamed to ``out`` when complete, so a failing case
    leaves no half export and ``numTraining`` always counts exactly the cases present.

    Parameters
    ----------
    overwrite : bool
        Replace a non-empty ``out`` (refused otherwise: stale cases would stay in it).

    Returns
    -------
    int
        The number of cases written.
    """
    cases = find_dataset(data, labels_dir=labels_dir).cases()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "output folder is an existing file")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InputError(out, "output folder is not empty (its old cases would stay in the "
                              "export): choose an empty folder or pass --overwrite to replace it")
    refuse_overwriting_inputs([p for case in cases for p in (case.image, case.labels)],
                              [out] + ([p for p in out.rglob("*")] if out.is_dir() else []))
    check_output_folder(out.parent)
    with atomic_folder(out) as work:
        for case in tqdm(cases, desc="exporting", disable=not progress):
            image = read_image(case.image)
            label_map = read_labels(case.labels, labels, reference=image)
            image_target = work / "imagesTr" / f"{case.case_id}_0000.nii.gz"
            if case.image.name.endswith(".nii.gz"):
                _copy(case.image, image_target)
            else:
                write_image(image_target, image.data, image.affine)
            nifti_labels = image_format(case.labels) == "nifti"
            write_labels(work / "labelsTr" / f"{case.case_id}.nii.gz",
                         label_map.data.astype(np.uint8),
                         reference=case.image if case.image.name.endswith(".nii.gz")
                         and nifti_labels else image)
        atomic_write_text(work / DATASET_JSON,
                          json.dumps(dataset_json(labels, len(cases)), indent=2))
    return len(cases)


def import_totalsegmentator(inputs: list[Path], out_dir: Path,
                            labels: LabelTable) -> list[tuple[Path, dict[str, int]]]:
    """Write each TotalSegmentator ``total`` segmentation as ``OUT/<case id>.nii.gz``.

    Parameters
    ----------
    inputs : list of Path
        Multilabel maps (case id from the file name) or folders of per-class masks (case id
        the folder name).

    Returns
    -------
    list of (Path, dict)
        Each written file and its voxel count per class name (0 for a class not found).
    """
    targets = [Path(out_dir) / f"{case_id(path)}.nii.gz" for path in inputs]
    check_output_folder(out_dir)
    refuse_overwriting_inputs(inputs, targets)
    refuse_name_clashes(zip(inputs, targets))
    written = []
    for path, target in zip(inputs, targets):
        label_map = read_totalsegmentator(path, labels)
        nifti = Path(path).is_file() and image_format(path) == "nifti"
        write_labels(target, label_map.data, reference=path if nifti else label_map)
        counts = np.bincount(label_map.data.ravel(), minlength=labels.n_classes)
        written.append((target, {labels.names[c]: int(counts[c]) for c in labels.foreground_ids}))
    return written
