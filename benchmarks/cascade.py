"""Where a cascade's time goes: per level and per kind of work, in units of one model call.

    python benchmarks/cascade.py [--structure examples/SrZrO3_cubic.extxyz] [--supercell 2 2 2]
                                 [--max-depth 1] [--calc 7net-0] [--threads 1] [--json OUT]

Runs ``break_symmetry(..., cascade=True)`` from scratch (a fresh output directory) and
times, by wrapping the functions that do each kind of work (time is charged to the
innermost wrapped function running, so the categories add up to the wall time):

- model: the potential's batched forward + forces (``BatchedPotential.evaluate``) and its
  ASE calculator (``Calculator.calculate``, which the curvature finite differences call);
- graph: the radius graph of each batch; bias: E_sb and its forces; symmetrize: forces and
  stress projected onto each target's group; optimizer: the BFGS / FIRE steps;
- classify: space groups, statuses, variants, merging; modes: symmetry-mode decompositions;
- targets: channels, isotropy subgroups (single and coupled), SBS objects, member plans;
- curvature: the Lanczos bookkeeping around the Hessian-vector products; io: the store;
- other: everything else (the engine's own loop, Python glue).

Each row is one part of the cascade: ``depth d relax`` (the relaxations of every level
explored from a node at depth d) and ``depth d curvature`` (the curvature checks of the
nodes at depth d; depth 0 is the root parent's channels). Counts per row: targets,
relaxations run, optimizer steps, model calls, structures and atoms evaluated, mean batch.
The unit t₄₀ is one energy + forces + stress call of the potential's ASE calculator on the
40-atom 2×2×2 cell of the parent, timed in the same process before and after the run and
again every minute during it (the median of all; their time is charged to no row), so the
cost in t₄₀ holds on a machine whose load changes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import tempfile
import time
from collections import defaultdict

import numpy as np

CATEGORIES = ("model", "graph", "bias", "symmetrize", "optimizer", "classify", "modes", "targets", "curvature",
              "io", "other")

# (module, attribute path, category); missing ones are skipped (the script runs on older code too)
WRAPPED = [
    ("ase_sbs.potentials.batched", "SevenNetBatched.evaluate", "model"),
    ("ase_sbs.potentials.batched", "NequIPBatched.evaluate", "model"),
    ("ase_sbs.potentials.batched", "ASEBatched.evaluate", "model"),
    ("sevenn.calculator", "SevenNetCalculator.calculate", "model"),
    ("ase.calculators.emt", "EMT.calculate", "model"),
    ("ase_sbs.potentials.batched", "radius_graph", "graph"),
    ("ase_sbs.relax.engine", "radius_graph", "graph"),
    ("ase_sbs.relax.engine", "batch_bias", "bias"),
    ("ase_sbs.bias.descriptor", "evaluate_bias", "bias"),
    ("ase_sbs.explore.plans", "evaluate_bias", "bias"),
    ("ase_sbs.core.symmetrizer", "BatchSymmetrizer.__init__", "symmetrize"),
    ("ase_sbs.core.symmetrizer", "BatchSymmetrizer.forces", "symmetrize"),
    ("ase_sbs.core.symmetrizer", "BatchSymmetrizer.stress", "symmetrize"),
    ("ase_sbs.relax.optimizers", "bfgs_steps", "optimizer"),
    ("ase_sbs.relax.optimizers", "fire_steps", "optimizer"),
    ("ase_sbs.relax.engine", "bfgs_steps", "optimizer"),
    ("ase_sbs.relax.engine", "fire_steps", "optimizer"),
    ("ase_sbs.explore.levels", "classify", "classify"),
    ("ase_sbs.explore.levels", "relaxation_status", "classify"),
    ("ase_sbs.explore.levels", "variants", "classify"),
    ("ase_sbs.explore.levels", "unfold", "classify"),
    ("ase_sbs.explore.cascade", "same_phase", "classify"),
    ("ase_sbs.explore.cascade", "stabilizer", "classify"),
    ("ase_sbs.explore.cascade", "detect_symmetry", "classify"),
    ("ase_sbs.explore.levels", "attach_modes", "modes"),
    ("ase_sbs.explore.cascade", "distortion_channels", "targets"),
    ("ase_sbs.explore.cascade", "isotropy_subgroups", "targets"),
    ("ase_sbs.explore.cascade", "coupled_targets", "targets"),
    ("ase_sbs.explore.protocol", "distortion_channels", "targets"),
    ("ase_sbs.explore.protocol", "enumerate_isotropy", "targets"),
    ("ase_sbs.explore.protocol", "coupled_targets", "targets"),
    ("ase_sbs.explore.protocol", "select_targets", "targets"),
    ("ase_sbs.explore.levels", "symmetry_breaking_set", "targets"),
    ("ase_sbs.explore.levels", "member_plans", "targets"),
    ("ase_sbs.explore.levels", "channel_curvature", "curvature"),
    ("ase_sbs.explore.store", "Store.save", "io"),
    ("ase_sbs.explore.store", "Store.load", "io"),
    ("ase_sbs.explore.store", "Store.save_data", "io"),
    ("ase_sbs.explore.store", "Store.load_data", "io"),
]


class Profile:
    """Exclusive wall time per (row, category) and counters per row."""

    def __init__(self):
        self.row = "setup"
        self.stack: list[str] = []
        self.times = defaultdict(lambda: defaultdict(float))
        self.counts = defaultdict(lambda: defaultdict(float))
        self.mark = time.perf_counter()

    def switch(self, category: str | None):
        now = time.perf_counter()
        current = self.stack[-1] if self.stack else "other"
        self.times[self.row][current] += now - self.mark
        self.mark = now

    def enter(self, category: str):
        self.switch(category)
        self.stack.append(category)

    def leave(self):
        self.switch(None)
        self.stack.pop()

    def set_row(self, row: str):
        self.switch(None)
        self.row = row

    def count(self, name: str, n: float = 1):
        self.counts[self.row][name] += n


PROF = Profile()


class UnitSampler:
    """t40 measured again every ``every`` seconds of the run (between two model calls,
    its time charged to no row), so the unit follows the machine's load as it changes."""

    def __init__(self, every: float = 60.0):
        self.every, self.calc, self.atoms, self.samples, self.last = every, None, None, [], time.perf_counter()
        self.spent = 0.0
        self.start = self.last
        self.at: list[float] = []  # seconds of the run (sampling excluded) at each sample
        self.busy = False

    def maybe(self):
        if self.calc is None or self.busy or time.perf_counter() - self.last < self.every:
            return
        self.busy = True
        row = PROF.row
        PROF.set_row("unit")
        start = time.perf_counter()
        try:
            self.samples.append(t40(self.calc, self.atoms, repeats=3))
            self.at.append(start - self.start - self.spent)
        finally:
            PROF.set_row(row)
            self.last = time.perf_counter()
            self.spent += self.last - start
            self.busy = False


