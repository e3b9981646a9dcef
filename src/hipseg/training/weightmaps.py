"""Weight maps of training scans, cached next to the data.

A scan's map is stored as ``DATA/weightmaps/<labels folder>/<case id>-<key>.npy``, where the key
is a hash of the label file's bytes and of the weight-map settings: editing a label map (the
interactive loop's corrections) or changing a setting gives a new key, so the map is computed
again and the stale file removed. Maps are float32 on the label map's voxel grid.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
from tqdm import tqdm

from hipseg.core.atomic import atomic_path
from hipseg.core.config import WeightMapConfig, config_to_dict
from hipseg.core.errors import InputError
from hipseg.core.labels import LabelTable
from hipseg.core.volume import Volume
from hipseg.io import Case, read_labels, write_image
from hipseg.weights import contact_band, distance_weight_map

__all__ = ["CACHE_FOLDER", "cache_path", "cached_weight_map", "precompute_weight_maps",
           "weight_map_key", "weight_map_of"]

logger = logging.getLogger(__name__)

CACHE_FOLDER = "weightmaps"
#: Bumped when the computation changes, so old caches are not reused.
FORMAT_VERSION = 2


def _file_digest(path: Path) -> hashlib.sha256:
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest


def weight_map_key(labels_path: Path, settings: WeightMapConfig) -> str:
    """16 hex digits identifying the label file's content together with the settings."""
    digest = _file_digest(Path(labels_path))
    parameters = config_to_dict(settings)
    digest.update(json.dumps({"version": FORMAT_VERSION, **parameters}, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def cache_path(case: Case, settings: WeightMapConfig, cache_root: Path | None = None) -> Path:
    """Where ``case``'s map lives: by default ``DATA/weightmaps/<labels folder>/``."""
    labels_dir = Path(case.labels).parent
    root = labels_dir.parent / CACHE_FOLDER if cache_root is None else Path(cache_root)
    return root / labels_dir.name / f"{case.case_id}-{weight_map_key(case.labels, settings)}.npy"


def weight_map_of(labels: Volume, settings: WeightMapConfig) -> np.ndarray:
    """The map the settings describe (no cache): float32, shape of ``labels``.

    The distance weight map where ``settings.enabled`` (ones otherwise), times 0 in the band of
    ``settings.ignore_contacts_mm`` around the bones' contacts.
    """
    if settings.enabled:
        radius = settings.erosion_radius_vox if settings.erode else 0.0
        weights = distance_weight_map(labels.data, w0=settings.w0, sigma_vox=settings.sigma_vox,
                                      erosion_radius_vox=radius)
    else:
        weights = np.ones(labels.shape, np.float32)
    if settings.ignore_contacts_mm > 0:
        weights[contact_band(labels.data, labels.spacing_mm, settings.ignore_contacts_mm)] = 0.0
    return weights


def cached_weight_map(case: Case, labels: Volume, settings: WeightMapConfig, *,
                      cache_root: Path | None = None) -> np.ndarray:
    """``case``'s weight map from the cache, computed and stored there when missing or stale.

    Parameters
    ----------
    labels : Volume
        ``case``'s label map as read (shape (X, Y, Z)).

    Raises
    ------
    InputError
        The cache folder cannot be written (name another with ``cache_root``).
    """
    path = cache_path(case, settings, cache_root)
    if path.is_file():
        try:
            weights = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            logger.warning("recomputing unreadable weight map %s (%s)", path, err)
        else:
            if weights.shape == labels.shape and weights.dtype == np.float32:
                return weights
            logger.warning("recomputing %s: shape %s does not match the labels %s", path,
                           weights.shape, labels.shape)
    weights = weight_map_of(labels, settings)
    try:
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, weights, allow_pickle=False)
    except OSError as err:
        raise InputError(path.parent, f"cannot write the weight-map cache ({err.strerror or err}); "
                                      "choose a writable cache folder") from None
    for stale in path.parent.glob(f"{case.case_id}-*.npy"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return weights


def precompute_weight_maps(cases: list[Case], label_table: LabelTable, settings: WeightMapConfig,
                           *, cache_root: Path | None = None, write_nifti: bool = False,
                           progress: bool = True) -> list[Path]:
    """Fill the cache for ``cases``; with ``write_nifti`` also ``<case>_weights.nii.gz`` beside it.

    Returns the cached ``.npy`` paths.
    """
    paths = []
    for case in tqdm(cases, desc="weight maps", disable=not progress):
        labels = read_labels(case.labels, label_table)
        weights = cached_weight_map(case, labels, settings, cache_root=cache_root)
        path = cache_path(case, settings, cache_root)
        if write_nifti:
            write_image(path.parent / f"{case.case_id}_weights.nii.gz", weights, labels.affine)
        logger.info("%s: weights in [%.2f, %.2f], mean %.3f", case.case_id, weights.min(),
                    weights.max(), weights.mean())
        paths.append(path)
    return paths
