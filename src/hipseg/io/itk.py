"""NRRD, MetaImage and DICOM series through SimpleITK, as arrays with a voxel-to-RAS affine.

ITK stores geometry in LPS (+x left, +y posterior); hipseg works in RAS. The one conversion
between them is :func:`lps_ras_flip`, used in both directions. ITK's arrays come out of
``GetArrayFromImage`` as ``(Z, Y, X)``; they are transposed so that array index ``(i, j, k)`` is
ITK index ``(i, j, k)``, the index the affine maps.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from hipseg.core.atomic import atomic_path
from hipseg.core.errors import InputError
from hipseg.io.formats import image_format

__all__ = [
    "EXTERNAL_DATA_ENV",
    "affine_from_itk",
    "available_memory_bytes",
    "check_external_data",
    "check_voxel_memory",
    "dicom_series",
    "itk_geometry",
    "lps_ras_flip",
    "read_itk",
    "read_itk_geometry",
    "write_itk",
]

_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Set to ``1`` to let MetaImage and NRRD headers name pixel data outside their own folder.
EXTERNAL_DATA_ENV = "HIPSEG_ALLOW_EXTERNAL_DATA"
#: How much of a header is read to find its data file entry; real headers are a few hundred
#: bytes, and a bound keeps a hostile one from being read whole.
_HEADER_BYTES = 64 * 1024
#: Slices whose step differs from the series' median step by more than this fraction of it
#: (and by more than ``_SLICE_STEP_ATOL_MM``) mean a missing, duplicate or misplaced file.
_SLICE_STEP_RTOL = 0.1
_SLICE_STEP_ATOL_MM = 0.01


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


def available_memory_bytes() -> int | None:
    """Bytes a new allocation can get now, or ``None`` where the system does not tell.

    Linux's ``MemAvailable`` counts the page cache the kernel would give back; ``sysconf``'s
    free pages (the fallback elsewhere) do not, and are a small part of it on a machine that has
    read many files, which would refuse images that fit.
    """
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError):
        return None


def check_voxel_memory(path: Path, shape: tuple[int, ...], type_name: str, n_bytes: int) -> None:
    """Refuse an image whose header claims more voxel bytes than this machine has free.

    Called before the pixels are read: readers allocate the whole array first, so a header of a
    few bytes claiming 30000³ voxels would otherwise exhaust memory instead of failing.

    Raises
    ------
    InputError
        ``n_bytes`` exceeds :func:`available_memory_bytes`.
    """
    free = available_memory_bytes()
    if free is not None and n_bytes > free:
        raise InputError(path, f"header claims shape {tuple(shape)} {type_name} = "
                               f"{n_bytes / 1e9:.1f} GB, more than the {free / 1e9:.1f} GB of "
                               "free memory")


def _data_file_entry(lines: list[str], fmt: str) -> tuple[str | None, list[str]] | None:
    """The data file entry of a MetaImage or NRRD header, and the lines after it.

    ``(None, [])`` when the pixels are in the file itself (MetaImage ``LOCAL``, or an NRRD
    header ending in a blank line without a data file field); ``None`` when ``lines`` end first.
    """
    if fmt == "metaimage":
        # ElementDataFile is the last header key; what follows it is pixels or the LIST's names.
        for i, line in enumerate(lines):
            key, sep, value = line.partition("=")
            if sep and key.strip().lower() == "elementdatafile":
                value = value.strip()
                return (None, []) if value.lower() == "local" else (value, lines[i + 1:])
        return None
    for i, line in enumerate(lines[1:], start=1):  # lines[0] is the NRRD000X magic
        if not line.strip():
            return None, []
        if line.startswith("#") or ":=" in line:  # comments and key/value pairs, not fields
            continue
        field, sep, value = line.partition(":")
        if sep and field.strip().lower() in ("data file", "datafile"):
            return value.strip(), lines[i + 1:]
    return None


def check_external_data(path: Path) -> None:
    """Refuse a MetaImage or NRRD header whose pixel data file lies outside the header's folder.

    A header may name any file as its pixel data (``ElementDataFile = /etc/passwd``,
    ``data file: ../x.raw``); ITK would read it, and its bytes would end up in hipseg's outputs.
    Every form both formats allow is checked: one file name, ``LIST`` followed by one name per
    line, and a ``printf`` pattern with its range (``slice%03d.raw 1 10 1``: the pattern's
    folder). Other formats hold their own pixels and pass. Set the environment variable
    ``HIPSEG_ALLOW_EXTERNAL_DATA=1`` to allow data files anywhere.

    Raises
    ------
    InputError
        An absolute data file path or one resolving outside the header's folder; a header, or a
        ``LIST`` of data files, not ending within the first 64 KiB; an unreadable file.
    """
    path = Path(path)
    fmt = image_format(path)
    if fmt not in ("metaimage", "nrrd") or os.environ.get(EXTERNAL_DATA_ENV) == "1":
        return
    try:
        with open(path, "rb") as header:
            head = header.read(_HEADER_BYTES + 1)
    except OSError as err:
        raise InputError(path, f"unreadable file ({err.strerror})") from None
    whole = len(head) <= _HEADER_BYTES
    entry = _data_file_entry(head[:_HEADER_BYTES].decode("latin-1").splitlines(), fmt)
    if entry is None:
        if not whole:
            raise InputError(path, "header does not end within its first 64 KiB")
        return
    value, following = entry
    if value is None:
        return
    tokens = value.split()
    # A pattern's numbers cannot add a folder, so its folder is where every file lies.
    names = [tokens[0] if len(tokens) > 1 and "%" in tokens[0] else value]
    if value[:4].upper() == "LIST":
        if not whole:
            raise InputError(path, "LIST of data files does not end within the first 64 KiB")
        names += [line.strip() for line in following if line.strip()]
    folder = path.parent.resolve()
    for name in names:
        if Path(name).is_absolute() or not (folder / name).resolve().is_relative_to(folder):
            raise InputError(path, f"data file {name!r} is outside the header's folder (set "
                                   f"{EXTERNAL_DATA_ENV}=1 to read it anyway)")


def _pixel_bytes(reader: sitk.ImageFileReader) -> tuple[str, int]:
    """Name and size in bytes of one pixel of the image ``reader`` has read the header of."""
    name = sitk.GetPixelIDValueAsString(reader.GetPixelID())
    bits = re.search(r"(\d+)-bit", name)
    # Every pixel type read from a file names its bits; were one not to, assume the widest.
    return name, (int(bits[1]) if bits else 64) // 8 * reader.GetNumberOfComponents()


def _dicom_vector(folder: Path, reader: sitk.ImageSeriesReader, index: int, tag: str,
                  length: int) -> np.ndarray:
    """The ``length`` numbers of a DICOM tag of slice ``index`` (backslash-separated text)."""
    text = reader.GetMetaData(index, tag)
    try:
        values = np.array([float(v) for v in text.strip(" \0").split("\\")])
    except ValueError:
        values = np.array([])
    if values.shape != (length,) or not np.all(np.isfinite(values)):
        raise InputError(folder, f"slice {index + 1}: malformed DICOM tag {tag} ({text!r})")
    return values


def _check_slice_steps(folder: Path, reader: sitk.ImageSeriesReader) -> None:
    """Refuse a series whose slices are unevenly spaced (a missing, duplicate or stray file).

    ITK reads such a series with one spacing and only warns ("Non uniform sampling"), so
    slices past a gap would lie up to half a gap from where the scanner put them.
    """
    n_slices = len(reader.GetFileNames())
    position, orientation = "0020|0032", "0020|0037"
    # Fewer than three slices have no steps to compare; without positions ITK places the
    # slices by their spacing tags and there is nothing to check them against.
    if n_slices < 3 or not reader.HasMetaDataKey(0, orientation) or not all(
            reader.HasMetaDataKey(i, position) for i in range(n_slices)):
        return
    axes = _dicom_vector(folder, reader, 0, orientation, 6)
    normal = np.cross(axes[:3], axes[3:])
    along = np.array([_dicom_vector(folder, reader, i, position, 3) @ normal
                      for i in range(n_slices)])
    steps = np.abs(np.diff(along))
    typical = float(np.median(steps))
    off = np.abs(steps - typical)
    worst = int(np.argmax(off))
    if off[worst] > max(_SLICE_STEP_RTOL * typical, _SLICE_STEP_ATOL_MM):
        uid_tag = "0020|000e"
        uid = reader.GetMetaData(0, uid_tag).strip(" \0") if reader.HasMetaDataKey(0, uid_tag) \
            else "without UID"
        hint = "missing slice?" if steps[worst] > typical else "duplicate or stray slice?"
        raise InputError(folder, f"DICOM series {uid}: slices {worst + 1} and {worst + 2} are "
                                 f"{steps[worst]:.3g} mm apart, the others {typical:.3g} mm "
                                 f"({hint})")


def _read_series(folder: Path, series_uid: str | None) -> sitk.Image:
    files = dicom_series(folder, series_uid)
    first = sitk.ImageFileReader()
    first.SetFileName(files[0])
    first.ReadImageInformation()
    shape = (*first.GetSize()[:2], math.prod(first.GetSize()[2:]) * len(files))
    type_name, pixel_bytes = _pixel_bytes(first)
    check_voxel_memory(folder, shape, type_name, math.prod(shape) * pixel_bytes)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    reader.MetaDataDictionaryArrayUpdateOn()
    # ITK's "Non uniform sampling" warning would print a multi-line report beside the one-line
    # error that _check_slice_steps gives for the same series.
    warnings_shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        image = reader.Execute()
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(warnings_shown)
    _check_slice_steps(folder, reader)
    return image


def _read(path: Path, series_uid: str | None) -> sitk.Image:
    try:
        if Path(path).is_dir():
            return _read_series(path, series_uid)
        check_external_data(path)
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        reader.ReadImageInformation()
        type_name, pixel_bytes = _pixel_bytes(reader)
        check_voxel_memory(path, reader.GetSize(), type_name,
                           math.prod(reader.GetSize()) * pixel_bytes)
        return reader.Execute()
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
        Unreadable or truncated file, no such DICOM series, not a 3D scalar image; a header
        claiming more voxels than free memory; a DICOM series with unevenly spaced slices (a
        missing file); a MetaImage or NRRD header naming pixel data outside its folder, unless
        the environment variable ``HIPSEG_ALLOW_EXTERNAL_DATA=1`` allows it
        (:func:`check_external_data`).
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
