"""Reading and writing images and label maps in any supported format, with validation.

NIfTI goes through nibabel (so a label map written for a NIfTI input keeps its header, qform
and sform exactly); NRRD, MetaImage and DICOM series through SimpleITK (:mod:`hipseg.io.itk`).
Every read validates what later stages rely on and raises :class:`InputError` naming the file
and the problem. Every write goes to a temporary file beside the target, then is renamed.
"""

from __future__ import annotations

import errno
import gzip
import math
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from hipseg.core.atomic import atomic_path
from hipseg.core.errors import InputError
from hipseg.core.labels import LabelTable
from hipseg.core.volume import Volume
from hipseg.io.formats import OUTPUT_FORMATS, image_format
from hipseg.io.itk import check_voxel_memory, read_itk, read_itk_geometry, write_itk
from hipseg.io.nnunet import label_lookup

__all__ = ["read_image", "read_labels", "read_map", "reference_affine", "write_image",
           "write_labels"]

AFFINE_TOLERANCE_MM = 1e-3

#: Deflate expands data at most about 1032 times; a gzipped file claiming more voxel bytes
#: than this many times its size (plus room for header and framing) cannot hold them.
_DEFLATE_MAX_RATIO = 1100
_DEFLATE_SLACK_BYTES = 1 << 20
#: Label values a label map may hold to be cast to int64 ids without wrapping around.
_INT64_BOUND = 2**63


def _check_claimed_size(path: Path, img: nib.Nifti1Image) -> None:
    """Refuse a NIfTI whose header claims more voxels than its file can hold or memory can take.

    Checked before the pixels are read: nibabel allocates the whole array first, so a 2 KB file
    claiming 30000³ voxels would otherwise exhaust memory instead of failing.
    """
    proxy = img.dataobj
    shape = img.header.get_data_shape()
    n_voxels = math.prod(shape)
    stored = n_voxels * proxy.dtype.itemsize
    file_bytes = path.stat().st_size
    if path.name.lower().endswith(".gz"):
        if stored > _DEFLATE_MAX_RATIO * file_bytes + _DEFLATE_SLACK_BYTES:
            raise InputError(path, f"header claims {stored / 1e9:.1f} GB of voxels (shape "
                                   f"{shape} {proxy.dtype}) but the compressed file is only "
                                   f"{file_bytes} bytes (truncated or corrupt header)")
    elif file_bytes < proxy.offset + stored:
        raise InputError(path, f"truncated: header claims {stored} bytes of voxels, the file "
                               f"holds {max(file_bytes - proxy.offset, 0)}")
    # Scaled voxels (scl_slope, scl_inter) are read as floats, wider than the stored ones.
    scaled = proxy.slope != 1 or proxy.inter != 0
    dtype = np.result_type(proxy.dtype, proxy.slope, proxy.inter) if scaled else proxy.dtype
    check_voxel_memory(path, shape, str(dtype), n_voxels * dtype.itemsize)


def _load_nifti(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        img = nib.load(path)
        _check_claimed_size(path, img)
        data = np.asanyarray(img.dataobj)
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile,
            nib.filebasedimages.ImageFileError) as err:
        raise InputError(path, f"unreadable or truncated NIfTI ({err})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    return data, img.affine


def _missing(path: Path) -> InputError:
    """Why ``path``, which does not exist, cannot be opened: a link loop, a broken link, absent."""
    try:
        path.resolve(strict=True)
    except RuntimeError:  # how Python before 3.13 reports a link loop; later ones raise ELOOP
        return InputError(path, "symbolic link loop")
    except OSError as err:
        if err.errno == errno.ELOOP:
            return InputError(path, "symbolic link loop")
    if path.is_symlink():
        return InputError(path, f"broken symbolic link to {os.readlink(path)}")
    return InputError(path, "file not found")


def _check_one_value_per_voxel(path: Path, data: np.ndarray) -> None:
    """Refuse voxels that are not one real number: RGB(A) records, complex values."""
    if data.dtype.names is not None:
        kind = "".join(data.dtype.names) if set(data.dtype.names) <= set("RGBA") else "record"
        raise InputError(path, f"{kind} voxels ({len(data.dtype.names)} values per voxel): "
                               "expected one value per voxel")
    if data.dtype.kind not in "biuf":
        raise InputError(path, f"{data.dtype} voxels: expected one real value per voxel")


def _load(path: Path, series_uid: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Array ``(X, Y, Z)`` and voxel-to-RAS affine of any supported image, validated."""
    path = Path(path)
    if not path.exists():
        raise _missing(path)
    fmt = image_format(path)
    if fmt is None:
        raise InputError(path, "unknown image format: not a NIfTI file (.nii, .nii.gz), NRRD "
                               "(.nrrd, .nhdr), MetaImage (.mha, .mhd) or DICOM series folder")
    data, affine = _load_nifti(path) if fmt == "nifti" else read_itk(path, series_uid)
    _check_one_value_per_voxel(path, data)
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
        Missing, unreadable or truncated file (also a broken or looping symbolic link); unknown
        format; a folder without DICOM; a header claiming more voxels than the file holds or
        than free memory; not 3D; not one real value per voxel (RGB, complex); NaN or infinite
        values; a constant (empty) image; a singular (zero spacing) or non-finite affine; and
        what :func:`hipseg.io.itk.read_itk` refuses (unevenly spaced DICOM slices, MetaImage or
        NRRD pixel data outside the header's folder unless ``HIPSEG_ALLOW_EXTERNAL_DATA=1``).
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
    found = np.unique(values)
    # Cast to int64, such values would wrap around (1e20 becomes -2**63): report them as stored.
    beyond = found[(found < -_INT64_BOUND) | (found >= _INT64_BOUND)]
    if beyond.size:
        shown = ", ".join(f"{v:g}" if beyond.dtype.kind == "f" else str(v) for v in beyond)
        raise InputError(path, f"unknown label values [{shown}] "
                               f"(table has 0..{labels.n_classes - 1})")
    found = found.astype(np.int64)
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
