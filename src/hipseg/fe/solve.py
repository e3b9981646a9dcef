"""A linear-elastic check solve of an FE model (issue 14, item 5): does the exported model
assemble, is it non-singular under the template's boundary conditions, does it converge, and
is its stress field free of isolated spikes?

A linearisation, not the model's analysis: every material is taken as linear elastic with its
template E and nu (neo-Hookean cartilage at small strain is linear elastic with the same E and
nu), and the contact pairs are tied (closed contact without sliding), since a linear solver has
no contact. Assembly is scikit-fem's (P1 tetrahedra, one quadrature point); the system is
solved by conjugate gradients preconditioned with pyamg's smoothed aggregation, given the rigid
body modes so the coarse levels keep them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyamg
from scipy import sparse
from scipy.sparse.csgraph import connected_components
from skfem import Basis, BilinearForm, ElementTetP0, ElementTetP1, ElementVector, MeshTet, asm
from skfem.helpers import ddot, sym_grad, trace

from hipseg.fe.export import load_nodes
from hipseg.fe.model import FeModel
from hipseg.fe.template import FeTemplate

__all__ = ["CheckSolve", "check_solve", "lame", "solve_linear_elastic", "stress_spikes"]


@dataclass(frozen=True)
class CheckSolve:
    """What the check solve found: unknowns, iterations, relative residual, whether CG
    converged, the largest displacement (mm), von Mises stress (MPa) per element, and the
    elements whose stress exceeds ``spike_factor`` x the median of their neighbours in the
    same body."""

    unknowns: int
    iterations: int
    relative_residual: float
    converged: bool
    max_displacement_mm: float
    von_mises_mpa: np.ndarray
    spikes: int
    spike_factor: float


def lame(youngs_modulus: np.ndarray, poisson_ratio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lame's lambda and mu from E and nu (same units as E)."""
    lam = youngs_modulus * poisson_ratio / ((1 + poisson_ratio) * (1 - 2 * poisson_ratio))
    return lam, youngs_modulus / (2 * (1 + poisson_ratio))


@BilinearForm
def _elasticity(u, v, w):
    strain_u, strain_v = sym_grad(u), sym_grad(v)
    return 2.0 * w.mu * ddot(strain_u, strain_v) + w.lam * trace(strain_u) * trace(strain_v)


def solve_linear_elastic(nodes_mm: np.ndarray, tets: np.ndarray, youngs_mpa: np.ndarray,
                         poisson: np.ndarray, fixed_nodes: np.ndarray, forces_n: np.ndarray,
                         *, tol: float = 1e-8, maxiter: int = 2000
                         ) -> tuple[np.ndarray, np.ndarray, int, float, bool]:
    """Small-strain linear elasticity on P1 tetrahedra.

    Parameters
    ----------
    nodes_mm : ndarray, shape (N, 3)
    tets : ndarray, shape (M, 4)
    youngs_mpa, poisson : ndarray, shape (M,)
        Per element.
    fixed_nodes : ndarray of int
        Nodes held at zero displacement in all three directions.
    forces_n : ndarray, shape (N, 3)
        Nodal forces (N).

    Returns
    -------
    displacement_mm : ndarray, shape (N, 3)
    stress_mpa : ndarray, shape (M, 3, 3)
    iterations, relative_residual, converged
    """
    mesh = MeshTet(np.ascontiguousarray(nodes_mm.T), np.ascontiguousarray(tets.T))
    basis = Basis(mesh, ElementVector(ElementTetP1()), intorder=1)
    lam, mu = lame(youngs_mpa, poisson)
    cells = Basis(mesh, ElementTetP0(), intorder=1)
    stiffness = asm(_elasticity, basis, lam=cells.interpolate(lam), mu=cells.interpolate(mu))
    # scikit-fem numbers the unknowns node by node: (x, y, z) of node 0, then of node 1 ...
    dofs = basis.nodal_dofs.T  # (N, 3)
    load = np.zeros(basis.N)
    load[dofs.ravel()] = forces_n.ravel()
    free = np.ones(basis.N, bool)
    free[dofs[fixed_nodes].ravel()] = False
    matrix = stiffness[free][:, free].tocsr()
    rhs = load[free]
    modes = _rigid_body_modes(nodes_mm, dofs)[free]
    solver = pyamg.smoothed_aggregation_solver(matrix, B=modes, symmetry="symmetric",
                                               strength=("symmetric", {"theta": 0.0}))
    residuals: list[float] = []
    solution = solver.solve(rhs, tol=tol, maxiter=maxiter, accel="cg", residuals=residuals)
    relative = float(np.linalg.norm(rhs - matrix @ solution) / max(np.linalg.norm(rhs), 1e-300))
    full = np.zeros(basis.N)
    full[free] = solution
    displacement = full[dofs]
    return (displacement, _stress(nodes_mm, tets, displacement, lam, mu),
            len(residuals) - 1, relative, relative <= 10 * tol)


