"""The symmetry-reduced Hessian of a setting against the brute-force one: every column by
central differences of forces and stress, no symmetry used, then averaged over G."""

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.lj import LennardJones
from ase.io import read

from ase_sbs.setting import distortion_channels, k0_setting, supercell_setting
from ase_sbs.setting.curvature import (
    calculator_gradients,
    displaced,
    probes,
    setting_hessian,
)

from .conftest import EXAMPLES


def brute_force_hessian(setting, calc, h=1e-3):
    grads = calculator_gradients(setting, calc)
    D = setting.dimension
    cols = []
    for i in range(D):
        e = np.zeros(D)
        e[i] = h
        plus, minus = grads([displaced(setting, e), displaced(setting, -e)])
        cols.append((plus - minus) / (2 * h))
    H = np.array(cols).T
    return (H + H.T) / 2


@pytest.mark.parametrize("make, calc", [
    (lambda: supercell_setting(bulk("Cu", "bcc", a=2.87), (2, 2, 1)), EMT()),
    (lambda: k0_setting(bulk("Ni", "hcp", a=2.5, c=4.0)), EMT()),
    (lambda: supercell_setting(read(EXAMPLES / "SrTiO3_cubic.cif"), [[0, 1, 1], [1, 0, 1], [1, 1, 0]]),
     LennardJones(sigma=1.9, epsilon=0.05, rc=5.0, smooth=True)),
])
def test_symmetry_reduced_hessian_equals_the_brute_force_one(make, calc):
    setting = make()
    reduced = setting_hessian(setting, calc, step=1e-3)
    full = brute_force_hessian(setting, calc)
    scale = np.abs(full).max()
    assert np.abs(reduced.matrix - full).max() < 1e-4 * scale
    # the point of the reduction: far fewer evaluations than 2 per coordinate
    assert reduced.evaluations < setting.dimension
    # every channel's curvatures are the eigenvalues of its block of the full Hessian
    for c in distortion_channels(setting):
        w = np.linalg.eigvalsh(c.basis.T @ full @ c.basis)
        got = np.repeat(reduced.curvatures(c, setting.order), len(w) // len(reduced.curvatures(c, setting.order)))
        assert np.allclose(np.sort(got), w, atol=1e-4 * scale)


def test_a_cubic_perovskite_needs_seven_evaluations_in_any_supercell():
    """Pm-3m ABO3: A and B sit on m-3m sites (one direction each, its opposite an image),
    O on 4/mmm (two); strain: one normal component (±) and one shear (its opposite an
    image). The 5-atom cell and the 40-atom 2×2×2 cell need the same probes."""
    atoms = read(EXAMPLES / "SrTiO3_cubic.cif")
    for setting in (k0_setting(atoms), supercell_setting(atoms, (2, 2, 2))):
        p = probes(setting)
        assert len(p) == 6
        assert sum(1 if q.mirror is not None else 2 for q in p) == 7
