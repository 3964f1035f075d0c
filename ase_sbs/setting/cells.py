"""Cells of a setting: the primitive parent of any cell, and the setting's cell folded by
the pure translations a subgroup keeps (and unfolded back).

Folding. A structure with the symmetry K ≤ G is periodic in the lattice spanned by the
setting's cell and the pure translations of K, so relaxations and force evaluations of
K-symmetric structures can run in that smaller cell exactly (the tilts of a 2×2×2
perovskite: 10 atoms instead of 40). Unfolding writes the relaxed folded cell back in the
setting's cell, atom for atom in the setting's order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from ..core.groups import bits
from ..core.structure import species_labels
from ..core.symmetrizer import Symmetrizer
from ..core.symmetry import Symmetry, atom_permutation
from ..errors import SBSInputError


def lattice_basis(rows: np.ndarray) -> np.ndarray:
    """A basis (3 rows) of the integer lattice spanned by integer ``rows`` (Hermite form)."""
    A = [list(map(int, r)) for r in rows]
    out = []
    for col in range(3):
        while True:
            nz = [r for r in A if r[col] != 0]
            if not nz:
                raise SBSInputError("degenerate lattice")
            piv = min(nz, key=lambda r: abs(r[col]))
            others = [r for r in A if r is not piv]
            A = [piv] + [[x - (r[col] // piv[col]) * y for x, y in zip(r, piv)] for r in others]
            if all(r[col] == 0 for r in A[1:]):
                break
        out.append(A[0])
        A = A[1:]
    return np.array(out)


@dataclass(frozen=True, eq=False)
class FoldedCell:
    """A cell folded by a group of its pure translations.

    Attributes:
        atoms: the folded structure (positions of the representatives).
        representatives: ``representatives[j]``, an atom of the full cell for folded atom j.
        mapping: ``mapping[i]``, the folded atom of full-cell atom i.
        offsets: (N, 3) integers: full-cell atom i sits at folded atom ``mapping[i]``
            plus ``offsets[i]`` folded-cell vectors.
        copies: folded cells in the full cell.
        full_cell: (3, 3) integers: the full cell's rows in the folded basis.
    """

    atoms: Atoms
    representatives: np.ndarray
    mapping: np.ndarray
    offsets: np.ndarray
    copies: int
    full_cell: np.ndarray


def fold(atoms: Atoms, translations_frac: np.ndarray) -> FoldedCell:
    """Fold ``atoms`` by the pure translations ``translations_frac`` (fractional in its
    cell, the zero translation included)."""
    tf = np.asarray(translations_frac, dtype=float).reshape(-1, 3)
    d = len(tf)
    if d == 1:  # nothing to fold: the cell as it is
        n = len(atoms)
        same = atoms.copy()
        same.calc = None
        return FoldedCell(same, np.arange(n), np.arange(n), np.zeros((n, 3), dtype=int), 1, np.eye(3, dtype=int))
    rows = np.round(np.concatenate([np.eye(3) * d, tf * d])).astype(int)
    basis = lattice_basis(rows) / d
    from ase.geometry import minkowski_reduce

    cell = basis @ np.asarray(atoms.cell)
    _, op = minkowski_reduce(cell)
    cell = op @ cell
    inv = np.linalg.inv(cell)
    frac = atoms.positions @ inv
    wrapped = frac - np.floor(frac + 1e-9)
    labels = species_labels(atoms)
    reps, mapping = [], np.empty(len(atoms), dtype=int)
    for i, f in enumerate(wrapped):
        for j, r in enumerate(reps):
            diff = f - wrapped[r]
            diff -= np.round(diff)
            if np.abs(diff @ cell).max() < 1e-3 and labels[i] == labels[r]:
                mapping[i] = j
                break
        else:
            mapping[i] = len(reps)
            reps.append(i)
    reps = np.array(reps)
    if len(atoms) % len(reps) or len(atoms) // len(reps) != d:
        raise AssertionError("folding by the translations did not divide the atoms evenly")
    offsets = np.round(frac - frac[reps][mapping]).astype(int)
    folded = atoms[list(reps)].copy()
    folded.set_cell(cell, scale_atoms=False)
    folded.calc = None
    full = np.round(np.asarray(atoms.cell) @ inv).astype(int)
    return FoldedCell(folded, reps, mapping, offsets, d, full)


def unfold(folded: FoldedCell, structure: Atoms) -> Atoms:
    """The full cell of a (relaxed, strained) folded ``structure``, its atoms in the full
    cell's order: atom i at folded atom ``mapping[i]`` plus its lattice offset."""
    if not structure.pbc.all():
        out = structure[list(folded.mapping)].copy()
        out.calc = None
        return out
    cell = np.asarray(structure.cell)
    out = Atoms(numbers=structure.numbers[folded.mapping],
                positions=structure.positions[folded.mapping] + folded.offsets @ cell,
                cell=folded.full_cell @ cell, pbc=True)
    for name in ("initial_magmoms",):
        if structure.has(name):
            out.set_array(name, structure.get_array(name)[folded.mapping])
    return out


