"""Child + parent -> how the child sits on the parent (the matching step of the
symmetry-mode decomposition, :mod:`ase_sbs.analysis.modes`).

The child may be a supercell of the parent, rigidly rotated (any O(3) element),
translated and have its atoms in another order. For a crystal, the child's cell rows
are matched to parent-lattice vectors: an integer H (|det H| = n, the number of parent
cells in the child's cell) with child cell ≈ A · (H L_p), A = Q U (polar decomposition:
Q ∈ O(3) the rigid rotation, U symmetric positive the stretch). The *reference* is the
undistorted parent supercell S = H L_p, in the parent's axes, its atoms in the child's
order; the child's fractional coordinates, read in S, give the child with rotation and
strain undone. The strain is ε = U − I (in the parent's axes). Among every H within
``max_strain`` and every origin (a child atom put on each reference atom of its
species), the correspondence (Hungarian assignment per species, minimum image) and the
continuous origin shift (mean displacement) minimizing the total displacement are kept.
Molecules: the rigid rotation is found by Kabsch superposition from frames of atom
pairs, and rigid translations and rotations are removed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from ..core.structure import check_structure
from ..core.symmetry import Symmetry, detect_symmetry, symmetrized_atoms
from ..errors import SBSInputError


@dataclass(frozen=True, eq=False)
class Match:
    """How a child sits on its parent.

    Attributes:
        parent: the parent's symmetry (of the symmetrized parent).
        supercell: H (3x3 integers), child cell rows ↔ rows of H L_p (identity for molecules).
        rotation: Q ∈ O(3), child axes = Q · parent axes (after the stretch).
        strain: ε = U − I (3x3 symmetric, parent axes; zero for molecules).
        reference: the undistorted parent supercell (cell S = H L_p, parent axes), its
            atoms in the child's order and shifted to the best origin.
        parent_index: (M,) the parent atom each child atom comes from.
        displacement: (M, 3) Å, parent axes, child minus reference (mean removed).
        n_cells: n = M / N_p.
    """

    parent: Symmetry
    supercell: np.ndarray
    rotation: np.ndarray
    strain: np.ndarray
    reference: Atoms
    parent_index: np.ndarray
    displacement: np.ndarray
    n_cells: int

    @property
    def strain_length(self) -> float:
        """ℓ = √N_p (V_p/N_p)^{1/3} in Å (see module docstring); 0 for molecules."""
        return strain_length(self.parent.atoms)


def strain_length(parent: Atoms) -> float:
    if not parent.pbc.all():
        return 0.0
    n = len(parent)
    return float(np.sqrt(n) * (abs(parent.cell.volume) / n) ** (1 / 3))


def _composition(atoms: Atoms) -> dict[int, int]:
    z, c = np.unique(atoms.numbers, return_counts=True)
    return dict(zip(z.tolist(), c.tolist()))


def _check_species(child: Atoms, parent: Atoms) -> int:
    cc, cp = _composition(child), _composition(parent)
    ratio = len(child) / len(parent)
    if set(cc) != set(cp) or any(abs(cc[z] - ratio * cp[z]) > 1e-9 for z in cp):
        raise SBSInputError(
            f"species mismatch: the child {child.get_chemical_formula()} ({len(child)} atoms) and the "
            f"parent {parent.get_chemical_formula()} ({len(parent)} atoms) do not hold the same elements "
            "in the same proportions; give the parent of this structure"
        )
    if ratio != int(ratio):
        raise SBSInputError(
            f"the child's cell is not a sublattice match: its {len(child)} atoms are not a whole number of "
            f"parent cells ({len(parent)} atoms); give the parent in its primitive cell"
        )
    if bool(child.pbc.all()) != bool(parent.pbc.all()):
        raise SBSInputError("the child and the parent must both be crystals (pbc all True) or both molecules")
    return int(ratio)


def polar_decomposition(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A = Q U, Q orthogonal (det ±1), U symmetric positive definite."""
    W, s, Vt = np.linalg.svd(A)
    return W @ Vt, Vt.T @ np.diag(s) @ Vt


