"""How symmetric is a potential? Equivariance errors, symmetry type by symmetry type.

For a calculator and a structure x, each test compares the calculator's answer on a
transformed structure with the transformed answer:

* proper rotations g ∈ SO(3) and improper ones (−g: inversion, mirrors, rotoinversions):
  E(g·x) = E(x), F(g·x) = g F(x), σ(g·x) = g σ gᵀ;
* atom permutations π: E and σ unchanged, F(π·x) = π·F(x);
* translations of every atom by one vector, and (crystals) lattice translations of
  single atoms by whole lattice vectors: nothing changes;
* the structure's own symmetry group S (at the structure itself): F_{π_s(i)} = R_s F_i
  and σ = R_s σ R_sᵀ for every operation s.

Errors are maxima over the trials: energy in eV, forces in eV/Å, stress in eV/Å³.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

from ..core.symmetry import detect_symmetry, symmetrized_atoms
from ..errors import SBSInputError


@dataclass(frozen=True)
class ErrorRow:
    """Largest errors for one kind of transformation."""

    kind: str
    trials: int
    energy_eV: float
    force_eV_A: float
    stress_eV_A3: float

    @property
    def largest(self) -> float:
        return max(self.energy_eV, self.force_eV_A)


@dataclass(frozen=True)
class EquivarianceReport:
    """Equivariance errors of one calculator on one structure."""

    rows: tuple[ErrorRow, ...]
    tolerance: float

    def row(self, kind: str) -> ErrorRow:
        return next(r for r in self.rows if r.kind == kind)

    def flagged(self) -> list[str]:
        """Kinds whose energy or force error exceeds ``tolerance``."""
        return [r.kind for r in self.rows if r.largest > self.tolerance]

    @property
    def noise(self) -> float:
        """Largest force error over every kind (eV/Å)."""
        return max(r.force_eV_A for r in self.rows)

    def as_dict(self) -> dict:
        return {
            "tolerance": self.tolerance,
            "flagged": self.flagged(),
            "rows": [
                {"kind": r.kind, "trials": r.trials, "energy_eV": r.energy_eV, "force_eV_A": r.force_eV_A,
                 "stress_eV_A3": r.stress_eV_A3}
                for r in self.rows
            ],
        }


def _evaluate(calc, atoms: Atoms) -> tuple[float, np.ndarray, np.ndarray]:
    a = atoms.copy()
    a.calc = calc
    energy = float(a.get_potential_energy())
    forces = np.array(a.get_forces())
    stress = voigt_6_to_full_3x3_stress(a.get_stress()) if a.pbc.all() else np.zeros((3, 3))
    for name, value in (("energy", energy), ("forces", forces), ("stress", stress)):
        if not np.all(np.isfinite(value)):
            raise SBSInputError(
                f"the calculator {type(calc).__name__} returned a non-finite {name} "
                "(NaN or infinity); check the structure and the potential"
            )
    return energy, forces, stress


def _random_rotation(rng) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _transformed(atoms: Atoms, g: np.ndarray) -> Atoms:
    out = atoms.copy()
    out.positions = atoms.positions @ g.T
    if atoms.pbc.all():
        out.set_cell(np.asarray(atoms.cell) @ g.T, scale_atoms=False)
    return out


def equivariance_error(calc, atoms: Atoms, trials: int = 4, seed: int = 0, tolerance: float = 1e-6,
                       symprec: float = 1e-3) -> EquivarianceReport:
    """Equivariance errors of ``calc`` at ``atoms`` for each kind of symmetry.

    Args:
        calc: any ASE calculator.
        atoms: the structure (used as given; its own group is detected with ``symprec``).
        trials: random transformations per kind.
        seed: seed of the random transformations.
        tolerance: errors (eV, eV/Å) above this flag a kind in :meth:`EquivarianceReport.flagged`.
    """
    rng = np.random.default_rng(seed)
    e0, f0, s0 = _evaluate(calc, atoms)
    periodic = bool(atoms.pbc.all())
    rows = []

    def compare(kind, cases):
        de = df = ds = 0.0
        for moved, expect_f, expect_s in cases:
            e, f, s = _evaluate(calc, moved)
            de, df = max(de, abs(e - e0)), max(df, float(np.abs(f - expect_f).max()))
            ds = max(ds, float(np.abs(s - expect_s).max()))
        rows.append(ErrorRow(kind, len(cases), de, df, ds))

    def rotations(sign):
        for _ in range(trials):
            g = sign * _random_rotation(rng)
            yield _transformed(atoms, g), f0 @ g.T, g @ s0 @ g.T

    compare("proper rotation", list(rotations(1)))
    compare("improper (inversion, mirror)", list(rotations(-1)))
    perms = [rng.permutation(len(atoms)) for _ in range(trials)]
    compare("permutation", [(atoms[list(p)], f0[p], s0) for p in perms])

    def translated(shift):
        out = atoms.copy()
        out.positions = atoms.positions + shift
        return out

    compare("translation", [(translated(rng.normal(size=3) * 2.0), f0, s0) for _ in range(trials)])
    if periodic:
        cell = np.asarray(atoms.cell)
        shifts = [rng.integers(-2, 3, size=(len(atoms), 3)) @ cell for _ in range(trials)]
        compare("lattice translation", [(translated(s), f0, s0) for s in shifts])
    sym = detect_symmetry(atoms, symprec=symprec)
    ops = sym.operations
    _, f0, s0 = _evaluate(calc, symmetrized_atoms(sym))  # exactly symmetric: only the potential can err
    df = ds = 0.0
    for R, perm in zip(ops.rotations, ops.permutations):
        moved = np.zeros_like(f0)
        moved[perm] = f0 @ R.T
        df = max(df, float(np.abs(moved - f0).max()))
        ds = max(ds, float(np.abs(R @ s0 @ R.T - s0).max()))
    rows.append(ErrorRow(f"own group {sym.schoenflies}", len(ops), 0.0, df, ds))
    return EquivarianceReport(tuple(rows), tolerance)
