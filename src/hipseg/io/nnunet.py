"""nnU-Net v2 datasets: ``imagesTr/X_0000<ending>``, ``labelsTr/X<ending>``, ``dataset.json``.

A label map inside such a dataset (in ``labelsTr`` or ``labelsTs``, beside ``dataset.json``)
uses the dataset's ids; :func:`label_lookup` translates them to a hipseg label table by name,
so every reader of label maps gets hipseg's ids.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from hipseg.core.errors import InputError
from hipseg.core.labels import LabelTable

__all__ = [
    "DATASET_JSON",
    "LABEL_FOLDERS",
    "dataset_json",
    "find_nnunet_files",
    "label_lookup",
    "read_dataset_json",
]

DATASET_JSON = "dataset.json"
LABEL_FOLDERS = ("labelsTr", "labelsTs")
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


def read_dataset_json(root: Path) -> dict:
    """The ``dataset.json`` of an nnU-Net v2 dataset, checked for what hipseg uses.

    Raises
    ------
    InputError
        Missing or invalid JSON; no ``labels``/``file_ending``; more than one input channel;
        region-based labels (lists of ids).
    """
    path = Path(root) / DATASET_JSON
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, ValueError) as err:
        raise InputError(path, f"not valid JSON ({err})") from None
    for key in ("labels", "file_ending", "channel_names"):
        if key not in info:
            raise InputError(path, f"no {key!r} entry (nnU-Net v2 dataset.json expected)")
    if len(info["channel_names"]) != 1:
        raise InputError(path, f"hipseg reads one CT channel, the dataset has "
                               f"{len(info['channel_names'])}: {info['channel_names']}")
    if not all(isinstance(v, int) and v >= 0 for v in info["labels"].values()):
        raise InputError(path, "labels must map names to non-negative integer ids "
                               "(region-based labels are not supported)")
    return info


def label_lookup(label_path: Path, labels: LabelTable) -> np.ndarray | None:
    """Id translation for a label map inside an nnU-Net dataset, or ``None`` elsewhere.

    Returns
    -------
    ndarray of int64, shape (max dataset id + 1,), or None
        ``lookup[dataset_id] = hipseg id`` by class name; ``-1`` for ids the dataset does not
        name (found in a file, they are unknown ids).

    Raises
    ------
    InputError
        A class name of ``dataset.json`` that the label table lacks (naming the table's names).
    """
    label_path = Path(label_path)
    if label_path.parent.name not in LABEL_FOLDERS \
            or not (label_path.parent.parent / DATASET_JSON).is_file():
        return None
    root = label_path.parent.parent
    named = read_dataset_json(root)["labels"]
    lookup = np.full(max(named.values()) + 1, -1, np.int64)
    for name, dataset_id in named.items():
        try:
            lookup[dataset_id] = labels.id_of(name)
        except KeyError as err:
            raise InputError(root / DATASET_JSON, err.args[0]) from None
    return lookup


def _cases_in(folder: Path, ending: str, *, channel_suffix: bool) -> dict[str, Path]:
    files = sorted(p for p in folder.iterdir() if p.name.endswith(ending)) if folder.is_dir() else []
    found = {}
    for path in files:
        stem = path.name[: -len(ending)]
        if channel_suffix:
            match = _CHANNEL.match(stem)
            if match is None:
                raise InputError(path, "nnU-Net image name must end in _XXXX (the channel)")
            if match["channel"] != "0000":
                raise InputError(path, "hipseg reads channel 0000 only")
            stem = match["case"]
        found[stem] = path
    return found


def find_nnunet_files(root: Path, *, test: bool = False) -> tuple[dict[str, Path], dict[str, Path]]:
    """Images and label maps of an nnU-Net v2 dataset by case id.

    ``imagesTr``/``labelsTr``, or ``imagesTs``/``labelsTs`` with ``test=True``.
    """
    root = Path(root)
    ending = read_dataset_json(root)["file_ending"]
    split = "Ts" if test else "Tr"
    return (_cases_in(root / f"images{split}", ending, channel_suffix=True),
            _cases_in(root / f"labels{split}", ending, channel_suffix=False))


def dataset_json(labels: LabelTable, n_training: int, file_ending: str = ".nii.gz") -> dict:
    """An nnU-Net v2 ``dataset.json`` for a CT dataset with hipseg's label table."""
    return {
        "channel_names": {"0": "CT"},
        "labels": {name: index for index, name in enumerate(labels.names)},
        "numTraining": n_training,
        "file_ending": file_ending,
    }
