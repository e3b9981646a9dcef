"""Where the report looks: the hip joint centres of a label map.

**Joint centre.** Per side, the centroid of the femoral-head voxels facing the acetabulum:
the voxels of ``femur_<side>`` whose distance (mm) to ``hip_<side>`` is at most
:data:`JOINT_SHELL_MM` more than the femur's smallest distance to it. When the femur or the
hip bone of a side is missing, the centroid of the one present is used, and the note says so.
"""

from __future__ import annotations

import numpy as np

from hipseg.core.labels import LabelTable
from hipseg.distances import distance_to_class

__all__ = ["JOINT_SHELL_MM", "SIDES", "joint_centres"]

#: Femur voxels up to this much farther from the hip bone than the closest ones count as the
#: joint-facing part of the femoral head (mm).
JOINT_SHELL_MM = 15.0
SIDES = ("right", "left")


def joint_centres(labels: np.ndarray, spacing_mm: np.ndarray,
                  table: LabelTable) -> tuple[dict[str, np.ndarray | None], list[str]]:
    """Voxel index (float, shape (3,)) of each hip joint centre, and notes on fallbacks.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), uint8
    spacing_mm : ndarray, shape (3,)
    table : LabelTable
        Classes ``femur_right``, ``femur_left``, ``hip_right``, ``hip_left`` are looked up by
        name; a missing one (in the table or the map) triggers the fallback.

    Returns
    -------
    centres : dict
        ``{"right": ijk or None, "left": ijk or None}``; ``None`` when neither bone is there.
    notes : list of str
    """
    centres, notes = {}, []
    for side in SIDES:
        masks = {}
        for bone in ("femur", "hip"):
            name = f"{bone}_{side}"
            present = name in table.names and np.any(labels == table.id_of(name))
            masks[bone] = (labels == table.id_of(name)) if present else None
        femur, hip = masks["femur"], masks["hip"]
        if femur is not None and hip is not None:
            distance = distance_to_class(hip.astype(np.uint8), 1, spacing_mm=spacing_mm)
            to_hip = distance[femur]
            shell = np.argwhere(femur)[to_hip <= to_hip.min() + JOINT_SHELL_MM]
            centres[side] = shell.mean(axis=0)
            continue
        present = [f"{b}_{side}" for b, m in masks.items() if m is not None]
        missing = [f"{b}_{side}" for b, m in masks.items() if m is None]
        if present:
            centres[side] = np.argwhere(masks[present[0].split("_")[0]]).mean(axis=0)
            notes.append(f"{side} hip joint: {', '.join(missing)} missing; slices go through the "
                         f"centroid of {present[0]} instead of the joint centre.")
        else:
            centres[side] = None
            notes.append(f"{side} hip joint: {' and '.join(missing)} missing; no slices.")
    return centres, notes
