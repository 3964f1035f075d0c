"""SBS + potential -> relaxations: the symmetry-breaking protocol (DESIGN §4).

For every target K and the SBS member(s) b of B(K):

1. parent: relax the input within S (forces and stress symmetrized onto S);
2. seed: minimize E_model + E_sb(b, λ₀), λ₀ chosen so that the largest bias force on
   the parent is ``seed_force`` (eV/Å; for a strain-only channel the largest bias
   stress times V/N), forces and stress symmetrized onto Stab_S(b);
   in ``field`` mode λ is first ramped up to cross barriers;
3. anneal: λ → 0 in steps, re-minimizing at each;
4. release: minimize E_model alone to ``release_fmax``, still symmetrized onto
   Stab_S(b). The result is a stationary point of the unbiased potential: if it has
   lower symmetry and lower energy than the parent the break was spontaneous; if it
   is back in S the parent is stable in that channel;
5. classify with spglib over a tolerance ladder and group relaxations into phases.

Each relaxation is written (atomically) as it finishes to ``out/relaxations``; a run
with the same settings reuses what is there.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from dataclasses import asdict, dataclass, field, fields
from functools import reduce

import numpy as np
from ase import Atoms

from .bias import BiasDescriptor, evaluate_bias
from .calculator import SBSCalculator
from .errors import SBSInputError
from .potentials import Potential, get_potential
from .potentials import resolve_device as _device
from .report import write_json
from .sbs import SymmetryBreakingSet, resolve_target, symmetry_breaking_set
from .symmetry import Symmetrizer, Symmetry, crystal_point_group_matrices, detect_symmetry, symmetrized_atoms
from .targets import Target, candidate_targets, distortion_channels, make_target

CLASSIFY_LADDER = (1e-5, 1e-4, 1e-3, 1e-2)


@dataclass(frozen=True)
class ExploreSettings:
    """Settings of :func:`break_symmetry` (forces in eV/Å, energies in eV)."""

    mode: str = "seed"
    cell: str = "full"
    seed_force: float = 0.05
    field_factors: tuple[float, ...] = (3.0, 10.0)
    anneal: tuple[float, ...] = (0.3, 0.1)
    fmax: float = 0.01
    release_fmax: float = 5e-4
    max_steps: int = 400
    parent_max_steps: int = 1000
    symprec: float = 1e-3
    classify_symprec: float = 1e-3
    energy_tol: float = 1e-4  # eV/atom: below this a change is "no change"
    all_variants: bool = False
    max_l: int = 4

    def validate(self) -> None:
        if self.mode not in ("seed", "field"):
            raise SBSInputError(f"mode must be 'seed' or 'field', got {self.mode!r}")
        if self.cell not in ("full", "fixed", "volume"):
            raise SBSInputError(f"cell must be 'full', 'fixed' or 'volume', got {self.cell!r}")
        for name in ("seed_force", "fmax", "release_fmax"):
            if not getattr(self, name) > 0:
                raise SBSInputError(f"{name} must be positive")
        if self.max_steps < 1:
            raise SBSInputError("max_steps must be at least 1")


@dataclass
class Relaxation:
    """One relaxation of one SBS member (see module docstring for the stages)."""

    target: str
    member: int
    sign: int  # +1: b_member; -1: −b_member (the opposite domain when −b is not in B)
    irreps: str
    sbs_object: list
    status: str  # broken | returned | unconverged | bias_inactive
    energy_eV: float
    natoms: int
    spacegroup_number: int | None
    spacegroup_symbol: str | None
    point_group: str
    point_group_order: int
    ladder: dict
    strength_eV: float
    steps: dict
    converged: bool
    max_displacement_A: float
    max_strain: float = 0.0
    field_spacegroup: str | None = None
    atoms: Atoms | None = field(default=None, repr=False)

    @property
    def energy_per_atom(self) -> float:
        return self.energy_eV / self.natoms


@dataclass
class Phase:
    """A distinct relaxed structure below (or at) the parent: one per symmetry and energy."""

    target: str
    targets: list
    spacegroup_number: int | None
    spacegroup_symbol: str | None
    point_group: str
    energy_per_atom_eV: float
    delta_energy_per_atom_eV: float
    delta_energy_per_formula_unit_eV: float
    n_variants: int
    spontaneous: bool
    irreps: str
    lattice: list | None
    max_displacement_A: float
    steps: int
    atoms: Atoms = field(repr=False)
    variants: list = field(default_factory=list, repr=False)
    structure_file: str | None = None
    modes: dict | None = None  # symmetry-mode decomposition against the parent (ase_sbs.modes)

    @property
    def name(self) -> str:
        if self.spacegroup_symbol:
            return f"{self.spacegroup_symbol} ({self.spacegroup_number})"
        return self.point_group


@dataclass
class ParentResult:
    spacegroup_number: int | None
    spacegroup_symbol: str | None
    point_group: str
    energy_eV: float
    natoms: int
    formula_units: int
    atoms: Atoms = field(repr=False)
    steps: int = 0
    force_noise_eV_A: float = 0.0  # the potential's symmetry noise at the parent (diagnostics)

    @property
    def energy_per_atom(self) -> float:
        return self.energy_eV / self.natoms


@dataclass
class Exploration:
    """Everything :func:`break_symmetry` found."""

    parent: ParentResult
    phases: list[Phase]
    relaxations: list[Relaxation]
    potential: str
    settings: ExploreSettings

    @property
    def stable(self) -> bool:
        """True when no channel breaks spontaneously."""
        return not any(p.spontaneous for p in self.phases)

    @property
    def unconverged(self) -> list[Relaxation]:
        return [r for r in self.relaxations if r.status == "unconverged"]

    def as_dict(self) -> dict:
        p = self.parent
        return {
            "parent": {
                "formula": p.atoms.get_chemical_formula(),
                "spacegroup_number": p.spacegroup_number,
                "spacegroup_symbol": p.spacegroup_symbol,
                "point_group": p.point_group,
                "energy_per_atom_eV": p.energy_per_atom,
                "natoms": p.natoms,
                "formula_units": p.formula_units,
                "force_noise_eV_A": p.force_noise_eV_A,
            },
            "potential": self.potential,
            "settings": asdict(self.settings),
            "stable": self.stable,
            "phases": [
                {
                    "target": ph.target,
                    "targets": ph.targets,
                    "spacegroup_number": ph.spacegroup_number,
                    "spacegroup_symbol": ph.spacegroup_symbol,
                    "point_group": ph.point_group,
                    "energy_per_atom_eV": ph.energy_per_atom_eV,
                    "delta_energy_per_atom_eV": ph.delta_energy_per_atom_eV,
                    "delta_energy_per_formula_unit_eV": ph.delta_energy_per_formula_unit_eV,
                    "n_variants": ph.n_variants,
                    "spontaneous": ph.spontaneous,
                    "irreps": ph.irreps,
                    "lattice": ph.lattice,
                    "max_displacement_A": ph.max_displacement_A,
                    "steps": ph.steps,
                    "structure_file": ph.structure_file,
                    "modes": ph.modes,
                }
                for ph in self.phases
            ],
            "relaxations": [
                record(r) for r in self.relaxations
            ],
        }


# ----------------------------------------------------------------------------------


def _minimize(atoms: Atoms, calc, cell: str, fmax: float, max_steps: int) -> tuple[bool, int]:
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms.calc = calc
    target = atoms
    if atoms.pbc.all() and cell != "fixed":
        target = FrechetCellFilter(atoms, hydrostatic_strain=cell == "volume")
    opt = BFGS(target, logfile=None, maxstep=0.1)
    converged = bool(opt.run(fmax=fmax, steps=max_steps))
    return converged, int(opt.nsteps)


def record(result) -> dict:
    """A result dataclass's fields without its ``atoms`` (JSON-ready). Shallow: unlike
    ``dataclasses.asdict`` it does not deep-copy the Atoms and the calculator on them."""
    return {f.name: getattr(result, f.name) for f in fields(result) if f.name != "atoms"}


def formula_units(atoms: Atoms) -> int:
    counts = np.unique(atoms.numbers, return_counts=True)[1]
    return int(reduce(math.gcd, counts.tolist()))


def max_displacement(parent: Atoms, final: Atoms) -> float:
    """Largest atomic displacement (Å) between two structures with the same atom order."""
    if parent.pbc.all():
        d = final.get_scaled_positions(wrap=False) - parent.get_scaled_positions(wrap=False)
        d -= np.round(d)
        disp = d @ np.asarray(final.cell)
    else:
        disp = (final.positions - final.get_center_of_mass()) - (parent.positions - parent.get_center_of_mass())
    disp -= disp.mean(axis=0)
    return float(np.linalg.norm(disp, axis=1).max())


def max_strain(parent: Atoms, final: Atoms) -> float:
    """Largest component of the symmetric strain taking the parent cell to the final one."""
    if not parent.pbc.all():
        return 0.0
    F = np.linalg.solve(np.asarray(parent.cell), np.asarray(final.cell)).T
    eps = (F + F.T) / 2 - np.eye(3)
    return float(np.abs(eps).max())


def _classify(atoms: Atoms, symprec: float) -> tuple[Symmetry | None, dict]:
    ladder = {}
    chosen = None
    for sp in CLASSIFY_LADDER:
        try:
            s = detect_symmetry(atoms, symprec=sp)
        except SBSInputError:
            ladder[f"{sp:g}"] = None
            continue
        ladder[f"{sp:g}"] = s.spacegroup_symbol if s.periodic else s.schoenflies
        if sp == symprec:
            chosen = s
    if chosen is None:
        chosen = detect_symmetry(atoms, symprec=symprec)
    return chosen, ladder


def _common_subgroup(parent: Symmetry, found: Symmetry) -> list[int]:
    """Indices of S whose Cartesian rotation is also a symmetry of the found structure."""
    F = crystal_point_group_matrices(found)
    return [i for i, R in enumerate(parent.point_group_matrices) if np.abs(F - R).max(axis=(1, 2)).min() < 1e-3]


def variant_image(atoms: Atoms, parent: Symmetry, op_index: int) -> Atoms:
    """The structure mapped by the parent's operation ``op_index`` (R, t), expressed in
    a cell basis aligned with the parent's."""
    R = parent.operations.rotations[op_index]
    t = parent.operations.translations[op_index]
    out = atoms.copy()
    if atoms.pbc.all():
        out.positions = atoms.positions @ R.T + t
        rotated = np.asarray(atoms.cell) @ R.T
        basis = np.round(np.asarray(parent.atoms.cell) @ np.linalg.inv(rotated)).astype(int)
        out.set_cell(basis @ rotated if abs(round(np.linalg.det(basis))) == 1 else rotated, scale_atoms=False)
        out.wrap()
    else:
        c = atoms.get_center_of_mass()
        out.positions = (atoms.positions - c) @ R.T + c
    return out


