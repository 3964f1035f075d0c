"""Child + parent -> symmetry-mode decomposition of the distortion (ISODISTORT-style).

**Matching.** The child may be a supercell of the parent, rigidly rotated (any O(3)
element), translated and have its atoms in another order. For a crystal, the child's
cell rows are matched to parent-lattice vectors: an integer H (|det H| = n, the number
of parent cells in the child's cell) with child cell ≈ A · (H L_p), A = Q U (polar
decomposition: Q ∈ O(3) the rigid rotation, U symmetric positive the stretch). The
*reference* is the undistorted parent supercell S = H L_p, in the parent's axes, its
atoms in the child's order; the child's fractional coordinates, read in S, give the
child with rotation and strain undone. The strain is ε = U − I (in the parent's axes).
Among every H within ``max_strain`` and every origin (a child atom put on each
reference atom of its species), the correspondence (Hungarian assignment per species,
minimum image) and the continuous origin shift (mean displacement) minimizing the total
below are kept. Molecules: the rigid rotation is found by Kabsch superposition from
frames of atom pairs, and rigid translations and rotations are removed.

**Displacement and its norm.** u_i = (f_i^child − f_i^ref) S (Å, parent axes). The
distortion vector per parent cell is

    w = ( u^{k=0} ,  ℓ e(ε) ),    |w|² = (1/n) Σ_i |u_i|² + ℓ² ‖ε‖_F²   (beyond-k=0 aside)

with u^{k=0}_j = (1/n) Σ_{i → j} u_i the displacement averaged over the n copies of
parent atom j, e(ε) the strain in the orthonormal (Frobenius) strain basis of
``targets.STRAIN_BASIS`` and ℓ = √N_p (V_p/N_p)^{1/3}: strain is converted to a length
as if each of the N_p atoms of the parent cell moved by ‖ε‖_F times the mean
interatomic spacing (V_p/N_p)^{1/3}. Both blocks are invariant under the parent group,
so the weighting keeps the decomposition orthogonal. All amplitudes are per parent cell
(as given), so they do not change when the child is written in a larger cell.

**Channels.** w is split by the orthogonal projectors of the parent's k = 0 distortion
channels (``targets.distortion_channels``; uniform translations, and for molecules
rigid rotations, are not distortions). Amplitude a_Γ = |P_Γ w| in Å; what the parent
cell cannot represent (patterns that differ between the n copies, i.e. wave vectors
k ≠ 0 of the parent, and patterns breaking a centring) is one more entry, "beyond
k = 0". Exactly: Σ_Γ a_Γ² + a_beyond² = total², and the part that breaks the parent's
symmetry is breaking² = total² − a_{A1}² (A1 the identity channel), which is the
distance to the parent group of :mod:`ase_sbs.approx`.

**Beyond k = 0 on a supercell.** When the child holds n > 1 parent cells, the
beyond-k=0 entry is broken down further (``ModeDecomposition.beyond_modes``) into the
channels of G = parent space group / child-lattice translations
(:mod:`ase_sbs.supercell`, which builds G, its channels and their isotropy subgroups):
with r_i = u_i − u^{k=0}_{j(i)} (no k = 0 component), a_c = |P_c r| / √n, so
Σ_c a_c² = a_beyond² and the k = 0 amplitudes together with these still add in
quadrature to the total. Each entry carries its k-star, the isotropy subgroup of its
component (stabilizer in G, |g·v − v|/√n ≤ symprec), and, for channels of dimension
× multiplicity ≤ 3, the channel's isotropy subgroups with one-dimensional fixed space.
A parent that is not primitive or a supercell too large for the enumeration keeps
the single beyond-k=0 entry, with a note saying why.

**Order parameter.** A channel Γ with m copies of a real irrep of dimension d is
expressed in a canonical basis: Γ's copy inside the smallest O(3) irreps ``lp`` that
contains it (for ``1o``, Cartesian x, y, z in the parent's axes). With orthonormal
intertwiners T_k (k = 1..m) the component becomes an m × d matrix M; its row space is
the order-parameter direction (rank 1 for a one-direction order parameter such as
(a, 0, 0), (a, a, 0), (a, a, a)), given as a unit vector in ``lp`` coordinates. The
isotropy subgroup of the component is its exact stabilizer in the parent's point group
(|ρ(s)c − c| ≤ symprec, in Å), named by its space-group type.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from ase import Atoms

from .errors import SBSInputError
from .groups import bits, mask_of
from .irreps import representation
from .symmetry import Symmetry, detect_symmetry, symmetrized_atoms
from .targets import STRAIN_BASIS, DistortionChannel, _operation_matrix, distortion_channels, make_target

BEYOND_K0 = "beyond k=0"
RIGID_RESIDUAL = "rigid motion"  # molecules: what superposition leaves of rotations (second order)


# ----------------------------------------------------------------------------------
# matching


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


def _polar(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def _match_crystal(child: Atoms, psym: Symmetry, n: int, max_strain: float):
    from ase.geometry import minkowski_reduce

    parent = psym.atoms
    Lp = np.asarray(parent.cell, dtype=float)
    Lc = np.asarray(child.cell, dtype=float)
    Lc_red, P = minkowski_reduce(Lc)  # Lc_red = P Lc
    Lc_red = np.asarray(Lc_red, dtype=float)
    cands = _lattice_candidates(Lp, Lc_red, n, max_strain, basis=np.asarray(P, dtype=float))
    if not cands:
        raise SBSInputError(
            f"the child's cell is not a sublattice match: no {n}-fold supercell of the parent's lattice "
            f"maps onto it within {max_strain:.0%} strain (cell lengths {np.round(child.cell.cellpar()[:3], 3).tolist()} Å "
            f"vs the parent's {np.round(parent.cell.cellpar()[:3], 3).tolist()} Å); check the parent, or raise max_strain"
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
        Q, U = _polar(A)
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
          max_displacement: float | None = None) -> Match:
    """Find how ``child`` sits on ``parent`` (see module docstring).

    Args:
        child: the distorted structure (crystal or molecule).
        parent: an ``ase.Atoms`` (symmetrized at ``symprec`` first) or a :class:`Symmetry`.
        max_strain: largest principal stretch |U − 1| accepted.
        max_displacement: largest atomic displacement accepted (Å); default half the
            parent's shortest interatomic distance.

    Raises:
        SBSInputError: species mismatch, a cell that is no supercell of the parent's
            lattice, or a child that is not a small distortion of the parent.
    """
    from .symmetry import _check_atoms

    _check_atoms(child)
    psym = parent if isinstance(parent, Symmetry) else parent_symmetry(parent, symprec)
    n = _check_species(child, psym.atoms)
    if psym.periodic:
        H, Q, eps, ref, pidx, u = _match_crystal(child, psym, n, max_strain)
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


# ----------------------------------------------------------------------------------
# decomposition


@dataclass(frozen=True)
class ModeAmplitude:
    """One channel's share of the distortion.

    Attributes:
        label: channel label (``T1u``, ``Eg`` …) or ``beyond k=0``.
        amplitude_A: |P_Γ w| in Å (displacement and ℓ·strain together).
        displacement_A: the atomic-displacement part (Å).
        strain: the strain part, ‖P_Γ ε‖_F (dimensionless).
        o3_irreps: the O(3) irreps in whose coordinates ``direction`` is given
            (``1o``: Cartesian x, y, z of the parent's axes).
        direction: unit order-parameter direction (sign: largest component positive),
            None when not defined (tiny amplitude, beyond k = 0, no real irrep).
        direction_rank: number of independent directions in the component (1 for a
            single order-parameter direction).
        isotropy: stabilizer of the component in the parent's point group (indices).
        isotropy_name: its space-group (crystals) or point-group (molecules) type.
        kstar: ``Γ`` for the parent cell's channels (crystals), the star's name (X, M, R,
            or a representative k) for a supercell channel, None otherwise.
        k_vectors: a supercell channel's k-vectors (fractions of the parent's
            reciprocal basis).
        channel_isotropy_subgroups: a supercell channel's isotropy subgroups with a
            one-dimensional fixed space (up to conjugacy), when cheap to list.
    """

    label: str
    amplitude_A: float
    displacement_A: float
    strain: float
    o3_irreps: str | None = None
    direction: tuple[float, ...] | None = None
    direction_rank: int | None = None
    isotropy: tuple[int, ...] | None = None
    isotropy_name: str | None = None
    isotropy_point_group: str | None = None
    kstar: str | None = None
    k_vectors: tuple[tuple[str, str, str], ...] | None = None
    channel_isotropy_subgroups: tuple[str, ...] | None = None

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "amplitude_A": self.amplitude_A,
            "displacement_A": self.displacement_A,
            "strain": self.strain,
            "o3_irreps": self.o3_irreps,
            "direction": list(self.direction) if self.direction is not None else None,
            "direction_rank": self.direction_rank,
            "isotropy_subgroup": self.isotropy_name,
            "isotropy_point_group": self.isotropy_point_group,
            "kstar": self.kstar,
            "k_vectors": [list(k) for k in self.k_vectors] if self.k_vectors is not None else None,
            "channel_isotropy_subgroups": (list(self.channel_isotropy_subgroups)
                                           if self.channel_isotropy_subgroups is not None else None),
        }


@dataclass(frozen=True, eq=False)
class ModeDecomposition:
    """The distortion of a child relative to its parent, channel by channel.

    ``total_A`` = sqrt(Σ amplitude²) over ``modes`` (beyond-k=0 entry included; for
    molecules the ``rigid motion`` entry, what superposition leaves of a rigid rotation
    at second order, is listed but not counted);
    ``breaking_A`` leaves out the identity channel (the symmetric part: volume, free
    Wyckoff coordinates): it is the distance to the parent's group. ``isotropy_name``
    is the stabilizer of the k = 0 part (the intersection of the channels' isotropy
    subgroups); a child whose distortion lies beyond k = 0 has lower symmetry
    (``child_symmetry``). ``beyond_modes`` splits the beyond-k=0 entry into the
    supercell group's channels (their amplitudes add in quadrature to it);
    ``beyond_note`` says why it was not split; ``supercell_isotropy_name`` is the
    stabilizer of the whole distortion in that group.
    """

    match: Match
    modes: list[ModeAmplitude]
    total_A: float
    breaking_A: float
    isotropy_name: str | None
    isotropy_point_group: str | None
    child_symmetry: str
    threshold_A: float
    beyond_modes: tuple[ModeAmplitude, ...] = ()
    beyond_note: str | None = None
    supercell_isotropy_name: str | None = None

    def mode(self, label: str) -> ModeAmplitude:
        return next(m for m in self.modes if m.label == label)

    def nonzero(self) -> list[ModeAmplitude]:
        return [m for m in self.modes if m.amplitude_A > self.threshold_A]

    def as_dict(self) -> dict:
        m = self.match
        return {
            "parent": m.parent.name(),
            "child_symmetry": self.child_symmetry,
            "n_cells": m.n_cells,
            "supercell": m.supercell.tolist(),
            "rotation": m.rotation.tolist(),
            "strain": m.strain.tolist(),
            "strain_length_A": m.strain_length,
            "total_A": self.total_A,
            "breaking_A": self.breaking_A,
            "isotropy_subgroup": self.isotropy_name,
            "isotropy_point_group": self.isotropy_point_group,
            "threshold_A": self.threshold_A,
            "modes": [x.as_dict() for x in self.modes],
            "beyond_k0_modes": [x.as_dict() for x in self.beyond_modes],
            "beyond_k0_note": self.beyond_note,
            "supercell_isotropy_subgroup": self.supercell_isotropy_name,
        }


def _is_identity(c: DistortionChannel) -> bool:
    return bool(np.allclose(c.character, 1.0))


def _channel_rep(sym: Symmetry, basis: np.ndarray) -> np.ndarray:
    """ρ(s) = Bᵀ D(s) B for every point-group element s."""
    return np.array([basis.T @ _operation_matrix(sym, sym.representative_operation(s)) @ basis
                     for s in range(sym.order)])


def _irrep_copy(chi: np.ndarray, D: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """Orthonormal columns E spanning one copy of the irrep with character χ inside D."""
    d = int(round(chi[0]))
    P = d * np.einsum("g,gij->ij", chi, D) / len(D)
    P = (P + P.T) / 2
    w, v = np.linalg.eigh(P)
    V = v[:, w > 0.5]
    if V.shape[1] == 0:
        return None
    if V.shape[1] == d:
        return V
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((V.shape[1], V.shape[1]))
    X = X + X.T
    rho = np.einsum("ai,gab,bj->gij", V, D, V)
    A = np.einsum("gij,jk,glk->il", rho, X, rho) / len(D)
    w, y = np.linalg.eigh(A)
    return V @ y[:, :d] if np.allclose(w[:d], w[0], atol=1e-7 * max(1, abs(w).max())) else None


def _intertwiners(rho: np.ndarray, gamma: np.ndarray, m: int) -> np.ndarray | None:
    """(m, d, md): orthonormal T_k with T_k ρ(s) = Γ(s) T_k and T_k T_kᵀ = I."""
    d, md = gamma.shape[1], rho.shape[1]
    rows = []
    for a in range(d):
        for b in range(md):
            X = np.zeros((d, md))
            X[a, b] = 1.0
            rows.append(np.einsum("gij,jk,glk->il", gamma, X, rho).ravel() / len(rho))
    u, s, vt = np.linalg.svd(np.array(rows))
    if (s > 1e-6).sum() != m:
        return None  # not of real type
    T = vt[:m].reshape(m, d, md) * np.sqrt(d)
    return T


def _direction(c: np.ndarray, ch: DistortionChannel, rho: np.ndarray, mats: np.ndarray):
    if ch.o3_irreps is None:
        return None, None
    D = representation(ch.o3_irreps, mats)
    E = _irrep_copy(ch.character, D)
    if E is None:
        return None, None
    gamma = np.einsum("ai,gab,bj->gij", E, D, E)
    T = _intertwiners(rho, gamma, ch.multiplicity)
    if T is None:
        return None, None
    M = np.einsum("kdi,i->kd", T, c)
    _, s, vt = np.linalg.svd(M)
    rank = int((s > 1e-3 * s[0]).sum())
    v = E @ vt[0]
    v = v * np.sign(v[np.argmax(np.abs(v))]) + 0.0
    return tuple(float(x) for x in np.round(v, 12) + 0.0), rank


def _subgroup_name(sym: Symmetry, elements) -> tuple[str, str]:
    t = make_target(sym, mask_of(elements))
    return t.name, t.schoenflies


def decompose(child: Atoms, parent, symprec: float = 1e-3, threshold: float = 1e-6,
              channels: list[DistortionChannel] | None = None,
              max_strain: float = 0.3, max_displacement: float | None = None, supercell: bool = True,
              supercell_channels: tuple | None = None) -> ModeDecomposition:
    """Symmetry-mode decomposition of ``child`` relative to ``parent`` (module docstring).

    Args:
        child, parent: ``ase.Atoms`` (the parent may also be a :class:`Symmetry` of an
            exactly symmetric structure).
        symprec: tolerance (Å) for the parent's and the child's symmetry, and of the
            stabilizers: s fixes a component c when |ρ(s)c − c| ≤ symprec.
        threshold: amplitudes (Å) above it count as present (direction, isotropy).
        channels: ``distortion_channels`` of the parent when already computed.
        supercell: split the beyond-k=0 part of a supercell child into the channels of
            the parent's space group modulo the child's lattice (module docstring).
        supercell_channels: ``(SupercellGroup, its distortion_channels)`` when already
            computed; used when its lattice is the child's, else rebuilt.
    """
    m = match(child, parent, symprec=symprec, max_strain=max_strain, max_displacement=max_displacement)
    psym = m.parent
    chans = distortion_channels(psym) if channels is None else channels
    N = len(psym.atoms)
    u = m.displacement
    u0 = np.zeros((N, 3))
    np.add.at(u0, m.parent_index, u)
    u0 /= m.n_cells
    residual = u - u0[m.parent_index]
    ell = m.strain_length
    parts = [u0.ravel()]
    if psym.periodic:
        parts.append(ell * np.einsum("aij,ij->a", STRAIN_BASIS, m.strain))
    w = np.concatenate(parts)
    nd = 3 * N
    mats = psym.point_group_matrices
    modes, covered = [], np.zeros_like(w)
    stabs = []
    for ch in chans:
        B = ch.basis
        c = B.T @ w
        pw = B @ c
        covered += pw
        amp = float(np.linalg.norm(c))
        disp = float(np.linalg.norm(pw[:nd]))
        strain = float(np.linalg.norm(pw[nd:]) / ell) if ell > 0 else 0.0
        direction = rank = iso = name = pg = None
        if amp > threshold:
            rho = _channel_rep(psym, B)
            moved = np.linalg.norm(np.einsum("gij,j->gi", rho, c) - c[None], axis=1)
            near = np.flatnonzero(moved <= symprec)
            # a tolerance can leave a set that is not closed: take the group it generates
            iso = tuple(bits(psym.point_group.generate(near.tolist())))
            stabs.append(set(iso))
            name, pg = _subgroup_name(psym, iso)
            direction, rank = _direction(c, ch, rho, mats)
        modes.append(ModeAmplitude(ch.label, amp, disp, strain, ch.o3_irreps, direction, rank, iso, name, pg,
                                   kstar="Γ" if psym.periodic else None))
    beyond = float(np.sqrt(np.linalg.norm(w - covered) ** 2 + (residual**2).sum() / m.n_cells))
    modes.append(ModeAmplitude(BEYOND_K0 if psym.periodic else RIGID_RESIDUAL, beyond, beyond, 0.0))
    modes.sort(key=lambda x: -x.amplitude_A)
    # a molecule's leftover rigid motion is reported but is no distortion
    total = float(np.sqrt(sum(x.amplitude_A**2 for x in modes if x.label != RIGID_RESIDUAL)))
    ident = sum(x.amplitude_A**2 for x in modes if x.label in {c.label for c in chans if _is_identity(c)})
    breaking = float(np.sqrt(max(total**2 - ident, 0.0)))
    whole = set(range(psym.order)).intersection(*stabs) if stabs else set(range(psym.order))
    iso_name, iso_pg = _subgroup_name(psym, sorted(whole))
    beyond_modes, note, sc_iso = (), None, None
    if psym.periodic and m.n_cells > 1 and supercell:
        beyond_modes, note, sc_iso = _supercell_breakdown(m, residual, beyond, symprec, threshold, supercell_channels)
    try:
        csym = detect_symmetry(child, symprec=symprec)
        child_name = csym.name()
    except SBSInputError as exc:
        child_name = f"undetermined ({exc})"
    return ModeDecomposition(match=m, modes=modes, total_A=total, breaking_A=breaking, isotropy_name=iso_name,
                             isotropy_point_group=iso_pg, child_symmetry=child_name, threshold_A=threshold,
                             beyond_modes=beyond_modes, beyond_note=note, supercell_isotropy_name=sc_iso)

# ----------------------------------------------------------------------------------
# beyond k = 0 on a supercell


def _same_lattice(sg, Lp: np.ndarray, H: np.ndarray) -> bool:
    """True when ``sg`` is built on this parent cell and on the lattice of H Lp."""
    if np.abs(np.asarray(sg.parent.atoms.cell, dtype=float) - Lp).max() > 1e-6:
        return False
    X = H @ np.linalg.inv(sg.matrix)
    return bool(np.allclose(X, np.round(X), atol=1e-8) and round(abs(np.linalg.det(X))) == 1)


def _onto_supercell(reference: Atoms, sg) -> np.ndarray | None:
    """order[i] = the atom of ``sg.atoms`` that reference atom i sits on, after one rigid
    translation of the reference (it differs from G's origin by the match's shift)."""
    Ls = np.asarray(sg.atoms.cell, dtype=float)
    inv = np.linalg.inv(Ls)
    zr, zs = reference.numbers, sg.atoms.numbers
    rp, sp = reference.positions, sg.atoms.positions
    same = zr[:, None] == zs[None]
    for j in np.flatnonzero(zs == zr[0]):
        d = (rp - (rp[0] - sp[j]))[:, None, :] - sp[None]
        f = d @ inv
        dist = np.linalg.norm((f - np.round(f)) @ Ls, axis=-1)
        dist[~same] = np.inf
        hit = dist.argmin(axis=1)
        if dist[np.arange(len(rp)), hit].max() < 1e-5 and len(set(hit.tolist())) == len(rp):
            return hit
    return None


def _stabilizer_name(sg, v: np.ndarray, tol: float) -> str | None:
    """Space-group type of {g ∈ G : |g·v − v| ≤ tol} (the group it generates)."""
    moved = np.array([np.linalg.norm(sg.act_distortion(g, v) - v) for g in range(sg.order)])
    num, symbol = sg.spacegroup_of(sg.group.generate(np.flatnonzero(moved <= tol).tolist()))
    return f"{symbol} ({num})" if num is not None else None


def _supercell_breakdown(m: Match, residual: np.ndarray, beyond: float, symprec: float, threshold: float,
                         cache: tuple | None):
    """(entries, note, isotropy of the whole distortion in G): the beyond-k=0 part of a
    supercell child in the channels of :mod:`ase_sbs.supercell` (module docstring)."""
    from . import supercell as sc

    psym = m.parent
    H = m.supercell if np.linalg.det(m.supercell) > 0 else -m.supercell
    Lp = np.asarray(psym.atoms.cell, dtype=float)
    try:
        if cache is not None and _same_lattice(cache[0], Lp, H):
            sg, chans = cache
        else:
            sg = sc.supercell_group(psym.atoms, H, symprec=psym.symprec)
            chans = sc.distortion_channels(sg)
    except SBSInputError as exc:
        return (), f"beyond k=0 not split into supercell channels: {exc}", None
    order = _onto_supercell(m.reference, sg)
    if order is None:
        return (), "beyond k=0 not split into supercell channels: the parent supercell does not map onto itself", None
    n, N = m.n_cells, len(sg.atoms)
    r = np.zeros((N, 3))
    r[order] = residual
    q = np.concatenate([r.ravel(), np.zeros(6)])
    tol = symprec * np.sqrt(n)  # components are per supercell, amplitudes per parent cell
    entries = []
    for ch in chans:
        if ch.label.startswith("Γ"):
            continue  # r has no k = 0 part (the parent's channels hold it)
        c = ch.basis.T @ q
        amp = float(np.linalg.norm(c) / np.sqrt(n))
        iso = chan_iso = None
        if amp > threshold:
            iso = _stabilizer_name(sg, ch.basis @ c, tol)
            if ch.dimension * ch.multiplicity <= 3:
                try:
                    chan_iso = tuple(k.name for k in sc.isotropy_subgroups(sg, ch))
                except SBSInputError:
                    chan_iso = None
        entries.append(ModeAmplitude(ch.label, amp, amp, 0.0, isotropy_name=iso, kstar=ch.label.split("-")[0],
                                     k_vectors=ch.kstar, channel_isotropy_subgroups=chan_iso))
    rest = float(np.sqrt(max(beyond**2 - sum(e.amplitude_A**2 for e in entries), 0.0)))
    if rest > threshold:  # what the parent cell cannot hold but r does not carry (a centring)
        entries.append(ModeAmplitude(BEYOND_K0 + " (not in supercell channels)", rest, rest, 0.0))
    entries.sort(key=lambda x: -x.amplitude_A)
    u = np.zeros((N, 3))
    u[order] = m.displacement
    strain = np.sqrt(n) * m.strain_length * np.einsum("aij,ij->a", STRAIN_BASIS, m.strain)
    whole = np.concatenate([u.ravel(), strain])
    return tuple(entries), None, _stabilizer_name(sg, whole, tol)


def describe_modes(dec: ModeDecomposition, all_channels: bool = False) -> str:
    """Terminal table of a decomposition."""
    from .report import format_table

    m = dec.match
    crystal = m.parent.periodic
    lines = [
        f"parent        {m.parent.name()}",
        f"child         {dec.child_symmetry}",
        *([f"cells         {m.n_cells} parent cell(s) in the child's cell, H = {m.supercell.tolist()}"] if crystal else []),
        f"total         {dec.total_A:.6f} Å{' per parent cell' if crystal else ''}; "
        f"symmetry-breaking part {dec.breaking_A:.6f} Å",
        f"isotropy      {dec.isotropy_name} ({dec.isotropy_point_group}) = stabilizer of the k = 0 distortion",
        *([f"strain length ℓ = {m.strain_length:.4f} Å (strain counts as ℓ·‖ε‖)"] if crystal else []),
        "",
    ]
    rows = []
    for x in dec.modes:
        if not all_channels and x.amplitude_A <= dec.threshold_A:
            continue
        direction = ("[" + " ".join(f"{round(v, 4) + 0.0:+.4f}" for v in x.direction) + "]") if x.direction else "-"
        rows.append([x.label, f"{x.amplitude_A:.6f}", f"{x.displacement_A:.6f}", f"{x.strain:.6f}",
                     x.o3_irreps, direction, x.isotropy_name])
    lines.append(format_table(["channel", "amplitude (Å)", "displacement (Å)", "strain", "O(3)",
                               "order-parameter direction", "isotropy subgroup"], rows))
    if dec.beyond_modes:
        lines += ["", f"beyond k=0 in the channels of {m.parent.name().split(',')[0]} modulo the child's lattice "
                  f"(amplitudes per parent cell; isotropy of the whole distortion {dec.supercell_isotropy_name}):"]
        rows = [[x.label, x.kstar or "-", f"{x.amplitude_A:.6f}", x.isotropy_name or "-",
                 ", ".join(x.channel_isotropy_subgroups) if x.channel_isotropy_subgroups else "-"]
                for x in dec.beyond_modes if all_channels or x.amplitude_A > dec.threshold_A]
        lines.append(format_table(["channel", "k-star", "amplitude (Å)", "isotropy subgroup",
                                   "channel's isotropy subgroups"], rows))
    if dec.beyond_note:
        lines += ["", dec.beyond_note]
    return "\n".join(lines)


def summary_of_dict(data: dict, threshold: float = 1e-4) -> str:
    """One line from :meth:`ModeDecomposition.as_dict`: the channels above ``threshold`` (Å)."""
    if "error" in data:
        return f"not decomposed ({data['error']})"
    out = []
    for x in data["modes"]:
        if x["amplitude_A"] <= threshold:
            continue
        s = f"{x['label']} {x['amplitude_A']:.4f} Å"
        if x["direction"] and x["o3_irreps"] in ("1o", "1e"):
            s += " [" + " ".join(f"{round(v, 3) + 0.0:+.3f}" for v in x["direction"]) + "]"
        out.append(s)
    return (", ".join(out) or "none") + f"; isotropy {data['isotropy_subgroup']}"
