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


@pytest.mark.parametrize("make, message", [
    # NaN or infinite objects: E = nan silently before
    (lambda: SBSCalculator(EMT(), np.array([0, 0, np.nan, 0, 0]), "2e", 0.1), "NaN or infinite"),
    (lambda: SBSCalculator(EMT(), np.array([[0, 0, 1.0], [np.inf, 0, 0]]), "1o", 0.1), "NaN or infinite"),
    # length against e3nn's dimension of the irreps (2e: 5, 1o + 2e: 8); failed inside torch before
    (lambda: SBSCalculator(EMT(), np.ones(3), "2e", 0.1), r"shape \(3,\); irreps '2e' have dimension 5"),
    (lambda: SBSCalculator(EMT(), np.ones((2, 5)), "1o + 2e", 0.1), "dimension 8"),
    (lambda: SBSCalculator(EMT(), np.ones((2, 2, 5)), "2e", 0.1), r"shape \(2, 2, 5\)"),
    (lambda: SBSCalculator(EMT(), ["a", "b", "c"], "1o", 0.1), "not an array of numbers"),
    # irreps e3nn cannot read, with e3nn's own message
    (lambda: SBSCalculator(EMT(), np.ones(3), "1q", 0.1), r"irreps '1q': e3nn cannot read it \(Unable to convert"),
    (lambda: SBSCalculator(EMT(), np.ones(3), "", 0.1), "are empty"),
    # not a calculator: failed later inside ASE before
    (lambda: SBSCalculator(None, np.ones(3), "1o", 0.1), "got None"),
    (lambda: SBSCalculator(EMT, np.ones(3), "1o", 0.1), r"instance: EMT\(\)"),
    (lambda: SBSCalculator("emt", np.ones(3), "1o", 0.1), "str has no get_potential_energy"),
    (lambda: SBSCalculator(EMT(), np.ones(3), "1o", float("nan")), "must be finite"),
])
def test_bad_arguments_are_refused_at_construction(make, message):
    with pytest.raises(SBSInputError, match=message) as err:
        make()
    assert "\n" not in str(err.value)


def test_per_atom_objects_for_another_structure_are_refused(cu):
    calc = SBSCalculator(EMT(), np.ones((len(cu) + 1, 5)), "2e", 0.1)
    cu.calc = calc
    n = len(cu)
    with pytest.raises(SBSInputError, match=f"per-atom SBS objects for {n + 1} atoms on a structure of {n}"):
        cu.get_potential_energy()
    cu.calc = SBSCalculator(EMT(), np.ones((len(cu), 5)), "2e", 0.1)  # the right count works
    assert np.isfinite(cu.get_potential_energy())


def test_a_strength_that_is_not_finite_is_refused_when_set(cu):
    calc = SBSCalculator(EMT(), np.array([0, 0, 1.0, 0, 0]), "2e", 0.1)
    with pytest.raises(SBSInputError, match="must be finite"):
        calc.strength = float("inf")
    assert calc.strength == 0.1


def test_a_descriptor_of_other_irreps_is_refused():
    from ase_sbs.bias.descriptor import BiasDescriptor

    with pytest.raises(SBSInputError, match="descriptor carries irreps 1x1o"):
        SBSCalculator(EMT(), np.ones(5), "2e", 0.1, descriptor=BiasDescriptor("1o"))