def _digest(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _structure_digest(atoms: Atoms) -> list:
    return [atoms.get_chemical_symbols(), np.round(atoms.positions, 6).tolist(), np.round(np.asarray(atoms.cell), 6).tolist()]


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


class _Store:
    """Finished relaxations on disk: one JSON + one extxyz per relaxation."""

    def __init__(self, out: str | None):
        self.dir = None
        if out is None:
            return
        self.dir = os.path.join(out, "relaxations")
        try:
            os.makedirs(self.dir, exist_ok=True)
            probe = os.path.join(self.dir, ".write-test")
            with open(probe, "w") as fh:
                fh.write("ok")
            os.unlink(probe)
        except OSError as exc:
            raise SBSInputError(f"output directory {out!r} is not writable ({exc.strerror})") from exc

    def load(self, key: str) -> dict | None:
        if self.dir is None:
            return None
        path = os.path.join(self.dir, key + ".json")
        if not os.path.exists(path):
            return None
        from ase.io import read

        with open(path) as fh:
            data = json.load(fh)
        data["atoms"] = read(os.path.join(self.dir, key + ".extxyz"))
        return data

    def save(self, key: str, data: dict, atoms: Atoms) -> None:
        if self.dir is None:
            return
        from ase.io import write

        tmp = os.path.join(self.dir, f".tmp-{key}.extxyz")
        clean = atoms.copy()
        clean.calc = None
        write(tmp, clean, format="extxyz")
        os.replace(tmp, os.path.join(self.dir, key + ".extxyz"))
        write_json(data, os.path.join(self.dir, key + ".json"))


def _resolve_targets(sym: Symmetry, targets, channels) -> list[Target]:
    if isinstance(targets, str) and targets == "auto":
        return default_targets(sym, channels)
    if isinstance(targets, str):
        targets = [t for t in targets.split(",") if t.strip()]
    out = []
    for t in targets:
        mask = resolve_target(sym, t)
        out.append(t if isinstance(t, Target) else make_target(sym, mask))
    return out


def default_targets(sym: Symmetry, channels=None) -> list[Target]:
    """The maximal isotropy subgroups of each channel (Landau theory's order-parameter
    directions of highest symmetry): every target reached by a single channel that has
    no proper supergroup among that channel's targets."""
    group = sym.point_group
    cands = [t for t in candidate_targets(sym, channels=channels) if t.channels]
    out = []
    for t in cands:
        mask = sum(1 << i for i in t.elements)
        supers = [
            u for u in cands if u is not t and set(u.channels) & set(t.channels)
            and any(c & mask == mask and c != mask for c in group.conjugates(sum(1 << i for i in u.elements)))
        ]
        if not supers:
            out.append(t)
    return out


def resolve_engine(engine: str, device: str) -> tuple[str, str]:
    """(engine, device): ``auto`` engine is ``batched`` on CUDA and ``ase`` on the CPU
    (the conservative choice there, although the batched engine measured faster on
    2 CPU cores too, see the README); ``auto`` device falls back to the CPU with a warning."""
    from .engine import resolve_engine_device

    dev = str(resolve_engine_device(device))
    if engine == "auto":
        engine = "batched" if dev.startswith("cuda") else "ase"
    if engine not in ("batched", "ase"):
        raise SBSInputError(f"engine must be 'batched', 'ase' or 'auto', got {engine!r}")
    return engine, dev


def break_symmetry(atoms: Atoms, calc="auto", targets="auto", mode: str = "seed", cell: str = "full",
                   out: str | None = None, progress: bool = True, device: str = "cpu",
                   supercell=None, kpoint=None, engine: str = "auto", engine_options: dict | None = None,
                   **settings) -> Exploration:
    """Find the lower-symmetry phases ``atoms`` breaks into under the potential ``calc``.

    Args:
        atoms: the high-symmetry parent (crystal or molecule).
        calc: ``auto``, ``emt``, ``7net-0``, a NequIP model file, or an ASE calculator.
        targets: ``auto`` (the maximal isotropy subgroups of each distortion channel),
            a comma-separated string or a list of targets (names, numbers, Targets).
        mode: ``seed`` (small bias, annealed away) or ``field`` (ramped up first).
        cell: ``full``, ``fixed`` or ``volume`` relaxation of crystals.
        out: directory for finished relaxations (resume) and results; None keeps all
            in memory.
        device: ``cpu``, ``cuda`` or ``auto``, for the potential (when named) and the bias.
        supercell, kpoint: run the protocol beyond k = 0 on a supercell (three integers
            or a 3x3 matrix) and/or at one k-star (``R`` or three numbers); returns an
            :class:`ase_sbs.supercell_explore.SupercellExploration` (see there).
        engine: ``ase`` (one structure at a time through ASE: BFGS + FrechetCellFilter),
            ``batched`` (every relaxation together in :mod:`ase_sbs.engine`: on the CPU
            with the same BFGS, so both follow the same trajectories, on CUDA with ASE's
            FIRE; ``engine_options={"optimizer": ...}`` chooses), ``auto`` (batched on
            CUDA, ase on the CPU) or an :class:`ase_sbs.engine.Engine`.
            Supercell runs (``supercell``/``kpoint``) use the ASE path.
        engine_options: keyword arguments of :class:`ase_sbs.engine.Engine` (optimizer,
            limits, fire, bfgs).
        **settings: further :class:`ExploreSettings` fields.
    """
    if supercell is not None or kpoint is not None:
        from .supercell_explore import explore_supercell

        return explore_supercell(atoms, calc, supercell=supercell, kpoint=kpoint, targets=targets, cell=cell,
                                 device=device, out=out, **settings)
    s = ExploreSettings(mode=mode, cell=cell, **settings)
    s.validate()
    runner = None
    if not isinstance(engine, str):  # an Engine
        runner, device = engine, str(engine.device)
    else:
        engine, device = resolve_engine(engine, device)
    store = _Store(out)
    if isinstance(calc, Potential):
        pot = calc
        pot.check_covers(atoms.get_chemical_symbols())
    else:
        pot = get_potential(calc, atoms.get_chemical_symbols(), device)
    if engine == "batched":
        from .engine import Engine

        runner = Engine(pot, device=device, **{"optimizer": "auto", **(engine_options or {})})
    sym0 = detect_symmetry(atoms, symprec=s.symprec)
    start = symmetrized_atoms(sym0)
    parent = _relax_parent(start, sym0, pot, s, store, runner)
    psym = detect_symmetry(parent.atoms, symprec=s.symprec)
    if psym.order != sym0.order:
        raise SBSInputError(
            f"the parent lost symmetry while relaxing within {sym0.schoenflies} "
            f"(now {psym.schoenflies}); use a tighter symprec"
        )
    channels = distortion_channels(psym)
    target_list = _resolve_targets(psym, targets, channels)
    bias_device = _device(device)
    jobs = []
    for t in target_list:
        B = symmetry_breaking_set(psym, t, max_l=s.max_l, channels=channels)
        members = range(len(B)) if s.all_variants else [0]
        # −b breaks to the same K; when it is not in B it is another domain of the order
        # parameter (e.g. elongation vs compression along one axis) and is relaxed too
        signs = (1,) if _contains(B.objects, -B.objects[0]) else (1, -1)
        jobs += [(t, B, j, sign) for sign in signs for j in members]
    base = _digest(pot.name, asdict(s), _structure_digest(parent.atoms))
    relaxations: list = [None] * len(jobs)
    descriptors: dict = {}
    pending = []  # (index, key, plan) for the batched engine
    bar = _progress(len(jobs), progress)
    for i, (t, B, j, sign) in enumerate(jobs):
        # the elements tell apart inequivalent subgroups that share a name
        key = f"{_safe(t.name)}-{_digest(t.elements)[:6]}-m{j}{'' if sign > 0 else 'neg'}-{base}"
        rec = store.load(key)
        if rec is not None:
            relaxations[i] = Relaxation(**rec)
            bar.update(1)
            continue
        plan = _member_plan(parent, psym, B, j, s, sign, descriptors)
        if isinstance(plan, Relaxation):
            r = plan
        elif runner is None:
            r = _member_result(parent, psym, plan, _ase_outcome(parent, plan, pot, s, bias_device), s)
        else:
            pending.append((i, key, plan))
            continue
        store.save(key, record(r), r.atoms)
        relaxations[i] = r
        bar.update(1)
    if pending:
        def done(k, res):
            i, key, plan = pending[k]
            r = _member_result(parent, psym, plan, _engine_outcome(plan, res, s), s)
            store.save(key, record(r), r.atoms)
            relaxations[i] = r
            bar.update(1)

        runner.relax([_member_job(parent, plan, s) for _, _, plan in pending], on_done=done)
    bar.close()
    phases = _phases(parent, psym, relaxations, s)
    _attach_modes(phases, psym, channels)
    return Exploration(parent=parent, phases=phases, relaxations=relaxations, potential=pot.name, settings=s)


def _attach_modes(phases: list[Phase], psym: Symmetry, channels) -> None:
    """Each phase's symmetry-mode decomposition against the parent (:mod:`ase_sbs.modes`)."""
    from .modes import decompose

    for ph in phases:
        try:
            ph.modes = decompose(ph.atoms, psym, symprec=psym.symprec, channels=channels, max_strain=0.5).as_dict()
        except SBSInputError as exc:
            ph.modes = {"error": str(exc)}


def _symmetry_noise(pot: Potential, atoms: Atoms, s: ExploreSettings) -> float:
    """Largest force error of the potential under the symmetries (eV/Å), see diagnostics."""
    from .diagnostics import equivariance_error

    return equivariance_error(pot.calc, atoms, trials=1, symprec=s.symprec).noise


def _warn_if_noisy(pot: Potential, noise: float, s: ExploreSettings) -> None:
    """Warn when the potential's own symmetry noise is comparable to the seed force."""
    import warnings

    if noise > 0.1 * s.seed_force:
        warnings.warn(
            f"{pot.name}: symmetry noise of the forces ({noise:.2g} eV/Å) is comparable to the "
            f"seed force ({s.seed_force} eV/Å); forces and stress are symmetrized onto each target",
            stacklevel=3,
        )


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: int, enabled: bool):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc="relaxations", unit="relax", file=sys.stderr, leave=False)


