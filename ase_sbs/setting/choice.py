"""Unstable stars -> the setting that holds them: the smallest supercell of the primitive
parent whose lattice holds the wave vectors a cascade needs.

A supercell P (rows in the parent's basis) holds k when P k ∈ Z³; the supercells holding
a set of k's are the sublattices of Λ = {n : k·n ∈ Z for every k}, so the smallest one
(by cells, hence atoms) is Λ itself (:func:`~ase_sbs.setting.kpoints.kpoint_lattice`),
given a Minkowski-reduced basis. Which k's:

1. **every arm of every unstable star**: then every isotropy subgroup of each star's
   channels (those with order parameters on several arms, a⁺a⁺a⁺ at M) and every
   coupling between stars is reachable. Γ ⊕ R of a cubic perovskite gives the 10-atom
   cell, Γ ⊕ X ⊕ M ⊕ R the 2×2×2 cell.
2. When that cell is too large for the isotypic decomposition
   (:func:`~ase_sbs.setting.setting.work_estimate` above
   :data:`~ase_sbs.setting.setting.MAX_WORK`), the stars whose arms cost most are held
   by **one arm** each (k with −k: the arm the single-arm isotropy subgroups need, the
   folded cell of the scan), one star after the other until the cell fits; the arms are
   chosen together so that the cell is smallest (the first such star's arm is fixed
   without loss: the stars held whole are invariant under the point group). Σ ⊕ R of
   PbZrO3 (12 arms of Σ need 32 cells) gives the √2×2√2×2 (40-atom) cell of Pbam.
3. When even one arm each does not fit, the choice is refused, naming the stars, the
   cell they would need and the largest subset of them that fits (most unstable first).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from ..core.symmetry import Symmetry
from ..errors import SBSInputError
from .kpoints import kpoint_lattice, reduced_supercell, same_k
from .setting import MAX_WORK, work_estimate

MAX_COMBINATIONS = 2_000  # arm choices tried together; beyond, one star at a time
MAX_SUBSETS_STARS = 14  # stars for which every subset is tried in a refusal


@dataclass(frozen=True)
class SupercellChoice:
    """The supercell chosen for a set of unstable stars (module docstring).

    Attributes:
        matrix: (3, 3) integers, rows in the primitive parent's basis.
        cells, natoms: parent cells and atoms in it.
        stars: the unstable stars held, most unstable first, with their lowest curvature
            (eV/Å²): ``lowest``.
        every_arm: stars held with every arm; ``one_arm``: held by one arm (k, −k).
        kpoints: the wave vectors the cell was built to hold (parent reciprocal fractions).
        all_arm_cells: per star held by one arm, the cells every arm of it would need
            (with the others).
    """

    matrix: np.ndarray
    cells: int
    natoms: int
    stars: tuple
    lowest: tuple
    every_arm: tuple
    one_arm: tuple
    kpoints: tuple
    all_arm_cells: dict

    def as_dict(self) -> dict:
        return {"supercell": self.matrix.tolist(), "cells": self.cells, "natoms": self.natoms,
                "stars": list(self.stars), "lowest_curvature_eV_A2": list(self.lowest),
                "every_arm": list(self.every_arm), "one_arm": list(self.one_arm),
                "kpoints": [list(map(float, k)) for k in self.kpoints], "all_arm_cells": dict(self.all_arm_cells)}


def _cells(P: np.ndarray) -> int:
    return int(round(abs(np.linalg.det(P))))


def _pairs(arms: np.ndarray) -> list[np.ndarray]:
    """One arm of each (k, −k) pair."""
    out: list[np.ndarray] = []
    for a in arms:
        if not any(same_k(a, b) or same_k(a, -b) for b in out):
            out.append(np.asarray(a, dtype=float))
    return out


def _one_arm_lattice(whole: list[np.ndarray], reduced: list[np.ndarray]) -> tuple[np.ndarray, list]:
    """The smallest lattice holding every k of ``whole`` and one arm of each star in
    ``reduced`` (lists of arms), and the arms chosen."""
    options = [_pairs(arms) for arms in reduced]
    options[0] = options[0][:1]
    base = np.concatenate(whole) if whole else np.zeros((1, 3))
    total = int(np.prod([len(o) for o in options]))
    if total <= MAX_COMBINATIONS:
        best = None
        for combo in itertools.product(*options):
            P = kpoint_lattice(np.concatenate([base, np.array(combo)]))
            if best is None or _cells(P) < _cells(best[0]):
                best = (P, list(combo))
        return best
    chosen: list[np.ndarray] = []
    for o in options:  # too many together: one star at a time, each the smallest so far
        P, arm = min(((kpoint_lattice(np.concatenate([base, np.array(chosen + [a])])), a) for a in o),
                     key=lambda pa: _cells(pa[0]))
        chosen.append(arm)
    return kpoint_lattice(np.concatenate([base, np.array(chosen)])), chosen


def _fits(parent: Symmetry, P: np.ndarray, max_work: float) -> bool:
    return work_estimate(parent, P) <= max_work


def _attempt(parent: Symmetry, stars: list, max_work: float):
    """(P, names held whole, names held by one arm, kpoints, cells of every arm) for
    ``stars`` by rules 1 and 2 of the module docstring; the last P tried when nothing
    fits (then ``fits`` is False)."""
    arms = {s.name: np.asarray(s.arms, dtype=float) for s in stars}
    P = kpoint_lattice(np.concatenate([arms[s.name] for s in stars]))
    whole = [s.name for s in stars]
    if _fits(parent, P, max_work):
        return True, P, whole, [], [k for s in stars for k in arms[s.name]], {}
    own = {n: _cells(kpoint_lattice(arms[n])) for n in whole}
    order = sorted(whole, key=lambda n: (-own[n], whole.index(n)))
    one: list[str] = []
    chosen: list = []
    for name in order:
        if own[name] == 1:
            break
        one.append(name)
        whole = [n for n in whole if n != name]
        P, chosen = _one_arm_lattice([arms[n] for n in whole], [arms[n] for n in one])
        if _fits(parent, P, max_work):
            break
    kpoints = [k for n in whole for k in arms[n]] + list(chosen)
    full = {n: _cells(kpoint_lattice(np.concatenate([arms[m] for m in whole + [n]] + [np.array(chosen)])))
            for n in one}
    return _fits(parent, P, max_work), P, whole, one, kpoints, full


def choose_supercell(parent: Symmetry, stars, max_work: float = MAX_WORK) -> SupercellChoice:
    """The supercell of the primitive ``parent`` for the unstable ``stars`` (module
    docstring); each star has ``name``, ``arms`` (every arm, parent reciprocal fractions)
    and ``lowest`` (its lowest curvature, eV/Å²), as :class:`~ase_sbs.setting.scan.StarScan`.
    No unstable star: the primitive cell.

    Raises:
        SBSInputError: even one arm of each star needs a cell too large for the
            decomposition (the message names the stars, that cell and the largest subset
            of the stars that fits).
    """
    stars = sorted(stars, key=lambda s: s.lowest)
    natoms = len(parent.atoms)
    if not stars:
        P = np.eye(3, dtype=int)
        return SupercellChoice(P, 1, natoms, (), (), (), (), ((0.0, 0.0, 0.0),), {})
    fits, P, whole, one, kpoints, full = _attempt(parent, stars, max_work)
    if not fits:
        raise SBSInputError(_refusal(parent, stars, P, max_work))
    P = reduced_supercell(P, parent.atoms.cell)
    names = tuple(s.name for s in stars)
    return SupercellChoice(P, _cells(P), natoms * _cells(P), names, tuple(float(s.lowest) for s in stars),
                           tuple(whole), tuple(one), tuple(tuple(map(float, k)) for k in kpoints), full)


def _refusal(parent: Symmetry, stars: list, P: np.ndarray, max_work: float) -> str:
    natoms = len(parent.atoms)
    names = ", ".join(s.name for s in stars)
    text = (f"the unstable stars {names} need the supercell {reduced_supercell(P, parent.atoms.cell).tolist()} "
            f"({_cells(P)} cells, {natoms * _cells(P)} atoms) even with one arm of each, too large for the "
            f"isotypic decomposition (|G|·D³ = {work_estimate(parent, P):.2g} > {max_work:.2g})")
    best = largest_fitting_subset(parent, stars, max_work)
    if best is None:
        return text + "; no single one of them fits: give a smaller grid's stars with --kpoint, or a --supercell"
    subset, Q = best
    return (text + f"; the largest subset that fits is {', '.join(s.name for s in subset)}: supercell "
            f"{Q.tolist()} of the primitive parent ({_cells(Q)} cells, {natoms * _cells(Q)} atoms), --supercell "
            + " ".join(str(x) for x in Q.ravel()))


def largest_fitting_subset(parent: Symmetry, stars: list, max_work: float = MAX_WORK):
    """(stars, supercell) of the largest subset of ``stars`` (most unstable first) whose
    cell fits (rules 1 and 2), or None. Every subset is tried for up to
    :data:`MAX_SUBSETS_STARS` stars; beyond, the least unstable are dropped one by one."""
    stars = sorted(stars, key=lambda s: s.lowest)
    if len(stars) > MAX_SUBSETS_STARS:
        while stars:
            stars = stars[:-1]
            fits, P, *_ = _attempt(parent, stars, max_work)
            if fits:
                return stars, reduced_supercell(P, parent.atoms.cell)
        return None
    for size in range(len(stars) - 1, 0, -1):
        for subset in itertools.combinations(stars, size):  # in order: the most unstable come first
            fits, P, *_ = _attempt(parent, list(subset), max_work)
            if fits:
                return list(subset), reduced_supercell(P, parent.atoms.cell)
    return None
