"""How a simulated CT looks: the ranges of every tissue and scanner value, and one case's draw.

Each tissue's HU and size is drawn uniformly from a range of :class:`AppearanceRanges`; the
literature value each range is built around is in its field's comment and in
docs/phantom.md. Ranges are deliberately wide (dose, contrast, age, body habitus), so a model
trained on them does not learn one generator's look. :mod:`hipseg.phantom.ct` paints them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CORTEX_OVER_CANCELLOUS_HU", "Appearance", "AppearanceRanges", "draw_appearance"]

#: A case's cortex is at least this much denser (HU) than its densest cancellous bone (the
#: drawn value x1.25, the top of :mod:`hipseg.phantom.ct`'s density field): the ranges
#: overlap, and a cortex darker than the bone it encloses is not seen on CT.
CORTEX_OVER_CANCELLOUS_HU = 100.0

@dataclass(frozen=True)
class AppearanceRanges:
    """Uniform ranges (low, high) from which each case's appearance is drawn.

    HU are Hounsfield units, lengths mm, probabilities in [0, 1]. The comment on each field
    gives the literature value the range is built around (see docs/phantom.md).
    """

    # Cortical bone on clinical CT: dense cortex 1000-1900 HU, lower in thin shells through
    # partial volume (Treece et al. 2010, Med Image Anal 14:276), and in elderly, osteoporotic
    # cortex; the low end also stands in for scanners and reconstructions that render bone
    # dimmer.
    cortical_hu: tuple[float, float] = (500.0, 1600.0)
    # Pelvic cortex 0.5-4 mm (Anderson et al. 2005, J Biomech Eng 127:364); proximal femur
    # cortex 0.3-3 mm away from the shaft (Treece et al. 2010).
    cortex_mm: tuple[float, float] = (0.6, 3.0)
    # Femoral diaphysis cortex 4-7 mm (Treece et al. 2010).
    shaft_cortex_mm: tuple[float, float] = (3.0, 7.0)
    # Trabecular bone 100-300 HU in healthy adults, below about 110 HU in osteoporosis
    # (Pickhardt et al. 2013, Ann Intern Med 158:588); the dense trabeculae of the femoral
    # head and the subchondral acetabulum reach 300-450 HU.
    cancellous_hu: tuple[float, float] = (60.0, 450.0)
    # Standard deviation of the trabecular texture, HU, and its grain, mm (trabeculae and
    # spaces 0.1-1 mm, seen through a ~1 mm point spread function; a grain of 0.1 mm is
    # voxel-to-voxel speckle, as a sharp bone kernel renders it).
    texture_hu: tuple[float, float] = (10.0, 120.0)
    texture_mm: tuple[float, float] = (0.1, 2.0)
    # Medullary canal of the femoral shaft: yellow marrow -100 to -50 HU, red marrow 0-60 HU.
    marrow_hu: tuple[float, float] = (-90.0, 50.0)
    # Skeletal muscle 40-60 HU, lower with fatty infiltration, down to 10-30 HU in the elderly
    # (Goodpaster et al. 2000, J Appl Physiol 89:104); the -29..150 HU muscle window of
    # Mitsiopoulos et al. 1998.
    muscle_hu: tuple[float, float] = (10.0, 70.0)
    # Fraction of the muscle that is intermuscular fat, and the grain of the fat streaks, mm.
    intermuscular_fat_fraction: tuple[float, float] = (0.02, 0.25)
    intermuscular_fat_mm: tuple[float, float] = (3.0, 8.0)
    # Adipose tissue -190..-30 HU, about -100 HU typical (Yoshizumi et al. 1999, Radiology
    # 211:283).
    fat_hu: tuple[float, float] = (-130.0, -60.0)
    # Subcutaneous fat over the hip and buttock, mm (lean to obese).
    subcutaneous_fat_mm: tuple[float, float] = (4.0, 45.0)
    # Soft tissue from the bones to the skin, mm; varied along the body by a smooth field.
    body_margin_mm: tuple[float, float] = (25.0, 90.0)
    # Joint space (cartilage about 80-100 HU, synovial fluid 0-20 HU, on unenhanced CT).
    joint_hu: tuple[float, float] = (10.0, 110.0)
    # Bowel gas pockets: their count, radius (mm) and HU (air -1000, with partial volume).
    gas_pockets: tuple[int, int] = (0, 12)
    gas_radius_mm: tuple[float, float] = (4.0, 22.0)
    gas_hu: tuple[float, float] = (-1000.0, -800.0)
    # Iliac / femoral vessels: radius (mm), unenhanced blood 35-50 HU, arterial contrast
    # 150-400 HU (CT angiography aims at 250-350 HU), and how often a case is enhanced.
    vessel_radius_mm: tuple[float, float] = (3.0, 6.5)
    vessel_plain_hu: tuple[float, float] = (30.0, 55.0)
    vessel_enhanced_hu: tuple[float, float] = (150.0, 400.0)
    vessel_enhanced_probability: float = 0.4
    # Urinary bladder (water-like, 0-25 HU): how often present, radius mm.
    bladder_probability: float = 0.6
    bladder_radius_mm: tuple[float, float] = (15.0, 45.0)
    # Patient table below the body: how often in the field of view, thickness mm, HU.
    table_probability: float = 0.5
    table_mm: tuple[float, float] = (5.0, 20.0)
    table_hu: tuple[float, float] = (-200.0, 300.0)
    # Scanner: in-plane point spread FWHM 0.5-2.5 mm (sharp bone kernels to smooth soft-tissue
    # kernels at a large field of view: body CT's MTF10 of 4-8 lp/cm is a FWHM of about
    # 0.8-2 mm), slice thickness 0.6-3 mm, noise standard deviation 3-80 HU (high dose to
    # low dose in a large patient) with a grain of 0.1-1.2 mm (white to correlated by the
    # reconstruction kernel).
    blur_fwhm_mm: tuple[float, float] = (0.5, 2.5)
    slice_thickness_mm: tuple[float, float] = (0.6, 3.0)
    noise_hu: tuple[float, float] = (3.0, 80.0)
    noise_grain_mm: tuple[float, float] = (0.1, 1.2)


@dataclass(frozen=True)
class Appearance:
    """One case's drawn values (the fields of :class:`AppearanceRanges`, one value each).

    ``vessel_hu`` is the drawn plain or enhanced value; ``bladder`` and ``table`` say whether
    the case has them.
    """

    cortical_hu: float
    cortex_mm: float
    shaft_cortex_mm: float
    cancellous_hu: float
    texture_hu: float
    texture_mm: float
    marrow_hu: float
    muscle_hu: float
    intermuscular_fat_fraction: float
    intermuscular_fat_mm: float
    fat_hu: float
    subcutaneous_fat_mm: float
    body_margin_mm: float
    joint_hu: float
    gas_pockets: int
    gas_radius_mm: tuple[float, float]
    gas_hu: float
    vessel_radius_mm: float
    vessel_hu: float
    bladder: bool
    bladder_radius_mm: float
    table: bool
    table_mm: float
    table_hu: float
    blur_fwhm_mm: float
    slice_thickness_mm: float
    noise_hu: float
    noise_grain_mm: float


def draw_appearance(rng: np.random.Generator,
                    ranges: AppearanceRanges | None = None) -> Appearance:
    """Draw one case's appearance, every value uniformly within its range."""
    r = AppearanceRanges() if ranges is None else ranges

    def u(pair: tuple[float, float]) -> float:
        return float(rng.uniform(pair[0], pair[1]))

    enhanced = bool(rng.random() < r.vessel_enhanced_probability)
    cortical_hu, cortex_mm, shaft_cortex_mm, cancellous_hu = (
        u(r.cortical_hu), u(r.cortex_mm), u(r.shaft_cortex_mm), u(r.cancellous_hu))
    return Appearance(
        cortical_hu=max(cortical_hu, 1.25 * cancellous_hu + CORTEX_OVER_CANCELLOUS_HU),
        cortex_mm=cortex_mm, shaft_cortex_mm=shaft_cortex_mm, cancellous_hu=cancellous_hu,
        texture_hu=u(r.texture_hu), texture_mm=u(r.texture_mm), marrow_hu=u(r.marrow_hu),
        muscle_hu=u(r.muscle_hu), intermuscular_fat_fraction=u(r.intermuscular_fat_fraction),
        intermuscular_fat_mm=u(r.intermuscular_fat_mm), fat_hu=u(r.fat_hu),
        subcutaneous_fat_mm=u(r.subcutaneous_fat_mm), body_margin_mm=u(r.body_margin_mm),
        joint_hu=u(r.joint_hu),
        gas_pockets=int(rng.integers(r.gas_pockets[0], r.gas_pockets[1] + 1)),
        gas_radius_mm=r.gas_radius_mm, gas_hu=u(r.gas_hu),
        vessel_radius_mm=u(r.vessel_radius_mm),
        vessel_hu=u(r.vessel_enhanced_hu if enhanced else r.vessel_plain_hu),
        bladder=bool(rng.random() < r.bladder_probability),
        bladder_radius_mm=u(r.bladder_radius_mm),
        table=bool(rng.random() < r.table_probability), table_mm=u(r.table_mm),
        table_hu=u(r.table_hu), blur_fwhm_mm=u(r.blur_fwhm_mm),
        slice_thickness_mm=u(r.slice_thickness_mm), noise_hu=u(r.noise_hu),
        noise_grain_mm=u(r.noise_grain_mm),
    )