def _relax_parent(start: Atoms, sym: Symmetry, pot: Potential, s: ExploreSettings, store: _Store,
                  runner=None) -> ParentResult:
    key = f"parent-{_digest(pot.name, s.cell, s.release_fmax, s.parent_max_steps, s.symprec, _structure_digest(start))}"
    rec = store.load(key)
    if rec is not None:
        atoms = rec.pop("atoms")
        result = ParentResult(atoms=atoms, **rec)
        _warn_if_noisy(pot, result.force_noise_eV_A, s)
        return result
    noise = _symmetry_noise(pot, start, s)
    _warn_if_noisy(pot, noise, s)
    atoms = start.copy()
    full = Symmetrizer(sym.operations.rotations, sym.operations.permutations)
    if runner is None:
        calc = SBSCalculator(pot.calc, np.zeros(1), "0e", 0.0, symmetrize=full)
        converged, steps = _minimize(atoms, calc, s.cell, s.release_fmax, s.parent_max_steps)
        energy = float(atoms.get_potential_energy())
    else:
        from .engine import RelaxJob, Stage

        job = RelaxJob(atoms, [Stage(0.0, s.release_fmax, s.parent_max_steps)], cell=s.cell, symmetrizer=full)
        res = runner.relax([job])[0]
        atoms, energy, converged, steps = res.atoms, res.energy, res.converged[0], res.steps[0]
    if not converged:
        raise SBSInputError(
            f"the parent did not converge within {s.parent_max_steps} steps at fmax={s.release_fmax} eV/Å "
            "inside its own symmetry; raise max_steps or check the structure"
        )
    result = ParentResult(
        spacegroup_number=sym.spacegroup_number,
        spacegroup_symbol=sym.spacegroup_symbol,
        point_group=sym.schoenflies,
        energy_eV=energy,
        natoms=len(atoms),
        formula_units=formula_units(atoms),
        atoms=atoms,
        steps=steps,
        force_noise_eV_A=noise,
    )
    store.save(key, record(result), atoms)
    return result


