"""FE model bodies and mesh from a label map: cartilage bonded to its bone, the two layers of a
hip joint a contact pair, bones never sharing a node, volumes kept."""

from __future__ import annotations

import cc3d
import numpy as np
import pytest
from scipy import ndimage

from hipseg.cartilage import cartilage_bodies, hip_joints
from hipseg.core.labels import DEFAULT_LABELS
from hipseg.core.volume import Volume
from hipseg.fe.model import (
    FeSettings,
    _edge_pinch_at_centre,
    _resolve_edge_pinches,
    fe_model,
    restore_volumes,
    volume_keeping_shift,
)
from hipseg.phantom.variants import resample_labels
from hipseg.tetmesh import body_surfaces, tet_volumes_mm3

FEMUR, HIP, HIP_LEFT = 1, 3, 4


def _hip_joint(gap_vox: int = 4, spacing: float = 1.0) -> Volume:
    """A right femur box and a right hip-bone box ``gap_vox`` voxels apart along x."""
    labels = np.zeros((24, 12, 12), np.uint8)
    labels[2:8, 2:10, 2:10] = FEMUR
    labels[8 + gap_vox : 14 + gap_vox, 2:10, 2:10] = HIP
    return Volume(labels, np.diag([spacing, spacing, spacing, 1.0]))


def test_hip_joint_gives_two_bonded_layers_in_contact_with_each_other():
    model = fe_model(_hip_joint(), DEFAULT_LABELS, FeSettings(size_mm=None))
    names = {b.body_id: b for b in model.bodies}
    femoral = next(b for b in model.bodies if b.name == "hip_right_femur_right_cartilage")
    acetabular = next(b for b in model.bodies if b.name == "hip_right_hip_right_cartilage")
    assert names[FEMUR].bonded_to == (femoral.body_id,)
    assert names[HIP].bonded_to == (acetabular.body_id,)
    assert set(model.mesh.contacts) == {(femoral.body_id, acetabular.body_id)}
    # The layers meet face to face across the 8 x 8 section: 2 triangles per voxel face.
    assert len(model.mesh.contacts[(femoral.body_id, acetabular.body_id)]) == 2 * 64
    bone_nodes = [set(model.mesh.tets[model.mesh.body == c].ravel()) for c in (FEMUR, HIP)]
    assert not bone_nodes[0] & bone_nodes[1]
    volumes = tet_volumes_mm3(model.mesh.nodes_mm, model.mesh.tets)
    for body in model.bodies:
        expected = np.count_nonzero(model.body_map.data == body.body_id)
        assert volumes[model.mesh.body == body.body_id].sum() == pytest.approx(expected)
    # Half the 4-voxel gap on each side.
    assert np.count_nonzero(model.body_map.data == femoral.body_id) == 2 * 64
    assert all(s.closed and s.pieces == 1 for s in body_surfaces(model.mesh))


def test_resampling_to_the_element_size_keeps_bone_volumes_and_the_gap():
    source = _hip_joint(gap_vox=6, spacing=0.5)
    model = fe_model(source, DEFAULT_LABELS, FeSettings(size_mm=1.0))
    volumes = tet_volumes_mm3(model.mesh.nodes_mm, model.mesh.tets)
    for bone in (FEMUR, HIP):
        original = np.count_nonzero(source.data == bone) * 0.125
        assert volumes[model.mesh.body == bone].sum() == pytest.approx(original, rel=0.03)
    femur = model.mesh.nodes_mm[np.unique(model.mesh.tets[model.mesh.body == FEMUR])]
    hip = model.mesh.nodes_mm[np.unique(model.mesh.tets[model.mesh.body == HIP])]
    assert hip[:, 0].min() - femur[:, 0].max() == pytest.approx(3.0)


def test_touching_bones_are_refused_before_any_mesh():
    with pytest.raises(ValueError, match="femur_right and hip_right touch"):
        fe_model(_hip_joint(gap_vox=0), DEFAULT_LABELS, FeSettings(size_mm=None))


@pytest.mark.parametrize("bad", [{"size_mm": 0.0}, {"size_mm": float("nan")},
                                 {"max_gap_mm": -1.0}])
def test_bad_settings_are_refused(bad):
    with pytest.raises(ValueError, match="must be a positive number"):
        FeSettings(**bad)


def test_a_body_touching_itself_along_an_edge_gets_the_voxel_that_makes_it_manifold():
    labels = np.zeros((30, 14, 14), np.uint8)
    labels[2:8, 2:12, 2:12] = FEMUR
    labels[8, 5, 5] = labels[9, 6, 5] = FEMUR  # a step that meets only along an edge
    labels[14:20, 2:12, 2:12] = HIP
    model = fe_model(Volume(labels, np.eye(4)), DEFAULT_LABELS, FeSettings(size_mm=None))
    surfaces = {s.body_id: s for s in body_surfaces(model.mesh)}
    assert model.pinch_voxels_changed == 1
    assert surfaces[FEMUR].manifold and surfaces[FEMUR].closed
    assert model.body_map.data[9, 5, 5] == FEMUR or model.body_map.data[8, 6, 5] == FEMUR


