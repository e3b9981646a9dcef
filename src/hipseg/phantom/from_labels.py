"""Phantoms carrying real anatomy: a CT-like image for a real label map, on its own grid."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hipseg.core.volume import Volume
from hipseg.phantom.appearance import AppearanceRanges, draw_appearance
from hipseg.phantom.coarse import fill_joint_spaces, merge_femoral_heads
from hipseg.phantom.ct import simulate_ct
from hipseg.phantom.procedural import PhantomCase
from hipseg.phantom.variants import VariantSettings, make_variant, resample_labels

__all__ = ["LabelPhantomSettings", "make_case_from_labels"]


@dataclass(frozen=True)
class LabelPhantomSettings:
    """How a label map becomes a phantom case.

    Parameters
    ----------
    coarse_gap_mm : float
        Joint spaces up to this width (mm, between voxel centres) are closed in the coarse
        labels; real hip, sacro-iliac and symphysis spaces are 2-6 mm wide.
    merge_femoral_head_mm : float
        When above 0, the coarse labels also give the femoral head's part within this many mm
        of the acetabulum to the hip bone, as TotalSegmentator's output does.
    spacing_mm : (float, float, float) or None
        Resample the map (nearest neighbour) to this spacing first; ``None`` keeps its grid.
    appearance : AppearanceRanges
        Ranges the tissues and the scanner are drawn from.
    variant : VariantSettings
        Used when a case is a variant (a new anatomy) rather than the map itself.
    """

    coarse_gap_mm: float = 8.0
    merge_femoral_head_mm: float = 0.0
    spacing_mm: tuple[float, float, float] | None = None
    appearance: AppearanceRanges = field(default_factory=AppearanceRanges)
    variant: VariantSettings = field(default_factory=VariantSettings)


def make_case_from_labels(labels: Volume, rng: np.random.Generator, *, variant: bool = False,
                          settings: LabelPhantomSettings | None = None) -> PhantomCase:
    """A CT-like image with accurate and coarse labels for one real label map.

    Parameters
    ----------
    labels : Volume
        uint8 label map (default label table ids) and its affine.
    rng : numpy.random.Generator
        Draws the variant (if any) and the appearance.
    variant : bool
        Make a new anatomy from the map (:func:`hipseg.phantom.variants.make_variant`)
        instead of using it as it is.

    Returns
    -------
    PhantomCase
        Image (float32 HU), accurate labels (the map, or its variant) and coarse labels, all
        on one grid: the map's own, or the resampled one.
    """
    settings = LabelPhantomSettings() if settings is None else settings
    data, affine = np.asarray(labels.data).astype(np.uint8), labels.affine
    if settings.spacing_mm is not None:
        data, affine = resample_labels(data, affine, settings.spacing_mm)
    if variant:
        data, _ = make_variant(data, affine, rng, settings.variant)
    grid = Volume(data, affine)
    image = simulate_ct(data, affine, rng, draw_appearance(rng, settings.appearance))
    coarse = fill_joint_spaces(data, grid.spacing_mm, settings.coarse_gap_mm)
    if settings.merge_femoral_head_mm > 0:
        coarse = merge_femoral_heads(coarse, grid.spacing_mm, settings.merge_femoral_head_mm)
    return PhantomCase(image=grid.with_data(image), labels=grid, labels_coarse=grid.with_data(coarse),
                       joint_space_mm=settings.coarse_gap_mm)
