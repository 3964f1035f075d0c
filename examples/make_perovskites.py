"""Write the thirteen cubic ABO3 parents of the perovskite screen to examples/perovskites/.

Each is the ideal cubic perovskite (Pm-3m, A at the corner, B at the body centre, O at
the face centres) at a starting lattice constant in Å near the measured pseudo-cubic one;
the exploration relaxes the parent's lattice constant under its own symmetry before any
distortion, so the starting value only has to be close.

    python examples/make_perovskites.py
    ase-sbs screen examples/perovskites --supercell 0 1 1 1 0 1 1 1 0 --cascade --workers 2
"""

from pathlib import Path

from ase import Atoms
from ase.io import write

LATTICE_CONSTANTS = {  # Å, starting values
    "BaTiO3": 4.00, "KNbO3": 4.02, "PbTiO3": 3.97, "SrTiO3": 3.905, "LaAlO3": 3.81,
    "SrZrO3": 4.10, "CaZrO3": 4.02, "NaTaO3": 3.93, "CaSnO3": 3.95, "BiFeO3": 3.96,
    "LiNbO3": 3.80, "KTaO3": 3.989, "BaZrO3": 4.19,
}


def cubic_perovskite(formula: str, a: float) -> Atoms:
    """ABO3 in Pm-3m: A (0,0,0), B (½,½,½), O (½,½,0), (½,0,½), (0,½,½)."""
    a_site, b_site = split_formula(formula)
    atoms = Atoms([a_site, b_site, "O", "O", "O"],
                  scaled_positions=[(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)],
                  cell=[a, a, a], pbc=True)
    atoms.info["name"] = formula
    return atoms


def split_formula(formula: str) -> tuple[str, str]:
    """'BaTiO3' → ('Ba', 'Ti'): the two element symbols before O3."""
    body = formula.removesuffix("O3")
    cut = next(i for i in range(1, len(body)) if body[i].isupper())
    return body[:cut], body[cut:]


if __name__ == "__main__":
    out = Path(__file__).parent / "perovskites"
    out.mkdir(exist_ok=True)
    for formula, a in LATTICE_CONSTANTS.items():
        write(out / f"{formula}.extxyz", cubic_perovskite(formula, a))
    print(f"wrote {len(LATTICE_CONSTANTS)} cubic parents to {out}")