def test_a_bone_pinch_next_to_another_bone_is_resolved_by_clearing_never_by_filling():
    labels = np.zeros((14, 12, 10), np.uint8)
    labels[8, 5, 5] = labels[9, 6, 5] = FEMUR  # pinched along the edge between them
    filled_map, changed = _resolve_edge_pinches(labels, (1, 2, 3, 4, 5))
    assert changed == 1 and np.count_nonzero(filled_map == FEMUR) == 3
    # Hip-bone voxels two voxels from the femur: each voxel that would join the pair touches
    # one, so a femur voxel goes instead and the gap only widens.
    labels[10, 4, 5] = labels[7, 7, 5] = HIP
    cleared_map, changed = _resolve_edge_pinches(labels, (1, 2, 3, 4, 5))
    assert changed == 1
    assert np.count_nonzero(cleared_map == FEMUR) == 1
    assert np.array_equal(cleared_map == HIP, labels == HIP)


def _edge_pinches(mask: np.ndarray) -> int:
    """Slow reference: 2 x 2 blocks, in any plane, holding exactly one diagonal pair."""
    count = 0
    for axes in ((0, 1), (0, 2), (1, 2)):
        for index in np.ndindex(*mask.shape):
            if index[axes[0]] + 1 >= mask.shape[axes[0]] or \
                    index[axes[1]] + 1 >= mask.shape[axes[1]]:
                continue
            corner = []
            for da, db in ((0, 0), (1, 1), (1, 0), (0, 1)):
                at = list(index)
                at[axes[0]] += da
                at[axes[1]] += db
                corner.append(bool(mask[tuple(at)]))
            count += corner in ([True, True, False, False], [False, False, True, True])
    return count


def test_a_layer_stepping_between_its_bone_and_the_other_layer_takes_a_bone_voxel():
    # a hip bone rising one voxel per column, the acetabular layer (7) one voxel thick on it,
    # the femoral layer (6) on that: every step pinches the layer, with no background to take
    labels = np.zeros((12, 6, 12), np.uint8)
    for x in range(7):
        top = 2 + x
        labels[x, :, :top] = HIP
        labels[x, :, top] = 7
        labels[x, :, top + 1:] = 6
    before = _edge_pinches(labels == 7)
    assert before > 0
    donors = {7: ((HIP,), (6,)), 6: ((FEMUR,), (7,))}
    out, changed = _resolve_edge_pinches(labels, (1, 2, 3, 4, 5), donors)
    assert changed > 0
    for body in (HIP, 6, 7):
        assert _edge_pinches(out == body) == 0
    assert np.count_nonzero(out == 7) > np.count_nonzero(labels == 7)
    assert np.array_equal(out == 6, labels == 6)  # the bone gave before the other layer


def test_restored_volumes_hit_their_counts_keeping_bodies_whole_and_pinch_free():
    labels = np.zeros((30, 30, 12), np.uint8)
    labels[:, :, :4] = HIP
    labels[3:27, 3:27, 4:6] = 7  # a plate of 1152 voxels on the bone
    labels[10:20, 10:20, 6] = 6  # another body on it, not a partner of 7
    for target in (1000, 1300):
        out, changed = restore_volumes(labels, {7: target}, {7: (HIP,)})
        assert np.count_nonzero(out == 7) == target
        assert changed == {7: target - 1152}
        assert _edge_pinches(out == 7) == 0
        assert cc3d.connected_components(out == 7, connectivity=6).max() == 1
        assert np.array_equal(out == HIP, labels == HIP) and np.array_equal(out == 6, labels == 6)
        grown = (out == 7) & (labels != 7)
        near_other = ndimage.binary_dilation(labels == 6, np.ones((3, 3, 3), bool))
        assert not (grown & near_other).any()  # grows along its bone, never into a new contact
    # removal takes the rim first: the plate's centre is kept
    out, _ = restore_volumes(labels, {7: 1000}, {7: (HIP,)})
    assert (out[8:22, 8:22, 4:6] == 7).all()


def _symphysis(spacing: float = 0.7) -> Volume:
    """Right and left hip-bone boxes 2 voxels apart along x: a plate-like joint space
    1.4 mm thick at 0.7 mm voxels, which a 1 mm grid samples 1 or 2 elements thick."""
    labels = np.zeros((30, 20, 20), np.uint8)
    labels[3:14, 3:17, 3:17] = HIP
    labels[16:27, 3:17, 3:17] = HIP_LEFT
    return Volume(labels, np.diag([spacing, spacing, spacing, 1.0]))


