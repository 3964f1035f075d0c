"""Structure + potential -> Exploration: the symmetry-breaking protocol, for every setting.

1. setting: the k = 0 setting of the input cell, or a supercell of its primitive parent
   (``supercell``, ``kpoint``); its channels and, for the targets, their isotropy
   subgroups are enumerated first, so what cannot be enumerated is refused before any
   relaxation;
2. parent: relax the parent within its own group (forces and stress symmetrized);
3. curvature of every channel at the parent (:mod:`ase_sbs.setting.curvature`);
4. targets: ``auto`` is the maximal isotropy subgroups of every channel at k = 0 and of
   the unstable channels (negative curvature, most unstable first) in a supercell;
   names and numbers select among the isotropy subgroups;
5. per SBS member b (:mod:`ase_sbs.explore.plans`): seed — minimize E_model + E_sb(b, λ₀),
   forces and stress symmetrized onto Stab(b); in ``field`` mode λ is first ramped up to
   cross barriers; anneal — λ → 0 in steps; release — minimize E_model alone to
   ``release_fmax``. The result is a stationary point of the unbiased potential;
6. classify each relaxation (:mod:`ase_sbs.explore.classify`) and group the broken ones
   into phases with their domain variants and symmetry modes.

Both runners (ASE, batched engine) take the same jobs. Every relaxation, the parent and
the curvatures are written to ``out/relaxations`` as they finish; a rerun reuses them.
"""

from __future__ import annotations

import warnings
from dataclasses import replace

import numpy as np
from ase import Atoms

from ..analysis.scan import scan_structure
from ..core.symmetrizer import Symmetrizer
from ..core.symmetry import (
    crystal_point_group_matrices,
    detect_symmetry,
    symmetrized_atoms,
)
from ..errors import SBSInputError
from ..potentials.registry import Potential, get_potential
from ..relax.jobs import RelaxJob, Stage
from ..relax.runners import make_runner
from ..sbs.resolve import matches, resolve_target
from ..setting.cells import primitive_cell
from ..setting.channels import channel_matches_kpoint, distortion_channels
from ..setting.isotropy import coupled_targets, isotropy_subgroups, make_target
from ..setting.kpoints import parse_kpoint, supercell_for_kpoint
from ..setting.setting import (
    Setting,
    as_supercell_matrix,
    k0_setting,
    supercell_setting,
)
from ..setting.choice import SupercellChoice, choose_supercell
from ..setting.scan import ScanResult
from .cascade import CascadeBudget, cascade_tree
from .classify import formula_units
from .levels import Reference, Run, channel_curvatures, channel_weights, explore_level
from .results import Exploration, ExploreSettings, ParentResult
from .store import RecordError, Store, digest, structure_digest


def setting_of(atoms: Atoms, supercell=None, kpoint=None, symprec: float = 1e-3,
               scan: ScanResult | None = None) -> Setting:
    """The setting an exploration runs in: k = 0 of the input cell, or the supercell
    ``supercell`` of the input cell (three integers or a 3×3 matrix), or — given only a
    ``kpoint`` — the smallest diagonal supercell of the primitive parent holding its star,
    or (``supercell="auto"``) the supercell of the primitive parent that holds the unstable
    stars of the instability ``scan`` (:func:`auto_supercell`)."""
    if isinstance(supercell, str):
        return supercell_setting(primitive_parent(atoms, symprec), auto_supercell(atoms, scan, symprec).matrix,
                                 symprec)
    sym = detect_symmetry(atoms, symprec=symprec)
    exact = detect_symmetry(symmetrized_atoms(sym), symprec=symprec)
    if supercell is None and kpoint is None:
        return k0_setting(exact)
    if supercell is None:
        prim, C = primitive_cell(exact)
        psym = detect_symmetry(prim, symprec=symprec)
        P = supercell_for_kpoint(psym, parse_kpoint(kpoint, psym))
        N = P @ np.linalg.inv(C)
        if not np.allclose(N, np.round(N)):  # not a supercell of the given cell: use the primitive
            return supercell_setting(psym, P, symprec)
        supercell = np.round(N).astype(int)
    return supercell_setting(exact, as_supercell_matrix(supercell), symprec)


# ----------------------------------------------------------------------------------
# supercell="auto": the instability scan of the relaxed parent chooses the setting

AUTO_GRID = 4  # N of the scan's N×N×N grid behind supercell="auto"
SCAN_SCHEMA = 1  # of the stored scan record (ScanResult.as_dict)