def _lattice_candidates(Lp: np.ndarray, Lc: np.ndarray, n: int, max_strain: float,
                        basis: np.ndarray | None = None) -> list[np.ndarray]:
    """Integer H (rows: parent-fractional vectors) with Lc ≈ (H Lp) Aᵀ, A within ``max_strain``,
    best first (those within 0.02 of the best strain)."""
    lengths = np.linalg.norm(Lc, axis=1)
    inv = np.linalg.inv(Lp)
    rmax = lengths.max() / (1 - max_strain)
    bound = np.ceil(rmax * np.linalg.norm(inv, axis=0)).astype(int)
    grid = np.array(list(itertools.product(*[range(-b, b + 1) for b in bound])), dtype=float)
    glen = np.linalg.norm(grid @ Lp, axis=1)
    rows = []
    for L in lengths:
        ok = (glen >= L / (1 + max_strain)) & (glen <= L / (1 - max_strain))
        rows.append(grid[ok])
    if any(len(r) == 0 for r in rows):
        return []
    a, b, c = rows
    cross = np.cross(b[:, None, :], c[None, :, :])  # (nb, nc, 3)
    hits = []
    chunk = max(1, 2_000_000 // max(cross.shape[0] * cross.shape[1], 1))
    for start in range(0, len(a), chunk):  # bounded memory for large supercells
        det = np.einsum("ak,bck->abc", a[start:start + chunk], cross)
        ia, ib, ic = np.nonzero(np.abs(np.abs(det) - n) < 0.5)
        hits.append(np.stack([a[start + ia], b[ib], c[ic]], axis=1))
    H = np.concatenate(hits)  # (k, 3, 3)
    if len(H) == 0:
        return []
    S = H @ Lp
    A = np.einsum("ij,kjl->kil", Lc.T, np.linalg.inv(S).transpose(0, 2, 1))
    s = np.linalg.svd(A, compute_uv=False)
    strain = np.abs(s - 1).max(axis=1)
    keep = strain <= max_strain
    if not keep.any():
        return []
    H, strain = H[keep], strain[keep]
    # ties (equal strain) prefer a right-handed H close to the identity
    Pinv = np.linalg.inv(basis) if basis is not None else np.eye(3)
    pref = np.array([(np.linalg.det(Pinv @ h) < 0, -np.trace(Pinv @ h)) for h in H])
    order = np.lexsort((pref[:, 1], pref[:, 0], np.round(strain, 9)))
    best = strain[order[0]]
    return [np.rint(H[k]).astype(int) for k in order if strain[k] <= best + 0.02][:200]


def _coset_translations(H: np.ndarray) -> np.ndarray:
    """Integer vectors T (parent fractional) with T H⁻¹ ∈ [0, 1)³: one per parent cell in S."""
    Hinv = np.linalg.inv(H)
    lo = np.minimum(H, 0).sum(axis=0)
    hi = np.maximum(H, 0).sum(axis=0)
    grid = np.array(list(itertools.product(*[range(l, h + 1) for l, h in zip(lo, hi)])), dtype=float)
    f = grid @ Hinv
    ok = ((f > -1e-9) & (f < 1 - 1e-9)).all(axis=1)
    out = grid[ok]
    if len(out) != round(abs(np.linalg.det(H))):
        raise AssertionError("coset enumeration failed")
    return out


_IMAGES = np.array(list(itertools.product((-1, 0, 1), repeat=3)), dtype=float)


def _assign(fc: np.ndarray, fr: np.ndarray, numbers_c, numbers_r, S: np.ndarray):
    """Assignment child -> reference (per species, minimum image). Returns (perm, disp)
    with disp[i] = Cartesian (fc[i] − fr[perm[i]]) wrapped to the nearest image."""
    from scipy.optimize import linear_sum_assignment

    perm = np.empty(len(fc), dtype=int)
    disp = np.empty((len(fc), 3))
    for z in np.unique(numbers_c):
        ic = np.flatnonzero(numbers_c == z)
        ir = np.flatnonzero(numbers_r == z)
        d = fc[ic, None, :] - fr[None, ir, :]
        d -= np.round(d)
        cart = (d[:, :, None, :] + _IMAGES[None, None]) @ S  # (a, b, 27, 3)
        dist2 = (cart**2).sum(-1)
        best = dist2.argmin(-1)
        cost = np.take_along_axis(dist2, best[..., None], -1)[..., 0]
        r, c = linear_sum_assignment(cost)
        perm[ic[r]] = ir[c]
        disp[ic[r]] = cart[r, c, best[r, c]]
    return perm, disp


def _match_crystal(child: Atoms, psym: Symmetry, n: int, max_strain: float, cell_in_parent=None):
    from ase.geometry import minkowski_reduce

    parent = psym.atoms
    Lp = np.asarray(parent.cell, dtype=float)
    Lc = np.asarray(child.cell, dtype=float)
    Lc_red, P = minkowski_reduce(Lc)  # Lc_red = P Lc
    Lc_red = np.asarray(Lc_red, dtype=float)
    if cell_in_parent is not None:  # the child's cell is known to be H Lp, strained: no search
        Hr = np.rint(np.asarray(P, dtype=float) @ np.asarray(cell_in_parent, dtype=float)).astype(int)
        A = Lc_red.T @ np.linalg.inv(Hr @ Lp).T
        strain = np.abs(np.linalg.svd(A, compute_uv=False) - 1).max()
        cands = [Hr] if strain <= max_strain else []
    else:
        cands = _lattice_candidates(Lp, Lc_red, n, max_strain, basis=np.asarray(P, dtype=float))
    if not cands:
        raise SBSInputError(
            f"the child's cell is not a sublattice match: no {n}-fold supercell of the parent's lattice "
            f"maps onto it within {max_strain:.0%} strain (cell lengths "
            f"{np.round(child.cell.cellpar()[:3], 3).tolist()} Å "
            f"vs the parent's {np.round(parent.cell.cellpar()[:3], 3).tolist()} Å); "
            "check the parent, or raise max_strain"
        )
    ell = strain_length(parent)
    fp = parent.get_scaled_positions(wrap=True)
    fc_red = child.positions @ np.linalg.inv(Lc_red)
    zc = child.numbers
    rare = min(set(zc.tolist()), key=lambda z: ((zc == z).sum(), z))
    a0 = int(np.flatnonzero(zc == rare)[0])
    best = None
    # H and H W (W a rotation of the parent, fractional) give equivalent matches
    Ws = np.unique(psym.operations.rotations_frac, axis=0)
    seen: set = set()
    for Hr in cands:
        if any(tuple((Hr @ W).ravel()) in seen for W in Ws):
            continue
        seen.add(tuple(Hr.ravel()))
        S = Hr @ Lp
        A = Lc_red.T @ np.linalg.inv(S).T
        Q, U = polar_decomposition(A)
        eps = (U + U.T) / 2 - np.eye(3)
        T = _coset_translations(Hr)
        pidx = np.repeat(np.arange(len(parent)), len(T))
        fr = ((fp[:, None, :] + T[None]).reshape(-1, 3)) @ np.linalg.inv(Hr)
        zr = parent.numbers[pidx]
        # origins differing by a parent lattice vector are equivalent: one copy per parent atom
        for b in np.flatnonzero((zr == rare) & (np.arange(len(zr)) % len(T) == 0)):
            shift = fc_red[a0] - fr[b]
            for _ in range(2):
                perm, disp = _assign(fc_red, fr + shift, zc, zr, S)
                mean = disp.mean(axis=0)
                shift = shift + mean @ np.linalg.inv(S)
            u = disp - mean
            score = (u**2).sum() / n + ell**2 * (eps**2).sum()
            if best is None or score < best[0] - 1e-12:
                best = (score, Hr, S, Q, eps, perm, u, shift, fr, pidx)
    _, Hr, S, Q, eps, perm, u, shift, fr, pidx = best
    H = np.rint(np.linalg.inv(P) @ Hr).astype(int)  # child cell rows = P⁻¹ (reduced rows)
    ref = Atoms(numbers=zc, cell=H @ Lp, pbc=True)
    ref.set_scaled_positions(((fr[perm] + shift) @ Hr) @ np.linalg.inv(H) % 1.0)
    return H, Q, eps, ref, pidx[perm], u


def _pair_frame(pos: np.ndarray, i: int, j: int) -> np.ndarray | None:
    """Orthonormal frame (columns) from positions i and j (relative to the centroid)."""
    a, b = pos[i], pos[j]
    if np.linalg.norm(np.cross(a, b)) < 1e-3 * max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12):
        return None
    e1 = a / np.linalg.norm(a)
    e2 = b - (b @ e1) * e1
    e2 /= np.linalg.norm(e2)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=1)


