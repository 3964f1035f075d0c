"""Benchmarks of the batched engine (``ase-sbs bench``, ``benchmarks/bench_relax.py``).

For a parent and a potential: the wall time of the full explore through the ASE path
(one structure at a time) and through the batched engine on the same device, and the
floor — the model's own forward+forces for the same evaluations at the same batch
sizes (the engine records the size of every batch it evaluates; each distinct size is
timed on copies of the parent and weighted by how often it occurred). Optional: a
sweep of throughput (structures per second) against batch size, for the model alone
and for a full engine step (graph, model, bias, symmetrization, optimizer), and one
call relaxing many copies of the parent (memory check).
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections import Counter

import numpy as np
import torch
from ase import Atoms

from .batched import Graphs, radius_graph


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def copies(atoms: Atoms, n: int, rattle: float = 0.02, seed: int = 0) -> list[Atoms]:
    """``n`` copies of ``atoms`` with independent small random displacements (Å)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        a = atoms.copy()
        a.calc = None
        a.positions += rng.normal(scale=rattle, size=a.positions.shape)
        out.append(a)
    return out


def _graphs(structures: list[Atoms], cutoff: float | None, device) -> Graphs:
    pos = torch.tensor(np.concatenate([a.positions for a in structures]), dtype=torch.float64, device=device)
    cells = torch.tensor(np.stack([np.asarray(a.cell) for a in structures]), dtype=torch.float64, device=device)
    sizes = [len(a) for a in structures]
    ptr = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    graph = torch.repeat_interleave(torch.arange(len(sizes), device=device), torch.as_tensor(sizes, device=device))
    numbers = torch.as_tensor(np.concatenate([a.numbers for a in structures]), device=device)
    periodic = [bool(a.pbc.all()) for a in structures]
    g = Graphs(pos, cells, numbers, graph, ptr, periodic)
    if cutoff:
        g.cutoff = cutoff
        g.src, g.dst, g.shifts = radius_graph(pos, cells, ptr, periodic, cutoff)
    return g


def model_time(potential, atoms: Atoms, batch: int, device, repeats: int = 3) -> float:
    """Median seconds of one forward+forces of the model on ``batch`` copies (graph prebuilt)."""
    g = _graphs(copies(atoms, batch), potential.cutoff, device)
    potential.evaluate(g)
    times = []
    for _ in range(repeats):
        _sync(device)
        t = time.perf_counter()
        potential.evaluate(g)
        _sync(device)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def engine_step_time(engine, atoms: Atoms, batch: int, sbs=None, repeats: int = 3) -> float:
    """Median seconds of one engine round (graph, model, bias, symmetrization, step) on ``batch`` copies."""
    from .engine import RelaxJob, Stage

    jobs = []
    for a in copies(atoms, batch, seed=1):
        kw = {}
        if sbs is not None:
            kw = dict(sbs_object=sbs["b"], irreps=sbs["irreps"], descriptor=sbs["descriptor"],
                      symmetrizer=sbs["symmetrizer"])
        jobs.append(RelaxJob(a, [Stage(sbs["strength"] if sbs else 0.0, 1e-12, 10 ** 6)], **kw))
    slots = [engine.slot(i, j) for i, j in enumerate(jobs)]
    engine._round(slots)
    times = []
    for _ in range(repeats):
        _sync(engine.device)
        t = time.perf_counter()
        engine._round(slots)
        _sync(engine.device)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _phase_summary(ex) -> list:
    return [(p.name, p.delta_energy_per_atom_eV, p.n_variants) for p in ex.phases]


