"""Kuhn tetrahedral meshes of body maps: conforming, exact volumes, good angles, contact pairs
with separate nodes, bones that touch refused; checked against slow references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from hipseg.tetmesh import (
    body_surfaces,
    dihedral_angles_deg,
    lattice_tet_mesh,
    radius_ratios,
    tet_volumes_mm3,
)


def _oblique_affine() -> np.ndarray:
    """Anisotropic voxels, rotated, with a mirrored axis (negative determinant)."""
    angle = np.radians(30)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0],
                         [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([-0.8, 0.7, 1.2])
    affine[:3, 3] = (10.0, -5.0, 3.0)
    return affine


def _blob(shape=(7, 6, 5), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random(shape) < 0.55).astype(np.uint8)


def _all_faces(tets: np.ndarray) -> np.ndarray:
    return np.sort(tets[:, [[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]]].reshape(-1, 3), axis=1)


def test_one_voxel_is_six_kuhn_tetrahedra_with_45_60_90_degree_angles():
    mesh = lattice_tet_mesh(np.ones((1, 1, 1), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]))
    assert mesh.tets.shape == (6, 4) and len(mesh.nodes_mm) == 8
    volumes = tet_volumes_mm3(mesh.nodes_mm, mesh.tets)
    np.testing.assert_allclose(volumes, 8.0 / 6.0)
    angles = np.round(dihedral_angles_deg(mesh.nodes_mm, mesh.tets), 6)
    assert set(np.unique(angles)) == {45.0, 60.0, 90.0}
    # The cube's corners sit half a voxel around the voxel centre (index 0 -> 0 mm).
    np.testing.assert_allclose(mesh.nodes_mm.min(0), -1.0)
    np.testing.assert_allclose(mesh.nodes_mm.max(0), 1.0)


def test_random_map_is_conforming_with_exact_positive_volumes_on_an_oblique_grid():
    labels = _blob()
    affine = _oblique_affine()
    mesh = lattice_tet_mesh(labels, affine)
    volumes = tet_volumes_mm3(mesh.nodes_mm, mesh.tets)
    assert np.all(volumes > 0)
    voxel_mm3 = abs(np.linalg.det(affine[:3, :3]))
    np.testing.assert_allclose(volumes.sum(), labels.sum() * voxel_mm3, rtol=1e-12)
    # Slow reference: the exposed voxel faces (to background or outside), 2 triangles each.
    padded = np.pad(labels, 1)
    exposed = 0
    for i, j, k in np.argwhere(padded > 0):
        for d in itertools.product((-1, 0, 1), repeat=3):
            if sum(map(abs, d)) == 1 and padded[i + d[0], j + d[1], k + d[2]] == 0:
                exposed += 1
    _, counts = np.unique(_all_faces(mesh.tets), axis=0, return_counts=True)
    assert counts.max() == 2  # conforming: a face is shared by at most two elements
    assert np.count_nonzero(counts == 1) == 2 * exposed


def test_bonded_bodies_share_nodes_and_contact_pairs_get_their_own():
    labels = np.zeros((5, 4, 4), np.uint8)
    labels[0:2, 0:3, 0:3] = 1
    labels[2:4, 0:3, 0:3] = 2
    affine = _oblique_affine()
    bonded = lattice_tet_mesh(labels, affine, bonded=[(1, 2)])
    contact = lattice_tet_mesh(labels, affine)
    # Slow reference: corners used by both bodies.
    corners = {1: set(), 2: set()}
    for i, j, k in np.argwhere(labels > 0):
        for d in itertools.product((0, 1), repeat=3):
            corners[int(labels[i, j, k])].add((i + d[0], j + d[1], k + d[2]))
    shared = len(corners[1] & corners[2])
    assert shared == 16
    assert len(contact.nodes_mm) - len(bonded.nodes_mm) == shared
    assert bonded.contacts == {}
    faces = contact.contacts[(1, 2)]
    assert faces.shape == (2 * 9, 2, 3)  # the 3 x 3 voxel faces between them, 2 triangles each
    np.testing.assert_allclose(contact.nodes_mm[faces[:, 0]], contact.nodes_mm[faces[:, 1, ::-1]])
    for side, body in ((0, 1), (1, 2)):
        element_faces = {tuple(f) for f in _all_faces(contact.tets[contact.body == body])}
        assert all(tuple(sorted(f)) in element_faces for f in faces[:, side])
        # Each side's normal points out of its own body.
        p = contact.nodes_mm[faces[:, side]]
        normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        inward = contact.nodes_mm[contact.tets[contact.body == body]].mean((0, 1))
        assert np.all(np.einsum("ij,ij->i", normal, p.mean(1) - inward) > 0)


def test_bones_that_touch_are_refused_naming_the_pair_and_where():
    labels = np.zeros((4, 3, 3), np.uint8)
    labels[0, 0, 0] = 1
    labels[1, 1, 1] = 3  # only a corner in common
    with pytest.raises(ValueError, match=r"bodies 1 and 3 are bones that touch at 1 cube corners"
                                         r".*RAS \(0\.5, 0\.5, 0\.5\) mm"):
        lattice_tet_mesh(labels, np.eye(4), bones=[1, 3])
    assert len(lattice_tet_mesh(labels, np.eye(4), bones=[1]).tets) == 12


def test_body_surfaces_tell_holes_edges_and_pieces():
    labels = np.zeros((3, 3, 3), np.uint8)
    labels[0, 0, 0] = labels[1, 1, 0] = 1  # an edge in common: closed, not manifold
    labels[2, 2, 2] = 2
    labels[1, 1, 1] = 2  # a corner in common with the other voxel of body 2: two pieces
    surfaces = {s.body_id: s for s in body_surfaces(lattice_tet_mesh(labels, np.eye(4)))}
    assert surfaces[1].closed and not surfaces[1].manifold and surfaces[1].pieces == 2
    assert surfaces[2].pieces == 2 and surfaces[2].n_faces == 2 * 12
    one = body_surfaces(lattice_tet_mesh(_blob() * 0 + 1, np.eye(4)))[0]
    assert one.closed and one.manifold and one.pieces == 1
    assert one.volume_mm3 == pytest.approx(7 * 6 * 5)


def test_quality_measures_of_a_regular_and_a_flat_tetrahedron():
    regular = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], float)
    tet = np.array([[0, 1, 2, 3]])
    np.testing.assert_allclose(dihedral_angles_deg(regular, tet), np.degrees(np.arccos(1 / 3)))
    np.testing.assert_allclose(radius_ratios(regular, tet), 1.0)
    flat = regular.copy()
    flat[:, 2] *= 1e-3
    assert radius_ratios(flat, tet)[0] < 0.01
    assert dihedral_angles_deg(flat, tet).min() < 1.0


def test_bad_maps_are_refused():
    with pytest.raises(ValueError, match="no labelled voxel"):
        lattice_tet_mesh(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    with pytest.raises(ValueError, match="singular"):
        lattice_tet_mesh(np.ones((2, 2, 2), np.uint8), np.diag([1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="at most 31"):
        lattice_tet_mesh(np.arange(1, 33, dtype=np.uint8).reshape(2, 4, 4), np.eye(4))
