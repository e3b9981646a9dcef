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
#: Largest class id read from a dataset.json: ids index a lookup table, so a huge one would
#: allocate a huge table; nnU-Net label maps are 8 or 16 bits.
_MAX_DATASET_ID = 65535


def _shown(value: object, limit: int = 60) -> str:
    """``value`` as JSON for an error message, cut at ``limit`` characters."""
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_id(value: object) -> bool:
    # JSON true/false load as bool, which is a subclass of int: not ids.
    return isinstance(value, int) and not isinstance(value, bool) \
        and 0 <= value <= _MAX_DATASET_ID


def read_dataset_json(root: Path) -> dict:
    """The ``dataset.json`` of an nnU-Net v2 dataset, checked for what hipseg uses.

    Raises
    ------
    InputError
        Missing or invalid JSON; not an object; no ``labels``/``file_ending``/``channel_names``;
        ``channel_names`` not a mapping of exactly one channel; ``file_ending`` not a non-empty
        string; ``labels`` not a mapping of names to distinct integer ids ``0 .. 65535`` with
        background 0 (JSON ``true`` is not an id); region-based labels (lists of ids).
    """
    path = Path(root) / DATASET_JSON
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(path, "file not found") from None
    except (OSError, ValueError, RecursionError) as err:
        raise InputError(path, f"not valid JSON ({err})") from None
    if not isinstance(info, dict):
        raise InputError(path, "not a JSON object (nnU-Net v2 dataset.json expected)")
    for key in ("labels", "file_ending", "channel_names"):
        if key not in info:
            raise InputError(path, f"no {key!r} entry (nnU-Net v2 dataset.json expected)")
    channels = info["channel_names"]
    if not isinstance(channels, dict):
        raise InputError(path, f'channel_names must map channel numbers to names, like '
                               f'{{"0": "CT"}}, not {_shown(channels)}')
    if len(channels) != 1:
        raise InputError(path, f"hipseg reads one CT channel, the dataset has "
                               f"{len(channels)}: {channels}")
    if not isinstance(info["file_ending"], str) or not info["file_ending"]:
        raise InputError(path, f'file_ending must be a file name ending like ".nii.gz", not '
                               f'{_shown(info["file_ending"])}')
    labels = info["labels"]
    if not isinstance(labels, dict) or not labels:
        raise InputError(path, f'labels must map class names to ids, like {{"background": 0, '
                               f'...}}, not {_shown(labels)}')
    if any(isinstance(v, list) for v in labels.values()):
        raise InputError(path, "labels must map names to non-negative integer ids "
                               "(region-based labels are not supported)")
    bad = {name: v for name, v in labels.items() if not _is_id(v)}
    if bad:
        raise InputError(path, f"labels must map names to integer ids 0..{_MAX_DATASET_ID}, "
                               f"not {_shown(bad)}")
    if 0 not in labels.values():
        raise InputError(path, "labels have no background (id 0)")
    if len(set(labels.values())) != len(labels):
        raise InputError(path, f"labels give one id to several classes: {_shown(labels)}")
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
