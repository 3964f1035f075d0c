"""Structure (+ supercell) -> Setting: the finite group G acting on one cell's atoms,
displacements and strain.

A setting is a parent and a cell:

* **k = 0** (:func:`k0_setting`): the structure's own cell. G is its point group S, each
  element acting through one representative operation (R, t); the distortions kept are
  those every pure translation of the cell fixes (for a centred cell, patterns that
  break the centring are not k = 0 of the primitive cell and are left out), so the
  representatives' choice does not matter. Molecules are always k = 0 settings.
* **supercell** (:func:`supercell_setting`): a crystal's primitive parent, with space
  group 𝒢 and lattice Λ, and a supercell with lattice Λ_s ⊂ Λ (rows ``matrix @ cell``,
  any integer matrix with positive determinant). G = 𝒢' / Λ_s, 𝒢' the operations of 𝒢
  that map Λ_s onto itself (all of 𝒢 for n×n×n): its elements are (R, t) with t running
  over each operation's translation plus Λ / Λ_s, so |G| = |𝒢'/Λ| · det(matrix).
  Translations are compared modulo Λ_s. The 1×1×1 supercell of a primitive cell is the
  k = 0 setting, element for element.

G acts on the setting's atoms by permutation, x_i ↦ R x_i + t ≡ x_{π(i)}, on
displacements as (g·u)_{π(i)} = R u_i, on strain as R ε Rᵀ (ε in the orthonormal basis
:data:`STRAIN_BASIS`), and on per-atom objects as (g·b)_{π(i)} = D(R) b_i. The
distortion space W is displacement ⊕ strain less the motions that are no distortion:
uniform translations, for molecules also rigid rotations, and for a k = 0 setting the
patterns that break the cell's pure translations.

Element order: the identity first; elements are sorted by the index of their rotation in
the parent's point group, then by translation, so that a k = 0 setting's element s *is*
point-group element s.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property, lru_cache

import numpy as np
from ase import Atoms

from ..core.groups import FiniteGroup, bits
from ..core.pointgroups import cayley_table
from ..core.spacegroups import spacegroup_type
from ..core.structure import species_labels
from ..core.symmetrizer import Symmetrizer
from ..core.symmetry import (
    Symmetry,
    atom_permutation,
    detect_symmetry,
    symmetrized_atoms,
)
from ..errors import SBSInputError

STRAIN_BASIS = np.array(
    [np.diag([1.0, 0, 0]), np.diag([0, 1.0, 0]), np.diag([0, 0, 1.0])]
    + [
        (np.outer(np.eye(3)[a], np.eye(3)[b]) + np.outer(np.eye(3)[b], np.eye(3)[a])) / np.sqrt(2)
        for a, b in ((1, 2), (0, 2), (0, 1))
    ]
)
"""Orthonormal (Frobenius) basis of symmetric 3×3 strains: xx, yy, zz, then yz, xz, xy."""

# |G| · D³ (D = 3 N + 6) above this is refused before any long computation
MAX_WORK = 1.5e10


@dataclass(frozen=True, eq=False)
class Setting:
    """The group G of a parent in one cell, acting on that cell.

    Attributes:
        parent: the symmetry of the parent: the primitive cell of a supercell setting,
            the structure itself for a k = 0 setting; ``point_index`` refers to its
            ``point_group_matrices``.
        atoms: the setting's structure (exactly symmetric).
        rotations: (|G|, 3, 3) Cartesian.
        translations: (|G|, 3) Cartesian Å.
        permutations: (|G|, N): element g maps atom i onto atom ``permutations[g, i]``.
        point_index: (|G|,) the rotation of each element as an index into the parent's
            point group.
        table: Cayley table, ``table[a, b]`` = index of g_a g_b; element 0 is E.
        rotations_frac, translations_frac: crystals: the elements in the basis of the
            setting's cell (translations in [0, 1)); None for molecules.
        supercell: (3, 3) integers, the cell in the parent's primitive basis (rows);
            None for a k = 0 setting.
        typing_operations: crystals: (W, w, element) of every operation of the cell
            (for a k = 0 setting of a centred cell the centring translations too), from
            which space-group types of subgroups are read.
        distortion_basis: (3N [+ 6], D) orthonormal columns spanning W.
        point_matrices: the point group of G (Cartesian, identity first) that
            ``point_index`` refers to; None: the parent's point group. A setting
            restricted to a subgroup (:meth:`restricted`) keeps that subgroup's.
    """

    parent: Symmetry
    atoms: Atoms
    rotations: np.ndarray
    translations: np.ndarray
    permutations: np.ndarray
    point_index: np.ndarray
    table: np.ndarray
    rotations_frac: np.ndarray | None
    translations_frac: np.ndarray | None
    supercell: np.ndarray | None
    typing_operations: tuple | None
    distortion_basis: np.ndarray
    point_matrices: np.ndarray | None = None

    @property
    def point_group_matrices(self) -> np.ndarray:
        """(|S|, 3, 3): the point group of G, indexed by ``point_index``."""
        return self.parent.point_group_matrices if self.point_matrices is None else self.point_matrices

    @cached_property
    def point_group(self) -> FiniteGroup:
        """The point group of G as a finite group (indices as ``point_group_matrices``)."""
        if self.point_matrices is None:
            return self.parent.point_group
        return FiniteGroup(cayley_table(self.point_matrices))

    @property
    def order(self) -> int:
        return len(self.rotations)

    @property
    def periodic(self) -> bool:
        return self.parent.periodic

    @property
    def symprec(self) -> float:
        return self.parent.symprec

    @cached_property
    def group(self) -> FiniteGroup:
        return FiniteGroup(self.table)

    @cached_property
    def pure_translations(self) -> np.ndarray:
        """Indices of the elements with R = E (the identity alone in a k = 0 setting)."""
        return np.flatnonzero(self.point_index == 0)

    @property
    def n_cells(self) -> int:
        """Primitive cells of the parent in the setting's cell (1 at k = 0)."""
        return 1 if self.supercell is None else int(round(abs(np.linalg.det(self.supercell))))

    @property
    def dimension(self) -> int:
        """Coordinates of displacement ⊕ strain: 3N (+ 6 for crystals)."""
        return 3 * len(self.atoms) + (6 if self.periodic else 0)

    @cached_property
    def strain_matrices(self) -> np.ndarray:
        """(|G|, 6, 6): R ε Rᵀ in the orthonormal strain basis."""
        return np.einsum("aij,gik,bkl,gjl->gab", STRAIN_BASIS, self.rotations, STRAIN_BASIS, self.rotations)

    @cached_property
    def labels(self) -> np.ndarray:
        """Per-atom species labels operations preserve (with magnetic moments)."""
        return species_labels(self.atoms)

    def act(self, g: int, vectors: np.ndarray, D: np.ndarray | None = None) -> np.ndarray:
        """(g·b)_{π(i)} = D b_i for per-atom rows b_i (D = R for displacements)."""
        D = self.rotations[g] if D is None else D
        out = np.empty_like(vectors)
        out[self.permutations[g]] = vectors @ D.T
        return out

    def act_distortion(self, g: int, q: np.ndarray) -> np.ndarray:
        """g acting on a displacement (⊕ strain) vector."""
        n = len(self.atoms)
        u = self.act(g, q[: 3 * n].reshape(n, 3)).ravel()
        if not self.periodic:
            return u
        return np.concatenate([u, self.strain_matrices[g] @ q[3 * n:]])

    def matrix_of(self, g: int) -> np.ndarray:
        """Dense matrix of g on displacement (⊕ strain) coordinates."""
        n = len(self.atoms)
        M = np.zeros((self.dimension, self.dimension))
        R, p = self.rotations[g], self.permutations[g]
        for i in range(n):
            M[3 * p[i]: 3 * p[i] + 3, 3 * i: 3 * i + 3] = R
        if self.periodic:
            M[3 * n:, 3 * n:] = self.strain_matrices[g]
        return M

    @cached_property
    def block_cache(self) -> dict:
        """Computations on this setting kept for reuse (channel representations)."""
        return {}

    @cached_property
    def representation(self) -> np.ndarray:
        """(|G|, D, D): G on the distortion space W in the basis ``distortion_basis``."""
        Q = self.distortion_basis
        return np.array([Q.T @ self.matrix_of(g) @ Q for g in range(self.order)])

    def translation_count(self, mask: int) -> int:
        """Number of pure translations of G in the subgroup ``mask``."""
        return sum(1 for g in self.pure_translations if mask >> int(g) & 1)

    def keeps_translations(self, mask: int) -> bool:
        """True when the subgroup keeps every lattice translation of the setting."""
        return self.translation_count(mask) == len(self.pure_translations)

    def point_part(self, mask: int) -> int:
        """The subgroup's rotations as a bitmask over the parent's point group."""
        out = 0
        for g in bits(mask):
            out |= 1 << int(self.point_index[g])
        return out

    def lift(self, point_mask: int) -> int:
        """The elements of G whose rotation lies in the point-group subgroup ``point_mask``."""
        out = 0
        for g, s in enumerate(self.point_index):
            if point_mask >> int(s) & 1:
                out |= 1 << g
        return out

    def spacegroup_of(self, mask: int) -> tuple[int | None, str | None]:
        """Space-group type of the subgroup ``mask`` from its own operations (crystals)."""
        if not self.periodic:
            return None, None
        W, w, element = self.typing_operations
        keep = [k for k, g in enumerate(element) if mask >> int(g) & 1]
        return spacegroup_type(W[keep], w[keep], np.asarray(self.atoms.cell), self.symprec)

    def symmetrizer(self, mask: int) -> Symmetrizer:
        """The subgroup ``mask`` as a :class:`Symmetrizer` on the setting's atoms."""
        el = bits(mask)
        return Symmetrizer(self.rotations[el], self.permutations[el])

    def rescaled(self, parent_atoms: Atoms) -> "Setting":
        """The same setting on a relaxed parent of the same symmetry: ``parent_atoms``
        has the parent's atoms in the same order, moved and strained within its group, so
        G's rotations and permutations are unchanged and its translations follow the
        cell. Isotropy subgroups and channels computed before stay valid."""
        parent_atoms = parent_atoms.copy()
        parent_atoms.calc = None
        ops = self.parent.operations
        if self.periodic:
            L_new = np.asarray(parent_atoms.cell, dtype=float)
            trans = ops.translations_frac @ L_new
        else:
            centre = parent_atoms.get_center_of_mass()
            trans = centre - ops.rotations @ centre
        parent = replace(self.parent, atoms=parent_atoms, operations=replace(ops, translations=trans))
        if self.supercell is None:
            atoms = parent_atoms
        else:
            L_old = np.asarray(self.parent.atoms.cell, dtype=float)
            frac = self.atoms.positions @ np.linalg.inv(L_old)
            pfrac = self.parent.atoms.positions @ np.linalg.inv(L_old)
            d = frac[:, None, :] - pfrac[None]
            near = np.abs(d - np.round(d)).max(axis=2)
            near[self.labels[:, None] != species_labels(self.parent.atoms)[None]] = np.inf
            p = near.argmin(axis=1)
            offsets = np.round(frac - pfrac[p])
            atoms = self.atoms.copy()
            atoms.set_cell(self.supercell @ L_new, scale_atoms=False)
            atoms.positions = parent_atoms.positions[p] + offsets @ L_new
        if self.periodic:
            translations = self.translations_frac @ np.asarray(atoms.cell, dtype=float)
        else:
            centre = atoms.get_center_of_mass()
            translations = centre - self.rotations @ centre
        return replace(self, parent=parent, atoms=atoms, translations=translations)

    def restricted(self, mask: int, structure: Atoms) -> "Setting":
        """The subgroup K = ``mask`` of G acting on ``structure``: the setting's atoms in
        the same order and cell basis, displaced and strained with the symmetry K (a
        phase found in this setting). K's rotations and permutations are G's; its
        translations follow the strained cell. The distortion space is the same W, so
        K's channels are the isotypic components of W under K at the phase."""
        el = bits(mask)
        index = np.full(self.order, -1, dtype=np.int64)
        index[el] = np.arange(len(el))
        points = sorted(set(self.point_index[el].tolist()))
        point_map = np.full(len(self.point_group_matrices), -1, dtype=np.int64)
        point_map[points] = np.arange(len(points))
        structure = structure.copy()
        structure.calc = None
        if self.periodic:
            translations = self.translations_frac[el] @ np.asarray(structure.cell, dtype=float)
            W, w, element = self.typing_operations
            keep = [k for k, g in enumerate(element) if mask >> int(g) & 1]
            typing = (W[keep], w[keep], index[np.asarray(element)[keep]])
        else:
            centre = structure.get_center_of_mass()
            translations = centre - self.rotations[el] @ centre
            typing = None
        return replace(
            self, atoms=structure, rotations=self.rotations[el], translations=translations,
            permutations=self.permutations[el], point_index=point_map[self.point_index[el]],
            table=index[self.table[np.ix_(el, el)]],
            rotations_frac=None if self.rotations_frac is None else self.rotations_frac[el],
            translations_frac=None if self.translations_frac is None else self.translations_frac[el],
            typing_operations=typing, point_matrices=self.point_group_matrices[points])

    def describe(self) -> str:
        """One line: the parent and the cell."""
        if self.supercell is None:
            return f"{self.parent.name()}, k = 0"
        return (f"{self.parent.name()}, supercell {self.supercell.tolist()} of the primitive cell "
                f"({self.n_cells} cells, |G| = {self.order})")