SAMPLER = UnitSampler()


def _wrap(func, category, counter=None):
    def wrapper(*args, **kwargs):
        PROF.enter(category)
        try:
            return func(*args, **kwargs)
        finally:
            PROF.leave()
            if counter is not None:
                counter(args, kwargs)
            if category == "model":
                SAMPLER.maybe()
    wrapper.__wrapped__ = func
    return wrapper


def _model_counter(args, kwargs):
    obj = args[1] if len(args) > 1 else None
    if obj is not None and hasattr(obj, "sizes"):  # a Graphs batch
        sizes = obj.sizes()
        PROF.count("model calls")
        PROF.count("structures", len(sizes))
        PROF.count("atoms", sum(sizes))
    else:  # an ASE calculate(atoms, ...)
        atoms = obj if obj is not None else getattr(args[0], "atoms", None)
        PROF.count("model calls")
        PROF.count("structures")
        PROF.count("atoms", len(atoms) if atoms is not None else 0)


def _steps_counter(args, kwargs):
    PROF.count("optimizer steps", len(args[0]))


def install():
    done = set()
    for module, path, category in WRAPPED:
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        owner, name = mod, path
        if "." in path:
            cls, name = path.split(".")
            owner = getattr(mod, cls, None)
            if owner is None:
                continue
        func = owner.__dict__.get(name) if isinstance(owner, type) else getattr(owner, name, None)
        if func is None or (id(owner), name) in done:
            continue
        counter = _model_counter if category == "model" else _steps_counter if category == "optimizer" else None
        setattr(owner, name, _wrap(func, category, counter))
        done.add((id(owner), name))
    _install_rows()


