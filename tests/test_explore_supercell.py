"""The one exploration pipeline on supercells, with EMT (fast enough for every push):
bcc Cu on 2×2×2 breaks along the N-point shuffle to hcp (the Burgers path), through
the ASE runner and the batched engine alike, in field mode, and resumably; a
conventional cell and the equivalent supercell of its primitive cell are one setting."""

import warnings

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.filters import FrechetCellFilter
from ase.io import read
from ase.optimize import BFGS

from ase_sbs import break_symmetry
from ase_sbs.core.symmetry import detect_symmetry
from ase_sbs.setting import distortion_channels, primitive_cell, supercell_setting

from .conftest import EXAMPLES

QUIET = dict(progress=False)


def _relaxed_energy_per_atom(atoms):
    atoms = atoms.copy()
    atoms.calc = EMT()
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-4, steps=500)
    return atoms.get_potential_energy() / len(atoms)


@pytest.fixture(scope="module")
def burgers():
    """bcc Cu, 2×2×2 of the primitive cell, the Cmcm targets (N-point shuffle), both runners."""
    cu = bulk("Cu", "bcc", a=2.87)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {engine: break_symmetry(cu, "emt", supercell=(2, 2, 2), targets="Cmcm", engine=engine, **QUIET)
                for engine in ("ase", "batched")}


def test_bcc_breaks_to_hcp_along_the_burgers_path_with_both_runners(burgers):
    ase, batched = burgers["ase"], burgers["batched"]
    assert ase.runner == "ase" and batched.runner == "batched"
    assert ase.group_order == 48 * 8 and ase.supercell == (2 * np.eye(3, dtype=int)).tolist()
    assert {t.spacegroup_symbol for t in ase.targets} == {"Cmcm"}
    assert all(t.cell_multiplication == 2 and not ase_keeps(t) for t in ase.targets)
    hcp = [p for p in ase.phases if p.spacegroup_number == 194]
    assert len(hcp) == 1 and hcp[0].spontaneous and hcp[0].cell_multiplication == 2
    # an independent check: spglib on the phase in the supercell, and hcp relaxed by plain ASE
    assert detect_symmetry(hcp[0].atoms, symprec=1e-3).spacegroup_number == 194
    e_bcc = _relaxed_energy_per_atom(bulk("Cu", "bcc", a=2.87))
    e_hcp = _relaxed_energy_per_atom(bulk("Cu", "hcp", a=2.55, c=4.16))
    assert hcp[0].delta_energy_per_formula_unit_eV == pytest.approx(e_hcp - e_bcc, abs=1e-4)
    # the same phases, energies (0.1 meV/f.u.) and variants from the batched engine
    assert [p.name for p in ase.phases] == [p.name for p in batched.phases]
    for p, q in zip(ase.phases, batched.phases):
        assert abs(p.delta_energy_per_formula_unit_eV - q.delta_energy_per_formula_unit_eV) < 1e-4
        assert p.n_variants == q.n_variants == len(p.variants)
    # variants: images of the phase under G, each with the phase's symmetry
    for v in hcp[0].variants[:4]:
        assert detect_symmetry(v, symprec=1e-3).spacegroup_number == 194
    assert hcp[0].n_variants == 12


def ase_keeps(target):
    return target.cell_multiplication == 1


def test_field_mode_and_resume_on_a_supercell(tmp_path):
    cu = bulk("Cu", "bcc", a=2.87)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = break_symmetry(cu, "emt", supercell=(2, 2, 2), targets="Cmcm", mode="field", out=str(tmp_path),
                               engine="batched", **QUIET)
        again = break_symmetry(cu, "emt", supercell=(2, 2, 2), targets="Cmcm", mode="field", out=str(tmp_path),
                               engine="batched", **QUIET)
        through_ase = break_symmetry(cu, "emt", supercell=(2, 2, 2), targets="Cmcm", mode="field", engine="ase",
                                     **QUIET)
    assert first.settings.mode == "field" and first.reused == 0
    assert all(r.field_spacegroup for r in first.relaxations)
    # the field crosses into other basins (fcc among them): phases below bcc all the same
    assert first.phases and all(p.spontaneous for p in first.phases)
    assert [p.name for p in through_ase.phases] == [p.name for p in first.phases]
    for p, q in zip(through_ase.phases, first.phases):
        assert abs(p.delta_energy_per_formula_unit_eV - q.delta_energy_per_formula_unit_eV) < 1e-4
    assert again.reused == len(first.relaxations) + 1  # every relaxation and the parent
    assert [(p.name, p.delta_energy_per_formula_unit_eV) for p in again.phases] == [
        (p.name, p.delta_energy_per_formula_unit_eV) for p in first.phases]
    assert (tmp_path / "channels").is_dir() and len(list((tmp_path / "relaxations").glob("*.extxyz"))) == 4


