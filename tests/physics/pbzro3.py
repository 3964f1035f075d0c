"""Antiferroelectric PbZrO3 (Pbam, eight formula units) built by hand from its two order
parameters, for a plain-ASE reference of what the exploration finds in the √2×2√2×2 cell.

The cell of the cubic parent (lattice constant a) has rows [1 -1 0], [2 2 0], [0 0 2] in
the parent's basis (√2 a, 2√2 a, 2 a). Two distortions of the known pattern of Pbam:

- Σ (q = (¼, ¼, 0)): antiparallel Pb displacements, u_Pb(n) = d √2 cos(2π q·n − π/4) ê,
  the ↑↑↓↓ sequence along [110] (``phase`` π/4; 0 gives ↑0↓0);
- R: antiphase octahedral tilts a⁻a⁻c⁰, each O moved by ω_n × (x_O − x_Zr(n)) with
  ω_n = ω (−1)^(n₁+n₂+n₃) about [110] (the same for either Zr neighbour of an O).

Which displacement direction ê and tilt axis give Pbam is decided by spglib, not assumed:
:func:`pbam_candidates` returns every combination whose space group is 55.

The experimental structure: Corker, Glazer, Dec, Roleder & Whatmore, "A re-investigation
of the crystal structure of the perovskite PbZrO3 by X-ray and neutron diffraction",
Acta Cryst. B53, 135-142 (1997): Pbam, Z = 8, a = 5.884, b = 11.787, c = 8.231 Å at
100 K (single-crystal X-ray), the antiparallel Pb shifts of Σ with the a⁻a⁻c⁰ tilts of
R. :func:`experimental_cell` puts a start in that cell (a, b, c along the rows of
:data:`CELL`); its atomic coordinates come from the two order parameters above, not from
the paper's table (not at hand here), so a FixSymmetry relaxation of the start finds the
Pbam minimum of the potential nearest the experimental pattern.
"""

import itertools

import numpy as np
from ase.build import make_supercell

from .plain_ase import spacegroup_number

CELL = np.array([[1, -1, 0], [2, 2, 0], [0, 0, 2]])
CORKER_1997_ABC = (5.884, 11.787, 8.231)  # Å, Pbam at 100 K
DIRECTIONS = {"[1-10]": np.array([1, -1, 0]) / np.sqrt(2), "[110]": np.array([1, 1, 0]) / np.sqrt(2),
              "[001]": np.array([0, 0, 1.0])}


def distorted(cubic, direction, tilt_axis, d: float = 0.15, omega: float = 0.08, phase: float = np.pi / 4):
    """The 40-atom cell of the cubic ``cubic`` (5 atoms, Pb at the origin) with the Σ and R
    distortions of the module docstring."""
    a = cubic.cell.lengths()[0]
    atoms = make_supercell(cubic, CELL)
    cell = np.asarray(atoms.cell)
    symbols = np.array(atoms.get_chemical_symbols())
    q = np.array([0.25, 0.25, 0.0])
    disp = np.zeros((len(atoms), 3))
    zr = np.flatnonzero(symbols == "Zr")
    w = omega * np.asarray(tilt_axis, dtype=float) / np.linalg.norm(tilt_axis)
    for i, s in enumerate(symbols):
        if s == "Pb":
            n = np.round(atoms.positions[i] / a).astype(int)
            disp[i] = d * np.sqrt(2) * np.cos(2 * np.pi * q @ n - phase) * np.asarray(direction)
        elif s == "O":
            v = atoms.positions[zr] - atoms.positions[i]
            v -= np.round(v @ np.linalg.inv(cell)) @ cell
            j = int(np.argmin(np.linalg.norm(v, axis=1)))
            n = np.floor((atoms.positions[i] + v[j]) / a + 1e-6).astype(int)
            disp[i] = np.cross(w * (-1) ** int(n.sum()), -v[j])
    atoms.positions += disp
    return atoms


def pbam_candidates(cubic) -> list:
    """(label, structure) of every Pb direction × tilt axis × phase that spglib finds in
    Pbam (55)."""
    out = []
    for (name, e), (tname, t), phase in itertools.product(DIRECTIONS.items(), DIRECTIONS.items(),
                                                          (np.pi / 4, 0.0)):
        if tname == "[001]":
            continue
        atoms = distorted(cubic, e, t, phase=phase)
        if spacegroup_number(atoms, 1e-3) == 55:
            out.append((f"Pb {name}, tilt about {tname}, phase {phase:.3g}", atoms))
    return out


def experimental_cell(atoms):
    """``atoms`` (a 40-atom cell of :data:`CELL`) with its cell scaled, row by row, to the
    lattice parameters of Corker et al. (1997), the fractional coordinates kept."""
    out = atoms.copy()
    cell = np.asarray(atoms.cell)
    scaled = cell * (np.array(CORKER_1997_ABC) / np.linalg.norm(cell, axis=1))[:, None]
    out.set_cell(scaled, scale_atoms=True)
    return out
