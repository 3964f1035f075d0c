"""Molecular point groups that do not depend on the orientation, on near-degenerate moments
of inertia or on the linear-algebra kernel (CI runs this file with OPENBLAS_CORETYPE=Haswell
and unset).

Each molecule is built exactly symmetric: orbits of random points under a group G given by
its generators, in G's standard frame, so |G| (the closure of the generators) is the
expected order, independent of the detection. Symmetric and nearly symmetric tops come
from stretching one axis by a linear map that commutes with G (so the structure keeps G
exactly): two principal second moments made equal, or equal to one part in 10⁸ to 10²,
the moments along which principal axes are arbitrary. Then a random rotation or
improper rotation and a shift.
"""

import numpy as np
import pytest
from ase import Atoms
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ase_sbs import detect_symmetry
from ase_sbs.core.pointgroups import close_matrices, point_set_group



def rotation(axis, angle):
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * K + (1 - np.cos(angle)) * K @ K


def cn(n):
    return rotation([0, 0, 1], 2 * np.pi / n)


C2X = rotation([1, 0, 0], np.pi)
SIGMA_V = np.diag([1.0, -1.0, 1.0])  # the xz plane
SIGMA_H = np.diag([1.0, 1.0, -1.0])
INVERSION = -np.eye(3)
C3_111 = rotation([1, 1, 1], 2 * np.pi / 3)


def s2n(n):  # rotation by 2π/(2n) then σh
    return SIGMA_H @ rotation([0, 0, 1], np.pi / n)


# name, generators, kind: "diagonal" (every element diagonal in the frame: any axis may be
# stretched), "axial" (the z axis may be stretched), "cubic" (a spherical top already)
GROUPS = [
    ("C1", [], "diagonal"), ("Cs", [SIGMA_H], "diagonal"), ("Ci", [INVERSION], "diagonal"),
    ("C2", [cn(2)], "diagonal"), ("C2v", [cn(2), SIGMA_V], "diagonal"), ("C2h", [cn(2), SIGMA_H], "diagonal"),
    ("D2", [cn(2), C2X], "diagonal"), ("D2h", [cn(2), C2X, INVERSION], "diagonal"),
    ("C3", [cn(3)], "axial"), ("C3v", [cn(3), SIGMA_V], "axial"), ("C3h", [cn(3), SIGMA_H], "axial"),
    ("D3", [cn(3), C2X], "axial"), ("D3h", [cn(3), C2X, SIGMA_H], "axial"),
    ("D3d", [cn(3), C2X, INVERSION], "axial"), ("S4", [s2n(2)], "axial"), ("S6", [s2n(3)], "axial"),
    ("D2d", [s2n(2), C2X], "axial"), ("C4v", [cn(4), SIGMA_V], "axial"), ("C4h", [cn(4), SIGMA_H], "axial"),
    ("D4h", [cn(4), C2X, SIGMA_H], "axial"), ("C5v", [cn(5), SIGMA_V], "axial"),
    ("C6v", [cn(6), SIGMA_V], "axial"), ("D6h", [cn(6), C2X, SIGMA_H], "axial"),
    ("T", [cn(2), C3_111], "cubic"), ("Th", [cn(2), C3_111, INVERSION], "cubic"),
    ("Td", [s2n(2), C3_111], "cubic"), ("O", [cn(4), C3_111], "cubic"), ("Oh", [cn(4), C3_111, INVERSION], "cubic"),
]
SPECIAL = {"T": [1, 1, 1], "Th": [1, 0, 0], "Td": [1, 1, 1], "O": [1, 0, 0], "Oh": [1, 0, 0]}


def orbit(group, point):
    return np.unique(np.round(group @ point, 12), axis=0)


def second_moments(atoms):
    r = atoms.positions - atoms.get_center_of_mass()
    return np.einsum("i,ij,ik->jk", atoms.get_masses(), r, r)


def symmetric_molecule(name, generators, kind, rng, stretch, eps):
    """An exactly G-symmetric molecule in G's frame: two orbits of random points (H and C;
    four, H, C, N and O, for |G| ≤ 2; for the cubic groups one random orbit and the orbit
    of a special direction), then
    one axis stretched so that the second moments along ``stretch`` = (i, j) satisfy
    M_jj = (1 + eps) M_ii."""
    G = close_matrices(generators)
    size = 1.0 + 0.35 * np.sqrt(len(G))  # keep the atoms of large orbits apart
    if kind == "cubic":
        points = [orbit(G, size * rng.standard_normal(3)), orbit(G, 0.7 * size * np.asarray(SPECIAL[name]))]
    else:  # small groups: more orbits, so that the molecule is neither linear nor planar by accident
        points = [orbit(G, size * rng.standard_normal(3)) for _ in range(2 if len(G) > 2 else 4)]
    numbers = np.concatenate([np.full(len(p), z) for p, z in zip(points, (1, 6, 7, 8))])
    atoms = Atoms(numbers=numbers, positions=np.concatenate(points))
    if stretch is not None and kind != "cubic":
        i, j = stretch if kind == "diagonal" else (0, 2)
        M = np.diag(second_moments(atoms))
        scale = np.ones(3)
        scale[j] = np.sqrt((1 + eps) * M[i] / M[j])
        atoms.positions = atoms.positions * scale
    return G, atoms


