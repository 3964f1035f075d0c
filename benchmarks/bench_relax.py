"""Wall time of ``explore``: the ASE path vs the batched engine vs the model-only floor.

Same options as ``ase-sbs bench`` (this script calls it), for example

    python benchmarks/bench_relax.py examples/BaTiO3_cubic.cif --calc 7net-0 --supercell 2 2 2 \\
        --targets P4mm,Amm2,R3m --all-variants --device cuda --json bench.json

See the README section "Batched relaxations" for measured figures.
"""

import sys

from ase_sbs.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
