"""Wave vectors: names by the parent's Bravais lattice, parsing, the k-vectors a supercell
holds, stars, and the smallest supercell holding a star.

k-vectors are fractions of the primitive parent's reciprocal basis: a pattern with wave
vector k changes by e^{2πi k·n} under the lattice translation n (fractional, parent
basis). A supercell with matrix P (rows in the parent basis) holds k when P k is an
integer vector.

Names. A special point's name means a point of the parent's Bravais lattice, in the
conventions of Setyawan & Curtarolo as ASE implements them (``ase.lattice``): Γ, X, M, R
for primitive cubic; Γ, H, N, P for body-centred cubic; Γ, X, L, W, K, U for
face-centred cubic; and so on for the other eleven lattices (with ASE's variants by cell
parameters for BCT, ORCF, RHL, MCLC and TRI). The lattice is the crystal's, read from its
space group (crystal family and centring), not from the metric alone (a tetragonal
crystal whose c equals a by accident keeps tetragonal names). ASE finds the integer
operation taking its standard primitive cell onto the parent's primitive cell; the points
come with it into that cell's reciprocal basis, and into any other cell of the same
lattice by k'_i = k·a'_i (for a' = C a, k' = C k). Γ and fractions need no parent.
"""

from __future__ import annotations

import itertools
import math
import warnings
from fractions import Fraction

import numpy as np

from ..errors import SBSInputError

GAMMA_NAMES = ("Γ", "G", "GAMMA")
SIMPLE_CUBIC_POINTS = {"X": (0, 0.5, 0), "M": (0.5, 0.5, 0), "R": (0.5, 0.5, 0.5)}
"""What X, M, R meant before names came from the parent's lattice (a primitive cubic
parent); read so, with a warning, only when no parent is given."""


def fraction(x) -> str:
    """A number as a fraction string (denominators up to 48)."""
    return str(Fraction(float(x)).limit_denominator(48))


def bravais_lattice(parent) -> str:
    """The Pearson symbol (``cF``, ``tI``, ``hR`` …) of a crystal's Bravais lattice, from
    its space-group number (crystal family) and the centring letter of its symbol."""
    number, letter = int(parent.spacegroup_number), str(parent.spacegroup_symbol)[:1]
    for last, family in ((2, "a"), (15, "m"), (74, "o"), (142, "t"), (194, "h"), (230, "c")):
        if number <= last:
            break
    if family == "h":
        return "hR" if letter == "R" else "hP"
    if family in "mo" and letter in "ABC":
        return family + "C"
    return family + letter


def _crystal_parent(structure, symprec: float):
    """The primitive parent's Symmetry and the given cell's rows in its basis (C):
    a Setting's parent, a Symmetry as it is, an ``ase.Atoms`` reduced as the settings
    reduce it (symmetrized, then folded by its centring)."""
    from ..core.symmetry import Symmetry, detect_symmetry, symmetrized_atoms
    from .cells import primitive_cell

    sym = getattr(structure, "parent", structure)
    if not isinstance(sym, Symmetry):
        sym = detect_symmetry(sym, symprec=symprec)
        if sym.periodic:
            exact = detect_symmetry(symmetrized_atoms(sym), symprec=symprec)
            sym = detect_symmetry(primitive_cell(exact)[0], symprec=symprec)
    if not sym.periodic:
        raise SBSInputError("a k-point needs a crystal (pbc=True): a molecule has only its k = 0 setting; "
                            "leave out --kpoint (and --supercell)")
    return sym


