"""break_symmetry with EMT: the Bain path, stable parents, field mode, variants,
resume, and bad input."""

import json

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.data import atomic_numbers, reference_states
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from ase_sbs import (
    SBSInputError,
    break_symmetry,
    detect_symmetry,
    symmetry_breaking_set,
)
from ase_sbs.explore.classify import variant_image


def relaxed_energy_per_atom(atoms):
    atoms.calc = EMT()
    assert BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-5, steps=1000)
    return atoms.get_potential_energy() / len(atoms)


def bcc(element):
    a_fcc = reference_states[atomic_numbers[element]]["a"]
    return bulk(element, "bcc", a=a_fcc / 2 ** (1 / 3), cubic=True)


@pytest.mark.parametrize("element", ["Cu", "Ni", "Au", "Ag", "Pt", "Pd"])
def test_bain_path_bcc_relaxes_to_fcc_with_the_energy_of_separate_relaxations(element):
    parent = bcc(element)
    ex = break_symmetry(parent, "emt", progress=False)
    fcc = [p for p in ex.phases if p.spacegroup_number == 225]
    assert len(fcc) == 1
    phase = fcc[0]
    assert phase.spacegroup_symbol == "Fm-3m" and phase.n_variants == 3 and phase.spontaneous
    assert "I4/mmm (139)" in phase.targets
    e_fcc = relaxed_energy_per_atom(bulk(element, "fcc", a=reference_states[atomic_numbers[element]]["a"]))
    e_bcc = relaxed_energy_per_atom(parent.copy())
    assert abs(phase.delta_energy_per_atom_eV - (e_fcc - e_bcc)) < 1e-3
    assert abs(ex.parent.energy_per_atom - e_bcc) < 1e-5
    assert phase.delta_energy_per_atom_eV == min(p.delta_energy_per_atom_eV for p in ex.phases)


def test_a_stable_parent_is_reported_stable_and_field_mode_reports_survival():
    fcc = bulk("Cu", "fcc", a=3.6)
    ex = break_symmetry(fcc, "emt", progress=False)
    assert ex.stable and not [p for p in ex.phases if p.spontaneous]
    assert all(r.status == "returned" for r in ex.relaxations)
    field = break_symmetry(fcc, "emt", mode="field", targets="I4/mmm,R-3m", progress=False)
    assert field.stable
    reached = {r.target: r.field_spacegroup for r in field.relaxations}
    assert reached["I4/mmm (139)"] == "I4/mmm" and reached["R-3m (166)"] == "R-3m"
    assert all(r.status == "returned" for r in field.relaxations)  # nothing survives release
    from ase_sbs.report.exploration import describe_exploration

    text = describe_exploration(field)
    assert "under the field" in text and "stable in every channel" in text


def same_crystal(a, b, tol=1e-5):
    """Same structure up to a lattice basis change and a global translation."""
    M = np.linalg.solve(np.asarray(b.cell).T, np.asarray(a.cell).T).T
    if np.abs(M - np.round(M)).max() > 1e-6 or abs(abs(np.linalg.det(np.round(M))) - 1) > 1e-6:
        return False
    fa, fb = a.get_scaled_positions(), b.get_positions() @ np.linalg.inv(np.asarray(a.cell))
    shift = fb[0] - fa[np.flatnonzero(a.numbers == b.numbers[0])[0]]
    for x, z in zip(fb - shift, b.numbers):
        d = fa[a.numbers == z] - x
        if np.linalg.norm((d - np.round(d)) @ np.asarray(a.cell), axis=1).min() > tol:
            return False
    return True


def test_relaxing_every_member_gives_images_under_the_parent_operations():
    parent = bcc("Cu")
    ex = break_symmetry(parent, "emt", targets="I4/mmm", all_variants=True, progress=False,
                        release_fmax=1e-4)
    plus = sorted([r for r in ex.relaxations if r.sign > 0], key=lambda r: r.member)
    assert len(plus) == 3
    energies = [r.energy_per_atom for r in plus]
    assert np.ptp(energies) < 1e-6
    psym = detect_symmetry(ex.parent.atoms)
    B = symmetry_breaking_set(psym, "I4/mmm")
    for r in plus[1:]:
        op = psym.representative_operation(B.coset_representatives[r.member])
        image = variant_image(plus[0].atoms, psym, op)
        assert same_crystal(r.atoms, image, tol=1e-3)


