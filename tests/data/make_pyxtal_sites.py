"""Writes pyxtal_sites.json: for each of the 230 space groups, the Wyckoff sites of a
small random crystal of exactly that group, for tests/test_properties.py.

pyxtal places atoms on the Wyckoff positions it is given (or picks them at random), but
a draw may have more symmetry than the group asked for: one atom in P1 is always P-1,
atoms on special positions only can make a supergroup. For each group the candidates
(one species on 1-3 sites, two species on 1-2 sites each; a site without free parameter
at most once) are tried in order of atoms in the primitive cell, then species, then
sites; the first whose three random draws all have exactly the group (spglib, symprec
1e-5 Å on pyxtal's cell) is kept. Every group has one (the largest, 48 atoms, is
Pn-3n). Run from the repository root (a few minutes):

    python tests/data/make_pyxtal_sites.py
"""

import itertools
import json
import warnings
from pathlib import Path

CENTRING = {"P": 1, "A": 2, "B": 2, "C": 2, "I": 2, "R": 3, "F": 4}
SPECIES = ("C", "O")
LAYOUTS = [(1,), (2,), (3,), (1, 1), (1, 2), (2, 2)]  # sites per species
DRAWS = 3


def exact(atoms, number: int, symprec: float = 1e-5) -> bool:
    import spglib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spglib's deprecation of its old error handling
        ds = spglib.get_symmetry_dataset((atoms.cell[:], atoms.get_scaled_positions(), atoms.numbers),
                                         symprec=symprec)
    return ds is not None and ds.number == number


def draw(number: int, sites, random_state: int, factor: float = 1.3):
    """One random crystal of group ``number`` with species SPECIES on ``sites`` (ase.Atoms)."""
    from pyxtal import pyxtal

    crystal = pyxtal()
    nums = [sum(int(s[:-1]) for s in per) for per in sites]
    crystal.from_random(3, number, list(SPECIES[: len(sites)]), nums, factor=factor, sites=sites,
                        random_state=random_state)
    return crystal.to_ase()


def candidates(number: int):
    from pyxtal.symmetry import Group

    group = Group(number)
    wps = [(wp.multiplicity, f"{wp.multiplicity}{wp.letter}", int(wp.get_dof())) for wp in group]
    cells = CENTRING[group.symbol[0]]

    def site_sets(k):
        for combo in itertools.combinations_with_replacement(range(len(wps)), k):
            yield combo

    out = []
    for layout in LAYOUTS:
        for choice in itertools.product(*[list(site_sets(k)) for k in layout]):
            used = [i for per in choice for i in per]
            if any(used.count(i) > 1 and wps[i][2] == 0 for i in set(used)):
                continue  # a fixed point can hold one atom
            n = sum(wps[i][0] for i in used)
            out.append((n // cells, len(layout), len(used), [[wps[i][1] for i in per] for per in choice]))
    out.sort(key=lambda c: c[:3])
    return out


def smallest_exact_sites(number: int):
    for _, _, _, sites in candidates(number):
        try:
            if all(exact(draw(number, sites, 1000 + k), number) for k in range(DRAWS)):
                return sites
        except Exception:  # pyxtal could not place the atoms
            continue
    raise RuntimeError(f"no small exact site choice for space group {number}")


def main():
    warnings.filterwarnings("ignore")
    table = {}
    for number in range(1, 231):
        table[str(number)] = smallest_exact_sites(number)
        print(number, table[str(number)], flush=True)
    path = Path(__file__).with_name("pyxtal_sites.json")
    path.write_text("{\n" + ",\n".join(f'  "{k}": {json.dumps(v)}' for k, v in table.items()) + "\n}\n")


if __name__ == "__main__":
    main()