def primitive_parent(atoms: Atoms, symprec: float = 1e-3):
    """The primitive parent's Symmetry, as the supercell settings reduce any cell."""
    if isinstance(atoms, Atoms) and not atoms.pbc.all():
        raise SBSInputError("--supercell auto needs a crystal (pbc=True): a molecule has only its k = 0 setting")
    exact = detect_symmetry(symmetrized_atoms(detect_symmetry(atoms, symprec=symprec)), symprec=symprec)
    return detect_symmetry(primitive_cell(exact)[0], symprec=symprec)


def auto_supercell(atoms: Atoms, scan: ScanResult | None, symprec: float = 1e-3) -> SupercellChoice:
    """The supercell of the primitive parent of ``atoms`` holding the unstable stars of
    ``scan`` (:func:`~ase_sbs.setting.choice.choose_supercell`; refused in one line when
    it is too large). ``scan`` must be of that parent (the scan of the relaxed parent
    that :func:`break_symmetry` runs, or of ``atoms`` as given)."""
    if scan is None:
        raise SBSInputError("supercell='auto' needs the instability scan of the parent (break_symmetry runs it; "
                            "ase_sbs.scan computes it)")
    return choose_supercell(primitive_parent(atoms, symprec), scan.unstable_stars)


def scan_key(parent_key: str, step: float) -> str:
    """The store's key of the scan of a relaxed parent (``parent_key``)."""
    return f"scan-{digest(parent_key, AUTO_GRID, step, SCAN_SCHEMA)}"


def scan_fromdict(data) -> ScanResult:
    """A stored scan record, or :class:`~ase_sbs.explore.store.RecordError` (recomputed)."""
    try:
        if data.get("schema") != SCAN_SCHEMA:
            raise ValueError(f"schema {data.get('schema')!r}, not {SCAN_SCHEMA}")
        return ScanResult.fromdict(data)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise RecordError(f"not a scan record ({exc})") from exc


def auto_setting(atoms: Atoms, pot: Potential, s: ExploreSettings, store: Store, runner,
                 progress: bool = False) -> tuple[Setting, ParentResult, ScanResult, SupercellChoice]:
    """``supercell="auto"``: the parent relaxed in its primitive cell (as every
    exploration relaxes it), the instability scan of that parent (grid :data:`AUTO_GRID`
    and the special points, no path; from the store when done before), the supercell
    holding its unstable stars, and that setting."""
    psym = primitive_parent(atoms, s.symprec)
    base = supercell_setting(psym, np.eye(3, dtype=int), s.symprec)
    parent = relax_parent(base, pot, s, store, runner)
    key = scan_key(parent.key, s.curvature_step)
    scan = store.load_data(key, scan_fromdict)
    if scan is None:
        scan = scan_structure(parent.atoms, pot, runner, AUTO_GRID, step=s.curvature_step, progress=progress,
                              path=False, symprec=s.symprec)
        store.save_data(key, {"schema": SCAN_SCHEMA, **scan.as_dict()})
    choice = auto_supercell(atoms, scan, s.symprec)
    return supercell_setting(psym, choice.matrix, s.symprec), parent, scan, choice


def saved_scan(parent_key: str, out: str | None, step: float = 0.01) -> ScanResult | None:
    """The scan a ``supercell="auto"`` exploration stored in ``out`` for the relaxed
    parent ``parent_key`` (:attr:`ParentResult.key`), or None."""
    return None if out is None else Store(out).load_data(scan_key(parent_key, step), scan_fromdict)


def enumerate_isotropy(setting: Setting, channels: list) -> dict:
    """Every channel's isotropy subgroups (all dimensions), by label: done once, before
    any relaxation, so a channel that cannot be enumerated stops the run at once."""
    return {c.label: isotropy_subgroups(setting, c, max_fixed_dim=None) for c in channels}


