"""Time per model call of every installed potential, and the main job under each.

    OMP_NUM_THREADS=1 python benchmarks/potentials.py [--names 7net-0,chgnet] [--repeats 7]
                                                     [--no-main-job] [--out benchmarks/results/cpu_potentials.txt]

Model call: energy + forces + stress of BaTiO3 (the cubic example, every atom displaced by a
fixed rattle of 0.03 Å so no symmetry short-cuts a model) in the 1×1×1, 2×1×1, 2×2×1 and
2×2×2 cells (5, 10, 20, 40 atoms), through the potential's ASE calculator (a fresh
``calculate`` per call) and through its batched form (``BatchedPotential.evaluate`` on a
batch of one, the radius graph built inside the timing as the engine does), and, for the
throughput batching buys, the batched form on a batch of 8 copies (time per structure).
Each figure is the median of ``--repeats`` calls after one warm-up call.

Main job: ``ase-sbs explore examples/BaTiO3_cubic.cif --calc NAME`` as a whole process
(imports and loading included) in a fresh output directory, once per potential; the
phases it reports (ΔE per formula unit) are listed with it.

Potentials that do not cover Ba, Ti and O (EMT) are listed as skipped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BTO = ROOT / "examples" / "BaTiO3_cubic.cif"
CELLS = ((1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2))
BATCH = 8


def structures():
    from ase.io import read

    out = []
    for rep in CELLS:
        a = read(BTO) * rep
        a.rattle(0.03, seed=len(a))
        out.append(a)
    return out


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def time_potential(name: str, repeats: int) -> dict:
    """Load time and per-call medians (ms) of ``name`` on the BaTiO3 cells."""
    from ase.calculators.calculator import all_changes

    from ase_sbs.potentials import get_potential
    from ase_sbs.potentials.batched import Graphs, batched_potential

    t0 = time.perf_counter()
    pot = get_potential(name, ["Ba", "Ti", "O"])
    load_s = time.perf_counter() - t0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bp = batched_potential(pot)
    rows = []
    for atoms in structures():
        a = atoms.copy()

        def ase_call(a=a):
            pot.calc.calculate(a, ["energy", "forces", "stress"], all_changes)

        def batched_call(batch):
            bp.evaluate(Graphs.of(batch, bp.cutoff))

        ase_ms = median_ms(ase_call, repeats)
        one_ms = median_ms(lambda: batched_call([a]), repeats)
        many_ms = median_ms(lambda: batched_call([a] * BATCH), max(3, repeats // 2)) / BATCH
        rows.append({"atoms": len(a), "ase_ms": ase_ms, "batched_ms": one_ms, f"batched_x{BATCH}_ms_per_structure":
                     many_ms})
    return {"name": pot.name, "source": pot.source, "load_s": load_s, "batched_form": type(bp).__name__,
            "batches": bool(bp.batched), "calls": rows}


def main_job(name: str) -> dict:
    """Wall time of the explore process and the phases it found."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "bto")
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "ase_sbs", "explore", str(BTO), "--calc", name, "--out", out,
                               "--no-progress", "--json", out + ".json"], capture_output=True, text=True, cwd=tmp)
        wall = time.perf_counter() - t0
        if proc.returncode not in (0, 3):
            return {"wall_s": wall, "exit": proc.returncode, "error": proc.stderr.strip().splitlines()[-1:]}
        data = json.loads(Path(out + ".json").read_text())
    phases = [(f"{p['spacegroup_symbol']} ({p['spacegroup_number']})", 1e3 * p["delta_energy_per_formula_unit_eV"])
              for p in data["phases"]]
    return {"wall_s": wall, "exit": proc.returncode, "runner": data.get("runner"), "verdict": data.get("verdict"),
            "phases": phases}


