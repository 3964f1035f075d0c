"""Ground states by cascade with SevenNet-0 and CHGNet (slow: minutes on CPU).

SrZrO3 on 2x2x2: the tree from the cubic parent is checked against an independent plain-ASE
computation of the orthorhombic a⁻a⁻c⁺ phase (antiphase tilts about x and y, in-phase about
z, built by hand), relaxed under FixSymmetry with a FrechetCellFilter. The cascade runs at
its default depth, best first: the lowest phase found at the root, Pnma, is checked and is
a local minimum below every other, so nothing is expanded; the single-tilt phases are in
the tree above it. CaTiO3 on 2x2x2, one level deep: its lowest phase, Pnma, is unstable
under SevenNet-0 (phonopy on the relaxed 20-atom cell gives five imaginary Γ modes), so the
tree must name no ground state above it; and the same in a minute for KNbO3 under CHGNet in
the 10-atom Γ ⊕ R setting, its lowest phase Amm2 unstable, R3m a local minimum above it
(checked with phonopy at Γ). BaTiO3 at k = 0, every node expanded and checked:
the three polar phases are one connected tree whose lowest node is a local minimum.

ASE_SBS_SLOW_STORE=DIR keeps the cascades' finished relaxations in DIR, so that a rerun
of these tests resumes from them instead of relaxing everything again.
"""

import os

import numpy as np
import pytest
from ase.build import make_supercell
from ase.io import read

from ase_sbs import break_symmetry
from ase_sbs.report.tree import describe_tree

from ..conftest import EXAMPLES
from ..test_supercell import tilt_pattern
from .plain_ase import phonopy_with_force_constants, primitive, relax_keeping_symmetry, spacegroup_number

pytestmark = pytest.mark.slow


def _store(tmp_path_factory, name: str) -> str:
    kept = os.environ.get("ASE_SBS_SLOW_STORE")
    return os.path.join(kept, name) if kept else str(tmp_path_factory.mktemp(name))


@pytest.fixture(scope="module")
def srzro3():
    return read(EXAMPLES / "SrZrO3_cubic.extxyz")


@pytest.fixture(scope="module")
def srzro3_cascade(srzro3, sevennet, tmp_path_factory):
    return break_symmetry(srzro3, "7net-0", supercell=(2, 2, 2), cascade=True,
                          out=_store(tmp_path_factory, "srzro3_cascade"), progress=False)


@pytest.fixture(scope="module")
def pnma_by_hand(srzro3, sevennet):
    """ΔE per formula unit (eV) of a⁻a⁻c⁺ against the cubic parent, both plain ASE."""
    cubic = relax_keeping_symmetry(srzro3, sevennet)
    e_cubic = cubic.get_potential_energy() / len(cubic) * 5
    big = make_supercell(cubic, 2 * np.eye(3))
    big.positions += tilt_pattern(big, np.array([0.06, 0.06, 0.0]), b_site="Zr")
    big.positions += tilt_pattern(big, np.array([0.0, 0.0, 0.06]), in_phase=True, b_site="Zr")
    prim = primitive(big)
    assert len(prim) == 20 and spacegroup_number(prim, 1e-4) == 62
    relaxed = relax_keeping_symmetry(prim, sevennet)
    assert spacegroup_number(relaxed) == 62
    return relaxed.get_potential_energy() / len(relaxed) * 5 - e_cubic


def test_srzro3_ground_state_is_pnma_at_the_plain_ase_energy(srzro3_cascade, pnma_by_hand):
    tree = srzro3_cascade.tree
    print(describe_tree(tree, supercell=True))
    ground = tree.nodes[tree.ground_state]
    assert ground.local_minimum and not ground.unstable
    assert all(n.energy_per_atom_eV >= ground.energy_per_atom_eV - 1e-9 for n in tree.nodes)
    assert ground.spacegroup_number == 62 and ground.cell_multiplication == 4
    assert spacegroup_number(ground.atoms) == 62
    print(f"Pnma: cascade {1000 * ground.delta_energy_per_formula_unit_eV:.2f} meV/f.u., "
          f"plain ASE {1000 * pnma_by_hand:.2f} meV/f.u.")
    assert ground.delta_energy_per_formula_unit_eV == pytest.approx(pnma_by_hand, abs=1e-3)
    # [Pm-3m : Pnma] = 48 point operations / 4 x 4 cells
    assert ground.n_variants == 24


def test_srzro3_tree_lists_the_single_tilt_phases_above_the_ground_state(srzro3_cascade):
    tree = srzro3_cascade.tree
    ground = tree.nodes[tree.ground_state]
    found = {n.spacegroup_number: n for n in tree.nodes[1:]}
    for number in (140, 74, 167, 127):  # I4/mcm, Imma, R-3c (a⁻ tilts), P4/mbm (c⁺)
        assert number in found, f"space group {number} missing from the tree"
        assert found[number].energy_per_atom_eV > ground.energy_per_atom_eV
    # Pnma carries both tilts: each single-tilt node names its tilt channel (its largest
    # mode), and Pnma has both, R (antiphase, from I4/mcm) and M (in-phase, from P4/mbm)
    antiphase, in_phase = _largest_mode(found[140]), _largest_mode(found[127])
    assert antiphase.startswith("R-") and in_phase.startswith("M-")
    amplitude = _amplitudes(ground)
    assert amplitude[antiphase] > 0.1 and amplitude[in_phase] > 0.1


