"""Which image format a path holds, judged by its name (or, for DICOM, by being a folder)."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "FORMAT_SUFFIXES",
    "IMAGE_SUFFIXES",
    "NIFTI_SUFFIXES",
    "OUTPUT_FORMATS",
    "case_id",
    "image_format",
    "output_suffix",
]

NIFTI_SUFFIXES = (".nii.gz", ".nii")

#: File name endings of each format read from single files; ``.nhdr`` and ``.mhd`` are headers
#: whose pixel data lie in a file beside them.
FORMAT_SUFFIXES = {
    "nifti": NIFTI_SUFFIXES,
    "nrrd": (".nrrd", ".nhdr"),
    "metaimage": (".mha", ".mhd"),
}
IMAGE_SUFFIXES = tuple(s for suffixes in FORMAT_SUFFIXES.values() for s in suffixes)

#: Formats hipseg writes, with their file ending: one self-contained file each, so a write can
#: go to a temporary name and be renamed (a detached header would name the temporary data file).
OUTPUT_FORMATS = {"nifti": ".nii.gz", "nrrd": ".nrrd", "metaimage": ".mha"}


def image_format(path: Path) -> str | None:
    """``"nifti"``, ``"nrrd"``, ``"metaimage"``, ``"dicom"`` (an existing folder) or ``None``."""
    path = Path(path)
    if path.is_dir():
        return "dicom"
    name = path.name.lower()
    for fmt, suffixes in FORMAT_SUFFIXES.items():
        if name.endswith(suffixes):
            return fmt
    return None


def case_id(path: Path) -> str:
    """File name without its image suffix: ``case_001.nii.gz`` -> ``case_001``.

    A DICOM series folder's case id is the folder name.
    """
    name = Path(path).name
    for suffix in IMAGE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name if Path(path).is_dir() else Path(name).stem


def output_suffix(output_format: str, input_path: Path) -> str:
    """File ending of an output written for ``input_path``.

    Parameters
    ----------
    output_format : str
        One of :data:`OUTPUT_FORMATS`, or ``"input"``: the input's own format (``.nhdr`` and
        ``.mhd`` inputs give their single-file forms ``.nrrd`` and ``.mha``).

    Raises
    ------
    ValueError
        An unknown format, or ``"input"`` for a DICOM series (label maps are not written as
        DICOM).
    """
    fmt = image_format(input_path) if output_format == "input" else output_format
    if fmt == "dicom":
        raise ValueError("label maps are not written as DICOM; choose --output-format nifti, "
                         "nrrd or metaimage")
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {output_format!r} "
                         f"(known: {', '.join(OUTPUT_FORMATS)}, input)")
    return OUTPUT_FORMATS[fmt]
