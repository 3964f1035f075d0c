"""Beyond k = 0: the space group modulo a supercell, its channels, isotropy subgroups
and per-atom symmetry-breaking objects (SrTiO3 Pm-3m on 2x2x2)."""

import subprocess
import sys

import numpy as np
import pytest
import spglib
from ase.io import read

from ase_sbs.bias import BiasDescriptor, evaluate_bias
from ase_sbs.errors import SBSInputError
from ase_sbs.sbs import symmetry_breaking_set
from ase_sbs.setting import (
    channel_matches_kpoint,
    distortion_channels,
    fold_setting,
    isotropy_subgroups,
    parse_kpoint,
    supercell_for_kpoint,
    supercell_setting,
)

from .conftest import EXAMPLES, random_orthogonal, transform


def tilt_pattern(atoms, omega, in_phase=False, b_site="Ti"):
    """Octahedral rotations by hand: the B cation (``b_site``) at the cube centres, each O
    moves by ω_n × (x_O − x_B(n)) with ω_n = ω (−1)^(n_x + n_y + n_z) alternating from cell to cell
    (a^0a^0c^- for ω ∥ z, a^-a^-c^0 for ω ∥ [110], a^-a^-a^- for ω ∥ [111]); with
    ``in_phase`` each component ω_a alternates only across the axes other than a (the same
    sense in every cell along a: a^0a^0c^+ for ω ∥ z)."""
    cell = np.asarray(atoms.cell)
    a = cell[0, 0] / 2  # 2x2x2 of a cubic cell
    ti = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == b_site]
    disp = np.zeros((len(atoms), 3))
    for i, s in enumerate(atoms.get_chemical_symbols()):
        if s != "O":
            continue
        d = atoms.positions[ti] - atoms.positions[i]
        d -= np.round(d @ np.linalg.inv(cell)) @ cell
        j = ti[int(np.argmin(np.linalg.norm(d, axis=1)))]
        n = np.floor(atoms.positions[j] / a + 1e-6).astype(int)
        if in_phase:
            w = np.array([omega[k] * (-1) ** int(n.sum() - n[k]) for k in range(3)])
        else:
            w = omega * (-1) ** int(n.sum())
        disp[i] = np.cross(w, -d[np.argmin(np.linalg.norm(d, axis=1))])
    return disp


@pytest.fixture(scope="module")
def srtio3():
    return read(EXAMPLES / "SrTiO3_cubic.cif")


@pytest.fixture(scope="module")
def group(srtio3):
    return supercell_setting(srtio3, (2, 2, 2))


@pytest.fixture(scope="module")
def channels(group):
    return distortion_channels(group)


def _tilt_channel(group, channels):
    u = tilt_pattern(group.atoms, np.array([0.0, 0.0, 0.05])).ravel()
    q = np.concatenate([u, np.zeros(6)])
    hits = [c for c in channels if np.linalg.norm(c.basis.T @ q) > 0.999 * np.linalg.norm(q)]
    assert len(hits) == 1, "the hand-built tilt must lie in exactly one channel"
    return hits[0]


@pytest.fixture(scope="module")
def tilt(group, channels):
    c = _tilt_channel(group, channels)
    return c, isotropy_subgroups(group, c)


def test_group_is_the_space_group_modulo_the_supercell(group):
    assert group.order == 48 * 8
    assert len(group.pure_translations) == 8
    P, T = group.permutations, group.table
    # the permutation of a product is the composition of the permutations
    for a in range(group.order):
        assert (P[T[a]] == P[a][P]).all()
    # each element maps the structure onto itself
    frac = group.atoms.get_scaled_positions()
    for g in range(0, group.order, 7):
        moved = frac @ group.rotations_frac[g].T + group.translations_frac[g]
        d = moved - frac[P[g]]
        assert np.abs(d - np.round(d)).max() < 1e-8
    assert len({tuple(p) for p in P}) == group.order  # faithful on the atoms