def _amplitudes(node) -> dict:
    """{channel label: amplitude (Å)} of a node's symmetry modes against the root: the
    k = 0 channels and each channel beyond k = 0 (not their sum, listed among the first)."""
    modes = [m for m in node.modes["modes"] if m["label"] != "beyond k=0"] + (node.modes.get("beyond_k0_modes") or [])
    return {m["label"]: m["amplitude_A"] for m in modes}


def _largest_mode(node) -> str:
    amplitude = _amplitudes(node)
    return max(amplitude, key=amplitude.get)


def test_batio3_polar_phases_form_one_tree_with_a_local_minimum_at_the_bottom(batio3, tmp_path_factory):
    tree = break_symmetry(batio3, "7net-0", cascade=True, out=_store(tmp_path_factory, "batio3_cascade"),
                          budget={"expand": "all", "check": "all"}, progress=False).tree
    text = describe_tree(tree)
    print(text)
    by_number = {n.spacegroup_number: n for n in tree.nodes}
    assert {99, 38, 160} <= set(by_number)
    for n in tree.nodes:  # every node printed with its curvature check
        assert n.curvatures
    lowest = min(tree.nodes, key=lambda n: n.energy_per_atom_eV)
    assert lowest.local_minimum and tree.ground_state == lowest.id
    # connected: the lowest polar phase is reached from another polar phase as well
    froms = {tree.nodes[r["from"]].spacegroup_number for r in lowest.routes}
    assert froms & ({99, 38, 160} - {lowest.spacegroup_number})
    assert "local minimum" in text and "ground state in this setting" in text


def test_catio3_one_level_deep_names_no_ground_state_above_its_unstable_lowest_phase(sevennet, tmp_path_factory):
    """The reproduction: one level deep, the lowest phase found is Pnma, still unstable;
    R3c is a local minimum above it. The ground state lies below Pnma: none is named, the
    tree says which channels lead further, and a screen row says "below lowest"."""
    import json

    from ase_sbs.screen.summary import parent_keys

    ex = break_symmetry(read(EXAMPLES / "CaTiO3_cubic.extxyz"), "7net-0", supercell=(2, 2, 2), cascade=True,
                        max_depth=1, out=_store(tmp_path_factory, "catio3_cascade"), progress=False)
    tree = ex.tree
    text = describe_tree(tree, supercell=True)
    print(text)
    lowest = tree.nodes[tree.lowest]
    assert lowest.spacegroup_number == 62 and lowest.unstable and lowest.expansion == "depth limit"
    assert tree.ground_state is None and tree.verdict == "below the lowest phase"
    assert all(n.energy_per_atom_eV >= lowest.energy_per_atom_eV - 1e-9 for n in tree.nodes)
    assert "lies below Pnma (62)" in text
    keys = parent_keys(json.loads(json.dumps(ex.as_dict(), default=float)))
    assert keys["ground_status"] == "below lowest" and keys["lowest_sg"] == 62 and "ground_sg" not in keys


def _gamma_curvatures(atoms, calc) -> np.ndarray:
    """phonopy's Γ eigenvalues (eV/Å², unit masses) of ``atoms``' primitive cell, from ± 0.01 Å
    displacements of that cell, lowest first."""
    pytest.importorskip("phonopy")
    from ase_sbs.setting.scan import THZ

    ph = phonopy_with_force_constants(atoms, calc, np.eye(3, dtype=int), 0.01, primitive_matrix="auto")
    ph.masses = np.ones(len(ph.primitive))
    ph.run_qpoints([[0, 0, 0]])
    nu = ph.get_qpoints_dict()["frequencies"][0]
    return np.sort(np.sign(nu) * (nu / THZ) ** 2)


def test_knbo3_under_chgnet_names_no_ground_state_above_its_unstable_lowest_phase(tmp_path_factory):
    """A variant of the CaTiO3 reproduction, in the 10-atom Γ ⊕ R setting under CHGNet (a
    minute): the lowest phase found one level deep, Amm2, is unstable in Γ-B1, and R3m is a
    local minimum 2 meV/f.u. above it. Checked with plain ASE: Amm2 lies below R3m, phonopy
    at Γ gives Amm2 one imaginary mode and R3m none. The ground state lies below Amm2, so
    R3m is not named."""
    from ase_sbs.potentials import get_potential

    atoms = read(EXAMPLES / "perovskites" / "KNbO3.extxyz")
    ex = break_symmetry(atoms, "chgnet", supercell=[[0, 1, 1], [1, 0, 1], [1, 1, 0]], cascade=True, max_depth=1,
                        out=_store(tmp_path_factory, "knbo3_chgnet_cascade"), progress=False)
    tree = ex.tree
    lowest, minimum = tree.nodes[tree.lowest], tree.nodes[tree.lowest_local_minimum]
    assert lowest.spacegroup_number == 38 and lowest.unstable and lowest.expansion == "depth limit"
    assert minimum.spacegroup_number == 160 and minimum.local_minimum
    assert tree.ground_state is None and tree.verdict == "below the lowest phase"
    assert "lies below Amm2 (38)" in describe_tree(tree)
    calc = get_potential("chgnet", ["K", "Nb", "O"]).calc

    def energy_per_formula_unit(structure):
        structure = structure.copy()
        structure.calc = calc
        return structure.get_potential_energy() / len(structure) * 5

    assert energy_per_formula_unit(lowest.atoms) < energy_per_formula_unit(minimum.atoms) - 1e-3
    unstable = [c for c in _gamma_curvatures(lowest.atoms, calc) if c < -0.1]
    assert len(unstable) == 1 == sum(int((np.asarray(v) < 0).sum()) for v in lowest.curvatures.values())
    assert _gamma_curvatures(minimum.atoms, calc)[0] > -0.1