def bias_scale(atoms: Atoms, b, irreps: str, descriptor: BiasDescriptor) -> float:
    """Largest generalized bias force at λ = 1: max(|F|, |σ| V / N) in eV/Å."""
    r = evaluate_bias(atoms, b, irreps, 1.0, descriptor)
    m = float(np.abs(r.forces).max())
    if atoms.pbc.all():
        m = max(m, float(np.abs(r.stress).max()) * atoms.get_volume() / len(atoms))
    return m


def _contains(objects: np.ndarray, v: np.ndarray, tol: float = 1e-6) -> bool:
    return bool((np.abs(objects - v).max(axis=1) < tol).any())


def _member_plan(parent: ParentResult, psym: Symmetry, B: SymmetryBreakingSet, j: int,
                 s: ExploreSettings, sign: int = 1, descriptors: dict | None = None):
    """What one member's relaxation runs: a Relaxation when the bias is inactive, else
    a dict with b, λ₀, the symmetrizer onto Stab_S(b) and the λ factors of the stages.
    ``descriptors`` shares one BiasDescriptor per irreps (same seed, same descriptor)."""
    atoms = parent.atoms
    b = sign * B.objects[j]
    descriptors = {} if descriptors is None else descriptors
    desc = descriptors.get(B.irreps)
    if desc is None:
        desc = descriptors[B.irreps] = BiasDescriptor(B.irreps)
    scale = bias_scale(atoms, b, B.irreps, desc)
    common = dict(target=B.target.name, member=j, sign=sign, irreps=B.irreps,
                  sbs_object=[float(x) for x in b], natoms=len(atoms))
    if scale < 1e-9:
        return Relaxation(**common, status="bias_inactive", energy_eV=parent.energy_eV,
                          spacegroup_number=parent.spacegroup_number, spacegroup_symbol=parent.spacegroup_symbol,
                          point_group=parent.point_group, point_group_order=psym.order, ladder={},
                          strength_eV=0.0, steps={}, converged=True, max_displacement_A=0.0,
                          atoms=atoms.copy())
    factors = [1.0] + (list(s.field_factors) if s.mode == "field" else []) + list(s.anneal)
    return dict(common=common, b=b, irreps=B.irreps, descriptor=desc, lam0=s.seed_force / scale,
                symmetrizer=Symmetrizer.from_subgroup(psym, B.stabilizers[j]), factors=factors)