def assert_operations_map_the_atoms(sym):
    atoms = sym.atoms
    for R, t, perm in zip(sym.operations.rotations, sym.operations.translations, sym.operations.permutations):
        assert sorted(perm) == list(range(len(atoms))) and (atoms.numbers[perm] == atoms.numbers).all()
        assert np.abs(atoms.positions @ R.T + t - atoms.positions[perm]).max() < 1e-6


def random_orthogonal(rng):
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def min_distance(atoms):
    d = np.linalg.norm(atoms.positions[:, None] - atoms.positions[None], axis=2)
    return d[np.triu_indices(len(atoms), 1)].min()


@settings(max_examples=160, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(group=st.sampled_from(GROUPS), seed=st.integers(0, 2**32 - 1),
       stretch=st.sampled_from([None, (0, 1), (0, 2), (1, 2)]),
       eps=st.sampled_from([0.0, 1e-8, 1e-5, -1e-3, 1e-2]))
def test_detected_order_is_the_order_of_the_group_built(group, seed, stretch, eps):
    name, generators, kind = group
    rng = np.random.default_rng(seed)
    G, atoms = symmetric_molecule(name, generators, kind, rng, stretch, eps)
    assume(min_distance(atoms) > 0.3)
    atoms.positions = atoms.positions @ random_orthogonal(rng).T + 5 * rng.standard_normal(3)
    sym = detect_symmetry(atoms)
    assert sym.order == len(G), (name, sym.schoenflies)
    assert sym.schoenflies == name
    assert_operations_map_the_atoms(sym)


@pytest.mark.parametrize("name, generators, kind", [g for g in GROUPS if g[0] in ("C2v", "D2d", "D3h", "Td", "Oh")])
def test_exact_symmetric_tops_in_many_orientations(name, generators, kind):
    """Exactly degenerate second moments (symmetric and spherical tops, accidental or by
    symmetry): the principal axes are arbitrary, the group is not."""
    rng = np.random.default_rng(11)
    G, atoms = symmetric_molecule(name, generators, kind, rng, (0, 1) if kind == "diagonal" else (0, 2), 0.0)
    M = np.linalg.eigvalsh(second_moments(atoms))
    assert min(M[1] - M[0], M[2] - M[1]) < 1e-9 * M[2]  # a symmetric (or spherical) top
    for _ in range(20):
        turned = atoms.copy()
        turned.positions = atoms.positions @ random_orthogonal(rng).T
        assert detect_symmetry(turned).order == len(G)


def test_nearly_symmetric_structure_gives_the_largest_closed_group():
    """A D3h molecule moved by noise below the tolerance: every operation of D3h maps it
    within the tolerance, and the group comes back exact (closed to machine precision)."""
    rng = np.random.default_rng(5)
    G, atoms = symmetric_molecule("D3h", [cn(3), C2X, SIGMA_H], "axial", rng, None, 0.0)
    r = atoms.positions - atoms.get_center_of_mass() + 2e-4 * rng.standard_normal(atoms.positions.shape)
    mats, perms = point_set_group(r, atoms.numbers, tol=1e-3)
    assert len(mats) == 12 and np.allclose(mats[0], np.eye(3))
    products = np.einsum("aij,bjk->abik", mats, mats).reshape(-1, 9)
    assert np.abs(products[:, None] - mats.reshape(1, -1, 9)).max(axis=2).min(axis=1).max() < 1e-12
    for R, p in zip(mats, perms):
        assert np.abs(r @ R.T - r[p]).max() < 1e-3
    assert len(point_set_group(r, atoms.numbers, tol=1e-5)[0]) == 1  # noise above a tight tolerance


@pytest.mark.parametrize("name, order", [("NH3_planar.xyz", 12), ("CH4", 24)])
def test_a_loose_tolerance_on_a_noisy_molecule_finds_the_whole_group(name, order):
    """Noise of 0.02 Å, symprec 0.3 Å: the exact group of the molecule before the noise
    (D3h, Td), which the search used to miss with a traceback."""
    from ase.build import molecule
    from ase.io import read

    from .conftest import EXAMPLES

    atoms = read(EXAMPLES / name) if name.endswith(".xyz") else molecule(name)
    assert detect_symmetry(atoms).order == order
    atoms.rattle(0.02, seed=2)
    assert detect_symmetry(atoms, symprec=1e-3).order == 1
    assert detect_symmetry(atoms, symprec=0.3).order == order