def fold_hessian(hessian: np.ndarray, folded: FoldedCell, periodic: bool = True) -> np.ndarray:
    """The Hessian of the full cell, in coordinates q = (u, δ) (:mod:`ase_sbs.setting.curvature`),
    as the Hessian of the folded cell in its own such coordinates, for distortions periodic
    in the folded cell: u_i = u'_{mapping[i]}, the same strain ε, so δ = c^{1/3} δ'
    (ℓ scales as the volume's cube root, c = ``copies``), and E' = E / c:

        H' = (1/c) [[Mᵀ H_uu M, c^{1/3} Mᵀ H_uδ], [c^{1/3} H_δu M, c^{2/3} H_δδ]]

    with M the (3N × 3N') matrix repeating each folded atom's displacement."""
    n, nf, c = len(folded.mapping), len(folded.representatives), folded.copies
    M = np.zeros((3 * n, 3 * nf))
    for i, j in enumerate(folded.mapping):
        M[3 * i: 3 * i + 3, 3 * j: 3 * j + 3] = np.eye(3)
    if periodic:
        T = np.zeros((3 * n + 6, 3 * nf + 6))
        T[: 3 * n, : 3 * nf] = M
        T[3 * n:, 3 * nf:] = c ** (1 / 3) * np.eye(6)
    else:
        T = M
    return T.T @ hessian @ T / c


def fold_setting(setting, mask: int) -> FoldedCell:
    """The setting's cell folded by the pure translations of the subgroup ``mask``."""
    kept = [int(g) for g in setting.pure_translations if mask >> int(g) & 1]
    if not setting.periodic:
        return fold(setting.atoms, np.zeros((1, 3)))
    return fold(setting.atoms, setting.translations_frac[kept])


def folded_symmetrizer(setting, mask: int, folded: FoldedCell, tol: float = 1e-3) -> Symmetrizer:
    """The operations of the subgroup ``mask`` acting on the folded cell."""
    if folded.copies == 1:
        return setting.symmetrizer(mask)
    cell = np.asarray(folded.atoms.cell)
    to_frac = np.linalg.inv(cell.T)
    labels = species_labels(folded.atoms)
    rots, perms = [], []
    for g in bits(mask):
        R = setting.rotations[g]
        W = to_frac @ R @ cell.T
        if not np.allclose(W, np.round(W), atol=1e-5):
            raise AssertionError("an operation of K does not keep its own lattice")
        t = setting.translations[g] @ np.linalg.inv(cell)
        p = atom_permutation(folded.atoms, np.round(W), t, tol, periodic=True, labels=labels)
        if p is None:
            raise AssertionError("an operation of K does not map the folded cell onto itself")
        rots.append(R)
        perms.append(p)
    # pure translations of K act as the identity on the folded cell: keep each rotation once
    keys = {}
    for R, p in zip(rots, perms):
        keys.setdefault((np.round(R, 8).tobytes(), p.tobytes()), (R, p))
    R, P = zip(*keys.values())
    return Symmetrizer(np.array(R), np.array(P))


def primitive_cell(sym: Symmetry) -> tuple[Atoms, np.ndarray]:
    """(primitive, C): the crystal folded by its centring translations, and the given
    cell in the primitive basis (integer rows: cell = C @ primitive cell)."""
    if len(sym.centering_translations) <= 1:
        return sym.atoms.copy(), np.eye(3, dtype=int)
    f = fold(sym.atoms, sym.centering_translations)
    C = f.full_cell
    return f.atoms, C
