"""SBSCalculator: any ASE calculator plus the bias, usable with ASE's optimizers,
filters and molecular dynamics."""

import numpy as np
import pytest
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS

from ase_sbs import SBSCalculator, SBSInputError, detect_symmetry, symmetry_breaking_set
from ase_sbs.bias import evaluate_bias
from ase_sbs.core.symmetrizer import Symmetrizer


@pytest.fixture
def cu(cu_bcc):
    atoms = cu_bcc.copy()
    atoms.rattle(0.02, seed=0)
    return atoms


def test_sum_of_model_and_bias(cu):
    b = np.array([0.1, -0.3, 0.5, 0.2, 0.7])
    calc = SBSCalculator(EMT(), b, "2e", strength=0.2)
    cu.calc = calc
    ref = cu.copy()
    ref.calc = EMT()
    bias = evaluate_bias(cu, b, "2e", 0.2)
    assert cu.get_potential_energy() == pytest.approx(ref.get_potential_energy() + bias.energy)
    assert np.allclose(cu.get_forces(), ref.get_forces() + bias.forces)
    from ase.stress import full_3x3_to_voigt_6_stress

    assert np.allclose(cu.get_stress(), ref.get_stress() + full_3x3_to_voigt_6_stress(bias.stress))
    assert cu.calc.get_property("free_energy", cu) == pytest.approx(cu.get_potential_energy())


def test_strength_can_change_between_steps(cu):
    calc = SBSCalculator(EMT(), np.array([0, 0, 1.0, 0, 0]), "2e", strength=0.0)
    cu.calc = calc
    e0 = cu.get_potential_energy()
    calc.strength = 0.5
    e1 = cu.get_potential_energy()
    assert e1 != e0
    calc.strength = 0.0
    assert cu.get_potential_energy() == pytest.approx(e0)


def test_optimizer_cell_filter_and_md_run(cu):
    cu.calc = SBSCalculator(EMT(), np.array([0, 0, 1.0, 0, 0]), "2e", strength=0.05)
    assert BFGS(FrechetCellFilter(cu), logfile=None).run(fmax=0.01, steps=200)
    VelocityVerlet(cu, timestep=1.0, logfile=None).run(5)
    assert np.isfinite(cu.get_potential_energy())


def test_symmetrize_keeps_the_target_symmetry(batio3):
    sym = detect_symmetry(batio3)
    B = symmetry_breaking_set(sym, "P4mm")
    atoms = batio3.copy()
    atoms.calc = SBSCalculator(EMTLike(), B.objects[0], B.irreps, 2.0,
                               symmetrize=Symmetrizer.from_subgroup(sym, B.stabilizers[0]))
    BFGS(atoms, logfile=None).run(fmax=1e-3, steps=30)
    assert np.abs(atoms.positions - batio3.positions).max() > 1e-3
    found = detect_symmetry(atoms, symprec=1e-6)
    assert found.spacegroup_number == 99


class EMTLike(Calculator):
    """A harmonic toy potential that covers any element (pairs within 3 Å)."""

    implemented_properties = ["energy", "forces", "stress"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        from ase.neighborlist import neighbor_list

        i, j, d, D = neighbor_list("ijdD", self.atoms, 3.0)
        e = 0.5 * np.sum((d - 2.0) ** 2) / 2
        f = np.zeros((len(self.atoms), 3))
        g = ((d - 2.0) / d)[:, None] * D
        np.add.at(f, i, g)
        virial = -0.5 * np.einsum("ni,nj->ij", g, D)
        self.results = {"energy": e, "forces": f,
                        "stress": -np.array([virial[0, 0], virial[1, 1], virial[2, 2],
                                             virial[1, 2], virial[0, 2], virial[0, 1]]) / self.atoms.get_volume()}


class NaNCalculator(EMTLike):
    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results["forces"][0, 0] = np.nan


def test_a_calculator_returning_nan_is_reported(batio3):
    atoms = batio3.copy()
    atoms.calc = SBSCalculator(NaNCalculator(), np.array([0, 0, 1.0]), "1o", 0.1)
    with pytest.raises(SBSInputError, match="non-finite forces"):
        atoms.get_forces()