def bench_explore(atoms: Atoms, calc="auto", device: str = "cpu", targets="auto", all_variants: bool = False,
                  optimizer: str = "auto", limits=None, sweep=None, many: int = 0, paths=("ase", "batched"),
                  plot: str | None = None, progress=print) -> dict:
    """Run the benchmark; returns a JSON-able dict (see module docstring)."""
    from .engine import Engine, RelaxJob, Stage, resolve_engine_device
    from .potentials import get_potential
    from .relax import break_symmetry

    dev = str(resolve_engine_device(device))
    pot = get_potential(calc, atoms.get_chemical_symbols(), dev)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine = Engine(pot, device=dev, optimizer=optimizer, limits=limits)
    # warm up both paths (model load, first-call compilation) outside the timings
    warm = atoms.copy()
    warm.calc = pot.calc
    warm.get_potential_energy()
    model_time(engine.potential, atoms, 1, dev, repeats=1)
    out = {
        "structure": atoms.get_chemical_formula(), "natoms": len(atoms), "potential": pot.name,
        "device": dev, "device_name": torch.cuda.get_device_name(dev) if dev.startswith("cuda") else "cpu",
        "torch_threads": torch.get_num_threads(), "targets": targets, "all_variants": all_variants,
        "optimizer": engine.optimizer, "batched_potential": type(engine.potential).__name__,
        "batch_atoms": engine._budget()[0] if math.isfinite(engine._budget()[0]) else None,
        "load_average_start": list(os.getloadavg()),
    }
    common = dict(targets=targets, all_variants=all_variants, progress=False, device=dev)
    results = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if "ase" in paths:
            progress("explore through the ASE path ...")
            _sync(dev)
            t, c = time.perf_counter(), time.process_time()
            results["ase"] = break_symmetry(atoms, pot, engine="ase", **common)
            _sync(dev)
            out["ase_s"] = time.perf_counter() - t
            out["ase_cpu_s"] = time.process_time() - c
        if "batched" in paths:
            progress("explore through the batched engine ...")
            _sync(dev)
            t, c = time.perf_counter(), time.process_time()
            results["batched"] = break_symmetry(atoms, pot, engine=engine, **common)
            _sync(dev)
            out["batched_s"] = time.perf_counter() - t
            out["batched_cpu_s"] = time.process_time() - c
            out["batched_engine_s"] = engine.seconds  # of which inside the engine (relaxations)
    ex = results.get("batched") or results.get("ase")
    parent = ex.parent.atoms if ex is not None else atoms
    if ex is not None:
        out["relaxations"] = len(ex.relaxations)
        out["phases"] = {k: _phase_summary(v) for k, v in results.items()}
    if len(results) == 2:
        a, b = results["ase"], results["batched"]
        out["same_phases"] = [p.name for p in a.phases] == [p.name for p in b.phases]
        out["max_dE_diff_meV_per_atom"] = max(
            [abs(p.delta_energy_per_atom_eV - q.delta_energy_per_atom_eV) * 1e3 for p, q in zip(a.phases, b.phases)],
            default=0.0)
        out["steps_ase"] = int(sum(sum(r.steps.values()) for r in a.relaxations))
        out["steps_batched"] = int(sum(sum(r.steps.values()) for r in b.relaxations))
    if "batched" in results:
        counts = Counter(engine.evaluations)
        out["evaluations"] = {str(k): v for k, v in sorted(counts.items())}
        out["structure_evaluations"] = int(sum(k * v for k, v in counts.items()))
        progress(f"floor: timing the model alone at {len(counts)} batch sizes ...")
        floor = 0.0
        for size, n in counts.items():
            floor += n * model_time(engine.potential, results["batched"].parent.atoms, size, dev,
                                    repeats=3 if dev.startswith("cuda") else 1)
        out["floor_s"] = floor
        if "ase_s" in out:
            out["speedup"] = out["ase_s"] / out["batched_s"]
        out["batched_over_floor"] = out["batched_s"] / floor if floor > 0 else None
    if sweep:
        progress("throughput sweep ...")
        rows = []
        for size in sweep:
            tm = model_time(engine.potential, parent, size, dev)
            te = engine_step_time(engine, parent, size)
            rows.append({"batch": size, "model_s": tm, "engine_step_s": te,
                         "model_structures_per_s": size / tm, "engine_structures_per_s": size / te})
        out["sweep"] = rows
        if plot:
            _plot(rows, out, plot)
            out["plot"] = plot
    if many:
        progress(f"{many} structures in one call ...")
        jobs = [RelaxJob(a, [Stage(0.0, 0.01, 30)], cell="full") for a in copies(parent, many, seed=2)]
        if dev.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats(dev)
        n_eval = len(engine.evaluations)
        _sync(dev)
        t = time.perf_counter()
        res = engine.relax(jobs)
        _sync(dev)
        out["many"] = {
            "structures": many, "natoms": len(parent), "wall_s": time.perf_counter() - t,
            "largest_batch": max(engine.evaluations[n_eval:]),
            "converged": int(sum(r.converged[-1] for r in res)),
            "peak_memory_GiB": torch.cuda.max_memory_allocated(dev) / 2 ** 30 if dev.startswith("cuda") else None,
        }
    out["load_average_end"] = list(os.getloadavg())
    return out