def _member_job(parent: ParentResult, plan: dict, s: ExploreSettings):
    """The stages of a member's relaxation as a job for the batched engine."""
    from .engine import RelaxJob, Stage

    stages = [Stage(plan["lam0"] * f, s.fmax, s.max_steps) for f in plan["factors"]]
    stages.append(Stage(0.0, s.release_fmax, s.max_steps))
    return RelaxJob(parent.atoms.copy(), stages, cell=s.cell, sbs_object=plan["b"], irreps=plan["irreps"],
                    descriptor=plan["descriptor"], symmetrizer=plan["symmetrizer"], snapshots=s.mode == "field")


def _engine_outcome(plan: dict, res, s: ExploreSettings):
    """(atoms, energy, steps, converged, field space group) from an engine result."""
    factors = plan["factors"]
    steps = {f"lambda_x{f:g}": n for f, n in zip(factors, res.steps)}
    steps["release"] = res.steps[-1]
    field_sg = None
    if s.mode == "field":
        fs, _ = _classify(res.snapshots[factors.index(max(factors))], s.classify_symprec)
        field_sg = fs.spacegroup_symbol if fs.periodic else fs.schoenflies
    return res.atoms, res.energy, steps, res.converged[-1], field_sg


def _ase_outcome(parent: ParentResult, plan: dict, pot: Potential, s: ExploreSettings, device: str):
    """Run a member's stages through ASE (SBSCalculator + BFGS + FrechetCellFilter)."""
    atoms = parent.atoms.copy()
    lam0 = plan["lam0"]
    calc = SBSCalculator(pot.calc, plan["b"], plan["irreps"], lam0, symmetrize=plan["symmetrizer"],
                         descriptor=plan["descriptor"], device=device)
    factors = plan["factors"]
    steps = {}
    field_sg = None
    for f in factors:
        calc.strength = lam0 * f
        _, n = _minimize(atoms, calc, s.cell, s.fmax, s.max_steps)
        steps[f"lambda_x{f:g}"] = n
        if s.mode == "field" and f == max(factors):
            fs, _ = _classify(atoms, s.classify_symprec)
            field_sg = fs.spacegroup_symbol if fs.periodic else fs.schoenflies
    calc.strength = 0.0
    converged, n = _minimize(atoms, calc, s.cell, s.release_fmax, s.max_steps)
    steps["release"] = n
    return atoms, float(atoms.get_potential_energy()), steps, converged, field_sg


