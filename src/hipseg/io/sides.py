"""Left/right sanity of a label map read from a file: warn, or refuse with ``strict``.

A dataset whose "right" classes lie on the patient's left (names swapped in an nnU-Net
``dataset.json``, a map flipped by a tool that ignored the affine) would train a network to
swap the sides. :func:`~hipseg.labelmap.side_problems` finds it from the affine; this module
decides what a verb does about it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from hipseg.core.errors import InputError
from hipseg.core.labels import LabelTable
from hipseg.core.volume import Volume
from hipseg.labelmap import side_problems

__all__ = ["check_sides"]

logger = logging.getLogger(__name__)


def check_sides(path: Path, label_map: Volume, table: LabelTable, *,
                strict: bool = False) -> str | None:
    """Warn (log) when a side class of ``label_map`` lies on the wrong side of the midline.

    Returns
    -------
    str or None
        The warning, or ``None`` when the sides are right.

    Raises
    ------
    InputError
        With ``strict``, instead of warning.
    """
    problems = side_problems(label_map.data, label_map.affine, table)
    if not problems:
        return None
    message = "; ".join(problems) + " (left and right swapped?)"
    if strict:
        raise InputError(path, message)
    logger.warning("%s: %s", path, message)
    return message