def test_unconverged_relaxations_are_reported_never_as_phases():
    ex = break_symmetry(bcc("Cu"), "emt", targets="I4/mmm", max_steps=2, seed_force=0.5, progress=False)
    assert ex.phases == []
    assert ex.unconverged and all(r.status == "unconverged" for r in ex.relaxations)


class CountingEMT(EMT):
    calls = 0

    def calculate(self, *args, **kwargs):
        type(self).calls += 1
        super().calculate(*args, **kwargs)


class InterruptingEMT(CountingEMT):
    limit = 10**9

    def calculate(self, *args, **kwargs):
        if type(self).calls >= self.limit:
            raise KeyboardInterrupt
        super().calculate(*args, **kwargs)


def test_an_interrupted_explore_resumes_without_redoing_finished_relaxations(tmp_path):
    parent = bcc("Cu")
    out = tmp_path / "run"
    CountingEMT.calls = 0
    full = break_symmetry(parent, CountingEMT(), out=str(out), progress=False)
    total = CountingEMT.calls
    # an interrupted run in a fresh directory: stop after some relaxations
    out2 = tmp_path / "run2"
    InterruptingEMT.calls = 0
    InterruptingEMT.limit = total // 2
    with pytest.raises(KeyboardInterrupt):
        break_symmetry(parent, InterruptingEMT(), out=str(out2), progress=False)
    saved = list((out2 / "relaxations").glob("*.json"))
    assert 1 <= len(saved) < len(full.relaxations) + 1
    InterruptingEMT.limit = 10**9
    before = InterruptingEMT.calls
    resumed = break_symmetry(parent, InterruptingEMT(), out=str(out2), progress=False)
    assert InterruptingEMT.calls - before < total  # finished ones were not redone
    assert [p.spacegroup_number for p in resumed.phases] == [p.spacegroup_number for p in full.phases]
    # a complete run again does nothing at all
    CountingEMT.calls = 0
    break_symmetry(parent, CountingEMT(), out=str(out), progress=False)
    assert CountingEMT.calls == 0
    record = json.loads(saved[0].read_text())
    assert {"target", "status", "energy_eV"} <= set(record)


def test_bad_input_gives_clear_messages(tmp_path, batio3):
    with pytest.raises(SBSInputError, match="unknown calculator"):
        break_symmetry(bcc("Cu"), "not-a-potential", progress=False)
    with pytest.raises(SBSInputError, match="does not cover Ba, O, Ti"):
        break_symmetry(batio3, "emt", progress=False)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SBSInputError, match="not writable"):
        break_symmetry(bcc("Cu"), "emt", out=str(blocker / "sub"), progress=False)
    with pytest.raises(SBSInputError, match="mode must be"):
        break_symmetry(bcc("Cu"), "emt", mode="wild", progress=False)


class NaNCalc(Calculator):
    implemented_properties = ["energy", "forces", "stress"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": np.nan, "forces": np.zeros((len(atoms), 3)), "stress": np.zeros(6)}


def test_a_calculator_returning_nan_stops_with_a_message():
    with pytest.raises(SBSInputError, match="non-finite energy"):
        break_symmetry(bcc("Cu"), NaNCalc(), progress=False)


def test_nequip_model_files_that_cannot_be_loaded_are_reported(tmp_path):
    from ase_sbs.potentials import get_potential

    with pytest.raises(SBSInputError, match="no such model file"):
        get_potential(str(tmp_path / "missing.nequip.zip"), ["Cu"])
    junk = tmp_path / "junk.nequip.pt2"
    junk.write_bytes(b"not a model")
    with pytest.raises(SBSInputError, match="cannot load it as a NequIP model"):
        get_potential(str(junk), ["Cu"])


def test_auto_picks_emt_for_emt_metals_and_sevennet_otherwise():
    from ase_sbs.potentials import get_potential

    assert get_potential("auto", ["Cu", "Ni"]).name == "emt"
    assert get_potential("auto", ["Ba", "Ti", "O"]).name == "7net-0"
