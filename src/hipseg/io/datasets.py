"""Finding images in folders and pairing them with label maps by case id."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

from hipseg.core.errors import InputError
from hipseg.io.formats import IMAGE_SUFFIXES, case_id

__all__ = ["Case", "find_cases", "find_images", "is_dicom_folder"]


@dataclass(frozen=True)
class Case:
    """One training or evaluation case: an image and its label map, paired by case id."""

    case_id: str
    image: Path
    labels: Path


def is_dicom_folder(folder: Path) -> bool:
    """Whether ``folder`` holds at least one DICOM series (GDCM reads the files' headers)."""
    return Path(folder).is_dir() and bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


def find_images(folder: Path) -> list[Path]:
    """Images in ``folder``, sorted by case id; an error when there are none.

    Images are files of a supported format (NIfTI, NRRD, MetaImage; their headers for the
    detached ``.nhdr``/``.mhd``) and sub-folders holding a DICOM series.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "folder not found")
    # Hidden files are never cases: temporaries of interrupted writes, macOS "._" files.
    files = sorted((p for p in folder.iterdir() if not p.name.startswith(".")
                    and ((p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))
                         or (p.is_dir() and is_dicom_folder(p)))), key=case_id)
    if not files:
        raise InputError(folder, f"no images ({', '.join(IMAGE_SUFFIXES)} or DICOM series "
                                 "folders) in folder")
    return files


def find_cases(images_dir: Path, labels_dir: Path) -> list[Case]:
    """Pair images and label maps by case id (never by sort order).

    Raises
    ------
    InputError
        Naming the first image without a label map, or label map without an image.
    """
    images = {case_id(p): p for p in find_images(images_dir)}
    labels = {case_id(p): p for p in find_images(labels_dir)}
    for cid, path in images.items():
        if cid not in labels:
            raise InputError(path, f"no label map for case {cid!r} in {labels_dir}")
    for cid, path in labels.items():
        if cid not in images:
            raise InputError(path, f"no image for case {cid!r} in {images_dir}")
    return [Case(cid, images[cid], labels[cid]) for cid in sorted(images)]


@dataclass(frozen=True)
class Dataset:
    """Images and label maps of a dataset folder, by case id, in whichever layout it has.

    ``layout`` is ``"hipseg"`` (``images/`` + ``labels/``, also MPUNet's ``train/``, ``val/``,
    ``test/`` sub-folders) or ``"nnunet"`` (v2: ``imagesTr/X_0000`` + ``labelsTr/X`` +
    ``dataset.json``).
    """

    root: Path
    layout: str
    images: dict[str, Path]
    labels: dict[str, Path]

    def cases(self) -> list[Case]:
        """Every case paired by id.

        Raises
        ------
        InputError
            Naming the first image without a label map, or label map without an image, or an
            empty dataset.
        """
        for cid, path in sorted(self.images.items()):
            if cid not in self.labels:
                raise InputError(path, f"no label map for case {cid!r} in {self.root}")
        for cid, path in sorted(self.labels.items()):
            if cid not in self.images:
                raise InputError(path, f"no image for case {cid!r} in {self.root}")
        if not self.images:
            raise InputError(self.root, "no cases in dataset")
        return [Case(cid, self.images[cid], self.labels[cid]) for cid in sorted(self.images)]
