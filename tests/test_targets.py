"""Distortion channels and candidate targets (k = 0 isotropy subgroups)."""

import numpy as np
import pytest

from ase_sbs import candidate_targets, detect_symmetry, distortion_channels
from ase_sbs.setting import STRAIN_BASIS, distortion_representation


def distort(sym, elements, rng, amplitude=0.05):
    """Apply a random distortion from the K-fixed subspace of the whole distortion space."""
    Q, rho = distortion_representation(sym)
    P = rho[list(elements)].mean(axis=0)
    v = Q @ (P @ rng.standard_normal(P.shape[0]))
    v *= amplitude / np.abs(v).max()
    atoms = sym.atoms.copy()
    n = len(atoms)
    u = v[: 3 * n].reshape(n, 3)
    if sym.periodic:
        eps = np.einsum("a,aij->ij", v[3 * n :], STRAIN_BASIS)
        F = np.eye(3) + eps
        atoms.set_cell(np.asarray(atoms.cell) @ F.T, scale_atoms=False)
        atoms.positions = atoms.positions @ F.T
    atoms.positions = atoms.positions + u
    return atoms


def test_batio3_polar_and_strain_targets(batio3):
    targets = {t.spacegroup_number: t for t in candidate_targets(batio3)}
    for number, symbol, index in [(99, "P4mm", 6), (38, "Amm2", 12), (160, "R3m", 8)]:
        t = targets[number]
        assert t.spacegroup_symbol == symbol and t.index == index
        assert "T1u" in t.channels
    t = targets[123]
    assert t.spacegroup_symbol == "P4/mmm" and t.index == 3 and t.channels == ("Eg",)
    channels = {c.label: c for c in distortion_channels(detect_symmetry(batio3))}
    assert channels["T1u"].o3_irreps == "1o" and channels["T1u"].sources == ("displacement",)
    assert channels["T1u"].multiplicity == 3  # 15 displacements - 3 translations = 3 T1u + T2u
    assert channels["Eg"].sources == ("strain",) and channels["Eg"].o3_irreps == "2e"


def test_bcc_cu_breaks_to_i4mmm_through_strain(cu_bcc):
    targets = {t.spacegroup_number: t for t in candidate_targets(cu_bcc)}
    assert targets[139].spacegroup_symbol == "I4/mmm" and targets[139].index == 3
    assert targets[139].channels == ("Eg",)


def test_channels_span_the_distortion_space(batio3, nh3, prism):
    for atoms, dim in [(batio3, 3 * 5 - 3 + 6), (nh3, 3 * 4 - 6), (prism, 3 * 6 - 6)]:
        sym = detect_symmetry(atoms)
        channels = distortion_channels(sym)
        assert sum(c.dimension * c.multiplicity for c in channels) == dim
        basis = np.concatenate([c.basis for c in channels], axis=1)
        assert np.allclose(basis.T @ basis, np.eye(dim), atol=1e-10)
        for c in channels:  # characters of real irreps: <χ, χ> = 1 (or 2 for complex pairs)
            norm = c.character @ c.character / sym.order
            assert round(norm) in (1, 2) and abs(norm - round(norm)) < 1e-8


@pytest.mark.parametrize("name", ["batio3", "cu_bcc", "nh3", "prism"])
def test_every_candidate_target_is_the_exact_symmetry_of_a_distortion(name, request):
    """Independent check: the symmetry detected afresh (spglib for crystals, the point-set search
    for molecules) of structures distorted inside each target."""
    sym = detect_symmetry(request.getfixturevalue(name))
    rng = np.random.default_rng(7)
    targets = candidate_targets(sym)
    assert targets
    for t in targets:
        distorted = distort(sym, t.elements, rng)
        found = detect_symmetry(distorted, symprec=1e-4)
        assert found.order == t.order, t.name
        assert found.schoenflies == t.schoenflies
        if sym.periodic:
            assert found.spacegroup_number == t.spacegroup_number, t.name
        assert sym.order // t.order == t.index


def test_targets_are_inequivalent_proper_subgroups(batio3):
    sym = detect_symmetry(batio3)
    group = sym.point_group
    reps = set()
    for t in candidate_targets(sym):
        mask = sum(1 << i for i in t.elements)
        assert group.is_subgroup(t.elements) and t.order < sym.order
        cls = frozenset(group.conjugates(mask))
        assert cls not in reps
        reps.add(cls)
        assert t.n_conjugates == len(cls)


def test_chiral_targets_keep_their_hand_in_a_left_handed_cell():
    """P4_122 with its c axis reversed in the cell (a left-handed basis; the same
    crystal): its C4 target stays P4_1, not the enantiomorph P4_3, and the mirror image
    (P4_322) has P4_3."""
    from ase.spacegroup import crystal

    atoms = crystal(["C"], [(0.13, 0.27, 0.31)], spacegroup=91, cellpar=[3.1, 3.1, 4.7, 90, 90, 90])
    flipped = atoms.copy()
    flipped.set_cell(np.asarray(atoms.cell) * [[1], [1], [-1]], scale_atoms=False)
    mirrored = atoms.copy()
    mirrored.set_cell(np.asarray(atoms.cell) * [1, 1, -1], scale_atoms=False)
    mirrored.positions = atoms.positions * [1, 1, -1]
    for structure, number, c4 in [(atoms, 91, 76), (flipped, 91, 76), (mirrored, 95, 78)]:
        sym = detect_symmetry(structure)
        assert sym.spacegroup_number == number
        assert {t.spacegroup_number for t in candidate_targets(sym) if t.schoenflies == "C4"} == {c4}


@pytest.mark.parametrize("number, labels", [
    (6, {"A'", "A''"}),
    (81, {"A", "B", "E"}),
    (111, {"A1", "A2", "B1", "B2", "E"}),
    (168, {"A", "B", "E1", "E2"}),
    (175, {"Ag", "Au", "Bg", "Bu", "E1g", "E1u", "E2g", "E2u"}),
])
def test_channel_labels_name_every_irrep_once(number, labels):
    """Atoms on general positions carry every irrep of the point group; each has its own
    Mulliken label (B of S4 and D2d by the S4 axis, Cs by its mirror, E1/E2 of C6)."""
    from ase.spacegroup import crystal

    hexagonal = number >= 168
    cellpar = [3.1, 3.1, 4.7, 90, 90, 120] if hexagonal else [3.1, 3.6 if number == 6 else 3.1, 4.7, 90, 90, 90]
    atoms = crystal(["C", "O"], [(0.13, 0.27, 0.31), (0.41, 0.08, 0.77)], spacegroup=number, cellpar=cellpar)
    sym = detect_symmetry(atoms)
    assert sym.spacegroup_number == number
    assert {c.label for c in distortion_channels(sym)} == labels
