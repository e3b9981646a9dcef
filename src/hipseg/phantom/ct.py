"""A CT-like image for a real bone label map on its own grid: tissues painted from one case's
:class:`~hipseg.phantom.appearance.Appearance`, then the scanner's blur and noise.

All geometry is in mm in scanner space (RAS): the body outline grows from the bones, vessels
run along RAS z, the table lies posterior (RAS -y), slice thickness blurs along the array axis
closest to RAS z.
"""

from __future__ import annotations

import edt
import numpy as np
from scipy import ndimage
from skimage.morphology import convex_hull_image

from hipseg.core.volume import array_axis_nearest, voxel_spacing_mm
from hipseg.distances import class_boxes
from hipseg.phantom.appearance import Appearance, draw_appearance
from hipseg.phantom.coarse import nearest_two_bones

__all__ = ["TISSUES", "scanner_effects", "simulate_ct", "tissue_image"]

AIR_HU = -1000.0
#: Tissue ids of :func:`tissue_image`'s tissue map, in the order they are painted.
TISSUES = ("air", "muscle", "fat", "gas", "bladder", "vessel", "table", "joint", "cortical",
           "cancellous", "marrow")
#: Coarse grid step (mm) for the body outline and fat layer: smooth shapes, 30x less work.
BODY_GRID_MM = 3.0
#: Joint spaces (soft tissue between two bones) are voxels whose two nearest bones are at most
#: this far apart (mm, d1 + d2); the widest real hip joint spaces are about 5-6 mm.
JOINT_SPACE_MM = 7.0


def simulate_ct(labels: np.ndarray, affine: np.ndarray, rng: np.random.Generator,
                appearance: Appearance | None = None, *,
                femur_ids: tuple[int, ...] = (1, 2)) -> np.ndarray:
    """A CT-like image in HU on the label map's own grid: :func:`tissue_image`, then
    :func:`scanner_effects`.

    Parameters
    ----------
    labels : ndarray, shape (X, Y, Z), integer
        0 background, every other id a bone.
    affine : ndarray, shape (4, 4)
        Voxel-to-RAS affine, mm.
    rng : numpy.random.Generator
        The only source of randomness (textures, pockets, noise).
    appearance : Appearance, optional
        The case's tissue values; drawn from ``rng`` when omitted.
    femur_ids : tuple of int
        Bones that get a medullary canal and a thick cortex along their shaft.

    Returns
    -------
    ndarray, shape (X, Y, Z), float32
    """
    look = draw_appearance(rng) if appearance is None else appearance
    image, _ = tissue_image(labels, affine, rng, look, femur_ids=femur_ids)
    return scanner_effects(image, affine, rng, look)


