"""Bone meshes: closed, outward, in scanner mm, apart; QC, names, LPS and file round trips."""

from __future__ import annotations

import json

import meshio
import numpy as np
import pytest
import trimesh

from hipseg.core.labels import DEFAULT_LABELS, LabelTable
from hipseg.core.volume import Volume, apply_affine
from hipseg.io import write_labels
from hipseg.mesh import (
    MESH_FORMATS,
    bone_distance,
    label_surface_meshes,
    libhip_bone_names,
    mesh_qc,
    self_intersections,
    write_meshes,
)
from hipseg.postprocess import enforce_min_gap
from hipseg.qc.meshing import mesh_files
from shared_data import HIP_MESHES
from synthetic import oblique_affine


def _ball(affine: np.ndarray, radius_mm: float = 12.0, class_id: int = 2):
    shape = (40, 44, 36)
    center_vox = np.array([19.3, 21.1, 17.6])
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    grid = np.indices(shape).transpose(1, 2, 3, 0)
    labels = np.zeros(shape, np.uint8)
    labels[np.linalg.norm((grid - center_vox) * spacing, axis=-1) <= radius_mm] = class_id
    return labels, center_vox


def _two_boxes(gap_vox: int = 1) -> np.ndarray:
    labels = np.zeros((34, 20, 20), np.uint8)
    labels[4:15, 4:16, 4:16] = 2  # femur_left
    labels[15 + gap_vox:28, 4:16, 4:16] = 4  # hip_left
    return labels


@pytest.mark.parametrize("flips", [(False, False, False), (False, True, False)])
def test_ball_mesh_is_closed_outward_and_in_scanner_mm(flips):
    affine = oblique_affine(flips=flips)
    labels, center_vox = _ball(affine)
    meshes = label_surface_meshes(labels, affine, DEFAULT_LABELS)
    assert list(meshes) == ["lfemur"]
    mesh = meshes["lfemur"]
    assert np.sign(np.linalg.det(affine[:3, :3])) == (-1 if any(flips) else 1)
    assert mesh.is_watertight and mesh.is_winding_consistent
    assert mesh.volume > 0  # outward, whatever the affine's handedness
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 12.0**3, rel=0.02)
    np.testing.assert_allclose(mesh.center_mass, apply_affine(affine, center_vox), atol=0.15)
    # Every vertex maps back onto an edge between an inside and an outside voxel centre.
    ijk = apply_affine(np.linalg.inv(affine), mesh.vertices)
    inside_lo = labels[tuple(np.floor(ijk + 1e-6).astype(int).T)] != 0
    inside_hi = labels[tuple(np.ceil(ijk - 1e-6).astype(int).T)] != 0
    assert np.all(inside_lo != inside_hi)


def test_mesh_closes_at_the_array_border():
    labels = np.zeros((8, 8, 8), np.uint8)
    labels[:, :4, :] = 5
    mesh = label_surface_meshes(labels, np.eye(4), DEFAULT_LABELS)["sacrum"]
    assert mesh.is_watertight and mesh.volume == pytest.approx(8 * 4 * 8, rel=0.15)


def test_bones_one_voxel_apart_do_not_intersect_and_qc_reports_the_gap():
    spacing = (0.7, 1.1, 1.3)
    meshes = label_surface_meshes(_two_boxes(), np.diag([*spacing, 1.0]), DEFAULT_LABELS)
    qc = mesh_qc(meshes)
    assert qc["distance_method"] == "fcl exact"
    (pair,) = qc["pairs"]
    assert pair["bones"] == ["lfemur", "lpelvis"]
    assert pair["distance_mm"] == pytest.approx(spacing[0], abs=1e-6)  # faces at +-0.5 voxel
    assert pair["point_b_mm"][0] - pair["point_a_mm"][0] == pytest.approx(spacing[0], abs=1e-6)
    for row in qc["bones"].values():
        assert row["watertight"] and row["manifold"] and row["outward"]
        assert not row["self_intersecting"] and row["n_degenerate_faces"] == 0
    assert qc["bones"]["lfemur"]["volume_ml"] == pytest.approx(
        np.prod(spacing) * 11 * 12 * 12 / 1000, rel=0.05)