def _install_rows():
    """Rows: wrap explore_level and channel_curvatures to know which part of the cascade runs."""
    from ase_sbs.explore import cascade, levels, protocol

    depth_of: dict = {}
    root = {"key": None}

    def level_wrapper(func):
        def explore_level(setting, channels, targets, reference, run, *a, **k):
            d = depth_of.get(reference.key, 0)
            if root["key"] is None:
                root["key"] = reference.key
            PROF.set_row(f"depth {d} relax")
            PROF.count("targets", len(targets))
            level = func(setting, channels, targets, reference, run, *a, **k)
            run_here = [r for r in level.relaxations if r is not None]
            PROF.counts[f"depth {d} relax"]["relaxations"] += len(run_here)
            for ph in level.phases:
                depth_of.setdefault(ph.relaxation_key, d + 1)
            return level
        return explore_level

    def curvature_wrapper(func):
        def channel_curvatures(setting, channels, origin, *a, **k):
            d = depth_of.get(origin, 0)
            PROF.set_row(f"depth {d} curvature")
            PROF.count("nodes")
            try:
                return func(setting, channels, origin, *a, **k)
            finally:
                PROF.set_row(f"depth {d} relax")  # the node's targets and level follow
        return channel_curvatures

    for mod in (levels, cascade, protocol):
        if hasattr(mod, "explore_level"):
            mod.explore_level = level_wrapper(mod.explore_level) if mod is levels else levels.explore_level
        if hasattr(mod, "channel_curvatures"):
            mod.channel_curvatures = curvature_wrapper(mod.channel_curvatures) if mod is levels \
                else levels.channel_curvatures
    return depth_of


def t40(calc, atoms, repeats: int = 7) -> float:
    """Median seconds of one energy + forces + stress call on the 40-atom 2×2×2 cell."""
    big = atoms.repeat((2, 2, 2)) if len(atoms) < 40 else atoms.copy()
    rng = np.random.default_rng(0)
    times = []
    for _ in range(repeats + 1):
        a = big.copy()
        a.positions += rng.normal(scale=0.02, size=a.positions.shape)
        a.calc = calc
        t = time.perf_counter()
        a.get_potential_energy(), a.get_forces(), a.get_stress()
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--structure", default="examples/SrZrO3_cubic.extxyz")
    p.add_argument("--supercell", type=int, nargs="+", default=[2, 2, 2], help="three integers or nine (rows)")
    p.add_argument("--max-depth", type=int, default=1)
    p.add_argument("--calc", default="7net-0")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one core)")
    p.add_argument("--engine", default="auto")
    p.add_argument("--out", help="output directory (default: a fresh temporary one)")
    p.add_argument("--json", help="write the profile as JSON here")
    p.add_argument("--tree", help="write the tree (text) here")
    p.add_argument("--check", choices=["needed", "all"], default="needed",
                   help="the cascade's curvature checks: needed (default) or all nodes")
    p.add_argument("--expand", choices=["below", "all"], default="below", help="the cascade's expansions")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an ExploreSettings field for this run (repeatable), e.g. release_fmax=1e-3")
    p.add_argument("--show", metavar="JSON", help="print the profile of a recorded run and exit")
    args = p.parse_args(argv)
    if args.show:
        with open(args.show) as fh:
            print(format_profile(json.load(fh)))
        return 0

    import torch

    torch.set_num_threads(args.threads)
    import warnings

    warnings.simplefilter("ignore")
    from ase.io import read

    import ase_sbs
    from ase_sbs.potentials.registry import get_potential

    atoms = read(args.structure)
    install()
    pot = get_potential(args.calc, atoms.get_chemical_symbols())
    PROF.set_row("unit")
    unit_before = t40(pot.calc, atoms)
    SAMPLER.calc, SAMPLER.atoms = pot.calc, atoms
    extra = {}
    for kv in args.set:
        key, value = kv.split("=", 1)
        extra[key] = json.loads(value)
    out = args.out or tempfile.mkdtemp(prefix="cascade_bench_")
    PROF.set_row("setup")
    PROF.stack.clear()
    PROF.times.pop("setup", None)
    PROF.counts.pop("setup", None)
    PROF.mark = t0 = time.perf_counter()
    SAMPLER.start = SAMPLER.last = t0
    supercell = args.supercell if len(args.supercell) == 3 else np.reshape(args.supercell, (3, 3))
    budget = {"check": args.check, "expand": args.expand}
    ex = ase_sbs.break_symmetry(atoms, pot, supercell=supercell, cascade=True, max_depth=args.max_depth, out=out,
                                progress=False, engine=args.engine, budget=budget, **extra)
    wall = time.perf_counter() - t0 - SAMPLER.spent
    PROF.set_row("unit")
    SAMPLER.calc = None
    unit_after = t40(pot.calc, atoms)
    unit = float(np.median([unit_before, *SAMPLER.samples, unit_after]))

    from ase_sbs.report.tree import describe_tree

    tree_text = describe_tree(ex.tree, ex.parent.name) if ex.tree is not None else ""
    rows = [r for r in PROF.times if r != "unit"]
    order = sorted(rows, key=lambda r: (r != "setup", r))
    table = []
    for r in order:
        t = PROF.times[r]
        c = PROF.counts[r]
        total = sum(t.values())
        calls = c.get("model calls", 0)
        table.append({
            "row": r, "wall_s": total, "t40": total / unit,
            **{f"{k}_s": t.get(k, 0.0) for k in CATEGORIES},
            "targets": int(c.get("targets", 0)), "relaxations": int(c.get("relaxations", 0)),
            "nodes": int(c.get("nodes", 0)), "optimizer_steps": int(c.get("optimizer steps", 0)),
            "model_calls": int(calls), "structures": int(c.get("structures", 0)), "atoms": int(c.get("atoms", 0)),
            "atoms_per_call": c.get("atoms", 0) / calls if calls else 0.0,
            "structures_per_call": c.get("structures", 0) / calls if calls else 0.0,
        })
    totals = {k: sum(row[k] for row in table) for k in table[0] if k != "row"}
    totals["atoms_per_call"] = totals["atoms"] / totals["model_calls"] if totals["model_calls"] else 0.0
    totals["structures_per_call"] = totals["structures"] / totals["model_calls"] if totals["model_calls"] else 0.0
    result = {
        "structure": args.structure, "supercell": args.supercell, "max_depth": args.max_depth,
        "potential": pot.name, "threads": args.threads, "engine": ex.runner, "settings": extra, "budget": budget,
        "t40_s": unit, "t40_before_s": unit_before, "t40_after_s": unit_after, "t40_samples_s": SAMPLER.samples,
        "t40_samples_at_s": SAMPLER.at,
        "wall_s": wall, "wall_t40": wall / unit, "nodes": len(ex.tree.nodes) if ex.tree else 0,
        "ground_state": None if ex.tree is None or ex.tree.ground_state is None
        else ex.tree.nodes[ex.tree.ground_state].name,
        "rows": table, "totals": totals, "load_average": list(os.getloadavg()),
        "commit": os.popen("git rev-parse --short HEAD 2>/dev/null").read().strip(),
        "tree": [{k: n.as_dict()[k] for k in ("id", "parent", "name", "delta_energy_per_formula_unit_eV",
                                              "n_variants", "depth", "local_minimum", "unstable")}
                 for n in (ex.tree.nodes if ex.tree else [])],
    }
    print(tree_text)
    print()
    print(format_profile(result))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    if args.tree:
        with open(args.tree, "w") as fh:
            fh.write(tree_text + "\n")
    return 0