def tissue_image(labels: np.ndarray, affine: np.ndarray, rng: np.random.Generator,
                 look: Appearance, *, femur_ids: tuple[int, ...] = (1, 2)
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The tissues' HU before the scanner's blur and noise, and which tissue is where.

    Returns
    -------
    image : ndarray, shape (X, Y, Z), float32
        HU: air -1000 outside the body; bone values mix cortex and cancellous bone by the
        cortex's partial volume in each voxel.
    tissues : ndarray, shape (X, Y, Z), uint8
        Index into :data:`TISSUES`; a bone voxel is ``cortical`` where the cortex fills at
        least half of it.
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise ValueError(f"labels must be 3D, got shape {labels.shape}")
    affine = np.asarray(affine, dtype=np.float64)
    spacing = voxel_spacing_mm(affine)
    bone = labels != 0
    paint = _Painter(labels.shape)

    body, skin_depth_mm, bone_distance_mm = _body(bone, spacing, array_axis_nearest(affine, 2),
                                                  look, rng)
    body |= bone
    soft = body & ~bone
    paint(soft, "muscle", look.muscle_hu)
    streaks = _smooth_noise(labels.shape, spacing, look.intermuscular_fat_mm, rng)
    cut = np.quantile(streaks[::4, ::4, ::4], 1.0 - look.intermuscular_fat_fraction)
    fat_thickness = look.subcutaneous_fat_mm * (1.0 + 0.35 * _smooth_noise(
        labels.shape, spacing, 60.0, rng, unit=True))
    paint(soft & ((skin_depth_mm <= fat_thickness) | (streaks > cut)), "fat", look.fat_hu)
    ras = _ras_grid(affine, labels.shape)
    _add_organs(paint, labels, affine, ras, soft, bone_distance_mm, look, rng)
    if look.table:
        _add_table(paint, body, ras[..., 1], look)
    d1, d2, _ = nearest_two_bones(labels, spacing, JOINT_SPACE_MM)
    paint(soft & (d1 + d2 <= JOINT_SPACE_MM), "joint", look.joint_hu)
    _add_bone(paint, labels, affine, spacing, look, rng, femur_ids)
    return paint.image, paint.tissues


class _Painter:
    """The image and tissue map painted together, later tissues over earlier ones."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.image = np.full(shape, AIR_HU, np.float32)
        self.tissues = np.zeros(shape, np.uint8)

    def __call__(self, mask: np.ndarray, tissue: str, value: float | np.ndarray,
                 box: tuple[slice, ...] = ()) -> None:
        image, tissues = (self.image[box], self.tissues[box]) if box else (self.image,
                                                                           self.tissues)
        image[mask] = value if np.isscalar(value) else value[mask]
        tissues[mask] = TISSUES.index(tissue)


def _body(bone: np.ndarray, spacing: np.ndarray, axis_z: int, look: Appearance,
          rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Body mask, depth below the skin (mm) and distance to the nearest bone (mm).

    The outline is the bones grown by a margin that varies smoothly over the body, then each
    axial slice's convex hull: it follows the pelvis and thighs, not a cylinder, and the pelvic
    cavity holds organs, not air. Worked out on a grid of :data:`BODY_GRID_MM`, brought back
    by linear interpolation.
    """
    step = np.maximum(1, np.round(BODY_GRID_MM / spacing)).astype(int)
    coarse_spacing = tuple(spacing * step)
    coarse_bone = _block_any(bone, step)
    distance = edt.edt(~coarse_bone, anisotropy=coarse_spacing, black_border=False)
    margin = look.body_margin_mm * (1.0 + 0.4 * _smooth_noise(
        coarse_bone.shape, np.asarray(coarse_spacing), 80.0, rng, unit=True))
    body = distance <= margin
    for k in range(body.shape[axis_z]):
        index = tuple(k if a == axis_z else slice(None) for a in range(3))
        if body[index].any():
            body[index] = convex_hull_image(body[index])
    depth = edt.edt(body, anisotropy=coarse_spacing, black_border=True)
    return (_upsample(body.astype(np.float32), step, bone.shape) > 0.5,
            _upsample(depth.astype(np.float32), step, bone.shape),
            _upsample(distance.astype(np.float32), step, bone.shape))


def _add_organs(paint: _Painter, labels: np.ndarray, affine: np.ndarray, ras: np.ndarray,
                soft: np.ndarray, bone_distance_mm: np.ndarray, look: Appearance,
                rng: np.random.Generator) -> None:
    """Bowel gas, bladder and the iliac / femoral vessels, in place, never on bone.

    ``ras``: the RAS mm of every voxel, shape ``(X, Y, Z, 3)``.
    """
    centroids = {int(c): _centroid_mm(labels == c, affine) for c in np.unique(labels) if c}
    bone_mm = _centroid_mm(labels != 0, affine)
    if bone_mm is None:
        return
    away = soft & (bone_distance_mm > 12.0)
    candidates = np.argwhere(away[::4, ::4, ::4]) * 4
    if look.gas_pockets and len(candidates):
        centre_ras = candidates[rng.integers(len(candidates), size=look.gas_pockets)]
        for ijk in centre_ras:
            radius = rng.uniform(*look.gas_radius_mm)
            centre = affine[:3, :3] @ ijk + affine[:3, 3]
            paint(_ellipsoid(ras, centre, radius * rng.uniform(0.5, 1.0, 3)) & away, "gas",
                  look.gas_hu)
    if look.bladder:
        centre = bone_mm + np.array([0.0, rng.uniform(25.0, 45.0), rng.uniform(-15.0, 15.0)])
        radius = look.bladder_radius_mm * rng.uniform(0.7, 1.0, 3)
        paint(_ellipsoid(ras, centre, radius) & soft & (bone_distance_mm > 3.0), "bladder",
              float(rng.uniform(0.0, 25.0)))
    for femur in (1, 2):
        if centroids.get(femur) is None:
            continue
        head = centroids[femur]
        side = np.sign(head[0] - bone_mm[0]) or 1.0
        start = head + np.array([-side * rng.uniform(0.0, 20.0), rng.uniform(20.0, 40.0), 0.0])
        phase, wiggle = rng.uniform(0, 2 * np.pi), rng.uniform(2.0, 10.0)
        line = start[:2] + wiggle * np.stack(
            [np.sin(ras[..., 2] / 40.0 + phase), np.cos(ras[..., 2] / 55.0 + phase)], -1)
        radial = np.linalg.norm(ras[..., :2] - line, axis=-1)
        paint((radial <= look.vessel_radius_mm) & soft & (bone_distance_mm > 2.0), "vessel",
              look.vessel_hu)


def _add_table(paint: _Painter, body: np.ndarray, ras_y: np.ndarray, look: Appearance) -> None:
    """A slab under the body (RAS -y of every voxel: ``ras_y``), a few mm below its lowest
    point, where the scan has room."""
    lowest = float(ras_y[body].min()) if body.any() else float(ras_y.min())
    top = lowest - 3.0
    slab = (ras_y <= top) & (ras_y > top - look.table_mm) & ~body
    paint(slab, "table", look.table_hu)


def _add_bone(paint: _Painter, labels: np.ndarray, affine: np.ndarray, spacing: np.ndarray,
              look: Appearance, rng: np.random.Generator, femur_ids: tuple[int, ...]) -> None:
    """Cortical shell, cancellous bone with texture and, in the femoral shafts, marrow."""
    texture = _smooth_noise(labels.shape, spacing, look.texture_mm, rng) * look.texture_hu
    density = 1.0 + 0.25 * _smooth_noise(labels.shape, spacing, 25.0, rng, unit=True)
    for class_id, box in class_boxes(labels, 1):
        mask = labels[box] == class_id
        # the scan's border cuts bones: no cortex there
        depth = edt.edt(mask, anisotropy=tuple(spacing), black_border=False) - 0.5 * spacing.min()
        cortex = np.full(mask.shape, look.cortex_mm, np.float32)
        marrow = np.zeros(mask.shape, bool)
        if class_id in femur_ids:
            shaft = _shaft_weight(mask, affine, box)
            cortex += (look.shaft_cortex_mm - look.cortex_mm) * shaft
            marrow = (shaft > 0.5) & (depth > cortex + 1.0)
        fraction = np.clip((cortex - depth) / spacing.min() + 0.5, 0.0, 1.0)
        cancellous = look.cancellous_hu * density[box] + texture[box]
        value = cancellous + fraction * (look.cortical_hu - cancellous)
        value[marrow] = look.marrow_hu + 0.3 * texture[box][marrow]
        paint(mask & (fraction < 0.5), "cancellous", value, box)
        paint(mask & (fraction >= 0.5), "cortical", value, box)
        paint(mask & marrow, "marrow", value, box)


def _shaft_weight(mask: np.ndarray, affine: np.ndarray, box: tuple[slice, ...]) -> np.ndarray:
    """0 at the femoral head and neck, rising to 1 along the shaft (60-90 mm below the top)."""
    shifted = affine.copy()
    shifted[:3, 3] = affine[:3, :3] @ np.array([s.start for s in box]) + affine[:3, 3]
    z = _ras_grid(shifted, mask.shape)[..., 2]
    top = float(z[mask].max()) if mask.any() else 0.0
    return np.clip((top - z - 60.0) / 30.0, 0.0, 1.0).astype(np.float32)


def scanner_effects(image: np.ndarray, affine: np.ndarray, rng: np.random.Generator,
                    look: Appearance) -> np.ndarray:
    """The scanner: a Gaussian point spread (FWHM ``blur_fwhm_mm`` in-plane, the slice
    thickness along the array axis nearest RAS z), then Gaussian noise of standard deviation
    ``noise_hu`` correlated over ``noise_grain_mm``.

    Returns
    -------
    ndarray, the shape of ``image``, float32
    """
    spacing = voxel_spacing_mm(affine)
    axis_z = array_axis_nearest(affine, 2)
    sigma_mm = np.full(3, look.blur_fwhm_mm / 2.3548)
    sigma_mm[axis_z] = max(look.slice_thickness_mm, look.blur_fwhm_mm) / 2.3548
    image = ndimage.gaussian_filter(image, sigma=sigma_mm / spacing, truncate=3.0)
    noise = _smooth_noise(image.shape, spacing, look.noise_grain_mm, rng)
    image += noise * np.float32(look.noise_hu)
    return image.astype(np.float32, copy=False)


def _smooth_noise(shape: tuple[int, ...], spacing: np.ndarray, grain_mm: float,
                  rng: np.random.Generator, *, unit: bool = False) -> np.ndarray:
    """Gaussian noise smoothed over ``grain_mm`` and scaled to standard deviation 1, float32.

    Grains of more than a few voxels are drawn on a coarser grid and interpolated up, so the
    cost stays that of the image. ``unit`` clips to [-1, 1] (a bounded modulation field).
    """
    sigma_vox = grain_mm / np.asarray(spacing, np.float64)
    step = np.maximum(1, np.floor(sigma_vox / 2.0)).astype(int)
    coarse_shape = tuple(-(-n // s) + 1 for n, s in zip(shape, step, strict=True))
    field = rng.standard_normal(coarse_shape, dtype=np.float32)
    field = ndimage.gaussian_filter(field, sigma=np.maximum(sigma_vox / step, 0.3), mode="wrap")
    field = _upsample(field, step, tuple(shape))
    field /= max(float(field.std()), 1e-6)
    if unit:
        np.clip(field / 2.0, -1.0, 1.0, out=field)
    return field


def _upsample(coarse: np.ndarray, step: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Linear interpolation of a grid sampled every ``step`` voxels back to ``shape``, float32."""
    if np.all(np.asarray(step) == 1):
        return np.ascontiguousarray(coarse[tuple(slice(0, n) for n in shape)], np.float32)
    axes = [np.arange(n, dtype=np.float32) / s for n, s in zip(shape, step, strict=True)]
    out = coarse.astype(np.float32)
    for axis, positions in enumerate(axes):
        low = np.clip(np.floor(positions).astype(int), 0, out.shape[axis] - 1)
        high = np.clip(low + 1, 0, out.shape[axis] - 1)
        frac = (positions - low).reshape([-1 if a == axis else 1 for a in range(3)])
        out = np.take(out, low, axis=axis) * (1 - frac) + np.take(out, high, axis=axis) * frac
    return out.astype(np.float32, copy=False)


def _block_any(mask: np.ndarray, step: np.ndarray) -> np.ndarray:
    """A coarse mask: true where any voxel of the ``step``-sized block is true."""
    padded_shape = [-(-n // s) * s for n, s in zip(mask.shape, step, strict=True)]
    padded = np.zeros(padded_shape, bool)
    padded[tuple(slice(0, n) for n in mask.shape)] = mask
    blocks = padded.reshape(padded_shape[0] // step[0], step[0], padded_shape[1] // step[1],
                            step[1], padded_shape[2] // step[2], step[2])
    return blocks.any(axis=(1, 3, 5))


def _ras_grid(affine: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """RAS mm of every voxel, shape ``(*shape, 3)``, float32."""
    i, j, k = (np.arange(n, dtype=np.float32) for n in shape)
    a = np.asarray(affine, np.float32)
    return (i[:, None, None, None] * a[:3, 0] + j[None, :, None, None] * a[:3, 1]
            + k[None, None, :, None] * a[:3, 2] + a[:3, 3])


def _centroid_mm(mask: np.ndarray, affine: np.ndarray) -> np.ndarray | None:
    ijk = np.argwhere(mask[::2, ::2, ::2]) * 2
    if len(ijk) == 0:
        return None
    return affine[:3, :3] @ ijk.mean(0) + affine[:3, 3]


def _ellipsoid(ras: np.ndarray, centre: np.ndarray, radii_mm: np.ndarray) -> np.ndarray:
    return np.sum(((ras - centre) / radii_mm) ** 2, axis=-1) <= 1.0