def test_channels_split_the_distortion_space(group, channels):
    n = len(group.atoms)
    B = np.concatenate([c.basis for c in channels], axis=1)
    assert B.shape[1] == 3 * n + 6 - 3  # less the uniform translations
    assert np.allclose(B.T @ B, np.eye(B.shape[1]), atol=1e-8)
    rng = np.random.default_rng(0)
    for c in channels:
        assert c.basis.shape[1] == c.dimension * c.multiplicity
        for g in rng.choice(group.order, 5):
            moved = np.stack([group.act_distortion(g, c.basis[:, j]) for j in range(c.basis.shape[1])], axis=1)
            assert np.allclose(c.basis @ (c.basis.T @ moved), moved, atol=1e-8)  # invariant subspace
        # the character of a real irrep has norm 1 over G (absolutely irreducible here)
        assert c.character @ c.character / group.order == pytest.approx(1.0, abs=1e-6)
    kinds = {c.label.split("-")[0] for c in channels}
    assert kinds == {"Γ", "X", "M", "R"}


def test_tilt_channel_isotropy_subgroups_match_stokes_hatch(group, tilt):
    c, iso = tilt
    assert (c.dimension, c.multiplicity, c.kstar) == (3, 1, (("1/2", "1/2", "1/2"),))
    assert sorted(k.spacegroup_number for k in iso) == [74, 140, 167]
    by_number = {k.spacegroup_number: k for k in iso}
    # [G:K] = domain variants: 3 axes x 2 antiphase domains; 4 axes x 2; 6 <110> x 2
    assert {n: k.index for n, k in by_number.items()} == {140: 6, 167: 8, 74: 12}
    for k in iso:
        assert k.fixed_dimension == 1 and k.cell_multiplication == 2
        assert group.group.is_subgroup(k.elements)
        # spglib on a structure distorted along V^K (a check, not the definition)
        atoms = group.atoms.copy()
        atoms.positions += 0.1 * k.fixed_space[: 3 * len(atoms)].reshape(-1, 3)
        ds = spglib.get_symmetry_dataset((atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers), symprec=1e-4)
        assert ds.number == k.spacegroup_number
    # the hand-built a^0a^0c^-, a^-a^-c^0 and a^-a^-a^- tilts have exactly these groups
    for omega, number in (([0, 0, 1], 140), ([1, 1, 0], 74), ([1, 1, 1], 167)):
        atoms = group.atoms.copy()
        atoms.positions += tilt_pattern(atoms, 0.05 * np.array(omega, dtype=float))
        ds = spglib.get_symmetry_dataset((atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers), symprec=1e-4)
        assert ds.number == number


def test_lower_isotropy_subgroups_only_on_request(group, tilt):
    c, iso = tilt
    more = isotropy_subgroups(group, c, max_fixed_dim=3)
    assert {k.spacegroup_number for k in more if k.fixed_dimension == 1} == {74, 140, 167}
    lower = [k for k in more if k.fixed_dimension > 1]
    assert lower and all(k.order < min(i.order for i in iso) for k in lower)
    # Stokes & Hatch, R4+ of Pm-3m: C2/m (a,b,0), C2/c (a,a,b), P-1 (a,b,c)
    assert sorted((k.fixed_dimension, k.spacegroup_number) for k in lower) == [(2, 12), (2, 15), (3, 2)]


def test_per_atom_objects_have_exact_stabilizers_and_orbits(group, tilt):
    _, iso = tilt
    for K in iso:
        B = symmetry_breaking_set(group, K)
        assert len(B) == K.index == group.order // K.order
        assert set(B.stabilizer_of(B.objects[0])) == set(K.elements)
        for j, b in enumerate(B.objects):
            stab = B.stabilizer_of(b)
            assert stab == B.stabilizers[j]
            assert len(stab) == K.order
        # closed under G
        rng = np.random.default_rng(1)
        for g in rng.choice(group.order, 20):
            assert B.contains(B.act(g, B.objects[0]))
        # translational domains: a pure translation takes b to another member (here −b)
        moved = [B.act(t, B.objects[0]) for t in group.pure_translations]
        assert any(np.abs(m + B.objects[0]).max() < 1e-9 for m in moved)