def special_kpoints(structure, symprec: float = 1e-3) -> dict[str, np.ndarray]:
    """The special points of the parent's Bravais lattice (module docstring), Γ first,
    then in the order of ASE's standard path: {name: fractions of the reciprocal basis of
    the parent's cell} (for an ``ase.Atoms``, of its primitive parent's cell).

    ``structure``: a Setting, the parent's Symmetry, or an ``ase.Atoms``."""
    from ase.cell import Cell
    from ase.geometry.bravais_type_engine import niggli_op_table
    from ase.lattice import LatticeMatcher, bravais_classes

    from .cells import primitive_cell

    sym = _crystal_parent(structure, symprec)
    pearson = bravais_lattice(sym)
    lattice = bravais_classes[pearson]
    prim, C = primitive_cell(sym)
    matches, cell = [], Cell(np.asarray(prim.cell))
    for eps in (2e-4, 2e-3, 2e-2):  # the parent is symmetrized: the first almost always matches
        matches = LatticeMatcher(cell, eps=eps).match(lattice.name, niggli_op_table[lattice.name])
        if matches:
            break
    if not matches:
        raise SBSInputError(f"ASE does not recognise this cell as {lattice.longname} ({pearson}), the lattice of "
                            f"{sym.spacegroup_symbol}; symmetrize the structure, or give k as three fractions")
    best = min(matches, key=lambda m: m.orthogonality_defect)
    path = best.lat.bandpath(npoints=0).transform(best.op)
    order = list(dict.fromkeys(["G"] + [c for c in path.path if c.isalpha()]))
    names = sorted(path.special_points, key=lambda n: (order.index(n) if n in order else len(order), n))
    return {("Γ" if n == "G" else n): np.asarray(path.special_points[n], dtype=float) @ np.asarray(C, dtype=float).T
            for n in names}


def parse_kpoint(k, parent=None, symprec: float = 1e-3) -> np.ndarray:
    """k as fractions of the parent's reciprocal basis, from a special point's name of
    the parent's Bravais lattice (:func:`special_kpoints`), ``'1/2 0 1/2'`` or three numbers.

    ``parent``: a Setting, the primitive parent's Symmetry, or an ``ase.Atoms`` (then k
    is in its primitive parent's basis, the one its settings use). Γ and fractions need
    no parent; another name without one is read as the primitive-cubic point of that
    name, with a warning.

    Raises:
        SBSInputError: an empty k-point, a name that is no special point of the parent's
            lattice (the message lists those that are), malformed fractions, or a molecule.
    """
    if parent is not None:
        _crystal_parent(parent, symprec)  # a molecule has no k-points, named or not
    if isinstance(k, str):
        tokens = k.replace(",", " ").split()
        if not tokens:
            raise SBSInputError("an empty k-point: give a special point's name (Γ, X …) or three fractions "
                                "such as '1/2 0 1/2'")
        if len(tokens) == 1 and not _is_number(tokens[0]):
            if tokens[0].upper() in GAMMA_NAMES:
                return np.zeros(3)
            return _named_kpoint(tokens[0], parent, symprec)
        k = tokens
    try:
        v = np.array([float(Fraction(str(x))) for x in k], dtype=float)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        raise SBSInputError(f"a k-point is a special point's name (Γ, X …) or three numbers, got {k!r}") from exc
    if v.shape != (3,):
        raise SBSInputError(f"a k-point has three components, got {k!r}")
    return v


def _is_number(text: str) -> bool:
    try:
        Fraction(text)
    except (ValueError, ZeroDivisionError):
        return False
    return True


def _named_kpoint(name: str, parent, symprec: float) -> np.ndarray:
    if parent is None:
        if name.upper() not in SIMPLE_CUBIC_POINTS:
            raise SBSInputError(f"k-point {name!r}: a special point's name needs the parent's lattice; "
                                "give three fractions such as '1/2 0 1/2'")
        warnings.warn(f"k-point {name!r} read as the primitive-cubic point without a parent; names depend on the "
                      "parent's Bravais lattice: pass the parent to parse_kpoint, or give fractions", stacklevel=3)
        return np.array(SIMPLE_CUBIC_POINTS[name.upper()], dtype=float)
    points = special_kpoints(parent, symprec)
    for known, value in points.items():
        if known.upper() == name.upper():
            return value
    from ase.lattice import bravais_classes

    sym = _crystal_parent(parent, symprec)
    pearson = bravais_lattice(sym)
    raise SBSInputError(f"{name!r} is no special point of this parent's lattice ({bravais_classes[pearson].longname}, "
                        f"{pearson}, {sym.spacegroup_symbol}); its special points are {', '.join(points)}, "
                        "or give three fractions such as '1/2 0 1/2'")


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