def test_a_thin_cartilage_plate_keeps_its_volume_on_a_coarser_element_grid():
    source = _symphysis()
    model = fe_model(source, DEFAULT_LABELS, FeSettings(size_mm=1.0))
    plate = next(b.body_id for b in model.bodies if b.name == "pubic_symphysis_cartilage")
    volumes = tet_volumes_mm3(model.mesh.nodes_mm, model.mesh.tets)
    expected = model.source_volume_mm3[plate]
    # to the nearest element (1 mm3), and every body a closed manifold in one piece
    assert volumes[model.mesh.body == plate].sum() == pytest.approx(expected, abs=0.5)
    assert all(s.closed and s.manifold and s.pieces == 1 for s in body_surfaces(model.mesh))
    # the grid the shift was chosen over: unshifted, the plate is off by more than 10 %
    cartilage, _ = cartilage_bodies(source.data, np.full(3, 0.7), DEFAULT_LABELS,
                                    hip_joints(DEFAULT_LABELS), max_gap_mm=4.0,
                                    affine=source.affine)
    body_map = np.where(cartilage > 0, cartilage + DEFAULT_LABELS.n_classes - 1, source.data)
    assert np.count_nonzero(body_map == plate) * 0.7**3 == pytest.approx(expected)
    unshifted, _ = resample_labels(body_map, source.affine, (1.0, 1.0, 1.0))
    assert abs(np.count_nonzero(unshifted == plate) / expected - 1) > 0.10


def test_the_chosen_grid_shift_is_the_best_of_all_shifts_resampled_one_by_one():
    rng = np.random.default_rng(3)
    body_map = np.zeros((23, 19, 17), np.uint8)
    for body_id in (6, 7):
        centre = rng.uniform(6, 12, 3)
        radius = rng.uniform(2, 4, 3)
        grid = np.indices(body_map.shape).transpose(1, 2, 3, 0)
        body_map[(((grid - centre) / radius) ** 2).sum(-1) < 1] = body_id
    spacing = np.array([0.7, 0.8, 0.6])
    affine = np.diag([*spacing, 1.0])
    size = (1.0, 1.1, 1.3)

    def worst_error(shift):
        out, _ = resample_labels(body_map, affine, size, shift)
        return max(abs(np.count_nonzero(out == i) * np.prod(size)
                       / (np.count_nonzero(body_map == i) * spacing.prod()) - 1)
                   for i in (6, 7))

    steps = np.arange(8) / 8 - 0.5
    every = [worst_error((a, b, c)) for a in steps for b in steps for c in steps]
    chosen = volume_keeping_shift(body_map, [6, 7], spacing, size)
    assert all(-0.5 <= s < 0.5 for s in chosen)
    assert worst_error(chosen) == pytest.approx(min(every), abs=1e-9)
    assert volume_keeping_shift(body_map, [], spacing, size) == (0.0, 0.0, 0.0)
    # the same spacing: every shift takes the same voxels, so none moves them
    assert volume_keeping_shift(body_map, [6, 7], spacing, tuple(spacing)) == (0.0, 0.0, 0.0)


def test_a_contact_gap_opens_the_hip_layers_by_exactly_that_gap():
    touching = fe_model(_hip_joint(), DEFAULT_LABELS, FeSettings(size_mm=None))
    opened = fe_model(_hip_joint(), DEFAULT_LABELS, FeSettings(size_mm=None, contact_gap_mm=0.2))
    [(femoral, acetabular)] = opened.mesh.contacts
    faces = opened.mesh.contacts[(femoral, acetabular)]
    x = opened.mesh.nodes_mm[:, 0]
    np.testing.assert_allclose(x[faces[:, 1]] - x[faces[:, 0]], 0.2, atol=1e-12)
    before = tet_volumes_mm3(touching.mesh.nodes_mm, touching.mesh.tets)
    after = tet_volumes_mm3(opened.mesh.nodes_mm, opened.mesh.tets)
    assert after.min() > 0
    for layer in (femoral, acetabular):  # each loses 0.1 mm of its 8 x 8 mm contact face
        assert after[opened.mesh.body == layer].sum() == pytest.approx(
            before[touching.mesh.body == layer].sum() - 0.1 * 64)
    for bone in (FEMUR, HIP):
        assert after[opened.mesh.body == bone].sum() == pytest.approx(
            before[touching.mesh.body == bone].sum())


def test_a_contact_gap_of_a_third_of_the_element_size_is_refused():
    with pytest.raises(ValueError, match="below a third of the element size"):
        FeSettings(size_mm=1.0, contact_gap_mm=0.34)
    with pytest.raises(ValueError, match="below a third of the shortest element edge"):
        fe_model(_hip_joint(), DEFAULT_LABELS, FeSettings(size_mm=None, contact_gap_mm=0.4))


def test_the_pinch_check_at_a_window_centre_matches_a_brute_force_one():
    rng = np.random.default_rng(5)
    for _ in range(300):
        window = rng.random((3, 3, 3)) < 0.5
        expected = False
        for axes in ((0, 1), (0, 2), (1, 2)):
            for i in (0, 1):
                for j in (0, 1):  # the 4 blocks of this plane that hold the centre
                    corner = []
                    for da, db in ((0, 0), (1, 1), (1, 0), (0, 1)):
                        at = [1, 1, 1]
                        at[axes[0]], at[axes[1]] = i + da, j + db
                        corner.append(bool(window[tuple(at)]))
                    expected |= corner in ([True, True, False, False], [False, False, True, True])
        assert _edge_pinch_at_centre(window) == expected