def _rigid_body_modes(nodes_mm: np.ndarray, dofs: np.ndarray) -> np.ndarray:
    """The 6 rigid body motions as unknown vectors, shape (3N, 6)."""
    centred = nodes_mm - nodes_mm.mean(0)
    modes = np.zeros((dofs.size, 6))
    x, y, z = centred.T
    for axis in range(3):
        modes[dofs[:, axis], axis] = 1.0
    modes[dofs[:, 0], 3], modes[dofs[:, 1], 3] = -y, x
    modes[dofs[:, 1], 4], modes[dofs[:, 2], 4] = -z, y
    modes[dofs[:, 0], 5], modes[dofs[:, 2], 5] = z, -x
    return modes


def _stress(nodes_mm, tets, displacement, lam, mu) -> np.ndarray:
    """Constant stress of each P1 element from its nodes' displacements, shape (M, 3, 3)."""
    p = nodes_mm[tets]
    edges = np.stack([p[:, 1] - p[:, 0], p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]], axis=2)
    u = displacement[tets]
    du = np.stack([u[:, 1] - u[:, 0], u[:, 2] - u[:, 0], u[:, 3] - u[:, 0]], axis=2)
    gradient = du @ np.linalg.inv(edges)  # d u_i / d x_j
    strain = 0.5 * (gradient + np.swapaxes(gradient, 1, 2))
    volumetric = np.trace(strain, axis1=1, axis2=2)
    return (2 * mu[:, None, None] * strain
            + lam[:, None, None] * volumetric[:, None, None] * np.eye(3))


def von_mises(stress: np.ndarray) -> np.ndarray:
    deviator = stress - np.trace(stress, axis1=1, axis2=2)[:, None, None] * np.eye(3) / 3.0
    return np.sqrt(1.5 * np.einsum("mij,mij->m", deviator, deviator))


def stress_spikes(tets: np.ndarray, body: np.ndarray, value: np.ndarray,
                  factor: float = 10.0) -> int:
    """Elements whose ``value`` exceeds ``factor`` x the median over their face neighbours of
    the same body (elements without such a neighbour are not counted)."""
    faces = np.sort(tets[:, [[1, 2, 3], [0, 3, 2], [0, 1, 3], [0, 2, 1]]].reshape(-1, 3), axis=1)
    owner = np.repeat(np.arange(len(tets)), 4)
    order = np.lexsort(faces.T[::-1])
    ordered = faces[order]
    same = np.all(ordered[1:] == ordered[:-1], axis=1)
    a, b = owner[order[:-1][same]], owner[order[1:][same]]
    keep = body[a] == body[b]
    a, b = a[keep], b[keep]
    first = np.concatenate([a, b])
    second = np.concatenate([b, a])
    sort = np.argsort(first, kind="stable")
    first, neighbour_value = first[sort], value[second[sort]]
    starts = np.searchsorted(first, np.arange(len(tets)))
    ends = np.searchsorted(first, np.arange(len(tets)), side="right")
    spikes = 0
    for element in np.flatnonzero(ends > starts):
        median = np.median(neighbour_value[starts[element]:ends[element]])
        if value[element] > factor * median:
            spikes += 1
    return spikes


def check_solve(model: FeModel, template: FeTemplate, *, spike_factor: float = 10.0,
                tol: float = 1e-8) -> CheckSolve:
    """The template's load case on ``model``, linearised and with the contact pairs tied."""
    mesh = model.mesh
    tied = _tie_contacts(len(mesh.nodes_mm), mesh.contacts)
    _, merged = np.unique(tied, return_inverse=True)
    nodes = np.zeros((merged.max() + 1, 3))
    nodes[merged] = mesh.nodes_mm
    tets = merged[mesh.tets]
    kinds = {b.body_id: b.kind for b in model.bodies}
    youngs = np.empty(len(tets))
    poisson = np.empty(len(tets))
    for body_id, kind in kinds.items():
        material = template.bone if kind == "bone" else template.cartilage
        youngs[mesh.body == body_id] = material.youngs_modulus_mpa
        poisson[mesh.body == body_id] = material.poisson_ratio
    fixed, loaded = load_nodes(model, template)
    forces = np.zeros_like(nodes)
    for femur in loaded.values():
        np.add.at(forces[:, 2], merged[femur], template.load.femur_force_n / len(femur))
    displacement, stress, iterations, residual, converged = solve_linear_elastic(
        nodes, tets, youngs, poisson, np.unique(merged[fixed]), forces, tol=tol)
    value = von_mises(stress)
    return CheckSolve(unknowns=3 * len(nodes), iterations=iterations,
                      relative_residual=residual, converged=converged,
                      max_displacement_mm=float(np.abs(displacement).max()),
                      von_mises_mpa=value,
                      spikes=stress_spikes(tets, mesh.body, value, spike_factor),
                      spike_factor=spike_factor)


def _tie_contacts(n_nodes: int, contacts: dict) -> np.ndarray:
    """Per node, a representative: the two copies of every contact-face node become one."""
    pairs = [np.stack([faces[:, 0].ravel(), faces[:, 1, ::-1].ravel()], 1)
             for faces in contacts.values()]
    if not pairs:
        return np.arange(n_nodes)
    links = np.concatenate(pairs)
    graph = sparse.coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])),
                              shape=(n_nodes, n_nodes))
    return connected_components(graph, directed=False)[1]
