"""Implicit anatomy of the hip region in an anatomical frame (mm).

The frame: origin midway between the two hip-joint centres, +x to the patient's left when
:data:`~hipseg.phantom.shapes.LEFT_X_SIGN` is +1 (mirrored otherwise), +y anterior,
+z superior. Sizes are those of a smallish adult at scale 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hipseg.phantom.shapes import (
    LEFT_X_SIGN,
    capsule,
    difference,
    ellipsoid,
    half_space,
    intersection,
    smooth_union,
    sphere,
)

__all__ = [
    "FEMUR_KEEP_ABOVE_MM",
    "AnatomyParameters",
    "draw_anatomy",
    "femur_sdf",
    "hip_sdf",
    "sacrum_sdf",
]

#: Below this z (anatomical frame, mm) the femoral shaft may leave the field of view.
FEMUR_KEEP_ABOVE_MM = -75.0


@dataclass(frozen=True)
class AnatomyParameters:
    """Sizes of one phantom, mm, at scale 1.

    Parameters
    ----------
    head_radius_mm : float
        Radius of the femoral heads.
    hip_half_width_mm : float
        |x| of the hip-joint centres.
    joint_space_mm : float
        Gap between femoral head and acetabulum (in anatomical units; the caller divides the
        drawn world width by the global scale).
    """

    head_radius_mm: float = 23.0
    hip_half_width_mm: float = 88.0
    joint_space_mm: float = 2.5


def draw_anatomy(rng: np.random.Generator, joint_space_mm: float) -> AnatomyParameters:
    """Draw the individual sizes of one phantom (head radius, hip-centre distance)."""
    return AnatomyParameters(
        head_radius_mm=float(rng.uniform(22.0, 25.0)),
        hip_half_width_mm=float(rng.uniform(85.0, 91.0)),
        joint_space_mm=float(joint_space_mm),
    )


def _hip_center(params: AnatomyParameters, side: float) -> np.ndarray:
    return np.array([side * params.hip_half_width_mm, 0.0, 0.0])


def _unit(v: tuple[float, float, float]) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def femur_sdf(points: np.ndarray, params: AnatomyParameters, side: float) -> np.ndarray:
    """Proximal femur: spherical head, anteverted neck, shaft, greater and lesser trochanters.

    ``side`` is the sign of x of the femur's side (+1 or -1); ``points`` shape (..., 3).
    """
    rh = params.head_radius_mm
    head_c = _hip_center(params, side)
    neck_dir = _unit((side * 0.766, -0.2, -0.643))  # head -> neck base; neck-shaft angle ~130 deg
    base = head_c + 1.95 * rh * neck_dir
    shaft_end = base + np.array([-side * 0.12, 0.0, -1.0]) * 420.0
    head = sphere(points, head_c, rh)
    neck = capsule(points, head_c, base, 0.62 * rh)
    shaft = capsule(points, base + np.array([0.0, 0.0, 6.0]), shaft_end, 0.6 * rh)
    greater = ellipsoid(
        points, base + np.array([side * 9.0, -6.0, 14.0]), np.array([12.0, 15.0, 19.0])
    )
    lesser = sphere(points, base + np.array([-side * 9.0, -10.0, -32.0]), 8.0)
    body = smooth_union(smooth_union(neck, shaft, 10.0), greater, 8.0)
    body = smooth_union(body, lesser, 6.0)
    return np.minimum(head, body)


def hip_sdf(points: np.ndarray, params: AnatomyParameters, side: float) -> np.ndarray:
    """Hip bone: ilium wing, acetabular cup, pubis and ischium around an obturator ring.

    ``side`` is the sign of x of the bone's side; ``points`` shape (..., 3).
    """
    rh, gap = params.head_radius_mm, params.joint_space_mm
    hc = _hip_center(params, side)
    x, y, z = points[..., 0] * side, points[..., 1], points[..., 2]  # x > 0: towards this side

    # acetabular cup: a thick shell around the head, open laterally, inferiorly and anteriorly
    opening = _unit((side * 0.66, 0.34, -0.67))
    cup = intersection(
        sphere(points, hc, rh + gap + 11.0),
        half_space(points, hc + 0.3 * rh * opening, opening),
    )
    roof = ellipsoid(
        points, hc + np.array([-side * 14.0, -8.0, 26.0]), np.array([22.0, 28.0, 24.0])
    )

    # ilium: a curved plate x = x_mid(y, z) inside an elliptic outline in the y-z plane
    # The posterior part runs along the sacrum's side, overlapping it by a few mm (the overlap
    # becomes the sacro-iliac joint when the caller cuts the gap), then the wing flares out.
    u = np.clip((y + 90.0) / 124.0, 0.0, 1.0)  # 0 posterior (sacro-iliac), 1 anterior (ASIS)
    v = np.clip(z / 128.0, 0.0, 1.0)  # 0 at the acetabulum, 1 at the crest
    thickness = 7.0 + 15.0 * (1.0 - v) ** 2
    x_post = np.maximum(sacrum_half_width(z) + 0.5 * thickness - 4.0, 36.0)
    x_ant = 72.0 + 48.0 * v**0.8
    s = np.clip((u - 0.15) / 0.85, 0.0, 1.0)
    x_mid = x_post + (x_ant - x_post) * s * s * (3.0 - 2.0 * s)
    outline = (np.sqrt(((y + 28.0) / 62.0) ** 2 + ((z - 60.0) / 68.0) ** 2) - 1.0) * 62.0
    ilium = intersection(np.abs(x - x_mid) - 0.5 * thickness, outline)

    # pubis and ischium around the obturator foramen
    acet_ant = hc + np.array([-side * 18.0, 16.0, -14.0])
    acet_post = hc + np.array([-side * 12.0, -22.0, -18.0])
    sym_top = np.array([side * 4.0, 42.0, -28.0])
    sym_bot = np.array([side * 4.0, 36.0, -50.0])
    tuber = np.array([side * (params.hip_half_width_mm - 33.0), -28.0, -56.0])
    pubis = np.minimum(
        capsule(points, acet_ant, sym_top, 9.0), capsule(points, sym_top, sym_bot, 8.0)
    )
    ramus = capsule(points, sym_bot, tuber, 6.0)
    ischium = smooth_union(
        capsule(points, tuber, acet_post, 11.0),
        ellipsoid(points, tuber, np.array([12.0, 14.0, 16.0])),
        5.0,
    )

    bone = smooth_union(cup, roof, 8.0)
    bone = smooth_union(bone, ilium, 8.0)
    bone = smooth_union(bone, pubis, 6.0)
    bone = smooth_union(bone, ramus, 4.0)
    bone = smooth_union(bone, ischium, 6.0)
    bone = difference(bone, sphere(points, hc, rh + gap))  # the socket
    # pubic symphysis: each side stops half a joint space from the midline
    return np.maximum(bone, 0.5 * gap - x)


_SACRUM_TOP_MM, _SACRUM_APEX_MM = 112.0, -32.0


def sacrum_half_width(z: np.ndarray) -> np.ndarray:
    """Half-width (mm) of the sacrum at height ``z``: wide alae at the top, narrow apex."""
    t = np.clip((_SACRUM_TOP_MM - z) / (_SACRUM_TOP_MM - _SACRUM_APEX_MM), 0.0, 1.0)
    return 10.0 + 45.0 * (1.0 - t**1.6)


def sacrum_sdf(points: np.ndarray, params: AnatomyParameters) -> np.ndarray:
    """Sacrum: a curved wedge at the posterior midline, wide at the top, tapering inferiorly.

    ``points`` shape (..., 3). ``params`` is accepted for symmetry with the other bones.
    """
    del params
    x, y, z = points[..., 0], points[..., 1], points[..., 2]
    z_top, z_apex = _SACRUM_TOP_MM, _SACRUM_APEX_MM
    t = np.clip((z_top - z) / (z_top - z_apex), 0.0, 1.0)
    y_center = -15.0 - 70.0 * t - 15.0 * np.sin(np.pi * t)  # kyphotic curve, concave anteriorly
    half_width = sacrum_half_width(z)
    half_depth = 10.0 + 22.0 * (1.0 - t)
    # a super-ellipse: flat lateral (auricular) sides
    radial = (np.abs(x / half_width) ** 3 + np.abs((y - y_center) / half_depth) ** 3) ** (1.0 / 3.0)
    body = (radial - 1.0) * np.minimum(half_width, half_depth)
    ends = np.maximum(z - z_top, z_apex - z)
    wedge = np.maximum(body, ends)
    canal = np.sqrt((x / 9.0) ** 2 + ((y - (y_center - 0.35 * half_depth)) / 6.0) ** 2) - 1.0
    canal = np.maximum(canal * 6.0, np.maximum(z - z_top - 1.0, 10.0 - z))
    return difference(wedge, canal)


def side_signs() -> dict[str, float]:
    """x sign of each side in the anatomical frame: ``{"left": ..., "right": ...}``."""
    return {"left": LEFT_X_SIGN, "right": -LEFT_X_SIGN}
