"""Write an FE model: FEBio 4.0 (``.feb``), Abaqus (``.inp``), gmsh (``.msh``), VTU.

``.feb`` holds the whole model: a material and a solid domain per body, the contact pairs
(FEBio ``sliding-elastic``, one per pair of bodies that touch without being bonded), the
sacrum's fixed nodes and a nodal load on each femur's distal end (``hipseg.fe.template``).
Every section but the bulk lists is built with pyfebio, so its names, attributes and defaults
are FEBio 4.0's as pyfebio writes them; nodes, elements and contact faces (millions of lines,
which pyfebio would hold as one Python object each) are streamed into that skeleton in
pyfebio's own line format. The other three formats carry the mesh and each element's body
(meshio): ``.inp`` as one element set per body, ``.msh`` as physical groups, ``.vtu`` as the
cell array ``body``. Every file is written to a temporary name, then renamed.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import meshio
import numpy as np
from pyfebio import boundary, contact, loaddata, loads, material, mesh, meshdomains, output
from pyfebio.model import Model

from hipseg.core.atomic import atomic_path
from hipseg.fe import FORMATS
from hipseg.fe.model import FeModel
from hipseg.fe.template import FeTemplate

__all__ = ["FORMATS", "load_nodes", "write_fe_file"]

#: A placeholder id no real model reaches; its lines in pyfebio's output mark where the bulk
#: lists go.
_MARK = 987654321


def load_nodes(model: FeModel, template: FeTemplate) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The load case's node sets (0-based node indices).

    Returns
    -------
    fixed : ndarray
        Sacrum nodes within ``fixed_depth_mm`` of its most superior node.
    loaded : dict of femur name -> ndarray
        Per femur, its nodes within ``loaded_depth_mm`` of its most inferior node.

    Raises
    ------
    ValueError
        The model has no sacrum or no femur.
    """
    names = {b.body_id: b.name for b in model.bodies}
    superior = model.mesh.nodes_mm[:, 2]  # RAS: +z is superior

    def nodes_of(name: str) -> np.ndarray:
        body_id = next((i for i, n in names.items() if n == name), None)
        if body_id is None:
            return np.zeros(0, np.int64)
        return np.unique(model.mesh.tets[model.mesh.body == body_id])

    sacrum = nodes_of("sacrum")
    if not len(sacrum):
        raise ValueError("the model has no sacrum: the load case fixes it")
    fixed = sacrum[superior[sacrum] >= superior[sacrum].max() - template.load.fixed_depth_mm]
    loaded = {}
    for name in ("femur_right", "femur_left"):
        femur = nodes_of(name)
        if len(femur):
            low = superior[femur].min()
            loaded[name] = femur[superior[femur] <= low + template.load.loaded_depth_mm]
    if not loaded:
        raise ValueError("the model has no femur: the load case loads them")
    return fixed, loaded


