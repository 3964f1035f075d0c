"""Planar NH3 (D3h, a saddle point) with SevenNet-0 breaks to pyramidal C3v.

    python examples/nh3_7net.py [--out nh3_sbs]
"""

import argparse
from pathlib import Path

import numpy as np
from ase.io import read

from ase_sbs import break_symmetry
from ase_sbs.report.exploration import describe_exploration, write_exploration

HERE = Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="nh3_sbs")
    parser.add_argument("--quick", action="store_true", help="the C3v target only")
    args = parser.parse_args(argv)
    atoms = read(HERE / "NH3_planar.xyz")
    ex = break_symmetry(atoms, "7net-0", targets="C3v" if args.quick else "auto", out=args.out)
    write_exploration(ex, args.out)
    print(describe_exploration(ex))
    for phase in ex.phases:
        a = phase.atoms
        angles = [a.get_angle(i, 0, j) for i, j in ((1, 2), (2, 3), (1, 3))]
        print(f"{phase.name}: HNH = {np.mean(angles):.2f}°, N–H = {a.get_distance(0, 1):.4f} Å")


if __name__ == "__main__":
    main()
