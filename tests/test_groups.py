"""Finite groups: subgroup lattice, conjugacy, normalizers, complements, names."""


import numpy as np
import pytest

from ase_sbs import SBSInputError, detect_symmetry
from ase_sbs.core.groups import FiniteGroup, bits
from ase_sbs.core.pointgroups import (
    cayley_table,
    close_matrices,
    hermann_mauguin_name,
    ideal_sbs_exists,
    o3_normalizer,
    refine_group,
    schoenflies_name,
)


def rot(axis, angle):
    from scipy.spatial.transform import Rotation

    axis = np.asarray(axis, float)
    return Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()


def mirror(normal):
    n = np.asarray(normal, float)
    n /= np.linalg.norm(n)
    return np.eye(3) - 2 * np.outer(n, n)


@pytest.fixture(scope="module")
def oh():
    return close_matrices([rot([0, 0, 1], np.pi / 2), rot([1, 1, 1], 2 * np.pi / 3), -np.eye(3)])


def test_oh_has_98_subgroups_in_33_conjugacy_classes(oh):
    assert len(oh) == 48
    group = FiniteGroup(cayley_table(oh))
    assert len(group.subgroups) == 98
    classes = group.conjugacy_classes_of_subgroups()
    assert len(classes) == 33
    assert sum(len(c) for c in classes) == 98
    for cls in classes:  # every member is a subgroup and all members are conjugate
        for m in cls:
            assert group.is_subgroup(bits(m))
            assert set(group.conjugates(m)) == set(cls)


def test_detected_oh_of_batio3_has_the_same_subgroup_lattice(batio3):
    sym = detect_symmetry(batio3)
    assert len(sym.point_group.subgroups) == 98
    assert len(sym.point_group.conjugacy_classes_of_subgroups()) == 33


def test_lagrange_and_table_are_a_group(oh):
    group = FiniteGroup(cayley_table(oh))
    t = group.table
    # associativity and inverses, checked on the table itself
    assert (t[t[:, :, None], np.arange(48)[None, None, :]] == t[np.arange(48)[:, None, None], t[None, :, :]]).all()
    assert (t[np.arange(48), group.inverse] == 0).all()
    for m in group.subgroups:
        assert 48 % bin(m).count("1") == 0


@pytest.mark.parametrize(
    "generators, schoenflies, hm",
    [
        ([rot([0, 0, 1], 2 * np.pi / 3), mirror([1, 0, 0]), mirror([0, 0, 1])], "D3h", "-6m2"),
        ([rot([0, 0, 1], 2 * np.pi / 3), mirror([1, 0, 0])], "C3v", "3m"),
        ([rot([0, 0, 1], np.pi / 2), mirror([1, 0, 0])], "C4v", "4mm"),
        ([-rot([0, 0, 1], np.pi / 2)], "S4", "-4"),
        ([-rot([0, 0, 1], 2 * np.pi / 3)], "S6", "-3"),
        ([-rot([0, 0, 1], np.pi / 3)], "C3h", "-6"),
        ([rot([0, 0, 1], np.pi / 2), rot([1, 0, 0], np.pi), -np.eye(3)], "D4h", "4/mmm"),
        ([rot([0, 0, 1], np.pi / 2), rot([1, 1, 1], 2 * np.pi / 3), ], "O", "432"),
        ([rot([0, 0, 1], np.pi), rot([1, 1, 1], 2 * np.pi / 3), mirror([1, -1, 0])], "Td", "-43m"),
        ([rot([0, 0, 1], np.pi), rot([1, 1, 1], 2 * np.pi / 3), -np.eye(3)], "Th", "m-3"),
        ([rot([0, 0, 1], 2 * np.pi / 5), rot([1, 0, 0], np.pi), mirror([0, 0, 1])], "D5h", "-10m2"),
        ([mirror([0, 0, 1])], "Cs", "m"),
        ([-np.eye(3)], "Ci", "-1"),
    ],
)
def test_point_group_names(generators, schoenflies, hm):
    mats = close_matrices(generators)
    assert schoenflies_name(mats) == schoenflies
    assert hermann_mauguin_name(schoenflies) == hm
    # names do not depend on orientation
    g = rot([0.3, -1.2, 0.7], 1.1)
    assert schoenflies_name(np.einsum("ij,njk,lk->nil", g, mats, g)) == schoenflies


def test_icosahedral_group_is_named_and_closed():
    phi = (1 + 5**0.5) / 2
    mats = close_matrices([rot([0, 1, phi], 2 * np.pi / 5), rot([1, 1, 1], 2 * np.pi / 3), -np.eye(3)])
    assert len(mats) == 120
    assert schoenflies_name(mats) == "Ih"


def test_normalizers_in_o3(oh):
    assert len(o3_normalizer(oh)) == 48  # Oh is self-normalizing in O(3)
    c4v = close_matrices([rot([0, 0, 1], np.pi / 2), mirror([1, 0, 0])])
    n = o3_normalizer(c4v)
    assert len(n) == 32 and schoenflies_name(n) == "D8h"  # rotation by π/4 swaps the mirror pairs
    d2 = close_matrices([rot([0, 0, 1], np.pi), rot([1, 0, 0], np.pi)])
    assert schoenflies_name(o3_normalizer(d2)) == "Oh"  # the three axes can be permuted
    assert o3_normalizer(close_matrices([rot([0, 0, 1], np.pi / 2)])) is None  # C4: continuous
    # every element returned normalizes S, and it is a group
    for g in n:
        conj = np.einsum("ij,njk,lk->nil", g, c4v, g)
        assert all(np.abs(c4v - c).max(axis=(1, 2)).min() < 1e-9 for c in conj)


def test_complement_criterion_for_ideal_sbs():
    d3h = close_matrices([rot([0, 0, 1], 2 * np.pi / 3), mirror([1, 0, 0]), mirror([0, 0, 1])])
    assert ideal_sbs_exists(d3h)[0]  # N = D6h, complement {E, i}
    c3 = close_matrices([rot([0, 0, 1], 2 * np.pi / 3)])
    assert not ideal_sbs_exists(c3)[0]  # SO(2) about the axis meets C3
    cs = close_matrices([mirror([0, 0, 1])])
    assert ideal_sbs_exists(cs)[0]
    # the complement found is a complement
    n = o3_normalizer(d3h)
    group = FiniteGroup(cayley_table(n))
    sub = sum(1 << int(np.abs(n - R).max(axis=(1, 2)).argmin()) for R in d3h)
    m = group.complement(sub)
    assert m is not None and m & sub == 1
    assert bin(m).count("1") * len(d3h) == len(n)


def test_refine_group_removes_noise(oh):
    rng = np.random.default_rng(0)
    noisy = oh + 1e-6 * rng.standard_normal(oh.shape)
    exact = refine_group(noisy)
    t = cayley_table(exact, tol=1e-12)
    assert np.abs(np.einsum("aij,bjk->abik", exact, exact) - exact[t]).max() < 1e-13


def test_cayley_table_rejects_a_set_that_is_not_a_group():
    with pytest.raises(SBSInputError, match="do not form a group"):
        cayley_table(np.array([np.eye(3), rot([0, 0, 1], np.pi / 2)]))


def test_generators_generate(oh):
    group = FiniteGroup(cayley_table(oh))
    for m in group.subgroups:
        assert group.generate(group.generators(m)) == m