def select_targets(setting: Setting, channels: list, targets, kpoint=None, isotropy: dict | None = None) -> list:
    """The targets of an exploration (module docstring, item 4); ``kpoint`` keeps the
    channels at that star; ``isotropy`` is :func:`enumerate_isotropy` when already
    done. Refuses names no channel reaches."""
    k = None if kpoint is None else parse_kpoint(kpoint, setting)
    selected = [c for c in channels if k is None or channel_matches_kpoint(c, k, setting)]
    if not selected:
        raise SBSInputError(f"no distortion channel of this setting lies at k = {kpoint}")
    isotropy = isotropy if isotropy is not None else enumerate_isotropy(setting, selected)
    if isinstance(targets, str) and targets == "auto":
        if setting.supercell is not None:
            selected = sorted((c for c in selected if c.unstable), key=lambda c: c.min_curvature)
        out, seen = [], set()
        for c in selected:
            for t in isotropy[c.label]:
                if t.maximal and t.mask not in seen:
                    seen.add(t.mask)
                    out.append(t)
        return out
    names = [t.strip() for t in targets.split(",") if t.strip()] if isinstance(targets, str) else list(targets)
    if setting.supercell is None:
        out = []
        for t in names:
            mask = resolve_target(setting, t)
            out.append(t if hasattr(t, "elements") else make_target(setting, mask))
        return out
    candidates, seen = [], set()
    for c in selected:
        for t in isotropy[c.label]:
            if t.fixed_dimension == 1 and t.mask not in seen:
                seen.add(t.mask)
                candidates.append(t)
    out = [t for t in candidates if any(matches(t, name) for name in names)]
    if not out:
        raise SBSInputError(f"none of {targets!r} is an isotropy subgroup (one-dimensional order parameter) "
                            "of the selected channels of this setting")
    return out


def break_symmetry(atoms: Atoms, calc="auto", targets="auto", mode: str = "seed", cell: str = "full",
                   out: str | None = None, progress: bool = True, device: str = "cpu",
                   supercell=None, kpoint=None, engine: str = "auto", engine_options: dict | None = None,
                   cascade: bool = False, max_depth: int = 3, budget: CascadeBudget | dict | None = None,
                   **settings) -> Exploration:
    """Find the lower-symmetry phases ``atoms`` breaks into under the potential ``calc``.

    Args:
        atoms: the high-symmetry parent (crystal or molecule).
        calc: ``auto``, ``emt``, ``7net-0``, a NequIP model file, a
            :class:`~ase_sbs.potentials.registry.Potential` or an ASE calculator.
        targets: ``auto`` (module docstring), or targets as a comma-separated string or a
            list (names, numbers, Targets).
        mode: ``seed`` (small bias, annealed away) or ``field`` (ramped up first).
        cell: ``full``, ``fixed`` or ``volume`` relaxation of crystals.
        out: directory for finished relaxations (resume); None keeps all in memory.
        device: ``cpu``, ``cuda`` or ``auto``, for the potential (when named) and the bias.
        supercell, kpoint: beyond k = 0: a supercell of the input cell (three integers or
            a 3×3 matrix) and/or one k-star (``R`` or three numbers); ``supercell="auto"``:
            the supercell of the primitive parent holding the unstable stars of the
            instability scan of the relaxed parent (:func:`auto_setting`).
        engine: ``auto`` (the batched engine, unless the potential cannot batch: then
            ASE), ``ase``, ``batched``, or a runner object (an
            :class:`~ase_sbs.relax.engine.Engine` or :class:`~ase_sbs.relax.ase_runner.ASERunner`).
        engine_options: keyword arguments of the Engine (optimizer, limits, fire, bfgs).
        cascade: from the phases found, explore their own unstable channels in the same
            setting, lowest phase first, down to ``max_depth`` levels
            (:mod:`ase_sbs.explore.cascade`); the tree is ``Exploration.tree``.
        budget: further limits of the cascade: a :class:`~ase_sbs.explore.cascade.CascadeBudget`
            or a dict of its fields (``max_relaxations``, ``max_seconds``, ``expand``,
            ``check``, ``width``); ``max_depth`` sets its depth.
        **settings: further :class:`~ase_sbs.explore.results.ExploreSettings` fields.
    """
    s = ExploreSettings(mode=mode, cell=cell, **settings)
    s.validate()
    if isinstance(budget, CascadeBudget):
        budget = replace(budget, max_depth=max_depth)
    else:
        try:
            budget = CascadeBudget(max_depth=max_depth, **(budget or {}))
        except TypeError as exc:
            raise SBSInputError(f"unknown cascade budget option: {exc}") from exc
    if cascade:
        budget.validate()
    auto = isinstance(supercell, str)
    if auto and supercell != "auto":
        raise SBSInputError(f"supercell is three integers, a 3x3 matrix or 'auto', got {supercell!r}")
    if auto:
        primitive_parent(atoms, s.symprec)  # a molecule is refused before the potential loads
    else:
        setting0 = setting_of(atoms, supercell, kpoint, s.symprec)
        channels0 = distortion_channels(setting0)
        isotropy = enumerate_isotropy(setting0, channels0)
    pot = calc if isinstance(calc, Potential) else get_potential(calc, atoms.get_chemical_symbols(), device)
    pot.check_covers(atoms.get_chemical_symbols())
    runner = make_runner(engine, pot, device, engine_options)
    store = Store(out)  # after everything that can refuse the input: a refused run leaves no directory
    if auto:  # the scan of the relaxed parent picks the setting, refused before any relaxation in it
        setting0, parent, _, _ = auto_setting(atoms, pot, s, store, runner, progress)
        channels0 = distortion_channels(setting0)
        isotropy = enumerate_isotropy(setting0, channels0)
    else:
        parent = relax_parent(setting0, pot, s, store, runner)
    setting = setting0.rescaled(parent.atoms)
    root_key = digest(parent.key, setting.order, None if setting.supercell is None else setting.supercell.tolist())
    channels, hessian = channel_curvatures(setting, channels0, root_key, pot, s, store, progress, runner)
    target_list = select_targets(setting, channels, targets, kpoint, isotropy)
    if isinstance(targets, str) and targets == "auto":
        target_list += coupled_targets(setting, [c for c in channels if c.unstable and _selected(c, setting, kpoint)])
    run = Run(potential=pot, settings=s, store=store, runner=runner, root=setting, root_channels=channels,
              root_k0_channels=channels if setting.supercell is None else distortion_channels(setting.parent),
              formula_unit_atoms=parent.natoms / parent.formula_units, progress=progress)
    reference = Reference(parent.name, parent.spacegroup_number, parent.point_group,
                          len(crystal_point_group_matrices(setting.parent)), parent.energy_per_atom, root_key)
    level = explore_level(setting, channels, target_list, reference, run, channel_weights(channels), hessian)
    tree = cascade_tree(level, run, budget) if cascade else None
    return Exploration(parent=parent, phases=level.phases, relaxations=level.relaxations, potential=pot.name,
                       settings=s, supercell=None if setting.supercell is None else setting.supercell.tolist(),
                       kpoint=None if kpoint is None else parse_kpoint(kpoint, setting).tolist(),
                       group_order=setting.order, channels=channels, targets=target_list,
                       runner=getattr(runner, "kind", "ase"), reused=store.reused, tree=tree)


