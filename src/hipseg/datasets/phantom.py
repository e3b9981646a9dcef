"""Writing phantom datasets: ``OUT/images``, ``OUT/labels`` (accurate), ``OUT/labels_coarse``.

From real label maps (:func:`write_label_dataset`), real bone meshes or procedural shapes.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hipseg.core.errors import InputError
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.core.volume import Volume
from hipseg.io import IMAGE_SUFFIXES, case_id, read_labels, write_image, write_labels
from hipseg.io.guard import check_output_folder, refuse_name_clashes, refuse_overwriting_inputs
from hipseg.phantom import (
    LabelPhantomSettings,
    PhantomCase,
    PhantomSettings,
    make_case_from_labels,
    make_case_from_meshes,
    make_procedural_case,
)

__all__ = [
    "IMAGES",
    "LABELS",
    "LABELS_COARSE",
    "label_case_jobs",
    "label_case_name",
    "write_case",
    "write_label_case",
    "write_label_cases",
    "write_label_dataset",
    "write_label_job",
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


def write_label_dataset(out_dir: Path, label_dir: Path, seed: int, *, variants: int = 0,
                        settings: LabelPhantomSettings | None = None,
                        progress: bool = True, workers: int = 1) -> list[str]:
    """Phantoms from every label map in ``label_dir`` (any supported image format), as
    :func:`write_label_cases`.

    Raises
    ------
    InputError
        The folder is missing or holds no label map, or as :func:`write_label_cases`.
    """
    label_dir = Path(label_dir)
    if not label_dir.is_dir():
        raise InputError(label_dir, "label-map folder not found")
    paths = sorted((p for p in label_dir.iterdir()
                    if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES)), key=case_id)
    if not paths:
        raise InputError(label_dir, f"no label maps ({', '.join(IMAGE_SUFFIXES)}) in folder")
    return write_label_cases(out_dir, paths, seed, variants=variants, settings=settings,
                             progress=progress, workers=workers)


def write_label_case(out_dir: Path, path: Path, seed: int, index: int, variant: int, *,
                     settings: LabelPhantomSettings | None = None,
                     labels: Volume | None = None) -> str:
    """One case of :func:`write_label_cases`: map ``index`` of its list (``path``) as itself
    (``variant`` 0) or as new anatomy ``variant``, drawn from ``default_rng([seed, index,
    variant])``. ``labels``: the map already read (else it is read from ``path``). Returns the
    case name."""
    labels = read_labels(path, DEFAULT_LABELS) if labels is None else labels
    case = make_case_from_labels(labels, np.random.default_rng([seed, index, variant]),
                                 variant=variant > 0, settings=settings)
    name = label_case_name(path, variant)
    write_case(out_dir, name, case)
    return name


def label_case_name(path: Path, variant: int) -> str:
    """``<map>`` for the map itself (``variant`` 0), ``<map>_vNN`` for its new anatomies."""
    return case_id(path) if variant == 0 else f"{case_id(path)}_v{variant:02d}"


def label_case_jobs(out_dir: Path, paths: Sequence[Path], seed: int, variants: int,
                    settings: LabelPhantomSettings | None) -> list[tuple]:
    """:func:`write_label_job`'s jobs for every case of :func:`write_label_cases`, in its
    order: map ``i`` of ``paths`` itself, then its ``variants`` new anatomies."""
    return [(out_dir, path, seed, index, v, settings)
            for index, path in enumerate(paths) for v in range(variants + 1)]


def write_label_job(job: tuple) -> str:
    """:func:`write_label_case` of one :func:`label_case_jobs` job (a pool's task)."""
    out_dir, path, seed, index, variant, settings = job
    return write_label_case(out_dir, path, seed, index, variant, settings=settings)


def write_label_cases(out_dir: Path, paths: Sequence[Path], seed: int, *, variants: int = 0,
                      settings: LabelPhantomSettings | None = None,
                      progress: bool = True, workers: int = 1) -> list[str]:
    """Phantoms from real label maps: ``<map>`` on each map itself and ``<map>_vNN`` for each of
    ``variants`` new anatomies made from it.

    Case ``(map i of paths, variant v)`` is drawn from ``default_rng([seed, i, v])``, so a case
    does not depend on how many variants are made, nor on ``workers`` (processes making cases
    at once; each holds one full-resolution case, 2-4 GiB). Returns the case names, in order.

    Raises
    ------
    InputError
        ``variants`` is negative or ``workers`` below 1, or a map is unreadable or has unknown
        label ids.
    """
    if variants < 0:
        raise InputError(Path(out_dir), f"--variants must be >= 0, got {variants}")
    if workers < 1:
        raise InputError(Path(out_dir), f"--workers must be >= 1, got {workers}")
    check_output_folder(out_dir)
    refuse_name_clashes((path, Path(out_dir) / LABELS / case_id(path)) for path in paths)
    refuse_overwriting_inputs(paths, [Path(out_dir) / sub / f"{case_id(p)}.nii.gz"
                                      for sub in (IMAGES, LABELS, LABELS_COARSE) for p in paths])
    jobs = label_case_jobs(out_dir, paths, seed, variants, settings)
    with tqdm(total=len(jobs), desc="phantoms", disable=not progress) as bar:
        if workers == 1 or len(jobs) < 2:
            names = []
            for index, path in enumerate(paths):
                labels = read_labels(path, DEFAULT_LABELS)  # once per map, for all its variants
                for v in range(variants + 1):
                    names.append(write_label_case(out_dir, path, seed, index, v,
                                                  settings=settings, labels=labels))
                    bar.update()
        else:
            with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
                futures = [pool.submit(write_label_job, job) for job in jobs]
                try:
                    for future in as_completed(futures):
                        future.result()
                        bar.update()
                except BaseException:
                    pool.shutdown(cancel_futures=True)  # report now, not after every case
                    raise
                names = [future.result() for future in futures]
    logger.info("wrote %d phantom cases from %d label maps to %s", len(names), len(paths),
                out_dir)
    return names