def _plot(rows: list, info: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    b = [r["batch"] for r in rows]
    ax.loglog(b, [r["model_structures_per_s"] for r in rows], "o-", label="model forward+forces")
    ax.loglog(b, [r["engine_structures_per_s"] for r in rows], "s-", label="engine step (all stages of work)")
    from matplotlib.ticker import FormatStrFormatter, NullFormatter, ScalarFormatter

    ax.set_xticks(b)
    ax.set_xticklabels([str(x) for x in b])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ys = [r[k] for r in rows for k in ("model_structures_per_s", "engine_structures_per_s")]
    narrow = max(ys) < 10 * min(ys)  # less than a decade: label the minor ticks too
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%.2g") if narrow else NullFormatter())
    ax.set_xlabel("batch size (structures)")
    ax.set_ylabel("structures / s")
    ax.set_title(f"{info['structure']} ({info['natoms']} atoms), {info['potential']}, {info['device_name']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def describe(out: dict) -> str:
    """The benchmark as a table."""
    lines = [f"{out['structure']} ({out['natoms']} atoms), {out.get('relaxations', 0)} relaxations, "
             f"{out['potential']} on {out['device_name']} ({out['torch_threads']} threads), optimizer {out['optimizer']}"]
    if any(k in out for k in ("ase_s", "batched_s")):
        lines.append(f"{'path':<26}{'wall s':>10}{'vs floor':>10}{'CPU s':>10}")
    floor = out.get("floor_s")
    for key, name in (("ase_s", "ASE (one at a time)"), ("batched_s", "batched engine"), ("floor_s", "floor (model only)")):
        if key in out:
            ratio = f"{out[key] / floor:.2f}x" if floor else "-"
            cpu = out.get(key.replace("_s", "_cpu_s"))
            cpu = f"{cpu:>10.2f}" if cpu is not None else f"{'-':>10}"
            lines.append(f"{name:<26}{out[key]:>10.2f}{ratio:>10}{cpu}")
    if "batched_engine_s" in out:
        f = f" = {out['batched_engine_s'] / floor:.2f}x the floor" if floor else ""
        lines.append(f"of the batched explore, inside the engine (relaxations only): {out['batched_engine_s']:.2f} s{f}")
    if "speedup" in out:
        lines.append(f"speed-up of the batched engine over the ASE path: {out['speedup']:.2f}x")
    if "same_phases" in out:
        lines.append(f"same phases: {out['same_phases']}, largest ΔE difference "
                     f"{out['max_dE_diff_meV_per_atom']:.3f} meV/atom, optimizer steps "
                     f"{out['steps_ase']} (ASE) / {out['steps_batched']} (batched)")
    if "evaluations" in out:
        lines.append("batch sizes evaluated (size: count): "
                     + ", ".join(f"{k}: {v}" for k, v in out["evaluations"].items()))
    for r in out.get("sweep", []):
        lines.append(f"batch {r['batch']:>5}: model {r['model_structures_per_s']:>9.1f} structures/s, "
                     f"engine step {r['engine_structures_per_s']:>9.1f} structures/s")
    if "many" in out:
        m = out["many"]
        mem = f", peak {m['peak_memory_GiB']:.2f} GiB" if m["peak_memory_GiB"] is not None else ""
        lines.append(f"{m['structures']} x {m['natoms']} atoms in one call: {m['wall_s']:.1f} s, "
                     f"largest batch {m['largest_batch']}, {m['converged']} converged{mem}")
    if "load_average_start" in out:
        lines.append("load average (1 min) at start / end: "
                     f"{out['load_average_start'][0]:.2f} / {out.get('load_average_end', [float('nan')])[0]:.2f}")
    return "\n".join(lines)
