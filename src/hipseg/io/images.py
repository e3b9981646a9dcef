"""Reading and writing images and label maps in any supported format, with validation.

NIfTI goes through nibabel (so a label map written for a NIfTI input keeps its header, qform
and sform exactly); NRRD, MetaImage and DICOM series through SimpleITK (:mod:`hipseg.io.itk`).
Every read validates what later stages rely on and raises :class:`InputError` naming the file
and the problem. Every write goes to a temporary file beside the target, then is renamed.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from hipseg.core.atomic import atomic_path
from hipseg.core.errors import InputError
from hipseg.core.labels import LabelTable
from hipseg.core.volume import Volume
from hipseg.io.formats import OUTPUT_FORMATS, image_format
from hipseg.io.itk import read_itk, read_itk_geometry, write_itk
from hipseg.io.nnunet import label_lookup

__all__ = ["read_image", "read_labels", "read_map", "reference_affine", "write_image",
           "write_labels"]

AFFINE_TOLERANCE_MM = 1e-3


def _load_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        img = nib.load(path)
        data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile,
            nib.filebasedimages.ImageFileError) as err:
        raise InputError(path, f"unreadable or truncated NIfTI ({err})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    return data, img.affine


def _load(path: Path, series_uid: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Array ``(X, Y, Z)`` and voxel-to-RAS affine of any supported image, validated."""
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    fmt = image_format(path)
    if fmt is None:
        raise InputError(path, "unknown image format: not a NIfTI file (.nii, .nii.gz), NRRD "
                               "(.nrrd, .nhdr), MetaImage (.mha, .mhd) or DICOM series folder")
    data, affine = _load_nifti(path) if fmt == "nifti" else read_itk(path, series_uid)
    if data.ndim != 3:
        raise InputError(path, f"expected a 3D volume, got shape {data.shape}")
    if min(data.shape) < 2:
        raise InputError(path, f"expected a 3D volume, got a flat one of shape {data.shape}")
    if not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise InputError(path, "singular or non-finite affine (zero voxel spacing along an axis?)")
    return data, affine


def read_image(path: Path, *, series_uid: str | None = None) -> Volume:
    """Read a CT image as float32 intensities with its voxel-to-RAS affine.

    Parameters
    ----------
    path : Path
        NIfTI, NRRD (``.nrrd``, ``.nhdr``), MetaImage (``.mha``, ``.mhd``), or a folder holding
        a DICOM series.
    series_uid : str, optional
        Which DICOM series of the folder; default the one with the most slices.

    Raises
    ------
    InputError
        Missing, unreadable or truncated file; unknown format; a folder without DICOM; not 3D;
        NaN or infinite values; a constant (empty) image; a singular (zero spacing) or
        non-finite affine.
    """
    data, affine = _load(path, series_uid)
    image = np.asarray(data, dtype=np.float32)
    if not np.all(np.isfinite(image)):
        raise InputError(path, "image contains NaN or infinite values")
    if image.min() == image.max():
        raise InputError(path, f"image is constant (every voxel is {float(image.min()):g}): nothing to segment")
    return Volume(image, affine)


def read_map(path: Path, reference: Volume) -> Volume:
    """Read a float map that belongs to ``reference``'s grid (probabilities, disagreement).

    Unlike :func:`read_image` a constant map is fine (every view agreeing gives zeros).

    Raises
    ------
    InputError
        As :func:`read_image` for unreadable files, NaN or infinite values, and a shape or
        affine that differs from ``reference``'s.
    """
    data, affine = _load(path)
    values = np.asarray(data, dtype=np.float32)
    if not np.all(np.isfinite(values)):
        raise InputError(path, "map contains NaN or infinite values")
    if values.shape != reference.shape:
        raise InputError(path, f"shape {values.shape} differs from the image's {reference.shape}")
    if not np.allclose(affine, reference.affine, atol=AFFINE_TOLERANCE_MM):
        raise InputError(path, "affine differs from the image's (not the same grid)")
    return Volume(values, affine)


