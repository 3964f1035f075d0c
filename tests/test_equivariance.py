"""Rotating (proper or improper), translating or permuting the input maps the detected
operations, the targets and the SBS objects accordingly."""

import numpy as np
import pytest

from ase_sbs import candidate_targets, detect_symmetry, symmetry_breaking_set

from .conftest import random_orthogonal, same_set, transform

CASES = {
    "batio3": ["P4mm", "Amm2", "R3m", "P4/mmm", "Cm"],
    "cu_bcc": ["I4/mmm", "R-3m"],
    "zincblende": ["R3m", "I-4m2", "Imm2", "Cm", "P1"],
    "wc_type": ["Amm2", "Cm", "P1"],
    "nh3": ["C3v", "C2v", "C1"],
    "prism": ["D3", "C3", "C1"],
}


@pytest.fixture(scope="module")
def zincblende():
    """F-43m: no inversion; its mirror image is the same crystal turned by an improper
    lattice symmetry that is not in Td."""
    from ase.build import bulk

    return bulk("GaAs", "zincblende", a=5.65)


@pytest.fixture(scope="module")
def wc_type():
    """P-6m2 (WC type, one displaced): no inversion, hexagonal lattice."""
    from ase.spacegroup import crystal

    return crystal(["W", "C"], [(0, 0, 0), (1 / 3, 2 / 3, 0.5)], spacegroup=187, cellpar=[2.9, 2.9, 2.8, 90, 90, 120])


def target_signature(t):
    return (t.spacegroup_number, t.schoenflies, t.index, t.n_conjugates, t.channels)


@pytest.mark.parametrize("name", list(CASES))
def test_targets_and_sbs_transform_with_the_structure(name, request):
    atoms = request.getfixturevalue(name)
    sym0 = detect_symmetry(atoms)
    targets0 = [target_signature(t) for t in candidate_targets(sym0)]
    sets0 = {t: symmetry_breaking_set(sym0, t) for t in CASES[name]}
    rng = np.random.default_rng(2024)
    for trial in range(20):
        g = random_orthogonal(rng, improper=trial % 2 == 1)
        perm = rng.permutation(len(atoms))
        shift = rng.normal(size=3) * 3
        sym1 = detect_symmetry(transform(atoms, g, perm, shift))
        # operations: S' = g S g^-1, with the permutations relabelled
        conj = np.einsum("ij,njk,lk->nil", g, sym0.point_group_matrices, g)
        assert same_set(conj.reshape(len(conj), -1), sym1.point_group_matrices.reshape(len(conj), -1))
        assert [target_signature(t) for t in candidate_targets(sym1)] == targets0
        for t, B0 in sets0.items():
            B1 = symmetry_breaking_set(sym1, t)
            assert B1.irreps == B0.irreps
            expected = B0.objects @ B0.representation(g)[0].T
            assert same_set(B1.objects, expected), (name, t, trial)