def _selected(channel, setting: Setting, kpoint) -> bool:
    return kpoint is None or channel_matches_kpoint(channel, parse_kpoint(kpoint, setting), setting)


# ----------------------------------------------------------------------------------
# the parent and the channels


def relax_parent(setting: Setting, pot: Potential, s: ExploreSettings, store: Store, runner) -> ParentResult:
    """The parent (the primitive cell of a supercell setting, the input cell at k = 0)
    relaxed within its own group; from the store when it was relaxed before."""
    sym = setting.parent
    start = sym.atoms
    key = f"parent-{digest(pot.name, s.cell, s.release_fmax, s.parent_max_steps, s.symprec, structure_digest(start))}"
    result = store.load(key, ParentResult.fromdict)  # validated; a bad record is moved aside: None
    if result is not None:
        result.key = key
        _warn_if_noisy(pot, result.force_noise_eV_A, s)
        return result
    from ..analysis.diagnostics import equivariance_error

    noise = equivariance_error(pot.calc, start, trials=1, symprec=s.symprec).noise
    _warn_if_noisy(pot, noise, s)
    full = Symmetrizer(sym.operations.rotations, sym.operations.permutations)
    job = RelaxJob(start.copy(), [Stage(0.0, s.release_fmax, s.parent_max_steps)], cell=s.cell, symmetrizer=full)
    res = runner.relax([job])[0]
    if not res.converged[0]:
        raise SBSInputError(
            f"the parent did not converge within {s.parent_max_steps} steps at fmax={s.release_fmax} eV/Å "
            "inside its own symmetry; raise max_steps or check the structure"
        )
    atoms = res.atoms
    result = ParentResult(spacegroup_number=sym.spacegroup_number, spacegroup_symbol=sym.spacegroup_symbol,
                          point_group=sym.schoenflies, energy_eV=res.energy, natoms=len(atoms),
                          formula_units=formula_units(atoms), atoms=atoms, steps=res.steps[0],
                          force_noise_eV_A=noise, key=key)
    store.save(key, result.todict(), atoms)
    return result


def _warn_if_noisy(pot: Potential, noise: float, s: ExploreSettings) -> None:
    """Warn when the potential's own symmetry noise is comparable to the seed force."""
    if noise > 0.1 * s.seed_force:
        warnings.warn(
            f"{pot.name}: symmetry noise of the forces ({noise:.2g} eV/Å) is comparable to the "
            f"seed force ({s.seed_force} eV/Å); forces and stress are symmetrized onto each target",
            stacklevel=3,
        )
