"""Wave vectors: names, parsing, the k-vectors a supercell holds, stars, and the
smallest supercell holding a star.

k-vectors are fractions of the primitive parent's reciprocal basis: a pattern with wave
vector k changes by e^{2πi k·n} under the lattice translation n (fractional, parent
basis). A supercell with matrix P (rows in the parent basis) holds k when P k is an
integer vector.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from ..errors import SBSInputError

KPOINT_NAMES = {"G": (0, 0, 0), "Γ": (0, 0, 0), "GAMMA": (0, 0, 0), "X": (0, 0.5, 0),
                "M": (0.5, 0.5, 0), "R": (0.5, 0.5, 0.5)}
"""Special points of a primitive cubic lattice (the names ``--kpoint`` accepts)."""

def fraction(x) -> str:
    """A number as a fraction string (denominators up to 48)."""
    return str(Fraction(float(x)).limit_denominator(48))


def parse_kpoint(k) -> np.ndarray:
    """``R`` (Γ/G, X, M, R of a primitive cubic parent), ``'1/2 0 1/2'`` or three numbers."""
    if isinstance(k, str):
        name = k.strip().upper()
        if name in KPOINT_NAMES:
            return np.array(KPOINT_NAMES[name], dtype=float)
        k = k.replace(",", " ").split()
    try:
        v = np.array([float(Fraction(str(x))) for x in k], dtype=float)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise SBSInputError(f"a k-point is a name (Γ/G, X, M, R) or three numbers, got {k!r}") from exc
    if v.shape != (3,):
        raise SBSInputError(f"a k-point has three components, got {k!r}")
    return v


def commensurate_kpoints(P: np.ndarray) -> np.ndarray:
    """k-vectors (parent reciprocal fractions, in [0, 1)) a supercell P holds."""
    cells = round(abs(np.linalg.det(P)))
    out = {}
    for m in np.array(np.meshgrid(*[np.arange(0, cells + 1)] * 3)).reshape(3, -1).T:
        k = np.mod(np.linalg.solve(P, m), 1.0)
        k[np.abs(k - 1) < 1e-9] = 0.0
        out.setdefault(tuple(np.round(k, 8)), k)
    return np.array(sorted(out.values(), key=tuple))


def star_arms(k, rotations_frac: np.ndarray) -> np.ndarray:
    """The arms k W⁻¹ of k's star under the parent's fractional rotations W (mod 1)."""
    return np.mod(np.asarray(k, dtype=float) @ np.linalg.inv(rotations_frac), 1.0)


def same_k(a: np.ndarray, b: np.ndarray) -> bool:
    d = np.mod(np.asarray(a) - np.asarray(b) + 1e-9, 1.0)
    return bool(np.abs(d).max() < 1e-6)


CUBIC_SPECIAL_POINTS = {
    "P": {"X": (0, 0.5, 0), "M": (0.5, 0.5, 0), "R": (0.5, 0.5, 0.5)},
    "I": {"H": (0, 0, 1), "N": (0.5, 0.5, 0), "P": (0.5, 0.5, 0.5)},
    "F": {"X": (0, 0, 1), "L": (0.5, 0.5, 0.5), "W": (0.5, 1, 0), "K": (0.75, 0.75, 0)},
}
"""Special points of the cubic lattices in Cartesian units of 1/a (conventional cube axes)."""


def star_name(star: list[np.ndarray], parent) -> str:
    """Γ for k = 0; for cubic parents the special point whose star it is (P: X, M, R;
    I: H, N, P; F: X, L, W, K); else the first k in parent reciprocal fractions.

    ``parent`` is the primitive parent's Symmetry: a special point p (Cartesian, 1/a,
    in the parent's standardized cube axes ``frame``) has fractions k_i = a_i · p."""
    if any(np.abs(k - np.round(k)).max() < 1e-9 for k in star):
        return "Γ"
    number, symbol = parent.spacegroup_number or 0, parent.spacegroup_symbol or ""
    if number >= 195 and symbol[:1] in CUBIC_SPECIAL_POINTS:
        L = np.asarray(parent.atoms.cell, dtype=float)
        n = {"P": 1, "I": 2, "F": 4}[symbol[0]]
        a = (n * abs(np.linalg.det(L))) ** (1 / 3)
        for name, point in CUBIC_SPECIAL_POINTS[symbol[0]].items():
            frac = L @ (parent.frame @ np.asarray(point, dtype=float)) / a
            if any(same_k(arm, s) for arm in star_arms(frac, parent.operations.rotations_frac) for s in star):
                return name
    return "k(" + ",".join(fraction(x) for x in star[0]) + ")"


def supercell_for_kpoint(structure, k, symprec: float = 1e-3) -> np.ndarray:
    """Smallest diagonal supercell holding every arm of k's star.

    ``structure`` is the (primitive) parent as an ``ase.Atoms`` or Symmetry, or directly
    its fractional rotations (m, 3, 3); k is in its reciprocal basis."""
    rotations_frac = np.asarray(getattr(getattr(structure, "operations", None), "rotations_frac", structure))
    if rotations_frac.ndim != 3:
        from ..core.symmetry import detect_symmetry

        rotations_frac = detect_symmetry(structure, symprec=symprec).operations.rotations_frac
    ns = [1, 1, 1]
    for arm in star_arms(k, rotations_frac):
        for a in range(3):
            den = Fraction(float(np.round(arm[a], 6))).limit_denominator(48).denominator
            ns[a] = ns[a] * den // math.gcd(ns[a], den)
    return np.diag(ns)
