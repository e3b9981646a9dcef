"""Reading and writing NIfTI images and label maps; pairing dataset files by case id.

Every read validates what later stages rely on and raises :class:`InputError` naming the file
and the problem. Every write goes to a temporary file beside the target, then is renamed.
"""

from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from hipseg.core.atomic import atomic_path
from hipseg.core.errors import InputError
from hipseg.core.labels import LabelTable
from hipseg.core.volume import Volume

__all__ = [
    "NIFTI_SUFFIXES",
    "Case",
    "case_id",
    "find_cases",
    "find_images",
    "read_image",
    "read_labels",
    "write_image",
    "write_labels",
]

NIFTI_SUFFIXES = (".nii.gz", ".nii")
AFFINE_TOLERANCE_MM = 1e-3


def case_id(path: Path) -> str:
    """File name without its NIfTI suffix: ``case_001.nii.gz`` -> ``case_001``."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def _load(path: Path) -> tuple[nib.Nifti1Image, np.ndarray]:
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if not path.name.endswith(NIFTI_SUFFIXES):
        raise InputError(path, "not a NIfTI file (.nii or .nii.gz expected)")
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile,
            nib.filebasedimages.ImageFileError) as err:
        raise InputError(path, f"unreadable or truncated NIfTI ({err})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InputError(path, f"expected a 3D volume, got shape {data.shape}")
    if min(data.shape) < 2:
        raise InputError(path, f"expected a 3D volume, got a flat one of shape {data.shape}")
    affine = img.affine
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(path, "singular or non-finite affine (zero voxel spacing along an axis?)")
    return img, data


def read_image(path: Path) -> Volume:
    """Read a CT image as float32 intensities with its affine.

    Raises
    ------
    InputError
        Missing, unreadable or truncated file; not 3D; NaN or infinite values; a constant
        (empty) image; a singular (zero spacing) or non-finite affine.
    """
    img, data = _load(path)
    image = np.asarray(data, dtype=np.float32)
    if not np.all(np.isfinite(image)):
        raise InputError(path, "image contains NaN or infinite values")
    if image.min() == image.max():
        raise InputError(path, f"image is constant (every voxel is {float(image.min()):g}): nothing to segment")
    return Volume(image, img.affine)


def read_labels(path: Path, labels: LabelTable, reference: Volume | None = None) -> Volume:
    """Read a label map as uint8, checking its ids and, optionally, its grid.

    Parameters
    ----------
    labels : LabelTable
        Ids outside ``0 .. labels.n_classes - 1`` are an error.
    reference : Volume, optional
        The image the labels belong to: shape and affine must match.
    """
    img, data = _load(path)
    values = np.asarray(data)
    if not np.issubdtype(values.dtype, np.integer) and (
        not np.all(np.isfinite(values)) or np.any(values != np.round(values))
    ):
        raise InputError(path, "label map has non-integer values")
    found = np.unique(values).astype(np.int64)
    unknown = [int(v) for v in found if v < 0 or v >= labels.n_classes]
    if unknown:
        raise InputError(path, f"unknown label ids {unknown} (table has 0..{labels.n_classes - 1})")
    if reference is not None:
        if values.shape != reference.shape:
            raise InputError(path, f"label shape {values.shape} differs from image shape {reference.shape}")
        if not np.allclose(img.affine, reference.affine, atol=AFFINE_TOLERANCE_MM):
            raise InputError(path, "label affine differs from the image's affine")
    return Volume(values.astype(np.uint8), img.affine)


def _save(image: nib.Nifti1Image, path: Path) -> None:
    with atomic_path(Path(path)) as tmp:
        nib.save(image, tmp)


def write_labels(path: Path, labels: np.ndarray, reference: Path | Volume) -> None:
    """Write a uint8 label map on the grid of ``reference``.

    When ``reference`` is the input NIfTI file, its header is copied, so shape, qform and sform
    (with their codes) are exactly the input's.
    """
    labels = np.asarray(labels, dtype=np.uint8)
    if isinstance(reference, Volume):
        header = None
        affine = reference.affine
    else:
        ref_img = nib.load(reference)
        header = ref_img.header.copy()
        affine = ref_img.affine
    image = nib.Nifti1Image(labels, affine, header=header)
    image.set_data_dtype(np.uint8)
    image.header.set_slope_inter(1.0, 0.0)
    if header is not None:
        image.set_qform(*ref_img.get_qform(coded=True))
        image.set_sform(*ref_img.get_sform(coded=True))
    _save(image, path)


def write_image(path: Path, data: np.ndarray, affine: np.ndarray, dtype: type = np.float32) -> None:
    """Write an array with its affine as NIfTI.

    Parameters
    ----------
    data : ndarray, shape (X, Y, Z) or (X, Y, Z, C)
        Intensities, maps, or per-class probabilities (classes last, as NIfTI stores vectors).
    affine : ndarray, shape (4, 4)
    """
    image = nib.Nifti1Image(np.asarray(data, dtype=dtype), np.asarray(affine, float))
    image.set_data_dtype(dtype)
    _save(image, path)


@dataclass(frozen=True)
class Case:
    """One training or evaluation case: an image and its label map, paired by case id."""

    case_id: str
    image: Path
    labels: Path


def find_images(folder: Path) -> list[Path]:
    """NIfTI files in ``folder``, sorted by case id; an error when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "folder not found")
    files = sorted((p for p in folder.iterdir() if p.name.endswith(NIFTI_SUFFIXES)), key=case_id)
    if not files:
        raise InputError(folder, "no NIfTI files (.nii, .nii.gz) in folder")
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
