"""Structure -> approximate symmetry levels: how far it is from each symmetry.

For a group G of operations g = (R_g, t_g, π_g) of a symmetric *reference*, the closest
G-symmetric structure is the group average (Frame/group averaging): in the linear
coordinates of :mod:`ase_sbs.analysis.modes` (displacement u from the reference, in Å and the
reference's axes; strain ε of the cell relative to the reference cell)

    P_G u = (1/|G|) Σ_g g·u,   (g·u)_{π_g(i)} = R_g u_i,
    P_G ε = (1/|G|) Σ_g R_g ε R_gᵀ.

Moving the whole structure does not change its symmetry, so uniform translations are
free (removed before averaging: the closest structure symmetric under *some* translate
of G). The distance to G is

    d(G)² = (1/n) |(1 − P_G) u|² + ℓ² ‖(1 − P_G) ε‖_F²

with n and ℓ as in :mod:`ase_sbs.analysis.modes` (per parent cell; ℓ = √N (V/N)^{1/3} of the
reference cell): exactly the norm in which mode amplitudes add in quadrature, so
d(parent group) equals the decomposition's symmetry-breaking amplitude. For H ⊆ G the
fixed space of G lies inside that of H, so d(H) ≤ d(G): distances never decrease up a
chain of supergroups.

The reference and the top group:

- with a parent, the parent supercell matched by :func:`ase_sbs.analysis.matching.match` and the
  parent's space group acting on it (only the operations that map that supercell onto
  itself, when the child's cell is a supercell of lower symmetry);
- without one, the structure's symmetry detected at a ladder of growing tolerances up
  to ``max_symprec``; the largest group found (at most the holohedry of the lattice) is
  averaged onto exactly (positions, and the cell through its metric tensor) to give the
  reference.

Levels: the structure's own group (the reference operations that fix the distortion
within ``symprec``), then every subgroup of the top point group that contains the
point group of the distortion's k = 0 part (with all the reference's translations),
up to the top group itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from ..core.groups import bits
from ..core.spacegroups import group_label, spacegroup_type
from ..core.symmetry import Symmetry, detect_symmetry
from ..errors import SBSInputError
from ..setting.isotropy import make_target
from ..setting.setting import k0_setting
from .matching import match, polar_decomposition

LADDER = (1e-5, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.2, 0.3, 0.4, 0.5)


@dataclass(frozen=True)
class SymmetryLevel:
    """One group and the distance to it.

    Attributes:
        name: space-group (crystals) or point-group (molecules) type.
        point_group: Schoenflies symbol; order: its order.
        elements: indices in the top group's point group.
        distance_A: d(G) (Å per parent cell); displacement_A and strain: its parts
            (|(1 − P_G) u|/√n in Å, ‖(1 − P_G) ε‖_F dimensionless).
        own: True for the structure's own group at ``symprec``.
        nearest: True when no conjugate subgroup (same type, other orientation or
            origin) in the table is closer.
    """

    name: str
    point_group: str
    order: int
    elements: tuple[int, ...]
    distance_A: float
    displacement_A: float
    strain: float
    own: bool = False
    nearest: bool = True

    def as_dict(self) -> dict:
        return {"group": self.name, "point_group": self.point_group, "order": self.order, "own": self.own,
                "nearest_of_its_type": self.nearest,
                "distance_A": self.distance_A, "displacement_A": self.displacement_A, "strain": self.strain}


@dataclass(frozen=True, eq=False)
class SymmetryLevels:
    """The table "group -> distance" of one structure."""

    formula: str
    reference: str
    top: Symmetry
    levels: list[SymmetryLevel]
    n_cells: int
    strain_length_A: float

    def distance(self, name: str) -> float:
        """Distance to the first level whose name or point group is ``name``."""
        for lv in self.levels:
            if name in (lv.name, lv.point_group) or lv.name.split(" (")[0] == name:
                return lv.distance_A
        raise KeyError(name)

    def as_dict(self) -> dict:
        return {"formula": self.formula, "reference": self.reference, "top": self.top.name(),
                "n_cells": self.n_cells, "strain_length_A": self.strain_length_A,
                "levels": [lv.as_dict() for lv in self.levels]}


# ----------------------------------------------------------------------------------


def _polar_stretch(L: np.ndarray, L_ref: np.ndarray) -> np.ndarray:
    """ε = U − I with Lᵀ = Q U L_refᵀ (rows are lattice vectors)."""
    _, U = polar_decomposition(L.T @ np.linalg.inv(L_ref).T)
    return (U + U.T) / 2 - np.eye(3)


def _top_detection(atoms: Atoms, symprec: float, max_symprec: float) -> Symmetry:
    best = None
    for sp in sorted({symprec, *[x for x in LADDER if symprec <= x <= max_symprec]}):
        try:
            s = detect_symmetry(atoms, symprec=sp)
        except SBSInputError:
            continue
        if best is None or len(s.operations) > len(best.operations):
            best = s
    if best is None:
        raise SBSInputError(f"no consistent symmetry found for symprec in [{symprec}, {max_symprec}] Å")
    return best


def _averaged_reference(sym: Symmetry) -> tuple[Atoms, np.ndarray, np.ndarray, int]:
    """(reference, u, ε, n): the structure averaged onto its operations exactly."""
    atoms = sym.atoms
    ops = sym.operations
    if not sym.periodic:
        centre = atoms.positions.mean(axis=0)
        r = atoms.positions - centre
        avg = np.zeros_like(r)
        for R, p in zip(ops.rotations, ops.permutations):
            avg[p] += r @ R.T
        avg /= len(ops)
        ref = Atoms(numbers=atoms.numbers, positions=avg + centre, pbc=False)
        return ref, r - avg, np.zeros((3, 3)), 1
    L = np.asarray(atoms.cell, dtype=float)
    f = atoms.get_scaled_positions(wrap=False)
    fbar = np.zeros_like(f)
    for W, t, p in zip(ops.rotations_frac, ops.translations_frac, ops.permutations):
        img = f @ W.T + t
        d = img - f[p]
        fbar[p] += f[p] + d - np.round(d)
    fbar /= len(ops)
    g = L @ L.T
    Ws = np.unique(ops.rotations_frac, axis=0).astype(float)
    gbar = np.einsum("kji,jl,klm->im", Ws, g, Ws) / len(Ws)
    # L̄ = L U⁻¹ with U symmetric: U⁻² = L⁻¹ ḡ L⁻ᵀ
    X = np.linalg.inv(L) @ gbar @ np.linalg.inv(L).T
    w, v = np.linalg.eigh((X + X.T) / 2)
    Uinv = v @ np.diag(np.sqrt(w)) @ v.T
    Lbar = L @ Uinv
    ref = Atoms(numbers=atoms.numbers, cell=Lbar, pbc=True)
    ref.set_scaled_positions(fbar % 1.0)
    u = (f - fbar) @ Lbar
    u -= u.mean(axis=0)
    n = int(sum(np.allclose(W, np.eye(3)) for W in ops.rotations_frac))
    return ref, u, _polar_stretch(L, Lbar), n


def _remove_rigid_rotation(u: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Project out uniform translations and infinitesimal rotations ω × (r − r̄)."""
    r = positions - positions.mean(axis=0)
    basis = [np.tile(np.eye(3)[a], (len(r), 1)).ravel() for a in range(3)]
    basis += [np.cross(np.eye(3)[a], r).ravel() for a in range(3)]
    q, sv, _ = np.linalg.svd(np.array(basis).T, full_matrices=False)
    q = q[:, sv > 1e-8 * sv.max()]
    flat = u.ravel() - q @ (q.T @ u.ravel())
    return flat.reshape(u.shape)