def test_a_conventional_cell_is_the_supercell_of_its_primitive_cell():
    conventional = read(EXAMPLES / "Cu_bcc.cif")
    primitive, C = primitive_cell(detect_symmetry(conventional))
    assert len(primitive) == 1 and round(abs(np.linalg.det(C))) == 2
    a = supercell_setting(conventional, (1, 1, 1))
    b = supercell_setting(primitive, C)
    assert a.order == b.order == 96 and (a.supercell == b.supercell).all()
    assert [c.label for c in distortion_channels(a)] == [c.label for c in distortion_channels(b)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ex_a = break_symmetry(conventional, "emt", supercell=(1, 1, 1), **QUIET)
        ex_b = break_symmetry(primitive, "emt", supercell=C, **QUIET)
    assert [p.name for p in ex_a.phases] == [p.name for p in ex_b.phases] and ex_a.phases
    for p, q in zip(ex_a.phases, ex_b.phases):
        assert p.delta_energy_per_formula_unit_eV == pytest.approx(q.delta_energy_per_formula_unit_eV, abs=1e-6)
    assert ex_a.phases[0].spacegroup_number == 225  # the Bain path to fcc


@pytest.mark.slow
def test_conventional_bcc_on_2x2x2_equals_the_equivalent_primitive_supercell():
    """The acceptance case: ``explore Cu_bcc.cif --supercell 2 2 2`` (16 atoms) and the
    primitive cell with the matrix 2C give the same phases and energies."""
    conventional = read(EXAMPLES / "Cu_bcc.cif")
    primitive, C = primitive_cell(detect_symmetry(conventional))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ex_a = break_symmetry(conventional, "emt", supercell=(2, 2, 2), **QUIET)
        ex_b = break_symmetry(primitive, "emt", supercell=2 * C, **QUIET)
    assert ex_a.group_order == ex_b.group_order == 48 * 16
    assert [p.name for p in ex_a.phases] == [p.name for p in ex_b.phases]
    for p, q in zip(ex_a.phases, ex_b.phases):
        assert p.delta_energy_per_formula_unit_eV == pytest.approx(q.delta_energy_per_formula_unit_eV, abs=1e-6)
    assert 194 in {p.spacegroup_number for p in ex_a.phases} and 225 in {p.spacegroup_number for p in ex_a.phases}


def test_a_non_diagonal_supercell_is_a_setting_like_any_other():
    """√2×√2×2 of cubic SrTiO3 (rows (1,1,0), (−1,1,0), (0,0,2)): the operations that keep
    its lattice, R and M but only one X arm, and the a⁰a⁰c⁻ tilt (I4/mcm) among the
    isotropy subgroups, with an exact per-atom SBS."""
    from ase_sbs import symmetry_breaking_set
    from ase_sbs.setting import isotropy_subgroups

    P = [[1, 1, 0], [-1, 1, 0], [0, 0, 2]]
    setting = supercell_setting(read(EXAMPLES / "SrTiO3_cubic.cif"), P)
    assert setting.order == 16 * 4 and len(setting.atoms) == 20
    channels = distortion_channels(setting)
    stars = {c.label.split("-")[0] for c in channels}
    assert stars == {"Γ", "X", "M", "R"}
    tilt = [t for c in channels if c.label.startswith("R") for t in isotropy_subgroups(setting, c)
            if t.spacegroup_symbol == "I4/mcm"]
    assert tilt and tilt[0].cell_multiplication == 2
    B = symmetry_breaking_set(setting, tilt[0], channels=channels)
    assert B.per_atom and len(B) == tilt[0].index
    assert all(set(B.stabilizer_of(b)) == set(s) for b, s in zip(B.objects, B.stabilizers))


def test_every_variant_of_a_supercell_target(capsys, tmp_path):
    """--all-variants on a supercell setting (the conventional bcc cell as a supercell of
    its primitive cell, given as a nine-integer matrix on the command line): every member
    of B and −b relaxed, all to fcc with the same energy."""
    from ase_sbs.cli import main

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["explore", str(EXAMPLES / "Cu_bcc.cif"), "--calc", "emt", "--supercell", "1", "0", "0", "0",
                     "1", "0", "0", "0", "1", "--targets", "I4/mmm", "--all-variants", "--out", str(tmp_path / "o"),
                     "--json", "-"]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert data["supercell"] is not None and data["group_order"] == 96
    assert len(data["relaxations"]) == 6  # three members, each with −b
    fcc = [r for r in data["relaxations"] if r["spacegroup_number"] == 225]
    assert len(fcc) >= 3 and max(r["energy_eV"] / r["natoms"] for r in fcc) - min(
        r["energy_eV"] / r["natoms"] for r in fcc) < 1e-6
    assert data["phases"][0]["spacegroup_symbol"] == "Fm-3m" and data["phases"][0]["n_variants"] == 3