def star_name(star: list[np.ndarray], parent) -> str:
    """Γ for k = 0; the special point of the parent's Bravais lattice whose star it is
    (:func:`special_kpoints`: X, M, R of a primitive cubic parent, H, N, P of a body-centred
    one, X, L, W, K of a face-centred one …); else the first k in parent reciprocal
    fractions. ``parent`` is the primitive parent's Symmetry; its operations carry a
    special point onto the other arms of its star."""
    if any(np.abs(k - np.round(k)).max() < 1e-9 for k in star):
        return "Γ"
    for name, point in special_kpoints(parent).items():
        if name != "Γ" and any(same_k(arm, s) for arm in star_arms(point, parent.operations.rotations_frac)
                               for s in star):
            return name
    return "k(" + ",".join(fraction(x) for x in star[0]) + ")"


def supercell_for_kpoint(structure, k, symprec: float = 1e-3) -> np.ndarray:
    """Smallest diagonal supercell holding every arm of k's star.

    ``structure`` is the (primitive) parent as an ``ase.Atoms`` or Symmetry, or directly
    its fractional rotations (m, 3, 3); k is in its reciprocal basis (or a name, read by
    :func:`parse_kpoint` with this parent).

    Raises:
        SBSInputError: the parent is a molecule (it has no k-points).
    """
    from ase import Atoms

    if isinstance(structure, Atoms) or hasattr(structure, "operations"):
        from ..core.symmetry import detect_symmetry

        sym = structure if hasattr(structure, "operations") else detect_symmetry(structure, symprec=symprec)
        _crystal_parent(sym, symprec)  # a molecule has no k-points
        if isinstance(k, str):
            k = parse_kpoint(k, sym, symprec)
        rotations_frac = sym.operations.rotations_frac
    else:
        rotations_frac = np.asarray(structure)
    ns = [1, 1, 1]
    for arm in star_arms(k, rotations_frac):
        for a in range(3):
            den = Fraction(float(np.round(arm[a], 6))).limit_denominator(48).denominator
            ns[a] = ns[a] * den // math.gcd(ns[a], den)
    return np.diag(ns)


# ----------------------------------------------------------------------------------
# stars, lines and the lattice a set of wave vectors needs (the instability scan)

LINE_NAMES = {
    "cP": {("Γ", "X"): "Δ", ("Γ", "M"): "Σ", ("Γ", "R"): "Λ", ("X", "M"): "Z", ("X", "R"): "S", ("M", "R"): "T"},
    "cI": {("Γ", "H"): "Δ", ("Γ", "N"): "Σ", ("Γ", "P"): "Λ", ("H", "N"): "G", ("H", "P"): "F", ("N", "P"): "D"},
    "cF": {("Γ", "X"): "Δ", ("Γ", "L"): "Λ", ("Γ", "K"): "Σ", ("X", "W"): "Z", ("X", "U"): "S", ("L", "W"): "Q"},
}
"""Names of the lines between special points (Bradley & Cracknell) for the cubic
lattices; a line of another lattice is named by its ends (``Γ–X``)."""


def full_star(k, rotations_frac: np.ndarray) -> np.ndarray:
    """Every arm of k's star for real distortions: k W⁻¹ under the parent's fractional
    rotations W and, since a real pattern holds e^{2πik·n} with its conjugate, −k W⁻¹ too;
    distinct modulo the reciprocal lattice, in [0, 1)."""
    arms = star_arms(k, rotations_frac)
    out: list[np.ndarray] = []
    for arm in np.concatenate([arms, np.mod(-arms, 1.0)]):
        arm = np.where(np.abs(arm - 1.0) < 1e-9, 0.0, arm)
        if not any(same_k(arm, a) for a in out):
            out.append(arm)
    return np.array(out)


