"""Cubic BaTiO3 with SevenNet-0: the polar phases P4mm, Amm2 and R3m.

    python examples/batio3_7net.py --out batio3_sbs          # every default target
    python examples/batio3_7net.py --quick --out /tmp/bto    # P4mm only

Writes the JSON, one structure per phase and variant, and energies.png to --out.
"""

import argparse
from pathlib import Path

from ase.io import read

from ase_sbs import break_symmetry
from ase_sbs.report.exploration import describe_exploration, write_exploration

HERE = Path(__file__).resolve().parent


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the P4mm target only")
    parser.add_argument("--out", default="batio3_sbs")
    args = parser.parse_args(argv)
    atoms = read(HERE / "BaTiO3_cubic.cif")
    ex = break_symmetry(atoms, "7net-0", targets="P4mm" if args.quick else "auto", out=args.out)
    write_exploration(ex, args.out)
    print(describe_exploration(ex))


if __name__ == "__main__":
    main()
