"""Cost of the instability scan: wall time and model calls for N = 4 on a 5-atom perovskite.

    OMP_NUM_THREADS=1 python benchmarks/scan.py [--file examples/SrTiO3_cubic.cif] [--calc 7net-0]
                                               [--grid 4] [--out benchmarks/results/cpu_scan.txt]

The parent is relaxed within Pm-3m first (timed apart). Then the scan of the grid and the
special points (no path), and the scan with the path at N steps per line, each through the
batched engine's potential as ``ase-sbs scan`` runs it: per star the folded cell's atoms,
the displaced structures evaluated (the model's energy + forces + stress each) and its
wall time; in all, structures, forward calls of the batched model (up to 8 structures
each) and wall time. For scale: one model call on the N×N×N supercell that holds the
whole grid (what a phonopy calculation of the same q-points displaces atoms in), and how
many such calls its symmetry-reduced displacements need.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--file", default=str(ROOT / "examples" / "SrTiO3_cubic.cif"))
    p.add_argument("--calc", default="7net-0")
    p.add_argument("--grid", type=int, default=4)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cpu_scan.txt"))
    p.add_argument("--plot", help="also draw the path scan here (PNG)")
    p.add_argument("--table", help="also write the path scan's table of unstable stars here")
    args = p.parse_args()

    import numpy as np
    import torch
    from ase.build import make_supercell
    from ase.io import read

    from ase_sbs.analysis.scan import relax_in_group, scan_structure
    from ase_sbs.potentials import get_potential
    from ase_sbs.relax.runners import make_runner

    atoms = read(args.file)
    pot = get_potential(args.calc, atoms.get_chemical_symbols())
    runner = make_runner("auto", pot)
    calls = {"n": 0}
    batched = getattr(runner, "potential", None)
    if getattr(batched, "batched", False):
        evaluate = batched.evaluate

        def counted(graphs):
            calls["n"] += 1
            return evaluate(graphs)

        batched.evaluate = counted
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    parent = relax_in_group(atoms, pot, runner=runner)
    t_relax = time.perf_counter() - t0
    runs = []
    for label, path in (("grid + special points", False), (f"grid + path ({args.grid} steps per line)", True)):
        calls["n"] = 0
        t0 = time.perf_counter()
        res = scan_structure(parent, pot, runner, args.grid, path=path)
        runs.append((label, res, time.perf_counter() - t0, calls["n"]))
    if args.plot or args.table:
        from ase_sbs.report.scan import describe_scan, plot_scan

        if args.plot:
            plot_scan(runs[-1][1], args.plot)
        if args.table:
            Path(args.table).write_text(describe_scan(runs[-1][1]) + "\n")
    big = make_supercell(parent, args.grid * np.eye(3))
    big.rattle(0.01, seed=1)
    big.calc = pot.calc
    times = []
    for _ in range(3):
        big.calc.results.clear()
        t0 = time.perf_counter()
        big.get_forces()
        big.get_stress()
        times.append(time.perf_counter() - t0)
    t_big = statistics.median(times)
    try:
        import phonopy
        from phonopy.structure.atoms import PhonopyAtoms

        unit = PhonopyAtoms(symbols=parent.get_chemical_symbols(), cell=np.asarray(parent.cell),
                            scaled_positions=parent.get_scaled_positions())
        ph = phonopy.Phonopy(unit, supercell_matrix=np.eye(3, dtype=int) * args.grid)
        ph.generate_displacements(distance=0.01)
        n_phonopy = len(ph.supercells_with_displacements)
    except ImportError:
        n_phonopy = None
    load1 = os.getloadavg()

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    lines = [
        f"# benchmarks/scan.py: the instability scan of {Path(args.file).name} ({len(atoms)} atoms) under "
        f"{args.calc}, N = {args.grid}",
        f"# date: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')}",
        f"# machine: {platform.node()}, {os.cpu_count()} cores, {platform.platform()}",
        f"# threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, torch.get_num_threads()="
        f"{torch.get_num_threads()}; python {platform.python_version()}, torch {torch.__version__}",
        f"# commit: {commit.strip()}; load average "
        f"{load0[0]:.2f} at the start, {load1[0]:.2f} at the end (walls are single runs)",
        "",
        f"parent relaxation within Pm-3m: {t_relax:.1f} s, a = {parent.cell.lengths()[0]:.4f} Å",
        "",
    ]
    for label, res, wall, forwards in runs:
        lines += [f"{label}: {len(res.stars)} stars, {res.evaluations} structures evaluated, {forwards} batched "
                  f"forward calls, {wall:.1f} s wall, unstable: {', '.join(s.name for s in res.unstable_stars)}",
                  f"  {'star':16s} {'atoms':>5s} {'structures':>10s} {'s':>6s}"]
        lines += [f"  {s.name:16s} {s.natoms:5d} {s.evaluations:10d} {s.seconds:6.1f}" for s in res.stars]
        lines.append("")
    lines.append(f"for scale: one model call (energy + forces + stress) on the {args.grid}x{args.grid}x{args.grid} "
                 f"supercell ({len(big)} atoms): {t_big:.1f} s (median of 3)"
                 + (f"; phonopy's symmetry-reduced displacements of it: {n_phonopy} such calls" if n_phonopy else ""))
    text = "\n".join(lines) + "\n"
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