def test_strain_becomes_a_2e_object_on_every_atom(group, channels):
    """A strain order parameter in per-atom form: ε's traceless part in e3nn's 2e basis
    (rotating with D²(R) as ε → R ε Rᵀ), the same on every atom, with the stabilizer of
    the strain (P4/mmm for the tetragonal Eg strain: 3 variants)."""
    import torch
    from e3nn import o3

    from ase_sbs.sbs.sets import strain_2e

    rng = np.random.default_rng(3)
    eps = rng.standard_normal((3, 3))
    eps = eps + eps.T
    for _ in range(5):
        R = random_orthogonal(rng, improper=bool(rng.integers(2)))
        D = o3.Irreps("2e").D_from_matrix(torch.as_tensor(R)).numpy()
        assert np.allclose(strain_2e(R @ eps @ R.T), D @ strain_2e(eps), atol=1e-10)
    assert np.allclose(strain_2e(np.eye(3)), 0.0, atol=1e-12)  # a volume change has no 2e part

    eg = next(c for c in channels if c.label == "Γ-Eg")
    K = next(t for t in isotropy_subgroups(group, eg) if t.spacegroup_number == 123)
    B = symmetry_breaking_set(group, K, per_atom=True)
    assert B.irreps == "2e" and len(B) == 3 == K.index
    assert np.allclose(B.objects[0], B.objects[0][:1])  # one strain, every atom
    assert set(B.stabilizer_of(B.objects[0])) == set(K.elements)


def _match_atoms(a, b):
    """perm with b[perm[i]] at the position of a[i] (mod b's lattice)."""
    cell = np.asarray(b.cell)
    d = a.positions[:, None] - b.positions[None]
    f = d @ np.linalg.inv(cell)
    d = (f - np.round(f)) @ cell
    perm = np.linalg.norm(d, axis=2).argmin(axis=1)
    assert len(set(perm.tolist())) == len(a)
    return perm


@pytest.mark.parametrize("improper", [False, True])
def test_per_atom_sbs_is_equivariant(srtio3, group, tilt, improper):
    """B(g·x) = g·B(x) for g in O(3), translations and atom permutations of the input."""
    _, iso = tilt
    rng = np.random.default_rng(7 + improper)
    Q = random_orthogonal(rng, improper)
    perm = rng.permutation(len(srtio3))
    shift = rng.normal(size=3)
    moved = transform(srtio3, Q, perm, shift)
    g2 = supercell_setting(moved, (2, 2, 2))
    c2 = _tilt_channel_rotated(g2, Q)
    iso2 = {k.spacegroup_number: k for k in isotropy_subgroups(g2, c2)}
    # the supercell of the moved input is the moved supercell, up to atom order
    ref_atoms = group.atoms.copy()
    ref_atoms.positions = group.atoms.positions @ Q.T + shift
    ref_atoms.cell = np.asarray(group.atoms.cell) @ Q.T
    p = _match_atoms(g2.atoms, ref_atoms)
    for K in iso:
        B = symmetry_breaking_set(group, K)
        B2 = symmetry_breaking_set(g2, iso2[K.spacegroup_number])
        expected = (B.objects @ Q.T)[:, p]
        assert len(B2) == len(B)
        for b in expected:
            assert B2.contains(b)


def _tilt_channel_rotated(group, Q):
    chans = distortion_channels(group)
    u = tilt_pattern_rotated(group.atoms, Q)
    q = np.concatenate([u.ravel(), np.zeros(6)])
    hits = [c for c in chans if np.linalg.norm(c.basis.T @ q) > 0.999 * np.linalg.norm(q)]
    assert len(hits) == 1
    return hits[0]


def tilt_pattern_rotated(atoms, Q):
    """The hand-built tilt of the rotated, shifted structure: rotate back, tilt, rotate again."""
    back = atoms.copy()
    back.positions = atoms.positions @ Q
    back.cell = np.asarray(atoms.cell) @ Q
    back.positions -= back.positions[back.get_chemical_symbols().index("Sr")]
    back.wrap()
    return tilt_pattern(back, np.array([0.0, 0.0, 0.05])) @ Q.T