def read_labels(path: Path, labels: LabelTable, reference: Volume | None = None) -> Volume:
    """Read a label map as uint8, checking its ids and, optionally, its grid.

    Parameters
    ----------
    labels : LabelTable
        Ids outside ``0 .. labels.n_classes - 1`` are an error. A label map inside an nnU-Net
        dataset has its ids translated to this table by the class names of ``dataset.json``.
    reference : Volume, optional
        The image the labels belong to: shape and affine must match.
    """
    data, affine = _load(path)
    values = np.asarray(data)
    if not np.issubdtype(values.dtype, np.integer) and (
        not np.all(np.isfinite(values)) or np.any(values != np.round(values))
    ):
        raise InputError(path, "label map has non-integer values")
    found = np.unique(values).astype(np.int64)
    lookup = label_lookup(path, labels)
    if lookup is not None:
        unnamed = [int(v) for v in found if v < 0 or v >= len(lookup) or lookup[v] < 0]
        if unnamed:
            raise InputError(path, f"label ids {unnamed} are not named in the dataset's dataset.json")
        values = lookup[values.astype(np.int64)]
        found = np.unique(lookup[found])
    unknown = [int(v) for v in found if v < 0 or v >= labels.n_classes]
    if unknown:
        raise InputError(path, f"unknown label ids {unknown} (table has 0..{labels.n_classes - 1})")
    if reference is not None:
        if values.shape != reference.shape:
            raise InputError(path, f"label shape {values.shape} differs from image shape {reference.shape}")
        if not np.allclose(affine, reference.affine, atol=AFFINE_TOLERANCE_MM):
            raise InputError(path, "label affine differs from the image's affine")
    return Volume(values.astype(np.uint8), affine)


def reference_affine(reference: Path | Volume) -> np.ndarray:
    """Voxel-to-RAS affine of a Volume, an image file (header only) or a DICOM series folder."""
    if isinstance(reference, Volume):
        return reference.affine
    fmt = image_format(reference)
    if fmt == "nifti":
        return nib.load(reference).affine
    if fmt == "dicom":
        return _load(reference)[1]
    return read_itk_geometry(reference)[1]


def _save_nifti(image: nib.Nifti1Image, path: Path) -> None:
    with atomic_path(Path(path)) as tmp:
        nib.save(image, tmp)


def write_labels(path: Path, labels: np.ndarray, reference: Path | Volume) -> None:
    """Write a uint8 label map on the grid of ``reference``, in the format ``path`` names.

    When both ``path`` and ``reference`` are NIfTI files, the reference's header is copied,
    so shape, qform and sform (with their codes) are exactly the input's.
    """
    labels = np.asarray(labels, dtype=np.uint8)
    if image_format(path) != "nifti" or isinstance(reference, Volume) \
            or image_format(reference) != "nifti":
        write_image(path, labels, reference_affine(reference), dtype=np.uint8)
        return
    ref_img = nib.load(reference)
    image = nib.Nifti1Image(labels, ref_img.affine, header=ref_img.header.copy())
    image.set_data_dtype(np.uint8)
    image.header.set_slope_inter(1.0, 0.0)
    image.set_qform(*ref_img.get_qform(coded=True))
    image.set_sform(*ref_img.get_sform(coded=True))
    _save_nifti(image, path)


def write_image(path: Path, data: np.ndarray, affine: np.ndarray, dtype: type = np.float32) -> None:
    """Write an array with its affine as NIfTI, NRRD or MetaImage (chosen by ``path``'s name).

    Parameters
    ----------
    data : ndarray, shape (X, Y, Z) or (X, Y, Z, C)
        Intensities, maps, or per-class probabilities (classes last, as NIfTI stores vectors).
    affine : ndarray, shape (4, 4)

    Raises
    ------
    ValueError
        ``path`` does not end in a written format's suffix (``.nii``, ``.nii.gz``, ``.nrrd``,
        ``.mha``).
    """
    if not Path(path).name.lower().endswith((*OUTPUT_FORMATS.values(), ".nii")):
        raise ValueError(f"{path}: cannot write this format (use .nii.gz, .nii, .nrrd or .mha)")
    data = np.asarray(data, dtype=dtype)
    if image_format(path) != "nifti":
        write_itk(path, data, affine)
        return
    image = nib.Nifti1Image(data, np.asarray(affine, float))
    image.set_data_dtype(dtype)
    _save_nifti(image, path)