def _member_result(parent: ParentResult, psym: Symmetry, plan: dict, outcome, s: ExploreSettings) -> Relaxation:
    """Classify a finished member relaxation."""
    atoms, energy, steps, converged, field_sg = outcome
    found, ladder = _classify(atoms, s.classify_symprec)
    same_group = found.order == psym.order and found.spacegroup_number == psym.spacegroup_number
    disp = max_displacement(parent.atoms, atoms)
    strain = max_strain(parent.atoms, atoms)
    de = energy / len(atoms) - parent.energy_per_atom
    # a stable channel relaxes back slowly along soft directions: a residue below these
    # thresholds at the parent's energy is the parent, not a new phase
    back = same_group or (abs(de) < s.energy_tol and disp < 0.01 and strain < 2e-3)
    found_class = found.crystal_class or found.schoenflies
    status = "unconverged" if not converged else ("returned" if back else "broken")
    return Relaxation(
        **plan["common"],
        status=status,
        energy_eV=energy,
        spacegroup_number=found.spacegroup_number,
        spacegroup_symbol=found.spacegroup_symbol,
        point_group=found_class,
        point_group_order=len(crystal_point_group_matrices(found)),
        ladder=ladder,
        strength_eV=plan["lam0"],
        steps=steps,
        converged=bool(converged),
        max_displacement_A=disp,
        max_strain=strain,
        field_spacegroup=field_sg,
        atoms=atoms,
    )


