"""NRRD, MetaImage and DICOM series through SimpleITK, as arrays with a voxel-to-RAS affine.

ITK stores geometry in LPS (+x left, +y posterior); hipseg works in RAS. The one conversion
between them is :func:`lps_ras_flip`, used in both directions. ITK's arrays come out of
``GetArrayFromImage`` as ``(Z, Y, X)``; they are transposed so that array index ``(i, j, k)`` is
ITK index ``(i, j, k)``, the index the affine maps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hipseg.core.atomic import atomic_path
from hipseg.core.errors import InputError

__all__ = [
    "affine_from_itk",
    "dicom_series",
    "itk_geometry",
    "lps_ras_flip",
    "read_itk",
    "read_itk_geometry",
    "write_itk",
]

_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def lps_ras_flip(affine: np.ndarray) -> np.ndarray:
    """Convert a 4x4 voxel-to-world affine between LPS and RAS (its own inverse).

    Negates the world x and y rows: LPS +x (left) is RAS -x, LPS +y (posterior) is RAS -y.
    """
    return _FLIP @ np.asarray(affine, dtype=np.float64)


def affine_from_itk(origin: tuple, spacing: tuple, direction: tuple) -> np.ndarray:
    """Voxel-to-RAS affine from ITK's origin (mm), spacing (mm) and row-major 3x3 direction (LPS).

    Returns
    -------
    ndarray, shape (4, 4), float64
    """
    lps = np.eye(4)
    lps[:3, :3] = np.asarray(direction, float).reshape(3, 3) * np.asarray(spacing, float)
    lps[:3, 3] = origin
    return lps_ras_flip(lps)


def itk_geometry(affine: np.ndarray) -> tuple[tuple, tuple, tuple]:
    """Inverse of :func:`affine_from_itk`: ``(origin, spacing, direction)`` in LPS."""
    lps = lps_ras_flip(affine)
    spacing = np.linalg.norm(lps[:3, :3], axis=0)
    direction = lps[:3, :3] / spacing
    return tuple(lps[:3, 3]), tuple(spacing), tuple(direction.ravel())


def dicom_series(folder: Path, series_uid: str | None = None) -> list[str]:
    """File names of one DICOM series in ``folder``, in slice order.

    The series ``series_uid``, or the one with the most files when not given.

    Raises
    ------
    InputError
        No DICOM series in the folder, or no series with that UID (the error lists them).
    """
    reader = sitk.ImageSeriesReader()
    uids = reader.GetGDCMSeriesIDs(str(folder))
    if not uids:
        raise InputError(folder, "no DICOM series in folder")
    if series_uid is None:
        return max((reader.GetGDCMSeriesFileNames(str(folder), uid) for uid in uids), key=len)
    if series_uid not in uids:
        raise InputError(folder, f"no DICOM series with UID {series_uid!r} "
                                 f"(found: {', '.join(repr(u) for u in uids)})")
    return reader.GetGDCMSeriesFileNames(str(folder), series_uid)


def _read(path: Path, series_uid: str | None) -> sitk.Image:
    try:
        if Path(path).is_dir():
            reader = sitk.ImageSeriesReader()
            reader.SetFileNames(dicom_series(path, series_uid))
            return reader.Execute()
        return sitk.ReadImage(str(path))
    except RuntimeError as err:
        first_line = str(err).strip().splitlines()[-1] if str(err).strip() else "no detail"
        raise InputError(path, f"unreadable or truncated image ({first_line})") from None


def read_itk(path: Path, series_uid: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read an image file or a DICOM series folder.

    Returns
    -------
    data : ndarray, shape (X, Y, Z), the file's dtype
    affine : ndarray, shape (4, 4), voxel-to-RAS, mm

    Raises
    ------
    InputError
        Unreadable or truncated file, no such DICOM series, not a 3D scalar image.
    """
    image = _read(path, series_uid)
    if image.GetDimension() != 3:
        raise InputError(path, f"expected a 3D volume, got shape {image.GetSize()}")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(path, f"expected one value per voxel, got "
                               f"{image.GetNumberOfComponentsPerPixel()} components")
    data = sitk.GetArrayFromImage(image)
    data = np.ascontiguousarray(data.transpose(2, 1, 0))
    return data, affine_from_itk(image.GetOrigin(), image.GetSpacing(), image.GetDirection())


def read_itk_geometry(path: Path) -> tuple[tuple[int, ...], np.ndarray]:
    """Shape ``(X, Y, Z)`` and voxel-to-RAS affine of an image file, without its pixels."""
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as err:
        raise InputError(path, f"unreadable image header ({str(err).strip()[-200:]})") from None
    return tuple(reader.GetSize()), affine_from_itk(reader.GetOrigin(), reader.GetSpacing(),
                                                    reader.GetDirection())


def write_itk(path: Path, data: np.ndarray, affine: np.ndarray) -> None:
    """Write ``data`` with its voxel-to-RAS ``affine`` (compressed, atomically).

    Parameters
    ----------
    data : ndarray, shape (X, Y, Z) or (X, Y, Z, C)
        Scalars, or C values per voxel (written as a vector image).
    affine : ndarray, shape (4, 4)

    The format follows the file name (``.nrrd``, ``.mha``).
    """
    data = np.asarray(data)
    order = (2, 1, 0, 3)[: data.ndim]
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(order)),
                                   isVector=data.ndim == 4)
    origin, spacing, direction = itk_geometry(affine)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(direction)
    with atomic_path(Path(path)) as tmp:
        sitk.WriteImage(image, str(tmp), useCompression=True)
