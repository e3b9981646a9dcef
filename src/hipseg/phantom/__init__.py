"""Synthetic hip CT phantoms with accurate (gapped) and coarse (gap-filled) labels.

Three sources of anatomy: :func:`make_case_from_labels` turns a real label map (and new
anatomies made from it) into a CT on its own grid, with literature-based tissues and scanner
effects (:mod:`hipseg.phantom.ct`, ranges in :mod:`hipseg.phantom.appearance`); :func:`make_procedural_case` builds a random pelvis
from implicit shapes; :func:`make_case_from_meshes` voxelises real closed bone meshes. Each
gives a :class:`PhantomCase` with a CT-like image, accurate labels, and coarse labels with the
joint spaces filled in, as in poor public data.
"""

from hipseg.phantom.coarse import fill_joint_spaces
from hipseg.phantom.from_labels import LabelPhantomSettings, make_case_from_labels
from hipseg.phantom.intensities import labels_to_ct
from hipseg.phantom.meshes import make_case_from_meshes
from hipseg.phantom.procedural import PhantomCase, PhantomSettings, make_procedural_case

__all__ = [
    "LabelPhantomSettings",
    "PhantomCase",
    "PhantomSettings",
    "fill_joint_spaces",
    "labels_to_ct",
    "make_case_from_labels",
    "make_case_from_meshes",
    "make_procedural_case",
]
