"""TotalSegmentator's output as coarse hipseg labels (the paper's reuse of inferior labels).

TotalSegmentator v2, task ``total``, writes either one multilabel map (``--ml``) with the ids
below, or a folder of binary masks named ``<class>.nii.gz``. Its bone names for the hip are
hipseg's own (``femur_left``, ``hip_right``, ...), so classes are matched by name; every other
structure (vertebrae_S1 included) becomes background.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hipseg.core.errors import InputError
from hipseg.core.labels import LabelTable
from hipseg.core.volume import Volume
from hipseg.io.images import read_labels

__all__ = ["TOTAL_V2_IDS", "TOTAL_V2_MAX_ID", "read_totalsegmentator", "totalsegmentator_lookup"]

#: Ids of hip structures in TotalSegmentator v2's ``total`` task (``class_map["total"]`` in
#: ``totalsegmentator/map_to_binary.py``, wasserth/TotalSegmentator commit 0275d30).
TOTAL_V2_IDS = {"sacrum": 25, "femur_left": 75, "femur_right": 76, "hip_left": 77, "hip_right": 78}
#: The largest id of the ``total`` task (117: costal_cartilages).
TOTAL_V2_MAX_ID = 117


def totalsegmentator_lookup(labels: LabelTable) -> np.ndarray:
    """``lookup[total_id] = hipseg id`` for ids 0..117; 0 for structures hipseg does not have.

    Raises
    ------
    KeyError
        A foreground class of ``labels`` that TotalSegmentator does not segment.
    """
    lookup = np.zeros(TOTAL_V2_MAX_ID + 1, np.uint8)
    for class_id in labels.foreground_ids:
        name = labels.names[class_id]
        if name not in TOTAL_V2_IDS:
            raise KeyError(f"class {name!r} has no TotalSegmentator 'total' equivalent "
                           f"(known: {', '.join(TOTAL_V2_IDS)})")
        lookup[TOTAL_V2_IDS[name]] = class_id
    return lookup


def _check_table(path: Path, labels: LabelTable) -> np.ndarray:
    try:
        return totalsegmentator_lookup(labels)
    except KeyError as err:
        raise InputError(path, err.args[0]) from None


def _multilabel(path: Path, lookup: np.ndarray) -> Volume:
    total = LabelTable(tuple(f"id{i}" for i in range(TOTAL_V2_MAX_ID + 1)))
    seg = read_labels(path, total)
    return seg.with_data(lookup[seg.data])


def _masks(folder: Path, labels: LabelTable) -> Volume:
    binary = LabelTable(("background", "mask"))
    combined = None
    for class_id in labels.foreground_ids:
        mask_path = folder / f"{labels.names[class_id]}.nii.gz"
        if not mask_path.is_file():
            raise InputError(folder, f"no {mask_path.name} (a folder of TotalSegmentator masks "
                                     "needs one per hip class)")
        mask = read_labels(mask_path, binary, reference=combined)
        if combined is None:
            combined = mask.with_data(np.zeros(mask.shape, np.uint8))
        overlap = (mask.data > 0) & (combined.data > 0)
        if overlap.any():
            raise InputError(mask_path, f"{int(overlap.sum())} voxels also belong to another mask")
        combined.data[mask.data > 0] = class_id
    return combined


def read_totalsegmentator(path: Path, labels: LabelTable) -> Volume:
    """A TotalSegmentator v2 ``total`` segmentation as a hipseg label map (uint8).

    Parameters
    ----------
    path : Path
        The multilabel map (ids 0..117), or a folder of its per-class masks
        (``femur_left.nii.gz``, ...).
    labels : LabelTable
        hipseg's table; each foreground class is found by its name.

    Raises
    ------
    InputError
        Ids above 117; a missing or overlapping mask; a class TotalSegmentator lacks.
    """
    path = Path(path)
    lookup = _check_table(path, labels)
    if path.is_dir():
        return _masks(path, labels)
    return _multilabel(path, lookup)