def test_per_atom_bias_is_equivariant_and_covariant(group, tilt):
    _, iso = tilt
    B = symmetry_breaking_set(group, iso[0])
    atoms = group.atoms.copy()
    atoms.rattle(0.03, seed=4)
    desc = BiasDescriptor("1o")
    ref = evaluate_bias(atoms, B.objects[0], "1o", 0.8, desc)
    assert np.abs(ref.forces).max() > 1e-6
    rng = np.random.default_rng(3)
    for improper in (False, True):
        Q = random_orthogonal(rng, improper)
        perm = rng.permutation(len(atoms))
        moved = transform(atoms, Q, perm, rng.normal(size=3))
        res = evaluate_bias(moved, (B.objects[0] @ Q.T)[perm], "1o", 0.8, desc)
        assert res.energy == pytest.approx(ref.energy, abs=1e-9)
        assert np.allclose(res.forces, (ref.forces @ Q.T)[perm], atol=1e-9)
    # g = (R, t) of G, parent-lattice translations included: atom π(i) of g·x sits at
    # R x_i + t and carries (g·b)_{π(i)} = R b_i; the energy is unchanged
    for g in list(group.pure_translations[1:4]) + [5, 77, 200]:
        p = group.permutations[g]
        y = atoms.copy()
        y.positions[p] = atoms.positions @ group.rotations[g].T + group.translations[g]
        res = evaluate_bias(y, B.act(g, B.objects[0]), "1o", 0.8, desc)
        assert res.energy == pytest.approx(ref.energy, abs=1e-9)


def test_reduced_cell_folds_by_the_kept_translations(group, tilt):
    _, iso = tilt
    for K in iso:
        kept = [g for g in K.elements if g in set(group.pure_translations.tolist())]
        red = fold_setting(group, sum(1 << int(g) for g in kept))
        assert len(red.atoms) * len(kept) == len(group.atoms)
        assert red.atoms.get_volume() * len(kept) == pytest.approx(group.atoms.get_volume())
        assert len(red.atoms) // 5 == K.cell_multiplication


def test_kpoints_choose_the_supercell(srtio3):
    assert np.allclose(parse_kpoint("R", srtio3), [0.5, 0.5, 0.5])
    assert np.allclose(parse_kpoint("1/2 0 1/2"), [0.5, 0, 0.5])
    assert (supercell_for_kpoint(srtio3, parse_kpoint("R", srtio3)) == np.diag([2, 2, 2])).all()
    assert (supercell_for_kpoint(srtio3, parse_kpoint("X", srtio3)) == np.diag([2, 2, 2])).all()
    with pytest.raises(SBSInputError):
        parse_kpoint("Q", srtio3)
    # a 1x1x2 cell holds one arm of the X star: X = (0, 1/2, 0) matches it through the star
    g = supercell_setting(srtio3, (1, 1, 2))
    assert g.order == 16 * 2  # the operations that keep the tetragonal supercell lattice
    chans = distortion_channels(g)
    at_x = [c for c in chans if channel_matches_kpoint(c, parse_kpoint("X", g), g)]
    assert at_x and all(c.kstar == (("0", "0", "1/2"),) and c.label.startswith("X") for c in at_x)
    assert not any(channel_matches_kpoint(c, "R", g) for c in chans)
    assert sum(c.dimension * c.multiplicity for c in at_x) == 3 * 10 // 2  # half the 30 coordinates


