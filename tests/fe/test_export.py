"""FE export: the streamed .feb is what pyfebio writes for the same model, and every format
reads back to the same elements and body tags."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import meshio
import numpy as np
import pytest
from pyfebio import mesh as febio_mesh

from hipseg.core.labels import DEFAULT_LABELS
from hipseg.core.volume import Volume
from hipseg.fe.export import feb_skeleton, load_nodes, write_fe_file
from hipseg.fe.model import FeSettings, fe_model
from hipseg.fe.template import FeTemplate


@pytest.fixture(scope="module")
def model():
    """Right femur, right hip bone and sacrum, with a hip joint and a sacro-iliac joint."""
    labels = np.zeros((30, 14, 20), np.uint8)
    labels[2:8, 2:12, 2:10] = 1
    labels[12:18, 2:12, 2:14] = 3
    labels[22:28, 2:12, 6:18] = 5
    affine = np.diag([0.9, 0.8, 1.1, 1.0])
    affine[:3, 3] = (-12.0, 4.0, 30.0)
    return fe_model(Volume(labels, affine), DEFAULT_LABELS, FeSettings(size_mm=None))


def _pyfebio_reference(model, template):
    """The same model built item by item with pyfebio's own objects (the slow reference)."""
    root = feb_skeleton(model, template)
    nodes = model.mesh.nodes_mm
    root.mesh_.nodes[0].all_nodes = [
        febio_mesh.Node(id=i + 1, text=",".join(repr(float(v)) for v in p))
        for i, p in enumerate(nodes)]
    first = 1
    for domain, body in zip(root.mesh_.elements, model.bodies, strict=True):
        tets = model.mesh.tets[model.mesh.body == body.body_id] + 1
        domain.all_elements = [febio_mesh.Tet4Element(id=first + i, text=",".join(map(str, t)))
                               for i, t in enumerate(tets.tolist())]
        first += len(tets)
    surfaces = iter(root.mesh_.surfaces)
    for faces in model.mesh.contacts.values():
        for side in (0, 1):
            next(surfaces).all_tri3 = [febio_mesh.Tri3Element(id=i + 1, text=",".join(map(str, f)))
                                       for i, f in enumerate((faces[:, side] + 1).tolist())]
    return root


def _tree(element: ET.Element) -> tuple:
    return (element.tag, tuple(sorted(element.attrib.items())), (element.text or "").strip(),
            tuple(_tree(child) for child in element))


def test_streamed_feb_equals_pyfebio_writing_the_whole_model(model, tmp_path):
    template = FeTemplate()
    write_fe_file(model, template, tmp_path / "model.feb")
    _pyfebio_reference(model, template).save(tmp_path / "reference.feb")
    ours = ET.parse(tmp_path / "model.feb").getroot()
    reference = ET.parse(tmp_path / "reference.feb").getroot()
    assert _tree(ours) == _tree(reference)
    assert ours.get("version") == "4.0"


def test_feb_keeps_bodies_materials_contacts_and_the_load(model, tmp_path):
    template = FeTemplate()
    write_fe_file(model, template, tmp_path / "model.feb")
    root = ET.parse(tmp_path / "model.feb").getroot()
    nodes = np.array([[float(v) for v in n.text.split(",")]
                      for n in root.iter("node")])
    np.testing.assert_array_equal(nodes, model.mesh.nodes_mm)
    domains = {e.get("name"): e for e in root.find("Mesh").iter("Elements")}
    assert list(domains) == [b.name for b in model.bodies]
    for body in model.bodies:
        tets = np.array([[int(v) for v in e.text.split(",")] for e in domains[body.name]]) - 1
        np.testing.assert_array_equal(tets, model.mesh.tets[model.mesh.body == body.body_id])
    materials = {m.get("name"): m.get("type") for m in root.find("Material")}
    assert materials["femur_right"] == "isotropic elastic"
    assert materials["hip_right_femur_right_cartilage"] == "neo-Hookean"
    assert [c.get("type") for c in root.find("Contact")] == ["sliding-elastic"]
    fixed, loaded = load_nodes(model, template)
    total = sum(float(load.find("scale").text) * len(loaded["femur_right"])
                for load in root.find("Loads"))
    assert total == pytest.approx(template.load.femur_force_n)
    assert len(fixed) > 0


@pytest.mark.parametrize("fmt", ["inp", "msh", "vtu"])
def test_elements_and_body_tags_survive_the_round_trip(model, tmp_path, fmt):
    path = tmp_path / f"model.{fmt}"
    write_fe_file(model, FeTemplate(), path)
    back = meshio.read(path)
    np.testing.assert_allclose(back.points, model.mesh.nodes_mm, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(back.cells_dict["tetra"], model.mesh.tets)
    if fmt == "inp":
        tags = np.zeros(len(model.mesh.tets), int)
        names = {b.name: b.body_id for b in model.bodies}
        for name, (members,) in back.cell_sets.items():
            tags[members] = names[name]
    else:
        tags = back.cell_data["gmsh:physical" if fmt == "msh" else "body"][0]
    np.testing.assert_array_equal(tags, model.mesh.body)


def test_unknown_format_is_refused_and_writes_nothing(model, tmp_path):
    with pytest.raises(ValueError, match="unknown FE format 'stl'"):
        write_fe_file(model, FeTemplate(), tmp_path / "model.stl")
    assert list(tmp_path.iterdir()) == []
