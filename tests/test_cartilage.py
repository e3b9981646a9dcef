"""Cartilage bodies in joint spaces: half the gap on each bone, never on a bone, refused where
bones touch; checked against a brute-force reference."""

from __future__ import annotations

import numpy as np
import pytest

from hipseg.cartilage import Joint, cartilage_bodies, hip_joints
from hipseg.core.labels import DEFAULT_LABELS

FEMUR, HIP = 1, 3
HIP_JOINT = (Joint("hip_right", (FEMUR, HIP), True),)


def _two_boxes(gap_vox: int, shape=(24, 12, 12), axis: int = 0) -> np.ndarray:
    """A femur box and a hip-bone box ``gap_vox`` background voxels apart along ``axis``."""
    labels = np.zeros(shape, np.uint8)
    low = [slice(2, n - 2) for n in shape]
    high = [slice(2, n - 2) for n in shape]
    low[axis] = slice(2, 8)
    high[axis] = slice(8 + gap_vox, 8 + gap_vox + 6)
    labels[tuple(low)] = FEMUR
    labels[tuple(high)] = HIP
    return labels


@pytest.mark.parametrize(("gap_vox", "spacing", "axis"), [(4, (1.0, 1.0, 1.0), 0),
                                                          (6, (0.5, 0.5, 0.5), 0),
                                                          (2, (1.0, 1.0, 2.0), 2)])
def test_two_boxes_a_gap_apart_give_two_layers_of_half_the_gap(gap_vox, spacing, axis):
    labels = _two_boxes(gap_vox, axis=axis)
    bodies, info = cartilage_bodies(labels, spacing, DEFAULT_LABELS, HIP_JOINT, max_gap_mm=6.0)
    femoral, acetabular = info
    assert femoral.bone == FEMUR and acetabular.bone == HIP
    assert not np.any(bodies[labels > 0])
    # Along the gap every column holds gap/2 femoral voxels next to the femur, then gap/2
    # acetabular ones next to the hip bone.
    centre = [n // 2 for n in labels.shape]
    centre[axis] = slice(None)
    line = bodies[tuple(centre)]
    expected = np.zeros_like(line)
    expected[8 : 8 + gap_vox // 2] = femoral.body_id
    expected[8 + gap_vox // 2 : 8 + gap_vox] = acetabular.body_id
    np.testing.assert_array_equal(line, expected)
    assert femoral.n_voxels == acetabular.n_voxels > 0


def test_a_gap_wider_than_the_limit_gets_no_cartilage():
    bodies, info = cartilage_bodies(_two_boxes(8), (1.0, 1.0, 1.0), DEFAULT_LABELS, HIP_JOINT,
                                    max_gap_mm=4.0)
    assert not bodies.any() and [body.n_voxels for body in info] == [0, 0]


def test_touching_bones_are_refused_naming_the_pair_and_where():
    with pytest.raises(ValueError, match=r"femur_right and hip_right touch at \d+ voxels .*RAS"):
        cartilage_bodies(_two_boxes(0), (1.0, 1.0, 1.0), DEFAULT_LABELS, HIP_JOINT,
                         affine=np.eye(4))


def test_a_single_piece_fills_the_space_and_the_narrower_joint_wins():
    labels = _two_boxes(4)
    joints = (Joint("one", (FEMUR, HIP), False),)
    bodies, (piece,) = cartilage_bodies(labels, (1.0, 1.0, 1.0), DEFAULT_LABELS, joints,
                                        max_gap_mm=6.0)
    assert piece.bone is None and np.all(bodies[8:12, 4:8, 4:8] == piece.body_id)


def _reference(labels, spacing, a, b, max_gap_mm):
    """Brute force: every background voxel's distances to the voxel centres of a and b."""
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(labels.shape, spacing)],
                                indexing="ij"), -1)
    points = {c: grid[labels == c] for c in (a, b)}
    out = np.zeros(labels.shape, np.uint8)
    for index in np.argwhere(labels == 0):
        here = grid[tuple(index)]
        d_a, d_b = (np.sqrt(((points[c] - here) ** 2).sum(1)).min() for c in (a, b))
        if d_a + d_b - min(spacing) <= max_gap_mm:
            # Ties (equal within float32 rounding) go to the first bone, as in the module.
            out[tuple(index)] = 1 if d_a <= d_b + 1e-5 else 2
    return out


def test_matches_a_brute_force_reference_on_curved_bones():
    shape, spacing = (20, 18, 16), (1.0, 0.8, 1.2)
    grid = np.stack(np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)],
                                indexing="ij"), -1)
    centre = np.array([10.0, 7.2, 9.6])
    radius = np.linalg.norm(grid - centre, axis=-1)
    labels = np.zeros(shape, np.uint8)
    labels[radius < 5.0] = FEMUR  # a femoral head ...
    labels[(radius > 7.5) & (radius < 10.0) & (grid[..., 0] > 8.0)] = HIP  # ... in a cup
    bodies, _ = cartilage_bodies(labels, spacing, DEFAULT_LABELS, HIP_JOINT, max_gap_mm=3.5)
    reference = _reference(labels, spacing, FEMUR, HIP, 3.5)
    # The fast path keeps each layer's largest piece; the reference has no such step.
    kept = bodies > 0
    assert np.array_equal(bodies[kept], reference[kept])
    assert np.count_nonzero(reference & ~kept) <= 0.02 * np.count_nonzero(reference)


def test_hip_joints_need_hipsegs_class_names():
    assert [j.name for j in hip_joints(DEFAULT_LABELS)] == [
        "hip_right", "hip_left", "sacroiliac_right", "sacroiliac_left", "pubic_symphysis"]
    with pytest.raises(ValueError, match="lacks"):
        hip_joints(DEFAULT_LABELS.__class__(names=("background", "bone")))