def _spacegroup_name(top: Symmetry, idx: np.ndarray) -> str | None:
    ops = top.operations
    number, symbol = spacegroup_type(ops.rotations_frac[idx], ops.translations_frac[idx], np.asarray(top.atoms.cell),
                                     symprec=1e-5)
    return group_label(number, symbol)


def _closed(top: Symmetry, idx: np.ndarray) -> bool:
    ops = top.operations
    if not top.periodic:
        return top.point_group.is_subgroup(ops.point_index[idx].tolist())
    keys = {(W.tobytes(), tuple(np.round(t % 1.0, 6) % 1.0)) for W, t in
            zip(ops.rotations_frac[idx], ops.translations_frac[idx])}
    for a in idx:
        for b in idx:
            W = ops.rotations_frac[a] @ ops.rotations_frac[b]
            t = ops.rotations_frac[a] @ ops.translations_frac[b] + ops.translations_frac[a]
            if (W.tobytes(), tuple(np.round(t % 1.0, 6) % 1.0)) not in keys:
                return False
    return True


def symmetry_levels(atoms: Atoms, parent: Atoms | None = None, symprec: float = 1e-3,
                    max_symprec: float = 0.5, parent_symprec: float = 1e-3) -> SymmetryLevels:
    """Distances (Å) from ``atoms`` to its own group and every supergroup up to the top.

    Args:
        atoms: the structure.
        parent: optional high-symmetry parent (the top group and the reference).
        symprec: tolerance (Å) of the structure's own group.
        max_symprec: largest tolerance tried for the top group when no parent is given.
    """
    if parent is not None:
        m = match(atoms, parent, symprec=parent_symprec)
        ref, u, eps, n = m.reference, m.displacement, m.strain, m.n_cells
        ell = m.strain_length
        reference = f"parent {m.parent.name()}"
    else:
        det = _top_detection(atoms, symprec, max_symprec)
        ref, u, eps, n = _averaged_reference(det)
        ell = float(np.sqrt(len(ref) / n) * (abs(ref.cell.volume) / len(ref)) ** (1 / 3)) if ref.pbc.all() else 0.0
        reference = f"the structure averaged onto its symmetry at symprec {det.symprec:g} Å"
    top = detect_symmetry(ref, symprec=1e-5 if ref.pbc.all() else 1e-3)
    if not top.periodic:
        u = _remove_rigid_rotation(u, ref.positions)
    ops = top.operations
    R, perms = ops.rotations, ops.permutations

    def act(k):
        out = np.empty_like(u)
        out[perms[k]] = u @ R[k].T
        return out

    def distance(idx):
        avg = sum(act(k) for k in idx) / len(idx)
        e_avg = sum(R[k] @ eps @ R[k].T for k in idx) / len(idx)
        du = float(np.linalg.norm(u - avg) / np.sqrt(n))
        de = float(np.linalg.norm(eps - e_avg))
        return float(np.hypot(du, ell * de)), du, de

    tol = symprec
    scale = max(top.atoms.cell.lengths()) if top.periodic else 1.0
    fixes = np.array([np.abs(act(k) - u).max() <= tol and
                      np.abs(R[k] @ eps @ R[k].T - eps).max() * scale <= tol for k in range(len(ops))])
    group = top.point_group
    # point group of the k = 0 part: u averaged over the pure translations
    pure = [k for k in range(len(ops)) if ops.point_index[k] == 0]
    u0 = sum(act(k) for k in pure) / len(pure)
    k0 = []
    for s in range(top.order):
        k = top.representative_operation(s)
        moved = np.empty_like(u0)
        moved[perms[k]] = u0 @ R[k].T
        if np.abs(moved - u0).max() <= tol and np.abs(R[k] @ eps @ R[k].T - eps).max() * scale <= tol:
            k0.append(s)
    k0_mask = sum(1 << s for s in k0)
    if not group.is_subgroup(k0):
        k0_mask = group.generate(k0)
    levels = []
    own = np.flatnonzero(fixes)
    if len(own) and _closed(top, own):
        d, du, de = distance(own)
        el = tuple(sorted(set(ops.point_index[own].tolist())))
        t = make_target(k0_setting(top), sum(1 << s for s in el))
        name = _spacegroup_name(top, own) if top.periodic else t.schoenflies
        levels.append(SymmetryLevel(name or t.name, t.schoenflies, len(el), el, d, du, de, own=True))
    supers = [m for m in group.subgroups if m & k0_mask == k0_mask]
    found = []
    for mask in supers:
        el = tuple(bits(mask))
        idx = np.flatnonzero(np.isin(ops.point_index, el))
        if levels and len(idx) == len(own):
            continue  # the own group already is this one
        d, du, de = distance(idx)
        found.append((min(group.conjugates(mask)), make_target(k0_setting(top), mask), el, d, du, de))
    nearest = {}
    for key, *_, d, _du, _de in found:
        nearest[key] = min(nearest.get(key, np.inf), d)
    for key, t, el, d, du, de in found:
        levels.append(SymmetryLevel(t.name, t.schoenflies, len(el), el, d, du, de,
                                    nearest=bool(d <= nearest[key] + 1e-12)))
    levels.sort(key=lambda lv: (not lv.own, lv.order, round(lv.distance_A, 9), lv.name))
    return SymmetryLevels(formula=atoms.get_chemical_formula(), reference=reference, top=top, levels=levels,
                          n_cells=n, strain_length_A=float(ell))
