"""Physics cases with SevenNet-0 (weights ship in the sevenn wheel): cubic BaTiO3 and
planar NH3, each checked against an independent plain-ASE relaxation."""

import numpy as np
import pytest
from ase.constraints import FixSymmetry
from ase.filters import FrechetCellFilter
from ase.io import read
from ase.optimize import BFGS

from ase_sbs import break_symmetry

from ..conftest import EXAMPLES


def independent_energy(atoms, calc, direction=None):
    """Plain ASE: displace Ti along ``direction``, FixSymmetry on what that leaves,
    FrechetCellFilter, BFGS."""
    atoms = atoms.copy()
    if direction is not None:
        d = np.asarray(direction, float) / np.linalg.norm(direction)
        ti = [a.index for a in atoms if a.symbol == "Ti"]
        atoms.positions[ti] += 0.08 * d
    atoms.set_constraint(FixSymmetry(atoms, symprec=1e-3))
    atoms.calc = calc
    assert BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=5e-4, steps=800)
    return atoms.get_potential_energy(), atoms


@pytest.mark.parametrize(
    "number, symbol, variants, direction",
    [(99, "P4mm", 6, [0, 0, 1]), (38, "Amm2", 12, [1, 1, 0]), (160, "R3m", 8, [1, 1, 1])],
)
def test_batio3_polar_phases_match_independent_relaxations(batio3_exploration, sevennet, number, symbol, variants,
                                                          direction):
    ex = batio3_exploration
    phases = {p.spacegroup_number: p for p in ex.phases}
    assert number in phases, [p.name for p in ex.phases]
    phase = phases[number]
    assert phase.spacegroup_symbol == symbol and phase.n_variants == variants
    assert phase.spontaneous and phase.delta_energy_per_formula_unit_eV < 0
    cubic = read(EXAMPLES / "BaTiO3_cubic.cif")
    e_parent, _ = independent_energy(cubic, sevennet)
    e_phase, relaxed = independent_energy(cubic, sevennet, direction)
    from ase_sbs import detect_symmetry

    assert detect_symmetry(relaxed).spacegroup_number == number
    delta = e_phase - e_parent  # one formula unit in the cell
    assert abs(phase.delta_energy_per_formula_unit_eV - delta) < 2e-3


def hnh_angle(atoms):
    n = [a.index for a in atoms if a.symbol == "N"][0]
    h = [a.index for a in atoms if a.symbol == "H"]
    return np.mean([atoms.get_angle(h[i], n, h[j]) for i, j in ((0, 1), (1, 2), (0, 2))])


def test_planar_nh3_breaks_to_pyramidal_c3v(sevennet):
    planar = read(EXAMPLES / "NH3_planar.xyz")
    ex = break_symmetry(planar, sevennet, targets="C3v", progress=False)
    assert len(ex.phases) == 1
    phase = ex.phases[0]
    assert phase.point_group == "C3v" and phase.n_variants == 2 and phase.spontaneous
    zs = sorted(v.positions[0, 2] - v.get_center_of_mass()[2] for v in phase.variants)
    assert zs[0] < 0 < zs[1]  # the two variants point opposite ways
    pyramid = planar.copy()
    pyramid.positions[0, 2] += 0.3
    pyramid.calc = sevennet
    assert BFGS(pyramid, logfile=None).run(fmax=5e-4, steps=500)
    assert abs(hnh_angle(phase.atoms) - hnh_angle(pyramid)) < 2.0
    assert 100 < hnh_angle(phase.atoms) < 112
