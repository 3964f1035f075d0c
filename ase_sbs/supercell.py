"""Beyond k = 0: the parent's space group acting on a supercell, its distortion
channels, their isotropy subgroups, and per-atom symmetry-breaking objects.

The group. A primitive parent with space group 𝒢 and lattice Λ, and a supercell with
lattice Λ_s ⊂ Λ (rows ``matrix @ cell``). The finite group is G = 𝒢' / Λ_s, 𝒢' the
operations of 𝒢 that map Λ_s onto itself (all of 𝒢 for n×n×n): its elements are
(R, t) with t running over each operation's translation plus Λ / Λ_s, so
|G| = |𝒢'/Λ| · det(matrix). Translations are compared modulo Λ_s. G acts on the
supercell's atoms by permutation, x_i ↦ R x_i + t ≡ x_{π(i)}, on displacements as
(g·u)_{π(i)} = R u_i, on strain as R ε Rᵀ, and on per-atom objects as
(g·b)_{π(i)} = D(R) b_i.

Channels. The distortion space (displacements ⊕ strain, less the uniform
translations) splits into isotypic components of G's real irreps: the eigenspaces of
a random symmetric matrix averaged over G, grouped by character. The pure
translations of G act on a channel through the characters e^{2πi k·T}: the k's that
occur form the channel's k-star.

Isotropy subgroups without enumerating subgroups. Every isotropy subgroup K of a
channel V is the pointwise fixer of its fixed space V^K, and V^K is the intersection
of the Fix(g) ∩ V over g in K. So the fixed spaces are the closure of
{Fix(g) ∩ V : g in G} under intersection; each one's pointwise fixer is an isotropy
subgroup. The default candidates are those with a one-dimensional V^K (the
order-parameter directions of highest symmetry: for the R-point octahedral tilts of
a cubic perovskite, I4/mcm, Imma and R-3c, as in Stokes & Hatch), up to conjugacy
in G. The space-group type of K comes from K's own operations (spglib's
``get_spacegroup_type_from_symmetry`` in the supercell basis).

Curvature. By Schur's lemma the Hessian of a G-invariant potential restricted to an
isotypic component of multiplicity m is C ⊗ I_d: m Lanczos steps from one vector of
one copy give the m×m block C, each step one central finite difference of forces
(and stress). Units: eV/Å² per unit displacement of the whole supercell
(Σ_i |u_i|² = 1 Å²), strain measured as ε·ℓ with ℓ = V_s^{1/3}.

Per-atom objects. For a target K with V^K = span(u), b_i = u_i (per-atom ``1o``),
plus the strain's l = 2 part (``2e``, the same on every atom) when u has one. By
construction Stab_G(b) = Stab_G(u) = K; B = G·b has [G:K] members, translational
domains included.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

import numpy as np
from ase import Atoms

from .errors import SBSInputError
from .groups import FiniteGroup, bits, mask_of
from .symmetry import Symmetry, _permutation, detect_symmetry, quiet_c_stderr, symmetrized_atoms
from .targets import STRAIN_BASIS, isotypic_components

# |G| · D³ (D = 3 N + 6) above this is refused before any long computation
MAX_WORK = 1.5e10
TOL = 1e-6


# ----------------------------------------------------------------------------------
# the group G = space group / supercell translations


@dataclass(frozen=True, eq=False)
class SupercellGroup:
    """The parent's space group modulo the supercell lattice, acting on the supercell.

    Attributes:
        parent: the primitive parent's :class:`Symmetry`.
        matrix: (3, 3) integers, supercell cell = ``matrix @ parent cell``.
        atoms: the supercell (parent symmetrized, then repeated).
        rotations: (|G|, 3, 3) Cartesian.
        translations: (|G|, 3) Cartesian Å.
        rotations_frac, translations_frac: the same in the supercell's fractional
            basis (translations in [0, 1)).
        permutations: (|G|, N): element g maps atom i onto atom ``permutations[g, i]``.
        table: Cayley table, ``table[a, b]`` = index of g_a g_b; element 0 is E.
    """

    parent: Symmetry
    matrix: np.ndarray
    atoms: Atoms
    rotations: np.ndarray
    translations: np.ndarray
    rotations_frac: np.ndarray
    translations_frac: np.ndarray
    permutations: np.ndarray
    table: np.ndarray

    @property
    def order(self) -> int:
        return len(self.rotations)

    @cached_property
    def group(self) -> FiniteGroup:
        return FiniteGroup(self.table)

    @cached_property
    def pure_translations(self) -> np.ndarray:
        """Indices of the elements with R = E."""
        return np.flatnonzero(np.abs(self.rotations - np.eye(3)).max(axis=(1, 2)) < 1e-8)

    @property
    def n_cells(self) -> int:
        return int(round(abs(np.linalg.det(self.matrix))))

    @cached_property
    def strain_matrices(self) -> np.ndarray:
        """(|G|, 6, 6): R ε Rᵀ in the orthonormal strain basis."""
        return np.einsum("aij,gik,bkl,gjl->gab", STRAIN_BASIS, self.rotations, STRAIN_BASIS, self.rotations)

    def act(self, g: int, vectors: np.ndarray, D: np.ndarray | None = None) -> np.ndarray:
        """(g·b)_{π(i)} = D b_i for per-atom rows b_i (D = R for displacements)."""
        D = self.rotations[g] if D is None else D
        out = np.empty_like(vectors)
        out[self.permutations[g]] = vectors @ D.T
        return out

    def act_distortion(self, g: int, q: np.ndarray) -> np.ndarray:
        """g acting on a displacement ⊕ strain vector (3N + 6)."""
        n = len(self.atoms)
        u = self.act(g, q[: 3 * n].reshape(n, 3)).ravel()
        return np.concatenate([u, self.strain_matrices[g] @ q[3 * n:]])

    def matrix_of(self, g: int) -> np.ndarray:
        """Dense matrix of g on displacement ⊕ strain coordinates."""
        n = len(self.atoms)
        M = np.zeros((3 * n + 6, 3 * n + 6))
        R, p = self.rotations[g], self.permutations[g]
        for i in range(n):
            M[3 * p[i]: 3 * p[i] + 3, 3 * i: 3 * i + 3] = R
        M[3 * n:, 3 * n:] = self.strain_matrices[g]
        return M

    def spacegroup_of(self, mask: int) -> tuple[int | None, str | None]:
        """Space-group type of the subgroup ``mask`` from its own operations."""
        import spglib

        el = bits(mask)
        with quiet_c_stderr(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = spglib.get_spacegroup_type_from_symmetry(
                self.rotations_frac[el], self.translations_frac[el], np.asarray(self.atoms.cell),
                symprec=self.parent.symprec,
            )
        if t is None:
            return None, None
        return int(t.number), str(t.international_short)

    def translation_count(self, mask: int) -> int:
        """Number of pure translations of G in the subgroup."""
        return sum(1 for g in self.pure_translations if mask >> int(g) & 1)


def _as_matrix(supercell) -> np.ndarray:
    P = np.asarray(supercell)
    if P.shape == (3,):
        P = np.diag(P)
    if P.shape != (3, 3) or not np.allclose(P, np.round(P)):
        raise SBSInputError(f"a supercell is three positive integers or a 3x3 integer matrix, got {supercell!r}")
    P = np.round(P).astype(int)
    if round(np.linalg.det(P)) <= 0:
        raise SBSInputError(f"the supercell matrix {P.tolist()} must have a positive determinant")
    return P


def work_estimate(parent: Symmetry, matrix) -> float:
    """|G| · D³ for a supercell: the cost of the isotypic decomposition."""
    P = _as_matrix(matrix)
    cells = round(abs(np.linalg.det(P)))
    n_ops = len(parent.operations) // max(len(parent.centering_translations), 1)
    dim = 3 * len(parent.atoms) * cells + 6
    return float(n_ops * cells * dim**3)


def check_size(parent: Symmetry, matrix) -> None:
    """Refuse, before any long computation, a supercell too large for the enumeration."""
    P = _as_matrix(matrix)
    if work_estimate(parent, P) <= MAX_WORK:
        return
    n = 1
    while work_estimate(parent, np.eye(3, dtype=int) * (n + 1)) <= MAX_WORK:
        n += 1
    cells = round(abs(np.linalg.det(P)))
    most = 1
    while work_estimate(parent, np.diag([most + 1, 1, 1])) <= MAX_WORK:
        most += 1
    raise SBSInputError(
        f"supercell {P.tolist()} ({cells} cells, {3 * len(parent.atoms) * cells + 6} distortion coordinates, "
        f"|G| = {len(parent.operations) * cells}) is too large for the isotypic decomposition; "
        f"the largest n×n×n supercell that works for this {len(parent.atoms)}-atom cell is {n}×{n}×{n} "
        f"(at most {most} cells)"
    )


def _key(W: np.ndarray, t: np.ndarray) -> bytes:
    """Hashable (W, t mod 1); distinct translations differ by far more than 1e-4."""
    tt = np.round(np.mod(t, 1.0) * 10_000).astype(np.int64) % 10_000
    return W.astype(np.int64).tobytes() + tt.tobytes()


def supercell_group(atoms: Atoms, supercell, symprec: float = 1e-3) -> SupercellGroup:
    """Build G for the (primitive) parent ``atoms`` and a supercell (3 integers or 3x3).

    Raises:
        SBSInputError: bad supercell, a parent that is not primitive, or a supercell
            too large for the enumeration (named before any long computation).
    """
    from ase.build import make_supercell

    P = _as_matrix(supercell)
    parent = detect_symmetry(atoms, symprec=symprec)
    if len(parent.centering_translations) > 1:
        raise SBSInputError(
            f"the parent cell holds {len(parent.centering_translations)} primitive cells; give the "
            "primitive cell (e.g. spglib.find_primitive) and the supercell relative to it"
        )
    check_size(parent, P)
    prim = symmetrized_atoms(parent)
    parent = detect_symmetry(prim, symprec=symprec)
    sup = make_supercell(prim, P, wrap=True)
    L = np.asarray(prim.cell, dtype=float)
    Ls = np.asarray(sup.cell, dtype=float)
    invP = np.linalg.inv(P)
    # parent lattice translations modulo the supercell lattice (supercell fractional)
    span = int(np.abs(P).sum(axis=0).max()) + 1
    lat = {}
    for n in np.array(np.meshgrid(*[np.arange(-span, span + 1)] * 3)).reshape(3, -1).T:
        f = np.mod(n @ invP, 1.0)
        f[np.abs(f - 1.0) < 1e-9] = 0.0
        lat.setdefault(_key(np.zeros(1), f), f)
    lat = sorted(lat.values(), key=lambda f: (np.abs(f).sum() > 1e-9, tuple(np.round(f, 6))))
    if len(lat) != round(abs(np.linalg.det(P))):
        raise AssertionError("lattice translations modulo the supercell miscounted")
    ops = parent.operations
    rot, trans, wf, tf, perms = [], [], [], [], []
    tol = max(3 * symprec, 1e-3)
    to_frac = np.linalg.inv(Ls.T)
    for k in range(len(ops)):
        R = ops.rotations[k]
        Ws = to_frac @ R @ Ls.T
        if not np.allclose(Ws, np.round(Ws), atol=1e-5):
            continue  # does not map the supercell lattice onto itself
        Ws = np.round(Ws).astype(int)
        t0 = ops.translations_frac[k] @ L @ np.linalg.inv(Ls)
        for f in lat:
            ts = np.mod(t0 + f, 1.0)
            ts[np.abs(ts - 1.0) < 1e-7] = 0.0
            p = _permutation(sup, Ws, ts, tol, periodic=True)
            if p is None:
                raise SBSInputError("the supercell's atoms do not map onto themselves; use a smaller symprec")
            rot.append(R)
            trans.append(ts @ Ls)
            wf.append(Ws)
            tf.append(ts)
            perms.append(p)
    wf, tf = np.array(wf), np.array(tf)
    ident = [i for i in range(len(wf)) if (wf[i] == np.eye(3)).all() and np.abs(tf[i]).max() < 1e-9]
    order = ident + [i for i in range(len(wf)) if i not in ident]
    rot, trans, wf, tf, perms = (np.array(x)[order] for x in (rot, trans, wf, tf, perms))
    index = {_key(W, t): i for i, (W, t) in enumerate(zip(wf, tf))}
    table = np.empty((len(wf), len(wf)), dtype=np.int64)
    for a in range(len(wf)):
        Wab = np.einsum("ij,bjk->bik", wf[a], wf)
        tab = tf @ wf[a].T + tf[a]
        for b in range(len(wf)):
            table[a, b] = index[_key(Wab[b], tab[b])]
    return SupercellGroup(parent, P, sup, rot, trans, wf, tf, perms, table)


# ----------------------------------------------------------------------------------
# channels


@dataclass(frozen=True, eq=False)
class SupercellChannel:
    """One isotypic component of the supercell's distortion space.

    Attributes:
        label: ``<k-star>-d<dim><parity>``, e.g. ``R-d3+``: the star's name (Γ, X, M, R
            for primitive cubic parents, else a representative k), the irrep's
            dimension and the sign of its character under inversion through the
            origin (when G has it); ``(n)`` tells apart channels with the same label.
        kstar: the k-vectors (fractions of the parent's reciprocal basis) in the channel.
        dimension, multiplicity: irrep dimension d and number of copies m.
        sources: ``displacement`` and/or ``strain``.
        character: χ(g) for each g in G.
        copies: m orthonormal (3N + 6, d) bases, one per irreducible copy.
        curvature: eigenvalues of the m×m Hessian block (eV/Å², see module doc);
            None until computed.
    """

    label: str
    kstar: tuple[tuple[str, str, str], ...]
    dimension: int
    multiplicity: int
    sources: tuple[str, ...]
    character: np.ndarray
    copies: tuple[np.ndarray, ...]
    curvature: tuple[float, ...] | None = None

    @cached_property
    def basis(self) -> np.ndarray:
        return np.concatenate(self.copies, axis=1)

    @property
    def min_curvature(self) -> float | None:
        return None if self.curvature is None else min(self.curvature)

    @property
    def unstable(self) -> bool:
        return self.curvature is not None and min(self.curvature) < -1e-3

    def with_curvature(self, values) -> "SupercellChannel":
        return SupercellChannel(**{**{k: v for k, v in self.__dict__.items() if k in _CHANNEL_FIELDS},
                                   "curvature": tuple(float(x) for x in values)})

    def as_dict(self) -> dict:
        return {
            "label": self.label, "kstar": [list(k) for k in self.kstar], "dimension": self.dimension,
            "multiplicity": self.multiplicity, "sources": list(self.sources),
            "curvature_eV_A2": None if self.curvature is None else list(self.curvature),
        }


_CHANNEL_FIELDS = ("label", "kstar", "dimension", "multiplicity", "sources", "character", "copies", "curvature")


def _frac(x: float) -> str:
    return str(Fraction(float(x)).limit_denominator(48))


CUBIC_POINTS = {"Γ": (0, 0, 0), "X": (0, 0.5, 0), "M": (0.5, 0.5, 0), "R": (0.5, 0.5, 0.5)}


def _kgrid(P: np.ndarray) -> np.ndarray:
    """k-vectors (parent reciprocal fractions, in [0, 1)) commensurate with the supercell."""
    cells = round(abs(np.linalg.det(P)))
    span = cells
    out = {}
    for m in np.array(np.meshgrid(*[np.arange(0, span + 1)] * 3)).reshape(3, -1).T:
        k = np.mod(np.linalg.solve(P, m), 1.0)
        k[np.abs(k - 1) < 1e-9] = 0.0
        out.setdefault(tuple(np.round(k, 8)), k)
    return np.array(sorted(out.values(), key=tuple))


def _star_name(sg: SupercellGroup, star: list[np.ndarray]) -> str:
    """Γ for k = 0; X, M, R for primitive cubic parents (any arm of their stars); else
    the first k in parent reciprocal fractions."""
    parent = sg.parent
    if any(np.abs(k - np.round(k)).max() < 1e-9 for k in star):
        return "Γ"
    cubic_p = (parent.spacegroup_number or 0) >= 195 and (parent.spacegroup_symbol or "").startswith("P")
    if cubic_p:
        for name, point in CUBIC_POINTS.items():
            arms = np.mod(np.array(point) @ np.linalg.inv(parent.operations.rotations_frac), 1.0)
            for s in star:
                d = np.mod(arms - s[None] + 1e-9, 1.0)
                if (np.abs(d).max(axis=1) < 1e-6).any():
                    return name
    k = star[0]
    return "k(" + ",".join(_frac(x) for x in k) + ")"


def _kstar(sg: SupercellGroup, chi: np.ndarray) -> list[np.ndarray]:
    T = sg.pure_translations
    tpar = sg.translations[T] @ np.linalg.inv(np.asarray(sg.parent.atoms.cell))
    star = []
    for k in _kgrid(sg.matrix):
        w = np.cos(2 * np.pi * tpar @ k)
        if chi[T] @ w / len(T) > 0.5:
            star.append(k)
    return star


def distortion_channels(sg: SupercellGroup, seed: int = 0) -> list[SupercellChannel]:
    """Isotypic components of G on displacements ⊕ strain (less uniform translations)."""
    n = len(sg.atoms)
    dim = 3 * n + 6
    trans = np.zeros((dim, 3))
    for a in range(3):
        trans[a: 3 * n: 3, a] = 1 / np.sqrt(n)
    rho = np.stack([sg.matrix_of(g) for g in range(sg.order)])
    groups = isotypic_components(rho, seed, eig_tol=1e-8, char_tol=1e-5, exclude=trans)
    inv = next((g for g in range(sg.order) if np.allclose(sg.rotations[g], -np.eye(3))
                and np.abs(sg.translations_frac[g]).max() < 1e-9), None)
    channels = []
    for copies, chi in groups:
        d = int(round(chi[0]))
        star = _kstar(sg, chi)
        B = np.concatenate(copies, axis=1)
        sources = tuple(s for s, part in (("displacement", B[: 3 * n]), ("strain", B[3 * n:]))
                        if np.abs(part).max() > 1e-8)
        parity = "" if inv is None or abs(chi[inv]) < 1e-6 else ("+" if chi[inv] > 0 else "-")
        channels.append(SupercellChannel(
            label=f"{_star_name(sg, star)}-d{d}{parity}",
            kstar=tuple(tuple(_frac(x) for x in k) for k in star),
            dimension=d, multiplicity=len(copies), sources=sources, character=chi,
            copies=tuple(copies),
        ))
    order = {"Γ": 0, "X": 1, "M": 2, "R": 3}
    channels.sort(key=lambda c: (order.get(c.label.split("-")[0], 4), c.label, c.dimension))
    count: dict[str, int] = {}
    for c in channels:
        count[c.label] = count.get(c.label, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for c in channels:
        if count[c.label] > 1:
            seen[c.label] = seen.get(c.label, 0) + 1
            c = SupercellChannel(**{**{k: v for k, v in c.__dict__.items() if k in _CHANNEL_FIELDS},
                                    "label": f"{c.label}({seen[c.label]})"})
        out.append(c)
    return out


def channel_matches_kpoint(channel: SupercellChannel, k, sg: SupercellGroup | None = None) -> bool:
    """True when k (or, given ``sg``, any arm of k's star under the parent's point
    group) is among the channel's k-vectors."""
    k = np.mod(np.asarray(k, dtype=float), 1.0)
    arms = k[None] if sg is None else np.mod(k @ np.linalg.inv(sg.parent.operations.rotations_frac), 1.0)
    for s in channel.kstar:
        ks = np.array([float(Fraction(x)) for x in s])
        d = np.mod(ks[None] - arms + 1e-9, 1.0)
        if (np.abs(d).max(axis=1) < 1e-6).any():
            return True
    return False


# ----------------------------------------------------------------------------------
# isotropy subgroups


def _null_space(A: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    if A.shape[0] == 0:
        return np.eye(A.shape[1])
    _, s, vt = np.linalg.svd(A)
    rank = int((s > tol).sum())
    return vt[rank:].T


@dataclass(frozen=True)
class IsotropySubgroup:
    """An isotropy subgroup K of one channel (a representative of its class in G).

    Attributes:
        elements: indices of K in G.
        fixed_space: (3N + 6, f) orthonormal basis of V^K within the channel.
        spacegroup_number, spacegroup_symbol: K's space-group type.
        order, index: |K| and [G:K] (the number of domain variants).
        n_conjugates: number of subgroups conjugate to K in G.
        cell_multiplication: how many parent primitive cells K's primitive cell holds.
        channel: the channel's label.
    """

    elements: tuple[int, ...]
    fixed_space: np.ndarray = field(repr=False)
    spacegroup_number: int | None
    spacegroup_symbol: str | None
    order: int
    index: int
    n_conjugates: int
    cell_multiplication: int
    channel: str

    @property
    def mask(self) -> int:
        return mask_of(self.elements)

    @property
    def name(self) -> str:
        return f"{self.spacegroup_symbol} ({self.spacegroup_number})"

    @property
    def fixed_dimension(self) -> int:
        return self.fixed_space.shape[1]

    def as_dict(self) -> dict:
        return {"spacegroup_number": self.spacegroup_number, "spacegroup_symbol": self.spacegroup_symbol,
                "order": self.order, "index": self.index, "n_conjugates": self.n_conjugates,
                "fixed_dimension": self.fixed_dimension, "cell_multiplication": self.cell_multiplication,
                "channel": self.channel}


def isotropy_subgroups(sg: SupercellGroup, channel: SupercellChannel, max_fixed_dim: int = 1,
                       max_subspaces: int = 20000) -> list[IsotropySubgroup]:
    """Isotropy subgroups of ``channel`` with dim V^K ≤ ``max_fixed_dim`` × multiplicity
    (in one copy of the irrep: dim ≤ ``max_fixed_dim``), up to conjugacy in G.

    Closes {Fix(g) ∩ V} under intersection (see module docstring), never listing the
    subgroups of G.
    """
    B = channel.basis
    dv = B.shape[1]
    rho = np.array([B.T @ _act_cols(sg, g, B) for g in range(sg.order)])

    def key(S: np.ndarray) -> bytes:
        Pm = S @ S.T
        return np.round(Pm, 5).tobytes()

    spaces: dict[bytes, np.ndarray] = {key(np.eye(dv)): np.eye(dv)}
    for g in range(1, sg.order):
        S = _null_space(rho[g] - np.eye(dv))
        if 0 < S.shape[1] < dv:
            spaces.setdefault(key(S), S)
    frontier = list(spaces.values())[1:]
    base = list(frontier)
    while frontier:
        new = []
        for S in frontier:
            for F in base:
                if S.shape[1] <= 1:
                    break
                if np.abs(F @ (F.T @ S) - S).max() < 1e-8:
                    continue  # S ⊆ F
                I = _intersect(S, F)
                if I.shape[1] == 0 or I.shape[1] == S.shape[1]:
                    continue
                k = key(I)
                if k not in spaces:
                    spaces[k] = I
                    new.append(I)
                    if len(spaces) > max_subspaces:
                        raise SBSInputError(
                            f"channel {channel.label}: more than {max_subspaces} fixed subspaces; "
                            "use a smaller supercell or a single k-point"
                        )
        frontier = new
    conjugation = sg.group.conjugation
    seen, out = set(), []
    for S in sorted(spaces.values(), key=lambda S: S.shape[1]):
        if S.shape[1] > max_fixed_dim * channel.multiplicity:
            continue
        moved = np.abs(np.einsum("gij,jk->gik", rho, S) - S[None]).max(axis=(1, 2))
        el = tuple(np.flatnonzero(moved < TOL).tolist())
        if el in seen:
            continue
        conj = {tuple(sorted(conjugation[s, list(el)].tolist())) for s in range(sg.order)}
        seen.update(conj)
        rep = min(mask_of(c) for c in conj)
        el = bits(rep)
        # fixed space of the representative: V^{sKs⁻¹} = s·V^K
        Srep = _null_space(np.concatenate([rho[g] - np.eye(dv) for g in el]))
        num, symbol = sg.spacegroup_of(rep)
        out.append(IsotropySubgroup(
            elements=tuple(el), fixed_space=B @ Srep, spacegroup_number=num, spacegroup_symbol=symbol,
            order=len(el), index=sg.order // len(el), n_conjugates=len(conj),
            cell_multiplication=sg.n_cells // sg.translation_count(rep), channel=channel.label,
        ))
    out.sort(key=lambda k: (k.fixed_dimension, -k.order, k.spacegroup_number or 0))
    return out


def _act_cols(sg: SupercellGroup, g: int, B: np.ndarray) -> np.ndarray:
    return np.stack([sg.act_distortion(g, B[:, j]) for j in range(B.shape[1])], axis=1)


def _intersect(S: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Orthonormal basis of span(S) ∩ span(F)."""
    A = np.concatenate([S, -F], axis=1)
    N = _null_space(A)
    if N.shape[1] == 0:
        return np.zeros((S.shape[0], 0))
    X = S @ N[: S.shape[1]]
    u, s, _ = np.linalg.svd(X, full_matrices=False)
    return u[:, s > 1e-8]


# ----------------------------------------------------------------------------------
# per-atom symmetry-breaking objects


def _strain_2e(eps: np.ndarray) -> np.ndarray:
    """The l = 2 (traceless) part of a symmetric 3x3 tensor in e3nn's ``2e`` basis."""
    import torch
    from e3nn import o3

    from .irreps import float64_default

    with float64_default():
        ct = o3.CartesianTensor("ij=ji")
        v = ct.from_cartesian(torch.as_tensor(eps, dtype=torch.float64)).numpy()
    return v[1:]  # ct is 0e + 2e


@dataclass(frozen=True, eq=False)
class PerAtomSBS:
    """B = G·b for per-atom objects b (N, dim) with Stab_G(b) = K exactly.

    Attributes:
        group: the :class:`SupercellGroup`.
        target: the isotropy subgroup K.
        irreps: e3nn irreps of each atom's object (``1o``, ``2e`` or ``1o+2e``).
        objects: (|B|, N, dim); member 0 is b.
        coset_representatives: g_j with b_j = g_j·b.
        stabilizers: Stab_G(b_j) = g_j K g_j⁻¹ as element indices.
    """

    group: SupercellGroup
    target: IsotropySubgroup
    irreps: str
    objects: np.ndarray
    coset_representatives: tuple[int, ...]
    stabilizers: tuple[tuple[int, ...], ...]

    def __len__(self) -> int:
        return len(self.objects)

    @cached_property
    def D(self) -> np.ndarray:
        from .irreps import representation

        return representation(self.irreps, self.group.rotations)

    def act(self, g: int, b: np.ndarray) -> np.ndarray:
        return self.group.act(g, b, self.D[g])

    def stabilizer_of(self, b: np.ndarray, tol: float = TOL) -> tuple[int, ...]:
        return tuple(g for g in range(self.group.order) if np.abs(self.act(g, b) - b).max() < tol)

    def contains(self, b: np.ndarray, tol: float = TOL) -> bool:
        return bool((np.abs(self.objects - b[None]).max(axis=(1, 2)) < tol).any())


def per_atom_sbs(sg: SupercellGroup, target: IsotropySubgroup, seed: int = 0) -> PerAtomSBS:
    """The per-atom SBS of ``target``: b from a generic vector of V^K (module docstring)."""
    n = len(sg.atoms)
    rng = np.random.default_rng(seed)
    u = target.fixed_space @ rng.standard_normal(target.fixed_dimension)
    u /= np.linalg.norm(u)
    first = u[np.flatnonzero(np.abs(u) > 1e-6)[0]]
    u *= np.sign(first)
    disp = u[: 3 * n].reshape(n, 3)
    eps = np.einsum("k,kij->ij", u[3 * n:], STRAIN_BASIS)
    parts, names = [], []
    if np.abs(disp).max() > 1e-8:
        parts.append(disp)
        names.append("1o")
    if np.abs(eps - np.trace(eps) / 3 * np.eye(3)).max() > 1e-8:
        parts.append(np.repeat(_strain_2e(eps)[None], n, axis=0))
        names.append("2e")
    if not parts:
        raise SBSInputError(f"{target.name}: its order parameter is a pure volume change; nothing to break")
    b = np.concatenate(parts, axis=1)
    irreps = "+".join(names)
    sbs = PerAtomSBS(sg, target, irreps, b[None], (0,), ())
    stab = sbs.stabilizer_of(b)
    if mask_of(stab) != target.mask:
        raise AssertionError(f"per-atom object for {target.name} has the wrong stabilizer")
    objects, cosets = [], []
    for g in range(sg.order):
        v = sbs.act(g, b)
        if not any(np.abs(v - o).max() < TOL for o in objects):
            objects.append(v)
            cosets.append(g)
    objects = np.array(objects)
    group = sg.group
    stabs = tuple(bits(group.conjugate(target.mask, g)) for g in cosets)
    return PerAtomSBS(sg, target, irreps, objects, tuple(cosets), tuple(tuple(s) for s in stabs))