@pytest.mark.parametrize("min_gap_mm", [None, 0.5, 5.0])
def test_smoothing_never_brings_bones_below_the_gap(min_gap_mm, rng):
    affine = oblique_affine(spacing_mm=(1.0, 0.8, 1.2))
    labels = np.zeros((30, 30, 30), np.uint8)
    grid = np.indices(labels.shape).transpose(1, 2, 3, 0)
    labels[np.linalg.norm(grid - [10, 15, 15], axis=-1) <= 7] = 2
    labels[np.linalg.norm(grid - [22, 15, 15], axis=-1) <= 7] = 4  # overlaps: gap enforced
    labels, _ = enforce_min_gap(labels, np.linalg.norm(affine[:3, :3], axis=0))
    plain = label_surface_meshes(labels, affine, DEFAULT_LABELS)
    smooth = label_surface_meshes(labels, affine, DEFAULT_LABELS, smoothing_iterations=20,
                                  min_gap_mm=min_gap_mm)
    d_plain = bone_distance(plain["lfemur"], plain["lpelvis"])[0]
    d_smooth = bone_distance(smooth["lfemur"], smooth["lpelvis"])[0]
    target = 0.4 if min_gap_mm is None else min_gap_mm
    assert d_plain > 0
    assert d_smooth >= min(target, d_plain) - 1e-9
    assert 0 <= smooth["lfemur"].metadata["smoothing_iterations"] <= 20
    assert all(m.is_watertight and m.volume > 0 for m in smooth.values())


def test_names_follow_libhip():
    assert libhip_bone_names(DEFAULT_LABELS) == {1: "rfemur", 2: "lfemur", 3: "rpelvis",
                                                 4: "lpelvis", 5: "sacrum"}
    with pytest.raises(ValueError, match="no LibHip mesh name.*'tibia'"):
        libhip_bone_names(LabelTable(names=("background", "tibia")))


def test_lps_negates_x_and_y():
    affine = oblique_affine()
    labels, _ = _ball(affine, radius_mm=8.0)
    ras = label_surface_meshes(labels, affine, DEFAULT_LABELS)["lfemur"]
    lps = label_surface_meshes(labels, affine, DEFAULT_LABELS, lps=True)["lfemur"]
    np.testing.assert_allclose(lps.vertices, ras.vertices * [-1, -1, 1])
    assert lps.volume == pytest.approx(ras.volume) and lps.volume > 0


@pytest.mark.parametrize("fmt", MESH_FORMATS)
def test_written_meshes_round_trip(fmt, tmp_path):
    meshes = label_surface_meshes(_two_boxes(), oblique_affine(), DEFAULT_LABELS)
    paths = write_meshes(meshes, tmp_path, "case_007", fmt)
    assert [p.name for p in paths] == [f"case_007_lfemur_mm.{fmt}", f"case_007_lpelvis_mm.{fmt}"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in paths)
    for path, mesh in zip(paths, meshes.values(), strict=True):
        if fmt == "vtk":
            loaded = meshio.read(path)
            vertices, n_faces = loaded.points, len(loaded.cells_dict["triangle"])
        else:
            loaded = trimesh.load(path, process=True)
            vertices, n_faces = loaded.vertices, len(loaded.faces)
        assert len(vertices) == len(mesh.vertices) and n_faces == len(mesh.faces)
        np.testing.assert_allclose(vertices.min(axis=0), mesh.bounds[0], atol=1e-4)
        np.testing.assert_allclose(vertices.max(axis=0), mesh.bounds[1], atol=1e-4)


def test_self_intersections_found():
    sphere = trimesh.creation.icosphere(subdivisions=2)
    assert self_intersections(sphere) == 0
    shifted = sphere.copy()
    shifted.apply_translation([0.5, 0.0, 0.0])
    assert self_intersections(trimesh.util.concatenate([sphere, shifted])) > 0