def _match_molecule(child: Atoms, psym: Symmetry):
    from scipy.optimize import linear_sum_assignment

    parent = psym.atoms
    rp = parent.positions - parent.positions.mean(axis=0)
    rc = child.positions - child.positions.mean(axis=0)
    zp, zc = parent.numbers, child.numbers
    far = [i for i in np.argsort(-np.linalg.norm(rp, axis=1)) if np.linalg.norm(rp[i]) > 1e-3]
    fp = None
    for i, j in itertools.permutations(far[:6], 2):
        fp = _pair_frame(rp, i, j)
        if fp is not None:
            pi, pj = i, j
            break
    if fp is None:
        raise SBSInputError("the parent molecule is linear or a single atom; it has no finite point group")
    best = None
    radius_c = np.linalg.norm(rc, axis=1)
    radius_p = np.linalg.norm(rp, axis=1)
    dp = np.linalg.norm(rp[pi] - rp[pj])
    slack = 0.5 * _shortest_distance(parent)
    for ci in np.flatnonzero((zc == zp[pi]) & (np.abs(radius_c - radius_p[pi]) <= slack)):
        for cj in np.flatnonzero((zc == zp[pj]) & (np.abs(radius_c - radius_p[pj]) <= slack)):
            if ci == cj or abs(np.linalg.norm(rc[ci] - rc[cj]) - dp) > 2 * slack:
                continue
            F = _pair_frame(rc, ci, cj)
            if F is not None:
                for hand in (1.0, -1.0):
                    Fc = F * np.array([1.0, 1.0, hand])
                    Q = Fc @ fp.T  # parent -> child axes
                    for _ in range(3):
                        back = rc @ Q  # child in parent axes (Qᵀ r)
                        perm = np.empty(len(rc), dtype=int)
                        for z in np.unique(zc):
                            ic, ip = np.flatnonzero(zc == z), np.flatnonzero(zp == z)
                            cost = ((back[ic, None] - rp[None, ip]) ** 2).sum(-1)
                            r, c = linear_sum_assignment(cost)
                            perm[ic[r]] = ip[c]
                        # Kabsch with fixed handedness: rc ≈ rp[perm] Qᵀ
                        M = rc.T @ rp[perm]
                        W, _, Vt = np.linalg.svd(M)
                        D = np.diag([1.0, 1.0, np.sign(np.linalg.det(W @ Vt)) * np.sign(np.linalg.det(Q))])
                        Q = W @ D @ Vt
                    u = rc @ Q - rp[perm]
                    score = (u**2).sum()
                    if best is None or score < best[0] - 1e-12:
                        best = (score, Q, perm, u)
    if best is None:
        raise SBSInputError("the child is not a distortion of the parent: no pair of its atoms lies like a pair "
                            "of the parent's within half the shortest interatomic distance")
    _, Q, perm, u = best
    ref = Atoms(numbers=zc, positions=rp[perm] + child.positions.mean(axis=0) @ Q, pbc=False)
    return np.eye(3, dtype=int), Q, np.zeros((3, 3)), ref, perm, u


