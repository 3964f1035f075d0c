"""Atoms -> Symmetry: spglib for crystals, an exhaustive search for molecules, clear errors otherwise."""

import numpy as np
import pytest
from ase import Atoms

from ase_sbs import SBSInputError, detect_symmetry


def assert_operations_map_structure_onto_itself(sym):
    atoms = sym.atoms
    ops = sym.operations
    for R, t, perm in zip(ops.rotations, ops.translations, ops.permutations):
        assert sorted(perm) == list(range(len(atoms)))
        img = atoms.positions @ R.T + t
        diff = img - atoms.positions[perm]
        if sym.periodic:
            frac = diff @ np.linalg.inv(atoms.cell)
            diff = (frac - np.round(frac)) @ atoms.cell
        assert np.abs(diff).max() < 1e-6
        assert (atoms.numbers[perm] == atoms.numbers).all()
    # every operation's rotation is in the point group, which is orthogonal and closed
    S = sym.point_group_matrices
    assert np.allclose(np.einsum("nij,nkj->nik", S, S), np.eye(3), atol=1e-12)
    assert np.allclose(S[0], np.eye(3))
    assert np.allclose(S[ops.point_index], ops.rotations)


def test_cubic_batio3_is_pm3m_with_48_operations(batio3):
    sym = detect_symmetry(batio3)
    assert (sym.spacegroup_number, sym.spacegroup_symbol) == (221, "Pm-3m")
    assert (sym.schoenflies, sym.hermann_mauguin) == ("Oh", "m-3m")
    assert sym.order == 48 and len(sym.operations) == 48
    assert_operations_map_structure_onto_itself(sym)
    assert np.allclose(sym.frame @ sym.frame.T, np.eye(3))


def test_bcc_cu_conventional_cell_has_centring_translations(cu_bcc):
    sym = detect_symmetry(cu_bcc)
    assert sym.spacegroup_number == 229 and sym.schoenflies == "Oh"
    assert len(sym.operations) == 96  # 48 rotations x (0,0,0) and (1/2,1/2,1/2)
    assert len(sym.centering_translations) == 2
    assert_operations_map_structure_onto_itself(sym)


def test_planar_nh3_is_d3h_about_its_centre_of_mass(nh3):
    shifted = nh3.copy()
    shifted.translate([3.0, -1.0, 2.0])
    sym = detect_symmetry(shifted)
    assert not sym.periodic and sym.spacegroup_number is None
    assert sym.schoenflies == "D3h" and sym.order == 12
    assert_operations_map_structure_onto_itself(sym)
    com = shifted.get_center_of_mass()
    for R, t in zip(sym.operations.rotations, sym.operations.translations):
        assert np.allclose(R @ com + t, com)


def test_triangular_prism_is_d3h(prism):
    sym = detect_symmetry(prism)
    assert sym.schoenflies == "D3h"
    assert_operations_map_structure_onto_itself(sym)


def test_noisy_structure_gives_an_exact_group_at_loose_symprec(batio3):
    noisy = batio3.copy()
    noisy.rattle(0.01, seed=3)
    assert detect_symmetry(noisy, symprec=1e-4).spacegroup_number == 1
    sym = detect_symmetry(noisy, symprec=0.1)
    assert sym.spacegroup_number == 221
    S = sym.point_group_matrices
    prod = np.einsum("aij,bjk->abik", S, S)
    assert np.abs(prod - S[sym.point_group.table]).max() < 1e-12


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: Atoms(), "no atoms"),
        (lambda: Atoms("Cu2", positions=[[0, 0, 0], [0, 0, 0.01]], cell=[3, 3, 3], pbc=True), "on top of each other"),
        (lambda: Atoms("Cu", positions=[[0, 0, 0]], pbc=True), "cell is missing"),
        (lambda: Atoms("Cu2", positions=[[0, 0, 0], [1, 1, 1]], cell=[3, 3, 3], pbc=[True, True, False]),
         "partial periodicity"),
        (lambda: Atoms("CO", positions=[[0, 0, 0], [0, 0, 1.13]]), "linear molecule"),
        (lambda: Atoms("Ar", positions=[[0, 0, 0]]), "single atom"),
        (lambda: "not atoms", "expected an ase.Atoms"),
    ],
)
def test_bad_structures_give_clear_errors(make, message):
    with pytest.raises(SBSInputError, match=message):
        detect_symmetry(make())


def test_symprec_that_finds_no_consistent_symmetry_is_reported(batio3):
    noisy = batio3.copy()
    noisy.rattle(0.05, seed=1)
    with pytest.raises(SBSInputError, match="no consistent symmetry"):
        detect_symmetry(noisy, symprec=3.0)
    with pytest.raises(SBSInputError, match="symprec must be a positive"):
        detect_symmetry(batio3, symprec=-1)