# ----------------------------------------------------------------------------------
# k = 0


@lru_cache(maxsize=64)
def _k0_setting(sym: Symmetry) -> Setting:
    ops = sym.operations
    reps = [sym.representative_operation(s) for s in range(sym.order)]
    typing = None
    if sym.periodic:
        typing = (ops.rotations_frac, ops.translations_frac, ops.point_index)
    return Setting(
        parent=sym, atoms=sym.atoms, rotations=ops.rotations[reps], translations=ops.translations[reps],
        permutations=ops.permutations[reps], point_index=np.arange(sym.order), table=sym.point_group.table,
        rotations_frac=None if ops.rotations_frac is None else ops.rotations_frac[reps],
        translations_frac=None if ops.translations_frac is None else ops.translations_frac[reps],
        supercell=None, typing_operations=typing, distortion_basis=_k0_distortions(sym),
    )


def k0_setting(structure, symprec: float = 1e-3, angle_tolerance: float = -1.0) -> Setting:
    """The k = 0 setting of a structure's own cell (module docstring).

    Args:
        structure: an ``ase.Atoms`` or its :class:`~ase_sbs.core.symmetry.Symmetry`.
    """
    sym = structure if isinstance(structure, Symmetry) else detect_symmetry(structure, symprec, angle_tolerance)
    return _k0_setting(sym)