def test_oversized_supercell_stops_early_with_the_largest_size(srtio3):
    with pytest.raises(SBSInputError, match="2×2×2"):
        supercell_setting(srtio3, (3, 3, 3))
    r = subprocess.run([sys.executable, "-m", "ase_sbs.cli", "explore", str(EXAMPLES / "SrTiO3_cubic.cif"),
                        "--supercell", "4", "4", "4", "--calc", "7net-0", "--out", "/nonexistent/never"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "too large" in r.stderr and "2×2×2" in r.stderr and "Traceback" not in r.stderr


def test_channel_curvature_matches_the_full_hessian(group, channels):
    """Curvatures from the symmetry-reduced Hessian against the whole finite-difference Hessian of a
    Lennard-Jones toy potential on the 40-atom supercell (fixed cell)."""
    from ase.calculators.lj import LennardJones

    from ase_sbs.setting import channel_curvature

    calc = LennardJones(sigma=1.9, epsilon=0.05, rc=5.0, smooth=True)
    atoms = group.atoms.copy()
    atoms.calc = calc
    n, h = len(atoms), 1e-3
    H = np.zeros((3 * n, 3 * n))
    x0 = atoms.positions.copy()
    for k in range(3 * n):
        f = []
        for sgn in (1, -1):
            atoms.positions = x0
            atoms.positions[k // 3, k % 3] += sgn * h
            f.append(atoms.get_forces().ravel())
        H[:, k] = -(f[0] - f[1]) / (2 * h)
    H = (H + H.T) / 2
    checked = 0
    for c in channels:
        if c.sources != ("displacement",):
            continue
        Bd = c.basis[: 3 * n]
        block = np.linalg.eigvalsh(Bd.T @ H @ Bd)
        expected = np.repeat(np.array(channel_curvature(group, c, calc, step=1e-3)), c.dimension)
        assert np.allclose(np.sort(block), np.sort(expected), atol=1e-4 * max(1.0, np.abs(block).max()))
        checked += 1
    assert checked >= 15


def _torch_lj(positions, cell, numbers, rc=5.0):
    """A smooth, species-dependent pair potential in torch (eV): φ(r) = 4ε((σ/r)^12 − (σ/r)^6)
    (1 − (r/r_c)²)³ for r < r_c, σ_ij = (s_i + s_j)/2; neighbours from ase at the current geometry."""
    import torch
    from ase import Atoms

    from ase_sbs.bias import neighbour_list

    atoms = Atoms(numbers=numbers.numpy(), positions=positions.detach().numpy(), cell=cell.detach().numpy(), pbc=True)
    nb = neighbour_list(atoms, rc)
    src, dst = torch.as_tensor(nb.src), torch.as_tensor(nb.dst)
    vec = positions[dst] - positions[src] + torch.as_tensor(nb.shifts, dtype=positions.dtype) @ cell
    r = vec.norm(dim=1)
    s = 1.6 + 0.01 * numbers.to(positions.dtype)
    sigma = 0.5 * (s[src] + s[dst])
    x6 = (sigma / r) ** 6
    return 0.5 * (4 * 0.05 * (x6 * x6 - x6) * (1 - (r / rc) ** 2) ** 3).sum()


class _TorchEnergyCalculator:
    """ASE calculator of a torch energy function (forces and stress by autograd)."""

    def __new__(cls, energy):
        import torch
        from ase.calculators.calculator import Calculator, all_changes

        class Calc(Calculator):
            implemented_properties = ["energy", "forces", "stress"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                pos = torch.tensor(self.atoms.positions, requires_grad=True)
                cell = torch.tensor(np.asarray(self.atoms.cell))
                eps = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
                F = torch.eye(3, dtype=torch.float64) + (eps + eps.T) / 2
                e = energy(pos @ F.T, cell @ F.T, torch.as_tensor(self.atoms.numbers))
                g_pos, g_eps = torch.autograd.grad(e, (pos, eps))
                s = g_eps.numpy() / self.atoms.get_volume()
                self.results = {"energy": float(e.detach()), "forces": -g_pos.numpy(),
                                "stress": np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])}

        return Calc()


def test_channel_curvature_by_autograd_matches_finite_differences(group, channels):
    """Hessian-vector products by autograd (a torch potential) against central force and
    stress differences of the same potential (an ASE calculator), on the tilt channel, the
    channel with most copies and the Γ channels that carry strain."""
    from ase_sbs.setting import channel_curvature

    calc = _TorchEnergyCalculator(_torch_lj)
    tilt = _tilt_channel(group, channels)
    widest = max(channels, key=lambda c: c.multiplicity)  # several copies: a block larger than 1×1
    chosen = [tilt, widest] + [c for c in channels if "strain" in c.sources]
    assert len(chosen) == 5 and widest.multiplicity >= 3
    for c in chosen:
        auto = np.array(channel_curvature(group, c, _torch_lj))
        fd = np.array(channel_curvature(group, c, calc, step=1e-3))
        assert len(auto) == len(fd) == c.multiplicity
        assert np.abs(auto).max() > 1e-3
        assert np.allclose(auto, fd, atol=1e-5 * max(1.0, np.abs(fd).max()), rtol=1e-5), (c.label, auto, fd)
