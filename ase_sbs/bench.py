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

from .core.devices import resolve_device
from .explore.protocol import break_symmetry
from .potentials.batched import Graphs
from .potentials.registry import get_potential
from .relax.engine import Engine
from .relax.jobs import RelaxJob, Stage
from .report.bench import plot_throughput


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


def model_time(potential, atoms: Atoms, batch: int, device, repeats: int = 3) -> float:
    """Median seconds of one forward+forces of the model on ``batch`` copies (graph prebuilt)."""
    g = Graphs.of(copies(atoms, batch), potential.cutoff, device)
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
    jobs = []
    for a in copies(atoms, batch, seed=1):
        kw = {}
        if sbs is not None:
            kw = dict(sbs_object=sbs["b"], irreps=sbs["irreps"], descriptor=sbs["descriptor"],
                      symmetrizer=sbs["symmetrizer"])
        jobs.append(RelaxJob(a, [Stage(sbs["strength"] if sbs else 0.0, 1e-12, 10 ** 6)], **kw))
    slots = [engine.slot(i, j) for i, j in enumerate(jobs)]
    engine.step(slots)
    times = []
    for _ in range(repeats):
        _sync(engine.device)
        t = time.perf_counter()
        engine.step(slots)
        _sync(engine.device)
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _phase_summary(ex) -> list:
    return [(p.name, p.delta_energy_per_atom_eV, p.n_variants) for p in ex.phases]


def bench_explore(atoms: Atoms, calc="auto", device: str = "cpu", targets="auto", all_variants: bool = False,
                  optimizer: str = "auto", limits=None, sweep=None, many: int = 0, paths=("ase", "batched"),
                  plot: str | None = None, progress=print, supercell=None) -> dict:
    """Run the benchmark; returns a JSON-able dict (see module docstring).

    With ``supercell`` (three integers) the explores run the k = 0 targets (channels at
    Γ) of that supercell setting in the whole supercell (no folding), so the relaxed
    cells have the supercell's atoms."""
    dev = resolve_device(device)
    pot = get_potential(calc, atoms.get_chemical_symbols(), dev)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine = Engine(pot, device=dev, optimizer=optimizer, limits=limits)
    # warm up both paths (model load, first-call compilation) outside the timings
    warm = atoms.copy()
    warm.calc = pot.calc
    warm.get_potential_energy()
    cell0 = atoms if supercell is None else atoms.repeat(tuple(supercell))
    model_time(engine.potential, cell0, 1, dev, repeats=1)
    out = {
        "structure": cell0.get_chemical_formula(), "natoms": len(cell0),
        "supercell": list(supercell) if supercell is not None else None, "potential": pot.name,
        "device": dev, "device_name": torch.cuda.get_device_name(dev) if dev.startswith("cuda") else "cpu",
        "torch_threads": torch.get_num_threads(), "targets": targets, "all_variants": all_variants,
        "optimizer": engine.optimizer, "batched_potential": type(engine.potential).__name__,
        "batch_atoms": engine.budget()[0] if math.isfinite(engine.budget()[0]) else None,
        "load_average_start": list(os.getloadavg()),
    }
    common = dict(targets=targets, all_variants=all_variants, progress=False, device=dev)
    if supercell is not None:
        common.update(supercell=supercell, kpoint="G", fold_cells=False)
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
    if supercell is not None:
        from ase.build import make_supercell

        parent = make_supercell(parent, np.diag(supercell))
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
            floor += n * model_time(engine.potential, parent, size, dev,
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
            plot_throughput(rows, out, plot)
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
