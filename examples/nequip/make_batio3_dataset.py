"""Dataset for the paper's BaTiO3 experiment, built with ase_sbs's own explorer.

    python examples/nequip/make_batio3_dataset.py --out data/batio3_sbs

Explores cubic BaTiO3 (Pm-3m) with SevenNet-0 toward P4mm for every member of the polar
1o SBS (6 variants), then writes, for each variant j found:

    frame = the cubic parent (positions, cell), info: sbs_object = b_j, sbs_member = j,
            energy = the variant's energy (eV); arrays: sbs_displacements = u_j (Å)

with u_j the variant's atomic displacements from the parent, mapped into the parent's
cell through fractional coordinates (so a tetragonally strained variant gives the same
pattern) and with the rigid translation removed (Σ_i u_i = 0). ``pairs.extxyz`` holds
all of them; ``train.extxyz`` the first one only (the paper trains on one pair and the
equivariant model, given the other members, returns the other variants).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

HERE = Path(__file__).resolve().parent
CUBIC = HERE.parent / "BaTiO3_cubic.cif"


def displacement_pattern(parent: Atoms, variant: Atoms) -> np.ndarray:
    """u_i (Å) in the parent's cell: fractional differences (wrapped to [-½, ½)) times the
    parent's cell, minus their mean (the rigid translation)."""
    frac = variant.get_scaled_positions(wrap=False) - parent.get_scaled_positions(wrap=False)
    frac -= np.round(frac)
    u = frac @ np.asarray(parent.cell)
    return u - u.mean(axis=0)


def pair_frames(exploration, target: str = "P4mm") -> list[Atoms]:
    """One (parent, b_j, u_j) frame per broken relaxation that ended in space group ``target``."""
    parent = exploration.parent.atoms
    frames = []
    for r in exploration.relaxations:
        if r.status != "broken" or r.atoms is None or r.spacegroup_symbol != target:
            continue
        frame = parent.copy()
        frame.info = {"sbs_object": np.asarray(r.sbs_object, dtype=float), "sbs_member": int(r.member),
                      "sbs_sign": int(r.sign), "sbs_irreps": r.irreps, "target": target,
                      "variant_spacegroup": r.spacegroup_symbol or ""}
        frame.arrays["sbs_displacements"] = displacement_pattern(parent, r.atoms)
        frame.calc = SinglePointCalculator(frame, energy=float(r.energy_eV))
        frames.append(frame)
    return frames


def main(argv=None):
    from ase_sbs import break_symmetry

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="batio3_sbs_data")
    p.add_argument("--calc", default="7net-0")
    p.add_argument("--cell", default="fixed", choices=["fixed", "full", "volume"])
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ex = break_symmetry(read(CUBIC), args.calc, targets="P4mm", cell=args.cell, all_variants=True, progress=True)
    frames = pair_frames(ex)
    if not frames:
        raise SystemExit("no broken P4mm variant was found")
    write(out / "pairs.extxyz", frames, format="extxyz")
    write(out / "train.extxyz", frames[:1], format="extxyz")
    write(out / "parent.extxyz", ex.parent.atoms, format="extxyz")
    for f in frames:
        print(f"member {f.info['sbs_member']}: b = {np.round(f.info['sbs_object'], 4).tolist()}, "
              f"max |u| = {np.linalg.norm(f.arrays['sbs_displacements'], axis=1).max():.4f} Å")
    print(f"wrote {len(frames)} pairs to {out}")


if __name__ == "__main__":
    main()