def match(child: Atoms, parent, symprec: float = 1e-3, max_strain: float = 0.3,
          max_displacement: float | None = None, cell_in_parent=None) -> Match:
    """Find how ``child`` sits on ``parent`` (see module docstring).

    Args:
        child: the distorted structure (crystal or molecule).
        parent: an ``ase.Atoms`` (symmetrized at ``symprec`` first) or a :class:`Symmetry`.
        max_strain: largest principal stretch |U − 1| accepted.
        max_displacement: largest atomic displacement accepted (Å); default half the
            parent's shortest interatomic distance.
        cell_in_parent: the child's cell rows in the parent's lattice basis (integers),
            when known — a phase written in a setting's cell — so the lattice search is
            skipped (the strain is still checked).

    Raises:
        SBSInputError: species mismatch, a cell that is no supercell of the parent's
            lattice, or a child that is not a small distortion of the parent.
    """
    check_structure(child)
    psym = parent if isinstance(parent, Symmetry) else parent_symmetry(parent, symprec)
    n = _check_species(child, psym.atoms)
    if psym.periodic:
        H, Q, eps, ref, pidx, u = _match_crystal(child, psym, n, max_strain, cell_in_parent)
    else:
        H, Q, eps, ref, pidx, u = _match_molecule(child, psym)
    limit = max_displacement if max_displacement is not None else 0.5 * _shortest_distance(psym.atoms)
    worst = np.linalg.norm(u, axis=1)
    if worst.max() > limit:
        i = int(worst.argmax())
        raise SBSInputError(
            f"the child is not a distortion of the parent: the best match moves atom {i} "
            f"({child.get_chemical_symbols()[i]}) by {worst[i]:.3g} Å, more than {limit:.3g} Å "
            "(half the parent's shortest interatomic distance); give the high-symmetry parent of this structure"
        )
    return Match(parent=psym, supercell=H, rotation=Q, strain=eps, reference=ref, parent_index=np.asarray(pidx),
                 displacement=u, n_cells=n)


def _shortest_distance(atoms: Atoms) -> float:
    if len(atoms) == 1:
        return float(min(atoms.cell.lengths()))
    if atoms.pbc.all():
        from ase.neighborlist import neighbor_list

        cut = 1.05 * min(min(atoms.cell.lengths()), 6.0)
        d = neighbor_list("d", atoms, cut)
        return float(d.min()) if len(d) else cut
    d = atoms.get_all_distances()
    np.fill_diagonal(d, np.inf)
    return float(d.min())


def parent_symmetry(parent: Atoms, symprec: float = 1e-3) -> Symmetry:
    """Symmetry of the parent moved onto exact symmetry (the reference must be exact)."""
    sym = detect_symmetry(parent, symprec=symprec)
    return detect_symmetry(symmetrized_atoms(sym), symprec=symprec)
