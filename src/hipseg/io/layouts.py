"""One entry point for dataset folders: hipseg/MPUNet and nnU-Net v2 layouts."""

from __future__ import annotations

from pathlib import Path

from hipseg.core.errors import InputError
from hipseg.io.datasets import Dataset, find_images
from hipseg.io.formats import case_id
from hipseg.io.nnunet import DATASET_JSON, find_nnunet_files

__all__ = ["MPUNET_SPLITS", "find_dataset", "find_label_maps", "is_dataset_root"]

#: MPUNet's project sub-folders, each with its own ``images/`` and ``labels/``.
MPUNET_SPLITS = ("train", "val", "test")


def _by_case_id(folder: Path) -> dict[str, Path]:
    return {case_id(p): p for p in find_images(folder)} if folder.is_dir() else {}


def _merge(parts: list[dict[str, Path]]) -> dict[str, Path]:
    merged: dict[str, Path] = {}
    for part in parts:
        for cid, path in part.items():
            if cid in merged:
                raise InputError(path, f"case {cid!r} also in {merged[cid]}")
            merged[cid] = path
    return merged


def is_dataset_root(folder: Path) -> bool:
    """Whether ``folder`` has ``dataset.json``, ``images/`` or an MPUNet split with ``images/``."""
    folder = Path(folder)
    return ((folder / DATASET_JSON).is_file() or (folder / "images").is_dir()
            or any((folder / split / "images").is_dir() for split in MPUNET_SPLITS))


def find_dataset(root: Path, *, labels_dir: str = "labels",
                 splits: tuple[str, ...] = MPUNET_SPLITS) -> Dataset:
    """The images and label maps of a dataset folder, in any supported layout.

    Parameters
    ----------
    root : Path
        ``root/dataset.json`` makes it an nnU-Net v2 dataset (``imagesTr``/``labelsTr``; ids
        translated to the model's by name when the label maps are read). Otherwise
        ``root/images`` + ``root/<labels_dir>``, or MPUNet's ``root/<split>/images`` +
        ``root/<split>/<labels_dir>`` for each split present.
    labels_dir : str
        Label folder name of the hipseg layout (``labels`` or ``labels_coarse``).
    splits : tuple of str
        MPUNet splits to include (``train`` uses train and val; others all three).

    Raises
    ------
    InputError
        Not a dataset folder; a case id in two splits; a bad ``dataset.json``.
    """
    root = Path(root)
    if (root / DATASET_JSON).is_file():
        images, labels = find_nnunet_files(root)
        return Dataset(root, "nnunet", images, labels)
    if (root / "images").is_dir():
        return Dataset(root, "hipseg", _by_case_id(root / "images"), _by_case_id(root / labels_dir))
    present = [root / split for split in splits if (root / split / "images").is_dir()]
    if not present:
        expected = ", ".join(f"{split}/images/" for split in splits)
        raise InputError(root, f"not a dataset folder: no images/, {expected} or {DATASET_JSON}")
    return Dataset(root, "hipseg", _merge([_by_case_id(p / "images") for p in present]),
                   _merge([_by_case_id(p / labels_dir) for p in present]))


def find_label_maps(folder: Path) -> dict[str, Path]:
    """Label maps by case id: a dataset's (any layout), or the images of a plain folder."""
    if is_dataset_root(folder):
        return find_dataset(folder).labels
    return {case_id(p): p for p in find_images(folder)}