def _rigid_motions(atoms: Atoms, periodic: bool) -> np.ndarray:
    """Orthonormal columns spanning uniform translations (and, for molecules, rigid
    rotations about the centre of mass) in displacement (⊕ strain) coordinates."""
    n = len(atoms)
    total = 3 * n + (6 if periodic else 0)
    removed = []
    for a in range(3):
        v = np.zeros((n, 3))
        v[:, a] = 1.0
        removed.append(np.concatenate([v.ravel(), np.zeros(total - 3 * n)]))
    if not periodic:
        r = atoms.positions - atoms.get_center_of_mass()
        removed += [np.cross(np.eye(3)[a], r).ravel() for a in range(3)]
    q, s, _ = np.linalg.svd(np.array(removed).T, full_matrices=False)
    return q[:, s > 1e-8 * s.max()]


def _operation_matrix(atoms: Atoms, R: np.ndarray, perm: np.ndarray, periodic: bool) -> np.ndarray:
    n = len(atoms)
    total = 3 * n + (6 if periodic else 0)
    M = np.zeros((total, total))
    for i in range(n):
        M[3 * perm[i]: 3 * perm[i] + 3, 3 * i: 3 * i + 3] = R
    if periodic:
        M[3 * n:, 3 * n:] = np.einsum("aij,ik,bkl,jl->ab", STRAIN_BASIS, R, STRAIN_BASIS, R)
    return M


