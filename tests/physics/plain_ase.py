"""Independent references built with plain ASE and spglib, for checking explorations:
symmetry-constrained relaxations (FixSymmetry + FrechetCellFilter, BFGS) and spglib's
primitive cell and space-group number of a structure."""

import spglib
from ase import Atoms
from ase.constraints import FixSymmetry
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS


def relax_keeping_symmetry(atoms: Atoms, calc, fmax: float = 5e-4, steps: int = 1500) -> Atoms:
    """Positions and cell relaxed to ``fmax`` (eV/Å) inside the structure's own group
    (found at symprec 1e-4 Å)."""
    atoms = atoms.copy()
    atoms.calc = calc
    atoms.set_constraint(FixSymmetry(atoms, symprec=1e-4))
    BFGS(FrechetCellFilter(atoms), logfile=None, maxstep=0.1).run(fmax=fmax, steps=steps)
    return atoms


def _cell(atoms: Atoms):
    return atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers


def primitive(atoms: Atoms, symprec: float = 1e-4) -> Atoms:
    """spglib's primitive cell of ``atoms``."""
    lattice, frac, numbers = spglib.find_primitive(_cell(atoms), symprec=symprec)
    return Atoms(numbers, scaled_positions=frac, cell=lattice, pbc=True)


def spacegroup_number(atoms: Atoms, symprec: float = 1e-3) -> int:
    """spglib's space-group number of ``atoms`` at ``symprec`` (Å)."""
    return spglib.get_symmetry_dataset(_cell(atoms), symprec=symprec).number