def machine(commit: str | None = None) -> list[str]:
    import torch

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else "?"
    if commit is None:
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=ROOT).stdout.strip() or "?"
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                   text=True, cwd=ROOT).stdout.strip()
            commit += " (with uncommitted changes)" if dirty else ""
        except OSError:
            commit = "?"
    return [f"date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
            f"machine: {platform.node()}, {cpu}, {os.cpu_count()} cores, {platform.platform()}",
            f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
            f"torch.get_num_threads()={torch.get_num_threads()}; python {platform.python_version()}, "
            f"torch {torch.__version__}",
            f"commit: {commit}"]


def report(results: list[dict], skipped: list[str], note: str, commit: str | None = None) -> str:
    lines = ["# benchmarks/potentials.py: model call time (energy + forces + stress) on BaTiO3 and the main job "
             "(ase-sbs explore examples/BaTiO3_cubic.cif --calc NAME) per potential",
             *[f"# {m}" for m in machine(commit)]]
    if note:
        lines.append(f"# note: {note}")
    lines += ["# per-call figures: median of the repeats after one warm-up; ASE = the potential's ASE calculator, "
              f"batched = its batched form on a batch of 1, x{BATCH} = a batch of {BATCH} copies (per structure)", ""]
    header = f"{'potential':18s} {'atoms':>5s} {'ASE ms':>9s} {'batched ms':>11s} {f'x{BATCH} ms/str':>11s}"
    lines += [header, "-" * len(header)]
    for r in results:
        for c in r["calls"]:
            lines.append(f"{r['name']:18s} {c['atoms']:5d} {c['ase_ms']:9.1f} {c['batched_ms']:11.1f} "
                         f"{c[f'batched_x{BATCH}_ms_per_structure']:11.1f}")
    lines += ["", "loading (in a process that has imported ase_sbs): "
              + ", ".join(f"{r['name']} {r['load_s']:.1f} s" for r in results), ""]
    lines += ["main job: ase-sbs explore examples/BaTiO3_cubic.cif --calc NAME (whole process, one run each)", ""]
    for r in results:
        job = r.get("main_job")
        if job is None:
            continue
        if "phases" not in job:
            lines.append(f"{r['name']:18s} {job['wall_s']:6.1f} s  exit {job['exit']}: {' '.join(job['error'])}")
            continue
        phases = ", ".join(f"{n} {e:+.1f}" for n, e in job["phases"]) or "none"
        lines.append(f"{r['name']:18s} {job['wall_s']:6.1f} s  {job['runner']} runner, verdict {job['verdict']}; "
                     f"phases (ΔE meV/f.u.): {phases}")
    for r in results:
        lines.append(f"source of {r['name']}: {r['source']} ({r['batched_form']})")
    if skipped:
        lines += ["", "skipped: " + "; ".join(skipped)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", help="comma-separated potentials (default: every installed one covering BaTiO3)")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per figure (default 7)")
    parser.add_argument("--no-main-job", action="store_true", help="only the model calls")
    parser.add_argument("--note", default="", help="a line about the conditions (e.g. a shared machine)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "cpu_potentials.txt"))
    parser.add_argument("--json", help="also write the figures as JSON")
    parser.add_argument("--commit", help="the commit to state (default: git's HEAD of this tree)")
    args = parser.parse_args(argv)
    from ase_sbs.potentials.catalog import potential_rows

    rows = potential_rows()
    skipped = []
    if args.names:
        names = [n.strip() for n in args.names.split(",") if n.strip()]
    else:
        names = []
        for r in rows:
            if not r["installed"]:
                skipped.append(f"{r['name']} (not installed: {r['why_not']})")
            elif r["elements"] is not None and not {"Ba", "Ti", "O"} <= set(r["elements"]):
                skipped.append(f"{r['name']} (does not cover Ba, Ti, O)")
            else:
                names.append(r["name"])
    results = []
    for name in names:
        print(f"{name}: model calls", file=sys.stderr, flush=True)
        res = time_potential(name, args.repeats)
        if not args.no_main_job:
            print(f"{name}: main job", file=sys.stderr, flush=True)
            res["main_job"] = main_job(name)
        results.append(res)
    text = report(results, skipped, args.note, args.commit)
    Path(args.out).write_text(text)
    print(text, end="")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
