"""Writing phantom datasets: ``OUT/images``, ``OUT/labels`` (accurate), ``OUT/labels_coarse``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hipseg.core.errors import InputError
from hipseg.io import write_image, write_labels
from hipseg.phantom import PhantomCase, PhantomSettings, make_case_from_meshes, make_procedural_case

__all__ = [
    "IMAGES",
    "LABELS",
    "LABELS_COARSE",
    "write_case",
    "write_mesh_dataset",
    "write_procedural_dataset",
]

logger = logging.getLogger(__name__)

IMAGES, LABELS, LABELS_COARSE = "images", "labels", "labels_coarse"


def write_case(out_dir: Path, name: str, case: PhantomCase) -> None:
    """Write one case's image (float32 HU) and both label maps (uint8) on the same grid."""
    out_dir = Path(out_dir)
    write_image(out_dir / IMAGES / f"{name}.nii.gz", case.image.data, case.image.affine)
    write_labels(out_dir / LABELS / f"{name}.nii.gz", case.labels.data, case.labels)
    write_labels(out_dir / LABELS_COARSE / f"{name}.nii.gz", case.labels_coarse.data, case.labels_coarse)


def write_procedural_dataset(out_dir: Path, n_cases: int, seed: int, *, first_index: int = 0,
                             settings: PhantomSettings | None = None,
                             progress: bool = True) -> list[str]:
    """Make ``n_cases`` procedural phantoms named ``case_NNN``.

    Case ``i`` is drawn from ``default_rng([seed, i])``, so it is the same whatever
    ``n_cases`` is. Returns the case names.
    """
    settings = PhantomSettings() if settings is None else settings
    names = []
    for index in tqdm(range(first_index, first_index + n_cases), desc="phantoms",
                      disable=not progress):
        case = make_procedural_case(np.random.default_rng([seed, index]), settings)
        name = f"case_{index:03d}"
        write_case(out_dir, name, case)
        names.append(name)
    logger.info("wrote %d phantom cases to %s", n_cases, out_dir)
    return names


def write_mesh_dataset(out_dir: Path, mesh_dir: Path, n_cases: int, seed: int, *,
                       spacing_mm: Sequence[float], mirror: bool, progress: bool = True) -> list[str]:
    """Phantoms carrying the anatomy of the closed bone meshes (STL/OBJ) in ``mesh_dir``."""
    mesh_dir = Path(mesh_dir)
    if not mesh_dir.is_dir():
        raise InputError(mesh_dir, "mesh folder not found")
    paths = sorted(p for p in mesh_dir.iterdir() if p.suffix.lower() in (".stl", ".obj"))
    if not paths:
        raise InputError(mesh_dir, "no .stl or .obj meshes in folder")
    names = []
    for index in tqdm(range(n_cases), desc="phantoms", disable=not progress):
        case = make_case_from_meshes(paths, np.random.default_rng([seed, index]),
                                     spacing_mm=tuple(spacing_mm), mirror=mirror)
        name = f"case_{index:03d}"
        write_case(out_dir, name, case)
        names.append(name)
    return names