def _k0_distortions(sym: Symmetry) -> np.ndarray:
    """W for the k = 0 setting: no rigid motions, averaged over the cell's pure translations."""
    rigid = _rigid_motions(sym.atoms, sym.periodic)
    P = np.eye(rigid.shape[0]) - rigid @ rigid.T
    ops = sym.operations
    pure = np.flatnonzero(ops.point_index == 0)
    if sym.periodic and len(pure) > 1:
        C = sum(_operation_matrix(sym.atoms, ops.rotations[k], ops.permutations[k], True) for k in pure) / len(pure)
        P = P @ C
    w, v = np.linalg.eigh((P + P.T) / 2)
    return v[:, w > 0.5]


# ----------------------------------------------------------------------------------
# supercells


def as_supercell_matrix(supercell) -> np.ndarray:
    """Three positive integers (a diagonal supercell) or a 3×3 integer matrix with a
    positive determinant, as a 3×3 integer array."""
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
    """|G| · D³ for a supercell of the primitive ``parent``: the cost of the isotypic
    decomposition of its distortion space."""
    cells = round(abs(np.linalg.det(as_supercell_matrix(matrix))))
    n_ops = len(parent.operations) // max(len(parent.centering_translations), 1)
    dim = 3 * len(parent.atoms) * cells + 6
    return float(n_ops * cells * dim**3)


def check_size(parent: Symmetry, matrix) -> None:
    """Refuse, before any long computation, a supercell too large for the decomposition,
    naming the largest n×n×n that works."""
    P = as_supercell_matrix(matrix)
    if work_estimate(parent, P) <= MAX_WORK:
        return
    n = 1
    while work_estimate(parent, np.eye(3, dtype=int) * (n + 1)) <= MAX_WORK:
        n += 1
    most = 1
    while work_estimate(parent, np.diag([most + 1, 1, 1])) <= MAX_WORK:
        most += 1
    cells = round(abs(np.linalg.det(P)))
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


