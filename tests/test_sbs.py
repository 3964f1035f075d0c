"""Symmetry breaking sets: sizes, irreps, exact stabilizers, closure."""

import numpy as np
import pytest

from ase_sbs import (
    SBSInputError,
    candidate_targets,
    detect_symmetry,
    symmetry_breaking_set,
)


def conjugates_of(sym, elements):
    group = sym.point_group
    mask = sum(1 << i for i in elements)
    return {tuple(group.elements_of(m)) for m in group.conjugates(mask)}


def assert_is_sbs(B):
    """Every member breaks S exactly to a conjugate of K, one member per variant, B closed under S."""
    sym = B.symmetry
    conj = conjugates_of(sym, B.target.elements)
    assert len(B) == sym.order // B.target.order == B.target.index
    assert tuple(B.stabilizers[0]) == tuple(B.target.elements)
    for j, b in enumerate(B.objects):
        stab = B.stabilizer_of(b)
        assert stab == B.stabilizers[j]
        assert stab in conj
        assert np.allclose(B.representation(sym.point_group_matrices[B.coset_representatives[j]])[0] @ B.objects[0], b)
    assert len({tuple(s) for s in B.stabilizers}) == len(conj)  # every variant selected
    assert B.is_closed_under(sym.point_group_matrices)
    # no S-invariant part
    D = B.representation(sym.point_group_matrices)
    assert np.allclose(D.mean(axis=0) @ B.objects[0], 0, atol=1e-10)


@pytest.mark.parametrize("target, size", [("P4mm", 6), ("Amm2", 12), ("R3m", 8), (99, 6), ("C4v", 6)])
def test_batio3_polar_sbs(batio3, target, size):
    B = symmetry_breaking_set(batio3, target)
    assert B.irreps == "1o" and len(B) == size
    assert "T1u" in B.channels
    assert_is_sbs(B)


def test_batio3_p4mm_objects_are_the_six_cubic_axes(batio3):
    B = symmetry_breaking_set(batio3, "P4mm")
    axes = np.concatenate([np.eye(3), -np.eye(3)])
    assert all(np.abs(axes - b).max(axis=1).min() < 1e-12 for b in B.objects)


def test_batio3_strain_sbs(batio3):
    B = symmetry_breaking_set(batio3, "P4/mmm")
    assert B.irreps == "2e" and len(B) == 3 and B.channels == ("Eg",)
    assert_is_sbs(B)


def test_bcc_cu_i4mmm_through_2e(cu_bcc):
    B = symmetry_breaking_set(cu_bcc, "I4/mmm")
    assert B.irreps == "2e" and len(B) == 3
    assert B.target.spacegroup_number == 139
    assert_is_sbs(B)


def test_planar_nh3_c3v_is_plus_minus_z(nh3):
    B = symmetry_breaking_set(nh3, "C3v")
    assert B.irreps == "1o" and len(B) == 2
    assert_is_sbs(B)
    normal = np.cross(nh3.positions[2] - nh3.positions[1], nh3.positions[3] - nh3.positions[1])
    normal /= np.linalg.norm(normal)
    assert same_up_to_order(B.objects, np.array([normal, -normal]))


def same_up_to_order(A, B):
    return all(np.abs(B - a).max(axis=1).min() < 1e-9 for a in A)


def test_prism_sigma_h_target_gives_six_in_plane_vectors(prism):
    B = symmetry_breaking_set(prism, [np.eye(3), np.diag([1.0, 1.0, -1.0])])
    assert B.irreps == "1o" and len(B) == 6
    assert np.allclose(B.objects[:, 2], 0)  # in the plane of σh
    assert_is_sbs(B)


def test_prism_chiral_target_needs_a_pseudoscalar(prism):
    B = symmetry_breaking_set(prism, "D3")
    assert B.irreps == "0o" and len(B) == 2
    assert np.allclose(sorted(B.objects[:, 0]), [-1, 1])
    assert_is_sbs(B)


def test_full_breaking_of_oh_gives_48_objects_with_trivial_stabilizers(batio3):
    B = symmetry_breaking_set(batio3, "C1")
    assert len(B) == 48
    assert all(s == (0,) for s in B.stabilizers)
    assert_is_sbs(B)


@pytest.mark.parametrize("name", ["batio3", "cu_bcc", "nh3", "prism"])
def test_every_candidate_target_has_an_exact_sbs(name, request):
    sym = detect_symmetry(request.getfixturevalue(name))
    for t in candidate_targets(sym):
        B = symmetry_breaking_set(sym, t)
        assert_is_sbs(B)
        if t.channels:  # the objects can push along a channel that reaches the target
            assert B.channels


def test_ideal_sbs_criterion_is_exposed(batio3, nh3):
    assert symmetry_breaking_set(batio3, "P4mm").ideal[0]  # N(Oh) = Oh: trivial complement
    assert symmetry_breaking_set(nh3, "C3v").ideal[0]  # N(D3h) = D6h, complement {E, i}


def test_closure_under_a_larger_group_is_detected(batio3):
    B = symmetry_breaking_set(batio3, "P4mm")
    assert B.is_closed_under([-np.eye(3)])
    tilt = np.array([[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1]])
    assert not B.is_closed_under([tilt])


@pytest.mark.parametrize(
    "target, message",
    [
        ("D6h", "not a subgroup"),
        ("P6/mmm", "not a subgroup"),
        ("Xyz", "unknown group name"),
        ("C2v", "matches 3 inequivalent subgroups"),
        ("Oh", "nothing to break"),
        (231, "from 1 to 230"),
        ([[[0, 1, 0], [1, 0, 0], [0, 0, 1]], [[1, 0, 0], [0, 1, 0], [0, 0, -1]]], "not closed"),
        ([[[np.cos(0.3), -np.sin(0.3), 0], [np.sin(0.3), np.cos(0.3), 0], [0, 0, 1]]], "not a symmetry"),
    ],
)
def test_bad_targets_give_clear_errors(batio3, target, message):
    with pytest.raises(SBSInputError, match=message):
        symmetry_breaking_set(batio3, target)


def test_space_group_number_on_a_molecule_is_refused(nh3):
    with pytest.raises(SBSInputError, match="needs a crystal"):
        symmetry_breaking_set(nh3, 99)