def _relax_member(parent: ParentResult, psym: Symmetry, B: SymmetryBreakingSet, j: int,
                  pot: Potential, s: ExploreSettings, sign: int = 1, device: str = "cpu") -> Relaxation:
    plan = _member_plan(parent, psym, B, j, s, sign)
    if isinstance(plan, Relaxation):
        return plan
    return _member_result(parent, psym, plan, _ase_outcome(parent, plan, pot, s, device), s)


def _phases(parent: ParentResult, psym: Symmetry, relaxations: list[Relaxation], s: ExploreSettings) -> list[Phase]:
    """Group broken relaxations by symmetry and energy; attach the variants."""
    groups: list[list[Relaxation]] = []
    for r in relaxations:
        if r.status != "broken":
            continue
        for g in groups:
            g0 = g[0]
            if (g0.spacegroup_number, g0.point_group) == (r.spacegroup_number, r.point_group) and abs(
                g0.energy_per_atom - r.energy_per_atom
            ) < s.energy_tol:
                g.append(r)
                break
        else:
            groups.append([r])
    phases = []
    fu_atoms = parent.natoms / parent.formula_units
    for g in groups:
        r = min(g, key=lambda x: x.energy_eV)
        found = detect_symmetry(r.atoms, symprec=s.classify_symprec)
        kept = _common_subgroup(psym, found)
        n_var = psym.order // max(len(kept), 1)
        group = psym.point_group
        variants, seen = [], 0
        if group.is_subgroup(kept):
            for sidx in range(psym.order):
                if seen >> sidx & 1:
                    continue
                coset = {int(group.table[sidx, k]) for k in kept}
                for c in coset:
                    seen |= 1 << c
                variants.append(variant_image(r.atoms, psym, psym.representative_operation(sidx)))
        de = r.energy_per_atom - parent.energy_per_atom
        phases.append(
            Phase(
                target=g[0].target,
                targets=sorted({x.target for x in g}),
                spacegroup_number=r.spacegroup_number,
                spacegroup_symbol=r.spacegroup_symbol,
                point_group=r.point_group,
                energy_per_atom_eV=r.energy_per_atom,
                delta_energy_per_atom_eV=de,
                delta_energy_per_formula_unit_eV=de * fu_atoms,
                n_variants=n_var,
                spontaneous=de < -s.energy_tol,
                irreps=r.irreps,
                lattice=[float(x) for x in r.atoms.cell.cellpar()] if r.atoms.pbc.all() else None,
                max_displacement_A=r.max_displacement_A,
                steps=int(sum(r.steps.values())),
                atoms=r.atoms,
                variants=variants,
            )
        )
    phases.sort(key=lambda p: p.delta_energy_per_atom_eV)
    return phases