def _lattice_translations(P: np.ndarray) -> list[np.ndarray]:
    """Λ / Λ_s as fractional translations of the supercell, the zero vector first."""
    invP = np.linalg.inv(P)
    span = int(np.abs(P).sum(axis=0).max()) + 1
    found = {}
    for n in np.array(np.meshgrid(*[np.arange(-span, span + 1)] * 3)).reshape(3, -1).T:
        f = np.mod(n @ invP, 1.0)
        f[np.abs(f - 1.0) < 1e-9] = 0.0
        found.setdefault(_key(np.zeros(1), f), f)
    out = sorted(found.values(), key=lambda f: (np.abs(f).sum() > 1e-9, tuple(np.round(f, 6))))
    if len(out) != round(abs(np.linalg.det(P))):
        raise AssertionError("lattice translations modulo the supercell miscounted")
    return out


def supercell_setting(structure, supercell, symprec: float = 1e-3) -> Setting:
    """The supercell setting of a crystal (module docstring).

    Args:
        structure: an ``ase.Atoms`` (any cell: a conventional or otherwise non-primitive
            cell is reduced to its primitive parent) or its Symmetry.
        supercell: three integers or a 3×3 integer matrix: the supercell *of the given
            cell* (rows in its basis); it becomes the matrix on the primitive cell.

    Raises:
        SBSInputError: a molecule, a bad matrix, or a supercell too large for the
            decomposition (named before any long computation).
    """
    from ase.build import make_supercell

    from .cells import primitive_cell

    sym = structure if isinstance(structure, Symmetry) else detect_symmetry(structure, symprec=symprec)
    if not sym.periodic:
        raise SBSInputError("a supercell needs a crystal (pbc=True); a molecule has only its k = 0 setting")
    N = as_supercell_matrix(supercell)
    prim, C = primitive_cell(sym)
    P = N @ C
    parent = detect_symmetry(symmetrized_atoms(detect_symmetry(prim, symprec=symprec)), symprec=symprec)
    check_size(parent, P)
    sup = make_supercell(parent.atoms, P, wrap=True)
    L = np.asarray(parent.atoms.cell, dtype=float)
    Ls = np.asarray(sup.cell, dtype=float)
    to_frac = np.linalg.inv(Ls.T)
    lattice = _lattice_translations(P)
    labels = species_labels(sup)
    ops = parent.operations
    tol = max(3 * symprec, 1e-3)
    rows = []
    for k in np.argsort(ops.point_index, kind="stable"):
        Ws = to_frac @ ops.rotations[k] @ Ls.T
        if not np.allclose(Ws, np.round(Ws), atol=1e-5):
            continue  # does not map the supercell lattice onto itself
        Ws = np.round(Ws).astype(int)
        t0 = ops.translations_frac[k] @ L @ np.linalg.inv(Ls)
        for f in lattice:
            ts = np.mod(t0 + f, 1.0)
            ts[np.abs(ts - 1.0) < 1e-7] = 0.0
            p = atom_permutation(sup, Ws, ts, tol, periodic=True, labels=labels)
            if p is None:
                raise SBSInputError("the supercell's atoms do not map onto themselves; use a smaller symprec")
            rows.append((ops.rotations[k], ts @ Ls, Ws, ts, p, ops.point_index[k]))
    rot, trans, wf, tf, perms, pidx = (np.array(x) for x in zip(*rows))
    index = {_key(W, t): i for i, (W, t) in enumerate(zip(wf, tf))}
    table = np.empty((len(wf), len(wf)), dtype=np.int64)
    for a in range(len(wf)):
        Wab = np.einsum("ij,bjk->bik", wf[a], wf)
        tab = tf @ wf[a].T + tf[a]
        for b in range(len(wf)):
            table[a, b] = index[_key(Wab[b], tab[b])]
    rigid = _rigid_motions(sup, True)
    w, v = np.linalg.eigh(np.eye(rigid.shape[0]) - rigid @ rigid.T)
    return Setting(parent=parent, atoms=sup, rotations=rot, translations=trans, permutations=perms,
                   point_index=pidx, table=table, rotations_frac=wf, translations_frac=tf, supercell=P,
                   typing_operations=(wf, tf, np.arange(len(wf))), distortion_basis=v[:, w > 0.5])


def setting_for(structure, supercell=None, symprec: float = 1e-3) -> Setting:
    """The k = 0 setting of ``structure``'s own cell (``supercell`` None) or its
    supercell setting."""
    if supercell is None:
        return k0_setting(structure, symprec)
    return supercell_setting(structure, supercell, symprec)