def kpoint_lattice(kpoints) -> np.ndarray:
    """The smallest supercell holding every wave vector of ``kpoints`` (each fractions of
    the parent's primitive reciprocal basis): the lattice {n ∈ Z³ : k·n ∈ Z for every k},
    as a 3×3 integer matrix of rows in the parent's basis with a positive determinant.

    Mathematics: a supercell P (rows) holds k iff P k ∈ Z³, i.e. iff k lies in the
    reciprocal lattice of P's lattice, Λ_P* = {q : P q ∈ Z³}. The supercells holding all
    the k's are therefore those whose reciprocal lattice contains K* = Z³ + Σ_k Z k, and
    the largest such lattice (the fewest cells) is the dual of K*: with Q a basis (rows)
    of K*, P = (Q⁻¹)ᵀ, det P = [K* : Z³]. Any other supercell holding them is a sublattice
    of it. Every k must be rational (denominators up to 48)."""
    ks = np.atleast_2d(np.asarray(kpoints, dtype=float))
    den = 1
    for x in ks.ravel():
        den = den * Fraction(float(x)).limit_denominator(48).denominator // math.gcd(
            den, Fraction(float(x)).limit_denominator(48).denominator)
    rows = [[den * int(i == j) for j in range(3)] for i in range(3)]
    rows += [[int(round(den * float(Fraction(float(x)).limit_denominator(48)))) for x in k] for k in ks]
    from .cells import lattice_basis

    Q = lattice_basis(np.array(rows)) / den
    P = np.round(np.linalg.inv(Q).T).astype(int)
    if round(np.linalg.det(P)) < 0:
        P[0] *= -1
    return P


def reduced_supercell(P: np.ndarray, cell: np.ndarray) -> np.ndarray:
    """The same supercell lattice as ``P`` (rows in the basis of the parent's ``cell``) with
    a Minkowski-reduced basis (the most compact cell shape) and a positive determinant."""
    from ase.geometry import minkowski_reduce

    _, op = minkowski_reduce(np.asarray(P, dtype=float) @ np.asarray(cell, dtype=float))
    reduced = np.round(op @ P).astype(int)
    # of the same rows up to order and sign, the one with the largest trace, fewest negative entries
    best = None
    for order in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            Q = reduced[list(order)] * np.array(signs)[:, None]
            if round(np.linalg.det(Q)) <= 0:
                continue
            key = (-int(np.trace(Q)), int((Q < 0).sum()), tuple(-Q.ravel()))
            if best is None or key < best[0]:
                best = (key, Q)
    return best[1]


def special_path(structure, symprec: float = 1e-3) -> list[list[str]]:
    """ASE's standard path through the special points of the parent's Bravais lattice
    (:func:`special_kpoints`, the same lattice and variant), as its continuous pieces:
    ``[['Γ', 'X', 'M', 'Γ', 'R', 'X'], ['M', 'R']]`` for primitive cubic."""
    from ase.cell import Cell
    from ase.geometry.bravais_type_engine import niggli_op_table
    from ase.lattice import LatticeMatcher, bravais_classes

    from .cells import primitive_cell

    sym = _crystal_parent(structure, symprec)
    lattice = bravais_classes[bravais_lattice(sym)]
    cell = Cell(np.asarray(primitive_cell(sym)[0].cell))
    matches = []
    for eps in (2e-4, 2e-3, 2e-2):
        matches = LatticeMatcher(cell, eps=eps).match(lattice.name, niggli_op_table[lattice.name])
        if matches:
            break
    if not matches:
        raise SBSInputError(f"ASE does not recognise this cell as {lattice.longname}; give k-points as fractions")
    best = min(matches, key=lambda m: m.orthogonality_defect)
    pieces = []
    for piece in best.lat.special_path.split(","):
        names = [piece[i] + (piece[i + 1] if i + 1 < len(piece) and piece[i + 1].isdigit() else "")
                 for i in range(len(piece)) if not piece[i].isdigit()]
        pieces.append(["Γ" if n == "G" else n for n in names])
    return pieces


def line_name(start: str, end: str, pearson: str) -> str:
    """The name of the line between two special points (:data:`LINE_NAMES`), else
    ``start–end``."""
    names = LINE_NAMES.get(pearson, {})
    return names.get((start, end)) or names.get((end, start)) or f"{start}–{end}"
