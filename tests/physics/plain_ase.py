"""Independent references built with plain ASE, spglib and phonopy, for checking
explorations: symmetry-constrained relaxations (FixSymmetry + FrechetCellFilter, BFGS),
spglib's primitive cell and space-group number of a structure, and phonopy's force
constants from the forces of plain ASE calculators."""

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


def phonopy_with_force_constants(atoms: Atoms, calc, supercell_matrix, distance: float, **options):
    """A ``phonopy.Phonopy`` of ``atoms`` (``options`` passed on, e.g. ``primitive_matrix``)
    with its force constants produced from ± ``distance`` Å displacements, each displaced
    supercell's forces computed by ``calc``."""
    import phonopy
    from phonopy.structure.atoms import PhonopyAtoms

    unit = PhonopyAtoms(symbols=atoms.get_chemical_symbols(), cell=atoms.cell[:],
                        scaled_positions=atoms.get_scaled_positions())
    ph = phonopy.Phonopy(unit, supercell_matrix=supercell_matrix, **options)
    ph.generate_displacements(distance=distance, is_plusminus=True)
    forces = []
    for sc in ph.supercells_with_displacements:
        displaced = Atoms(sc.symbols, cell=sc.cell, scaled_positions=sc.scaled_positions, pbc=True)
        displaced.calc = calc
        forces.append(displaced.get_forces())
    ph.forces = forces
    ph.produce_force_constants()
    return ph
