"""Training data for a small NequIP potential of BaTiO3, labelled by SevenNet-0.

    python examples/nequip/make_batio3_potential_data.py --out data/batio3_potential
    nequip-train -cp $PWD/examples/nequip -cn batio3_potential data_dir=$PWD/data/batio3_potential

The frames sample what an exploration of cubic BaTiO3 visits: the cubic cell (5 atoms)
with Ti and O displaced against each other along random directions (half of them along
<100>, <110> or <111>, the P4mm, Amm2 and R3m order parameters), amplitudes up to 0.4 Å,
random symmetric strains up to 3 % (for 30 % of the frames plus -4 % to +8 % along the
polar direction, for 10 % +8 % to +50 %, so that the model learns that energy rises far
from the minima), and random rattles of 0.03 Å; plus such 2x2x2 supercells (40 atoms).
Energies (eV), forces (eV/Å) and stresses (eV/Å³) are
SevenNet-0's. ``train.extxyz`` and ``val.extxyz`` split the frames 9:1.

The resulting model is a fixture for benchmarks and examples (it reproduces the
ferroelectric double well of SevenNet-0 roughly, not quantitatively).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import read, write

HERE = Path(__file__).resolve().parent
CUBIC = HERE.parent / "BaTiO3_cubic.cif"
POLAR_AXES = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=float)


def _direction(rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.5:
        d = POLAR_AXES[rng.integers(3)] * rng.choice([-1.0, 1.0], size=3)
        d = d[rng.permutation(3)]
    else:
        d = rng.normal(size=3)
    return d / np.linalg.norm(d)


def distorted_frames(n_cells: int, n_supercells: int, seed: int = 0) -> list:
    """Unlabelled frames (see the module docstring)."""
    rng = np.random.default_rng(seed)
    cubic = read(CUBIC)
    symbols = np.array(cubic.get_chemical_symbols())
    frames = []
    for k in range(n_cells + n_supercells):
        atoms = cubic.copy() if k < n_cells else cubic.repeat((2, 2, 2))
        sym = symbols if k < n_cells else np.array(atoms.get_chemical_symbols())
        d = _direction(rng) * rng.uniform(0.0, 0.4)
        atoms.positions[sym == "Ti"] += d
        atoms.positions[sym == "O"] -= 0.4 * d
        eps = rng.uniform(-0.03, 0.03, size=(3, 3))
        eps = 0.5 * (eps + eps.T)
        u = rng.random()
        if u < 0.4:  # a strain along the polar direction (the tetragonal and rhombohedral cells)
            stretch = rng.uniform(-0.04, 0.08) if u < 0.3 else rng.uniform(0.08, 0.5)  # and far beyond, uphill
            eps += stretch * np.outer(d, d) / max(float(d @ d), 1e-12)
        atoms.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
        atoms.positions += rng.normal(scale=0.03, size=atoms.positions.shape)
        frames.append(atoms)
    return frames


def label(frames: list, calc) -> list:
    out = []
    for atoms in frames:
        atoms.calc = calc
        e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress(voigt=False)
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f, stress=s)
        out.append(atoms)
    return out


def main(argv=None):
    from ase_sbs.potentials import get_potential

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="batio3_potential_data")
    p.add_argument("--cells", type=int, default=320, help="5-atom frames (default 320)")
    p.add_argument("--supercells", type=int, default=40, help="40-atom frames (default 40)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    frames = distorted_frames(args.cells, args.supercells, args.seed)
    calc = get_potential("7net-0", ["Ba", "Ti", "O"], "cpu").calc
    frames = label(frames, calc)
    order = np.random.default_rng(args.seed + 1).permutation(len(frames))
    n_val = max(1, len(frames) // 10)
    write(out / "val.extxyz", [frames[i] for i in order[:n_val]], format="extxyz")
    write(out / "train.extxyz", [frames[i] for i in order[n_val:]], format="extxyz")
    print(f"wrote {len(frames) - n_val} training and {n_val} validation frames to {out}")


if __name__ == "__main__":
    main()
