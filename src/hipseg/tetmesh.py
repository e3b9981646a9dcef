"""Conforming multi-body tetrahedral meshes straight from a body map (issue 14, item 2).

Every labelled voxel becomes the 6 tetrahedra of the Kuhn (Freudenthal) split of its cube: all
6 share the cube's main diagonal, and neighbouring cubes split their common face along the same
diagonal, so the mesh is conforming across every voxel face and between bodies. The elements
are as good as the grid: on an isotropic grid every dihedral angle is 45, 60 or 90 degrees, no
element can be inverted or flat, and each body's volume is exactly its voxel count times the
voxel volume. The price is a staircase surface at the voxel size.

Bodies that are bonded (a bone and the cartilage on it) share the nodes of their common faces.
Bodies that are not (the two cartilage layers of a hip joint, a bone and another joint's
cartilage) get their own copy of every node they have in common, so their interface stays two
surfaces, the contact pairs of an FE model. Two bones must never share a node: the gap between
them has to survive, and a touching pair is refused naming the pair and where.

Why not fTetWild or tetgen on marching-cubes surfaces: measured in docs/fe.md, fTetWild on a
whole hip map passed 6-12 GB, and on one joint lost 96 % of the femoral cartilage's volume;
tetgen gave 0.2-degree slivers and fails on touching multi-body surfaces.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from hipseg.core.volume import apply_affine
from hipseg.labelmap import check_labels

__all__ = ["BodySurface", "TetMesh", "body_surfaces", "dihedral_angles_deg", "lattice_tet_mesh",
           "open_contacts", "radius_ratios", "tet_volumes_mm3"]

#: Corner offsets of the 6 Kuhn tetrahedra of a unit cube: (0,0,0) -> +e_a -> +e_b -> (1,1,1)
#: for each order (a, b, c) of the axes. The signed volume in index space is the order's parity.
_KUHN = []
_KUHN_PARITY = []
for _order in itertools.permutations(range(3)):
    _corner = np.zeros(3, int)
    _path = [_corner.copy()]
    for _axis in _order:
        _corner[_axis] += 1
        _path.append(_corner.copy())
    _KUHN.append(_path)
    _KUHN_PARITY.append(np.sign(np.linalg.det(np.eye(3)[list(_order)])))
_KUHN = np.array(_KUHN)  # (6, 4, 3)
_KUHN_PARITY = np.array(_KUHN_PARITY)

#: The 6 edges of a tetrahedron as (i, j) and the two vertices (k, l) off it.
_EDGES = ((0, 1, 2, 3), (0, 2, 1, 3), (0, 3, 1, 2), (1, 2, 0, 3), (1, 3, 0, 2), (2, 3, 0, 1))
#: The faces of a tetrahedron, each listed so its normal points outwards for a positive element.
_FACES = np.array([[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]])


@dataclass(frozen=True)
class TetMesh:
    """A tetrahedral mesh whose elements are tagged with the body they belong to.

    Attributes
    ----------
    nodes_mm : ndarray, shape (N, 3), float64
        Node positions in scanner (RAS) mm.
    tets : ndarray, shape (M, 4), int64
        Node indices of each element, positively oriented (positive signed volume).
    body : ndarray, shape (M,), int32
        The body id of each element (its voxel's value in the body map).
    contacts : dict of (int, int) -> ndarray, shape (F, 2, 3), int64
        For each pair of bodies ``(a, b)``, ``a < b``, that touch without being bonded, the
        faces they share: ``[:, 0]`` with ``a``'s nodes, ``[:, 1]`` with ``b``'s (the same
        positions, separate nodes), each ordered so its normal points out of its own body.
    """

    nodes_mm: np.ndarray
    tets: np.ndarray
    body: np.ndarray
    contacts: dict[tuple[int, int], np.ndarray]


@dataclass(frozen=True)
class BodySurface:
    """The boundary of one body of a :class:`TetMesh`.

    ``closed``: every boundary edge is used by an even number of boundary faces (no hole);
    ``manifold``: by exactly two (no edge where the body touches itself along a line);
    ``pieces``: face-connected pieces of its elements.
    """

    body_id: int
    n_tets: int
    n_faces: int
    volume_mm3: float
    closed: bool
    manifold: bool
    pieces: int


def lattice_tet_mesh(body_map: np.ndarray, affine: np.ndarray,
                     bonded: Iterable[tuple[int, int]] = (),
                     bones: Iterable[int] = ()) -> TetMesh:
    """The Kuhn tetrahedral mesh of every labelled voxel of ``body_map``.

    Parameters
    ----------
    body_map : ndarray, shape (X, Y, Z), integer
        0 outside every body, the body id inside (at most 31 different ids).
    affine : ndarray, shape (4, 4)
        Voxel index to RAS mm; voxel centres are at integer indices, so cube corners are at
        half-integers.
    bonded : iterable of (int, int)
        Pairs of body ids glued together (shared nodes). Every other touching pair gets
        separate nodes and is listed in :attr:`TetMesh.contacts`.
    bones : iterable of int
        Body ids that must not share a node with each other (their gap must survive).

    Returns
    -------
    TetMesh

    Raises
    ------
    ValueError
        A bad map or affine, more than 31 bodies, or two ``bones`` sharing a cube corner
        (naming the pair, the number of corners and one of them in voxels and mm).
    """
    body_map = check_labels(body_map)
    bonded = [(int(a), int(b)) for a, b in bonded]
    affine = np.asarray(affine, np.float64)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)):
        raise ValueError(f"affine must be a finite 4x4 matrix, got shape {affine.shape}")
    determinant = np.linalg.det(affine[:3, :3])
    if abs(determinant) < 1e-12:
        raise ValueError("affine is singular: the voxels have no volume")
    ids = np.unique(body_map)
    ids = ids[ids > 0]
    if len(ids) > 31:
        raise ValueError(f"body map has {len(ids)} bodies; at most 31 are supported")
    if not len(ids):
        raise ValueError("body map has no labelled voxel: nothing to mesh")
    # Work in the bodies' box (plus the corner layer) so the corner arrays stay small.
    occupied = np.argwhere(body_map > 0)
    low, high = occupied.min(0), occupied.max(0) + 1
    crop = body_map[low[0]:high[0], low[1]:high[1], low[2]:high[2]]
    index_of = np.zeros(int(ids.max()) + 1, np.int64)
    index_of[ids] = np.arange(len(ids))
    corner_shape = tuple(int(n) + 1 for n in crop.shape)
    masks = _corner_masks(crop, index_of)
    bone_set = {int(b) for b in bones}
    _refuse_touching_bones(masks, ids, bone_set, low, affine)

    voxels = np.argwhere(crop > 0)
    voxel_body = crop[tuple(voxels.T)].astype(np.int64)
    # Corner ids of every element's 4 vertices: (V, 6, 4). A corner of voxel v is v + k with
    # k in {0, 1}^3, inside the corner grid, so its flat id is v's plus k's: no (V, 6, 4, 3)
    # coordinate array (1 GB for 10 M elements) is built.
    strides = np.array([corner_shape[1] * corner_shape[2], corner_shape[2], 1], np.int64)
    corner_id = (np.ravel_multi_index(tuple(voxels.T), corner_shape)[:, None, None]
                 + (_KUHN @ strides)[None])
    flip = _KUHN_PARITY * np.sign(determinant) < 0
    corner_id[:, flip] = corner_id[:, flip][..., [0, 2, 1, 3]]
    corner_id = corner_id.reshape(-1, 4)
    tet_body = np.repeat(voxel_body, 6)

    groups = _node_groups(masks.ravel()[corner_id], index_of[tet_body][:, None], ids,
                          bonded)
    keys = corner_id * len(ids) + groups
    unique_keys, node_of = np.unique(keys.ravel(), return_inverse=True)
    tets = node_of.reshape(-1, 4).astype(np.int64)
    node_corner = np.stack(np.unravel_index(unique_keys // len(ids), corner_shape), 1)
    nodes_mm = apply_affine(affine, (node_corner + low - 0.5).astype(np.float64))
    contacts = _contact_faces(crop, masks, index_of, ids, bonded, unique_keys,
                              float(np.sign(determinant)))
    return TetMesh(nodes_mm, tets, tet_body.astype(np.int32), contacts)


def _corner_masks(crop: np.ndarray, index_of: np.ndarray) -> np.ndarray:
    """Per cube corner, a bit per body among the (up to 8) voxels around it."""
    bits = np.where(crop > 0, np.left_shift(np.uint32(1), index_of[crop].astype(np.uint32)),
                    np.uint32(0)).astype(np.uint32)
    padded = np.pad(bits, 1)
    nx, ny, nz = (n + 1 for n in crop.shape)
    masks = np.zeros((nx, ny, nz), np.uint32)
    for di, dj, dk in itertools.product((0, 1), repeat=3):
        masks |= padded[di:di + nx, dj:dj + ny, dk:dk + nz]
    return masks


def _refuse_touching_bones(masks: np.ndarray, ids: np.ndarray, bones: set[int],
                           low: np.ndarray, affine: np.ndarray) -> None:
    present = [i for i, body in enumerate(ids) if int(body) in bones]
    for a, b in itertools.combinations(present, 2):
        both = (np.uint32(1) << np.uint32(a)) | (np.uint32(1) << np.uint32(b))
        touching = np.argwhere((masks & both) == both)
        if len(touching):
            where = touching[len(touching) // 2] + low - 0.5
            x, y, z = apply_affine(affine, where[None])[0]
            raise ValueError(
                f"bodies {int(ids[a])} and {int(ids[b])} are bones that touch at "
                f"{len(touching)} cube corners (e.g. voxel corner {tuple(float(v) for v in where)}, "
                f"RAS ({x:.1f}, {y:.1f}, {z:.1f}) mm): their gap would not survive; "
                "post-process the map first (the gap guarantee)")


def _node_groups(vertex_masks: np.ndarray, vertex_body_index: np.ndarray, ids: np.ndarray,
                 bonded: Iterable[tuple[int, int]]) -> np.ndarray:
    """For each element vertex, the smallest body index of the bonded group its body belongs
    to among the bodies at that corner: vertices of one group share a node."""
    position = {int(body): i for i, body in enumerate(ids)}
    links = [(position[a], position[b]) for a, b in bonded if a in position and b in position]
    unique_masks, mask_index = np.unique(vertex_masks, return_inverse=True)
    table = np.tile(np.arange(len(ids)), (len(unique_masks), 1))
    for row, mask in enumerate(unique_masks):
        present = [i for i in range(len(ids)) if int(mask) >> i & 1]
        group = {i: i for i in present}
        changed = True
        while changed:  # until every member names its group's smallest index
            changed = False
            for a, b in links:
                if a in group and b in group and group[a] != group[b]:
                    group[a] = group[b] = min(group[a], group[b])
                    changed = True
        for i in present:
            table[row, i] = group[i]
    mask_index = mask_index.reshape(vertex_masks.shape)
    return table[mask_index, np.broadcast_to(vertex_body_index, vertex_masks.shape)]


def _contact_faces(crop: np.ndarray, masks: np.ndarray, index_of: np.ndarray, ids: np.ndarray,
                   bonded: Iterable[tuple[int, int]], node_keys: np.ndarray, orientation: float
                   ) -> dict[tuple[int, int], np.ndarray]:
    """The voxel faces between two bodies that are not bonded, split along the Kuhn diagonal
    into the same two triangles the elements have there, with each side's own nodes."""
    glued = {frozenset((int(a), int(b))) for a, b in bonded}
    corner_shape = masks.shape
    found: dict[tuple[int, int], list[np.ndarray]] = {}
    for axis in range(3):
        lower = [slice(None)] * 3
        upper = [slice(None)] * 3
        lower[axis], upper[axis] = slice(None, -1), slice(1, None)
        a, b = crop[tuple(lower)], crop[tuple(upper)]
        where = np.argwhere((a > 0) & (b > 0) & (a != b))
        if not len(where):
            continue
        body_a = a[tuple(where.T)].astype(np.int64)
        body_b = b[tuple(where.T)].astype(np.int64)
        keep = np.array([frozenset((int(x), int(y))) not in glued
                         for x, y in zip(body_a, body_b, strict=True)], bool)
        where, body_a, body_b = where[keep], body_a[keep], body_b[keep]
        p, q = (d for d in range(3) if d != axis)
        e = np.eye(3, dtype=np.int64)
        start = where + e[axis]  # the face's lowest corner
        # Seen from the lower voxel the face's outward normal is +axis; (p, q, axis) is a
        # right-handed order exactly when p follows axis cyclically.
        right_handed = (axis + 1) % 3 == p
        triangles = [[start, start + e[p], start + e[p] + e[q]],
                     [start, start + e[p] + e[q], start + e[q]]]
        for corners in triangles:
            if not right_handed:
                corners = corners[::-1]
            if orientation < 0:
                corners = corners[::-1]
            corner_id = np.stack([np.ravel_multi_index(tuple(c.T), corner_shape)
                                  for c in corners], axis=1)
            sides = []
            for body in (body_a, body_b):
                groups = _node_groups(masks.ravel()[corner_id], index_of[body][:, None], ids,
                                      bonded)
                sides.append(np.searchsorted(node_keys, corner_id * len(ids) + groups))
            # The upper voxel sees the face from the other side: reversed order.
            lower_nodes, upper_nodes = sides[0], sides[1][:, ::-1]
            swap = body_a > body_b
            first = np.where(swap[:, None], upper_nodes, lower_nodes)
            second = np.where(swap[:, None], lower_nodes, upper_nodes)
            small, large = np.minimum(body_a, body_b), np.maximum(body_a, body_b)
            for pair in set(zip(small.tolist(), large.tolist(), strict=True)):
                chosen = (small == pair[0]) & (large == pair[1])
                found.setdefault(pair, []).append(np.stack([first[chosen], second[chosen]], 1))
    return {pair: np.concatenate(parts) for pair, parts in sorted(found.items())}


def open_contacts(mesh: TetMesh, gap_mm: float) -> TetMesh:
    """The mesh with every contact pair opened to a gap of ``gap_mm``.

    Each side's contact nodes move ``gap_mm / 2`` into their own body, along the mean outward
    normal of that side's contact faces at the node (normalised), so the faces of a pair end
    ``gap_mm`` apart where they are flat. This is LibHip's "with gap" variant, for solvers
    that need a start free of penetration; with touching contact surfaces (``gap_mm = 0``)
    the mesh is returned as it is. The faces keep their nodes and orientation.

    Parameters
    ----------
    mesh : TetMesh
    gap_mm : float
        At least 0 and less than a third of the shortest element edge, so that no element can
        turn inside out (the smallest height of a Kuhn tetrahedron is 0.71 edges).

    Raises
    ------
    ValueError
        ``gap_mm`` out of range, or an element whose volume is no longer positive.
    """
    if gap_mm == 0.0:  # the default: no edge array of the whole mesh is built
        return mesh
    edges = mesh.nodes_mm[mesh.tets[:, [1, 2, 3]]] - mesh.nodes_mm[mesh.tets[:, [0, 0, 0]]]
    shortest = float(np.linalg.norm(edges, axis=-1).min()) if len(mesh.tets) else 0.0
    if not (np.isfinite(gap_mm) and 0.0 <= gap_mm < shortest / 3.0):
        raise ValueError(f"contact gap must be at least 0 mm and below a third of the shortest "
                         f"element edge ({shortest / 3.0:.3g} mm), got {gap_mm!r}")
    if not mesh.contacts:
        return mesh
    normals = np.zeros_like(mesh.nodes_mm)
    for faces in mesh.contacts.values():
        for side in range(2):
            triangles = faces[:, side]
            p = mesh.nodes_mm[triangles]
            normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
            normal /= np.linalg.norm(normal, axis=1, keepdims=True)
            for corner in range(3):
                np.add.at(normals, triangles[:, corner], normal)
    length = np.linalg.norm(normals, axis=1)
    moved = length > 0
    nodes_mm = mesh.nodes_mm.copy()
    nodes_mm[moved] -= 0.5 * gap_mm * normals[moved] / length[moved, None]
    if np.any(tet_volumes_mm3(nodes_mm, mesh.tets) <= 0):
        raise ValueError(f"opening the contacts by {gap_mm} mm turns elements inside out")
    return TetMesh(nodes_mm, mesh.tets, mesh.body, mesh.contacts)


def tet_volumes_mm3(nodes_mm: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """Signed volume (mm^3) of each element, shape (M,); positive when oriented correctly."""
    p = nodes_mm[tets]
    return np.einsum("ij,ij->i", p[:, 1] - p[:, 0],
                     np.cross(p[:, 2] - p[:, 0], p[:, 3] - p[:, 0])) / 6.0


def dihedral_angles_deg(nodes_mm: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """The 6 dihedral angles (degrees) of each element, shape (M, 6), in the order of its
    edges (0-1, 0-2, 0-3, 1-2, 1-3, 2-3)."""
    p = nodes_mm[tets]
    normals = []
    for face in _FACES:
        a, b, c = p[:, face[0]], p[:, face[1]], p[:, face[2]]
        n = np.cross(b - a, c - a)
        normals.append(n / np.linalg.norm(n, axis=1, keepdims=True))
    angles = []
    for _, _, k, l in _EDGES:
        # The faces opposite k and l meet along edge (i, j).
        cosine = np.einsum("ij,ij->i", normals[k], normals[l])
        angles.append(180.0 - np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))
    return np.stack(angles, axis=1)


def radius_ratios(nodes_mm: np.ndarray, tets: np.ndarray) -> np.ndarray:
    """``3 r_in / R_circ`` of each element, shape (M,): 1 for a regular tetrahedron, 0 for a
    flat one."""
    p = nodes_mm[tets]
    a, b, c = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]
    volume = np.abs(np.einsum("ij,ij->i", a, np.cross(b, c))) / 6.0
    area = sum(np.linalg.norm(np.cross(p[:, f[1]] - p[:, f[0]], p[:, f[2]] - p[:, f[0]]), axis=1)
               for f in _FACES) / 2.0
    r_in = 3.0 * volume / area
    numerator = (np.sum(a * a, 1)[:, None] * np.cross(b, c)
                 + np.sum(b * b, 1)[:, None] * np.cross(c, a)
                 + np.sum(c * c, 1)[:, None] * np.cross(a, b))
    r_circ = np.linalg.norm(numerator, axis=1) / (12.0 * np.maximum(volume, 1e-300))
    return 3.0 * r_in / r_circ


def body_surfaces(mesh: TetMesh) -> list[BodySurface]:
    """The boundary of every body: faces of its elements not shared with another of its
    elements, checked for holes, non-manifold edges and pieces."""
    volumes = tet_volumes_mm3(mesh.nodes_mm, mesh.tets)
    out = []
    for body_id in np.unique(mesh.body):
        members = np.flatnonzero(mesh.body == body_id)
        faces = np.sort(mesh.tets[members][:, _FACES].reshape(-1, 3), axis=1)
        face_id, counts = _row_ids(faces)
        boundary = faces[counts[face_id] == 1]
        edges = np.sort(np.concatenate([boundary[:, [0, 1]], boundary[:, [1, 2]],
                                        boundary[:, [0, 2]]]), axis=1)
        _, edge_counts = _row_ids(edges)
        out.append(BodySurface(
            body_id=int(body_id), n_tets=len(members), n_faces=len(boundary),
            volume_mm3=float(volumes[members].sum()),
            closed=bool(np.all(edge_counts % 2 == 0)),
            manifold=bool(np.all(edge_counts == 2)),
            pieces=_pieces(len(members), face_id, counts)))
    return out


def _row_ids(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a non-negative int array (R, K), the id of its distinct value, and per id
    how many rows have it."""
    base = int(rows.max()) + 1 if rows.size else 1
    if base ** rows.shape[1] < 2**63:
        keys = np.zeros(len(rows), np.int64)
        for column in rows.T:
            keys = keys * base + column
        _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    else:
        _, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    return inverse.ravel(), counts


def _pieces(n_tets: int, face_id: np.ndarray, counts: np.ndarray) -> int:
    """Face-connected pieces among ``n_tets`` elements; ``face_id`` (4 per element, in element
    order) names each element face, ``counts`` how often each name occurs."""
    shared = np.flatnonzero(counts[face_id] == 2)
    order = shared[np.argsort(face_id[shared], kind="stable")]
    pairs = (order // 4).reshape(-1, 2)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                       shape=(n_tets, n_tets))
    return int(connected_components(graph, directed=False)[0])
