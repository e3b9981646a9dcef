"""The linear-elastic check solve: a bar under tension matches F/A and FL/EA, spikes are
counted, and a whole small hip model converges with its contacts tied."""

from __future__ import annotations

import numpy as np
import pytest

from hipseg.core.labels import DEFAULT_LABELS
from hipseg.core.volume import Volume
from hipseg.fe.model import FeSettings, fe_model
from hipseg.fe.solve import check_solve, lame, solve_linear_elastic, stress_spikes
from hipseg.fe.template import FeTemplate
from hipseg.tetmesh import lattice_tet_mesh


def test_a_bar_in_tension_carries_f_over_a_and_stretches_fl_over_ea():
    mesh = lattice_tet_mesh(np.ones((4, 4, 20), np.uint8), np.diag([0.5, 0.5, 0.5, 1.0]))
    z = mesh.nodes_mm[:, 2]
    bottom, top = np.flatnonzero(z == z.min()), np.flatnonzero(z == z.max())
    force, youngs, area, length = 100.0, 1000.0, 4.0, 10.0
    forces = np.zeros_like(mesh.nodes_mm)
    forces[top, 2] = force / len(top)
    elements = len(mesh.tets)
    u, stress, _, residual, converged = solve_linear_elastic(
        mesh.nodes_mm, mesh.tets, np.full(elements, youngs), np.zeros(elements), bottom, forces)
    assert converged and residual < 1e-7
    # Equilibrium: every cross-section carries the force, so the mean axial stress is F/A.
    assert stress[:, 2, 2].mean() == pytest.approx(force / area, rel=1e-6)
    # Lumped (equal) nodal loads on the end bend it slightly: within 3 % of F L / (E A).
    assert u[top, 2].mean() == pytest.approx(force * length / (youngs * area), rel=0.03)
    assert np.abs(u[bottom]).max() == 0.0


def test_lame_parameters():
    lam, mu = lame(np.array([1.0]), np.array([0.25]))
    assert lam[0] == pytest.approx(0.4) and mu[0] == pytest.approx(0.4)


def test_stress_spikes_count_elements_far_above_their_neighbours():
    mesh = lattice_tet_mesh(np.ones((3, 3, 3), np.uint8), np.eye(4))
    value = np.ones(len(mesh.tets))
    assert stress_spikes(mesh.tets, mesh.body, value) == 0
    value[40] = 20.0
    assert stress_spikes(mesh.tets, mesh.body, value) == 1
    value[40] = 9.0
    assert stress_spikes(mesh.tets, mesh.body, value) == 0


def test_a_small_hip_model_converges_under_the_template_load():
    labels = np.zeros((34, 14, 24), np.uint8)
    labels[2:8, 2:12, 2:12] = 1
    labels[12:18, 2:12, 2:16] = 3
    labels[22:28, 2:12, 8:22] = 5
    model = fe_model(Volume(labels, np.eye(4)), DEFAULT_LABELS, FeSettings(size_mm=None))
    result = check_solve(model, FeTemplate())
    assert result.converged and result.relative_residual < 1e-7
    assert np.isfinite(result.max_displacement_mm) and result.max_displacement_mm > 0
    assert np.all(np.isfinite(result.von_mises_mpa))
    assert result.unknowns < 3 * len(model.mesh.nodes_mm)  # the contact copies were tied
