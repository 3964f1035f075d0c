"""Bain path with EMT: bcc Cu, Ni, Au, Ag, Pt and Pd break spontaneously to fcc.

For each metal: explore bcc (Im-3m) with ASE's EMT, and compare the fcc phase found
(3 Bain variants) with separately relaxed fcc and bcc.

    python examples/bain_path_emt.py            # all six metals (~1 min on 2 cores)
    python examples/bain_path_emt.py --quick    # Cu only
"""

import argparse

from ase.build import bulk
from ase.calculators.emt import EMT
from ase.data import atomic_numbers, reference_states
from ase.filters import FrechetCellFilter
from ase.optimize import BFGS

from ase_sbs import break_symmetry
from ase_sbs.report.tables import format_table


def relaxed_energy_per_atom(atoms):
    atoms.calc = EMT()
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-5, steps=1000)
    return atoms.get_potential_energy() / len(atoms)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Cu only")
    args = parser.parse_args(argv)
    rows = []
    for element in ["Cu"] if args.quick else ["Cu", "Ni", "Au", "Ag", "Pt", "Pd"]:
        a_fcc = reference_states[atomic_numbers[element]]["a"]
        bcc = bulk(element, "bcc", a=a_fcc / 2 ** (1 / 3), cubic=True)
        ex = break_symmetry(bcc, "emt", progress=False)
        fcc = next(p for p in ex.phases if p.spacegroup_number == 225)
        reference = relaxed_energy_per_atom(bulk(element, "fcc", a=a_fcc)) - relaxed_energy_per_atom(bcc.copy())
        rows.append([element, fcc.name, fcc.n_variants, "yes" if fcc.spontaneous else "no",
                     f"{1000 * fcc.delta_energy_per_atom_eV:.3f}", f"{1000 * reference:.3f}"])
    print(format_table(["metal", "phase", "variants", "spontaneous", "ΔE explore (meV/atom)",
                        "fcc − bcc relaxed separately (meV/atom)"], rows))


if __name__ == "__main__":
    main()