def write_fe_file(model: FeModel, template: FeTemplate, path: Path) -> None:
    """Write ``model`` in the format its suffix names (one of :data:`FORMATS`)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"{path}: unknown FE format {fmt!r}; choose one of {list(FORMATS)}")
    with atomic_path(path) as tmp:
        if fmt == "feb":
            _write_feb(model, template, tmp)
        else:
            _write_meshio(model, tmp, fmt)


def _write_meshio(model: FeModel, path: Path, fmt: str) -> None:
    tet_mesh = model.mesh
    names = {b.body_id: b.name for b in model.bodies}
    body = tet_mesh.body.astype(np.int32)
    cells = [("tetra", tet_mesh.tets)]
    if fmt == "inp":
        sets = {names[i]: [np.flatnonzero(body == i)] for i in names}
        out = meshio.Mesh(tet_mesh.nodes_mm, cells, cell_sets=sets)
        meshio.write(path, out, file_format="abaqus")
    elif fmt == "msh":
        out = meshio.Mesh(tet_mesh.nodes_mm, cells,
                          cell_data={"gmsh:physical": [body], "gmsh:geometrical": [body]},
                          field_data={names[i]: np.array([i, 3]) for i in names})
        meshio.write(path, out, file_format="gmsh22", binary=False)
    else:
        out = meshio.Mesh(tet_mesh.nodes_mm, cells, cell_data={"body": [body]})
        meshio.write(path, out, file_format="vtu")


def _pair_name(model: FeModel, pair: tuple[int, int]) -> str:
    names = {b.body_id: b.name for b in model.bodies}
    return f"{names[pair[0]]}__{names[pair[1]]}"


def feb_skeleton(model: FeModel, template: FeTemplate):
    """The pyfebio model of everything but the bulk lists: each node list, element list and
    contact surface holds one placeholder item (id ``_MARK``)."""
    fixed, loaded = load_nodes(model, template)
    root = Model()
    root.mesh_.add_node_domain(mesh.Nodes(name="nodes", all_nodes=[
        mesh.Node(id=_MARK, text="0.0,0.0,0.0")]))
    for number, body in enumerate(model.bodies, start=1):
        chosen = template.bone if body.kind == "bone" else template.cartilage
        kind = material.IsotropicElastic if chosen.model == "isotropic elastic" \
            else material.NeoHookean
        root.material_.add_material(kind(
            name=body.name, id=number,
            E=material.MaterialParameter(text=chosen.youngs_modulus_mpa),
            v=material.MaterialParameter(text=chosen.poisson_ratio)))
        root.mesh_.add_element_domain(mesh.Elements(name=body.name, type="tet4", all_elements=[
            mesh.Tet4Element(id=_MARK, text="1,1,1,1")]))
        root.meshdomains_.add_solid_domain(meshdomains.SolidDomain(name=body.name,
                                                                   mat=body.name))
    for pair in model.mesh.contacts:
        name = _pair_name(model, pair)
        for side in ("primary", "secondary"):
            root.mesh_.surfaces.append(mesh.Surface(name=f"{name}__{side}", all_tri3=[
                mesh.Tri3Element(id=_MARK, text="1,1,1")]))
        root.mesh_.surface_pairs.append(mesh.SurfacePair(
            name=name, primary=f"{name}__primary", secondary=f"{name}__secondary"))
        root.contact_.all_contact_interfaces.append(contact.SlidingElastic(
            name=name, surface_pair=name, auto_penalty=1, two_pass=1))
    root.mesh_.node_sets.append(mesh.NodeSet(name="sacrum_fixed", text=_ids(fixed)))
    root.boundary_.all_bcs.append(boundary.BCZeroDisplacement(
        node_set="sacrum_fixed", x_dof=1, y_dof=1, z_dof=1))
    root.loaddata_.add_load_curve(loaddata.LoadCurve(id=1, points=loaddata.CurvePoints(
        points=["0,0", "1,1"])))
    for name, nodes in loaded.items():
        root.mesh_.node_sets.append(mesh.NodeSet(name=f"{name}_loaded", text=_ids(nodes)))
        root.loads_.add_nodal_load(loads.NodalLoad(
            node_set=f"{name}_loaded", dof="z",
            scale=loads.Scale(lc=1, text=template.load.femur_force_n / len(nodes))))
    plot = output.OutputPlotfile()
    for variable in ("displacement", "stress"):
        plot.add_var(output.Var(type=variable))
    root.output_.add_plotfile(plot)
    return root


def _ids(nodes: np.ndarray) -> str:
    return ",".join(str(int(i) + 1) for i in nodes)


def _write_feb(model: FeModel, template: FeTemplate, path: Path) -> None:
    skeleton = feb_skeleton(model, template).to_xml(
        pretty_print=True, encoding="ISO-8859-1", xml_declaration=True, skip_empty=True)
    lines = skeleton.decode("ISO-8859-1").splitlines(keepends=True)
    bulk = _bulk_lists(model)
    with open(path, "w", encoding="ISO-8859-1", newline="") as out:
        for line in lines:
            if f'id="{_MARK}"' not in line:
                out.write(line)
                continue
            indent = line[: len(line) - len(line.lstrip())]
            out.writelines(indent + chunk for chunk in next(bulk))


def _bulk_lists(model: FeModel) -> Iterator[Iterator[str]]:
    """The bulk lines of each placeholder, in the order the skeleton lists them: nodes, the
    elements of each body, the two surfaces of each contact pair."""
    tet_mesh = model.mesh
    yield _lines("node", np.arange(1, len(tet_mesh.nodes_mm) + 1), tet_mesh.nodes_mm, "%r")
    first = 1
    for body in model.bodies:
        members = tet_mesh.tets[tet_mesh.body == body.body_id]
        yield _lines("elem", np.arange(first, first + len(members)), members + 1, "%d")
        first += len(members)
    for faces in tet_mesh.contacts.values():
        for side in (0, 1):
            yield _lines("tri3", np.arange(1, len(faces) + 1), faces[:, side] + 1, "%d")


def _lines(tag: str, ids: np.ndarray, values: np.ndarray, number: str,
           chunk: int = 65536) -> Iterator[str]:
    """``<tag id="i">a,b,c</tag>`` lines, a block of ``chunk`` rows at a time."""
    for start in range(0, len(ids), chunk):
        block_ids = ids[start:start + chunk]
        block = values[start:start + chunk]
        if number == "%r":
            text = [",".join(repr(float(v)) for v in row) for row in block]
        else:
            text = [",".join(map(str, row)) for row in block.tolist()]
        yield "".join(f'<{tag} id="{i}">{t}</{tag}>\n' for i, t in zip(block_ids.tolist(), text,
                                                                        strict=True))