def test_bone_distance_is_exact_between_boxes_and_zero_when_they_overlap():
    a = trimesh.creation.box(extents=[2.0, 2.0, 2.0])
    b = a.copy()
    b.apply_translation([2.7, 0.4, -0.3])  # faces 0.7 mm apart along x, overlapping in y, z
    distance, point_a, point_b = bone_distance(a, b)
    assert distance == pytest.approx(0.7, abs=1e-9)
    assert np.linalg.norm(point_b - point_a) == pytest.approx(0.7, abs=1e-9)
    b.apply_translation([-1.0, 0.0, 0.0])
    assert bone_distance(a, b)[0] == 0.0


def test_mesh_files_writes_meshes_and_qc(tmp_path):
    labels = _two_boxes(gap_vox=0)  # touching: the workflow must cut a gap first
    path = tmp_path / "case_001.nii.gz"
    write_labels(path, labels, Volume(labels, oblique_affine()))
    (qc,) = mesh_files([path], tmp_path / "out", DEFAULT_LABELS, fmt="ply")
    assert qc["gap_voxels_changed"] == 144  # one 12 x 12 layer of hip_left
    assert qc["pairs"][0]["distance_mm"] > 0
    written = json.loads((tmp_path / "out" / "case_001_mesh_qc.json").read_text())
    assert written["case"] == "case_001" and written["files"] == [
        "case_001_lfemur_mm.ply", "case_001_lpelvis_mm.ply"]


needs_meshes = pytest.mark.skipif(not (HIP_MESHES / "lfemur.stl").is_file(),
                                  reason=f"the shared CarGen hip meshes are not at {HIP_MESHES}")


@needs_meshes
def test_real_bones_at_3mm_are_closed_and_apart():
    from hipseg.phantom import make_case_from_meshes

    case = make_case_from_meshes(sorted(HIP_MESHES.glob("*.stl")), np.random.default_rng(0),
                                 spacing_mm=(3.0, 3.0, 3.0))
    labels, _ = enforce_min_gap(case.labels.data, case.labels.spacing_mm)
    qc = mesh_qc(label_surface_meshes(labels, case.labels.affine, DEFAULT_LABELS))
    assert set(qc["bones"]) == {"lfemur", "lpelvis", "sacrum"}
    for row in qc["bones"].values():
        assert row["watertight"] and row["manifold"] and row["outward"]
        assert not row["self_intersecting"]
    distances = {tuple(p["bones"]): p["distance_mm"] for p in qc["pairs"]}
    assert distances[("lfemur", "lpelvis")] > 0 and distances[("lpelvis", "sacrum")] > 0


def _symmetric_hausdorff_mm(a: trimesh.Trimesh, b: trimesh.Trimesh, samples: int = 40_000) -> float:
    """Hausdorff distance between two surfaces from dense samples of both (a slight overestimate
    of the surface-to-surface value, by at most the sample spacing)."""
    from scipy.spatial import cKDTree

    points_a = np.vstack([a.vertices, trimesh.sample.sample_surface(a, samples, seed=0)[0]])
    points_b = np.vstack([b.vertices, trimesh.sample.sample_surface(b, samples, seed=1)[0]])
    return max(cKDTree(points_b).query(points_a)[0].max(), cKDTree(points_a).query(points_b)[0].max())


@needs_meshes
def test_real_bones_round_trip_mesh_to_labels_to_mesh_within_one_voxel():
    from hipseg.phantom import make_case_from_meshes

    spacing = 1.5
    case = make_case_from_meshes(sorted(HIP_MESHES.glob("*.stl")), np.random.default_rng(0),
                                 spacing_mm=(spacing,) * 3)
    labels, _ = enforce_min_gap(case.labels.data, case.labels.spacing_mm)
    meshes = label_surface_meshes(labels, case.labels.affine, DEFAULT_LABELS)
    assert set(meshes) == {"lfemur", "lpelvis", "sacrum"}
    for bone, mesh in meshes.items():
        original = trimesh.load(HIP_MESHES / f"{bone}.stl")
        assert _symmetric_hausdorff_mm(original, mesh) <= spacing, bone
