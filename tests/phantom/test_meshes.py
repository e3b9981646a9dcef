"""Mesh phantom: classification by name, exact voxelisation, sides, gaps, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from hipseg.core.errors import InputError
from hipseg.core.volume import apply_affine
from hipseg.phantom import make_case_from_meshes
from hipseg.phantom.meshes import classify_mesh_name
from hipseg.phantom.voxelize import voxelize_closed_mesh
from shared_data import HIP_MESHES
from synthetic import touching_pairs

MESH_DIR = HIP_MESHES
REAL_MESHES = [MESH_DIR / name for name in ("lfemur.stl", "lpelvis.stl", "sacrum.stl")]
needs_meshes = pytest.mark.skipif(
    not all(p.is_file() for p in REAL_MESHES),
    reason=f"the shared CarGen hip meshes are not at {MESH_DIR}",
)
FEMUR_R, FEMUR_L, HIP_R, HIP_L, SACRUM = 1, 2, 3, 4, 5




def centroid_mm(volume, class_id: int) -> np.ndarray:
    return apply_affine(volume.affine, np.argwhere(volume.data == class_id).mean(axis=0))


@pytest.fixture(scope="module")
def real_case():
    if not all(p.is_file() for p in REAL_MESHES):
        pytest.skip(f"the shared CarGen hip meshes are not at {MESH_DIR}")
    return make_case_from_meshes(
        REAL_MESHES, np.random.default_rng(0), spacing_mm=(3.0, 3.0, 3.0), mirror=True
    )


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("lfemur.stl", ("femur", "left")),
        ("lpelvis.stl", ("hip", "left")),
        ("sacrum.stl", ("sacrum", None)),
        ("femur_right.stl", ("femur", "right")),
        ("r_hip.obj", ("hip", "right")),
        ("Right-Pelvis.STL", ("hip", "right")),
    ],
)
def test_classify_mesh_name(name, expected):
    assert classify_mesh_name(Path(name)) == expected


@pytest.mark.parametrize("name", ["skull.stl", "femur.stl", "left_right_femur.stl"])
def test_unclassifiable_names_raise(name):
    with pytest.raises(InputError) as info:
        classify_mesh_name(Path(name))
    assert info.value.path == Path(name)


@needs_meshes
def test_real_meshes_mirrored_give_five_classes_on_their_sides(real_case):
    labels = real_case.labels
    assert set(np.unique(labels.data)) == {0, 1, 2, 3, 4, 5}
    assert np.all(np.diag(labels.affine)[:3] == 3.0)
    sacrum_x = centroid_mm(labels, SACRUM)[0]
    for left, right in ((FEMUR_L, FEMUR_R), (HIP_L, HIP_R)):
        # RAS+: the patient's right at +x
        assert centroid_mm(labels, right)[0] > sacrum_x > centroid_mm(labels, left)[0]
    # mirror images: same size on both sides
    counts = np.bincount(labels.data.ravel(), minlength=6)
    assert abs(counts[FEMUR_L] - counts[FEMUR_R]) < 0.03 * counts[FEMUR_L]


@needs_meshes
def test_real_femur_volume_matches_the_mesh(real_case):
    mesh_volume = trimesh.load(MESH_DIR / "lfemur.stl").volume
    voxel_volume = (real_case.labels.data == FEMUR_L).sum() * 27.0
    assert abs(voxel_volume - mesh_volume) < 0.10 * mesh_volume


@needs_meshes
def test_real_meshes_keep_the_joint_gap_and_coarse_closes_it(real_case):
    assert touching_pairs(real_case.labels.data) == set()
    coarse_pairs = touching_pairs(real_case.labels_coarse.data)
    assert (FEMUR_L, HIP_L) in coarse_pairs and (FEMUR_R, HIP_R) in coarse_pairs
    fg = real_case.labels.data != 0
    np.testing.assert_array_equal(real_case.labels_coarse.data[fg], real_case.labels.data[fg])
    assert 3.0 <= real_case.joint_space_mm < 10.0
    image = real_case.image.data
    assert image.dtype == np.float32 and image[0, 0, 0] < -900


def test_icospheres_become_a_case(tmp_path):
    femur = trimesh.creation.icosphere(subdivisions=3, radius=12.0)
    femur.apply_translation([30.0, 0.0, 0.0])  # RAS+: the patient's right
    sacrum = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    femur.export(tmp_path / "rfemur.stl")
    sacrum.export(tmp_path / "sacrum.stl")
    case = make_case_from_meshes(
        [tmp_path / "rfemur.stl", tmp_path / "sacrum.stl"],
        np.random.default_rng(1),
        spacing_mm=(2.0, 2.0, 2.0),
        mirror=True,
        margin_mm=8.0,
    )
    labels = case.labels
    assert set(np.unique(labels.data)) == {0, FEMUR_R, FEMUR_L, SACRUM}
    np.testing.assert_allclose(centroid_mm(labels, FEMUR_R), [30.0, 0.0, 0.0], atol=0.5)
    np.testing.assert_allclose(centroid_mm(labels, FEMUR_L), [-30.0, 0.0, 0.0], atol=0.5)
    # the grid starts at the bounding box of all bones, the mirrored femur included, less the margin
    np.testing.assert_allclose(labels.affine[:3, 3], [-30.0 - 12.0 - 8.0, -20.0, -20.0], atol=0.2)
    assert abs((labels.data == FEMUR_R).sum() * 8.0 - femur.volume) < 0.1 * femur.volume


def test_voxelization_matches_a_convex_reference():
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=9.3)
    mesh.apply_transform(trimesh.transformations.rotation_matrix(0.3, [1, 2, 3]))
    mesh.apply_translation([0.21, -0.37, 0.13])
    spacing = np.array([0.7, 0.9, 1.1])
    origin = np.array([-11.0, -11.0, -11.0])
    shape = (33, 26, 21)
    inside = voxelize_closed_mesh(mesh.vertices, mesh.faces, origin, spacing, shape)
    centres = np.argwhere(np.ones(shape, bool)) * spacing + origin
    # convex: inside iff behind every face plane
    plane_dist = np.einsum(
        "pfk,fk->pf", centres[:, None, :] - mesh.triangles[None, :, 0, :], mesh.face_normals
    )
    reference = (plane_dist.max(axis=1) < 0).reshape(shape)
    ambiguous = (np.abs(plane_dist).min(axis=1) < 1e-9).reshape(shape)
    assert inside.sum() > 1000
    np.testing.assert_array_equal(inside[~ambiguous], reference[~ambiguous])


def test_voxelization_through_vertices_and_edges_is_exact():
    # a cube whose vertices and edges lie exactly on the grid columns
    mesh = trimesh.creation.box(extents=[4.0, 4.0, 4.0])
    inside = voxelize_closed_mesh(
        mesh.vertices, mesh.faces, np.array([-3.0, -3.0, -2.5]), np.ones(3), (7, 7, 6)
    )
    expected = np.zeros((7, 7, 6), bool)
    expected[1:5, 1:5, 1:5] = True  # columns on the faces: x, y in [-2, 2), the tie-break's rule
    np.testing.assert_array_equal(inside, expected)


def test_missing_unreadable_and_open_meshes_raise(tmp_path):
    sacrum = tmp_path / "sacrum.stl"
    trimesh.creation.icosphere(radius=5.0).export(sacrum)
    with pytest.raises(InputError, match="not found") as info:
        make_case_from_meshes([tmp_path / "lfemur.stl", sacrum], np.random.default_rng(0))
    assert info.value.path == tmp_path / "lfemur.stl"

    broken = tmp_path / "lfemur.stl"
    broken.write_bytes(b"this is not a mesh")
    with pytest.raises(InputError) as info:
        make_case_from_meshes([broken, sacrum], np.random.default_rng(0))
    assert info.value.path == broken

    open_mesh = trimesh.creation.icosphere(radius=5.0)
    open_mesh.update_faces(np.arange(len(open_mesh.faces)) > 0)
    open_path = tmp_path / "pelvis_left.stl"
    open_mesh.export(open_path)
    with pytest.raises(InputError, match="watertight") as info:
        make_case_from_meshes([open_path, sacrum], np.random.default_rng(0))
    assert info.value.path == open_path

    with pytest.raises(InputError) as info:
        make_case_from_meshes([tmp_path / "kidney.stl"], np.random.default_rng(0))
    assert info.value.path.name == "kidney.stl"


def test_mirror_needs_a_sacrum(tmp_path):
    femur = tmp_path / "lfemur.stl"
    trimesh.creation.icosphere(radius=5.0).export(femur)
    with pytest.raises(InputError, match="sacrum"):
        make_case_from_meshes([femur], np.random.default_rng(0), mirror=True)