def weighted_cost(result: dict) -> float:
    """The run's cost in t40 with the unit following the load: the integral of dt / t40(t),
    t40 linear between the samples (before at 0, after at the end); runs recorded without
    the sample times take them evenly spaced."""
    samples = result.get("t40_samples_s", [])
    wall = result["wall_s"]
    at = result.get("t40_samples_at_s") or list(np.linspace(0, wall, len(samples) + 2)[1:-1])
    times = np.array([0.0, *at, wall])
    inverse = 1.0 / np.array([result["t40_before_s"], *samples, result["t40_after_s"]])
    return float(np.sum(np.diff(times) * (inverse[1:] + inverse[:-1]) / 2))


def format_profile(result: dict) -> str:
    u = result["t40_s"]
    budget = result.get("budget") or {}
    options = "".join(f" --{k} {v}" for k, v in budget.items())
    head = (f"{result['structure']} {'x'.join(map(str, result['supercell']))} --cascade --max-depth "
            f"{result['max_depth']}{options} [{result['potential']}, {result['engine']} runner, "
            f"{result['threads']} thread(s)]\n"
            f"t40 = {u:.3f} s (median of {2 + len(result.get('t40_samples_s', []))}: before "
            f"{result['t40_before_s']:.3f}, after {result['t40_after_s']:.3f}); "
            f"wall {result['wall_s']:.1f} s = {result['wall_t40']:.0f} t40 at the median unit, "
            f"{weighted_cost(result):.0f} t40 with the unit following the load; {result['nodes']} nodes; "
            f"ground state {result['ground_state']}")
    cols = ["row", "t40", "wall_s"] + [f"{k}_s" for k in CATEGORIES] + [
        "targets", "relaxations", "nodes", "optimizer_steps", "model_calls", "structures", "atoms_per_call",
        "structures_per_call"]
    lines = [head, "  ".join(f"{c:>12}" if i else f"{c:<18}" for i, c in enumerate(cols))]
    for row in result["rows"] + [{"row": "total", **result["totals"]}]:
        cells = []
        for i, c in enumerate(cols):
            v = row[c]
            cells.append(f"{v:<18}" if i == 0 else f"{v:>12.1f}" if isinstance(v, float) else f"{v:>12}")
        lines.append("  ".join(cells))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
