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

import sys
import warnings
from dataclasses import asdict

import numpy as np
from ase import Atoms

from ..core.symmetrizer import Symmetrizer
from ..core.symmetry import (
    crystal_point_group_matrices,
    detect_symmetry,
    symmetrized_atoms,
)
from ..errors import SBSInputError
from ..potentials.registry import Potential, get_potential, torch_energy
from ..relax.jobs import RelaxJob, Stage
from ..relax.runners import make_runner
from ..sbs.resolve import matches, resolve_target
from ..sbs.sets import symmetry_breaking_set
from ..setting.cells import primitive_cell, unfold
from ..setting.channels import channel_matches_kpoint, distortion_channels
from ..setting.curvature import channel_curvature
from ..setting.isotropy import isotropy_subgroups, make_target
from ..setting.kpoints import parse_kpoint, supercell_for_kpoint
from ..setting.setting import (
    Setting,
    as_supercell_matrix,
    k0_setting,
    supercell_setting,
)
from .classify import (
    cell_multiplication,
    classify,
    formula_units,
    group_name,
    max_displacement,
    max_strain,
    relaxation_status,
    variants,
)
from .plans import MemberPlan, member_job, member_plans
from .results import (
    Exploration,
    ExploreSettings,
    ParentResult,
    Phase,
    Relaxation,
    record,
)
from .store import Store, digest, safe_name, structure_digest


def setting_of(atoms: Atoms, supercell=None, kpoint=None, symprec: float = 1e-3) -> Setting:
    """The setting an exploration runs in: k = 0 of the input cell, or the supercell
    ``supercell`` of the input cell (three integers or a 3×3 matrix), or — given only a
    ``kpoint`` — the smallest diagonal supercell of the primitive parent holding its star."""
    sym = detect_symmetry(atoms, symprec=symprec)
    exact = detect_symmetry(symmetrized_atoms(sym), symprec=symprec)
    if supercell is None and kpoint is None:
        return k0_setting(exact)
    if supercell is None:
        prim, C = primitive_cell(exact)
        psym = detect_symmetry(prim, symprec=symprec)
        P = supercell_for_kpoint(psym, parse_kpoint(kpoint))
        N = P @ np.linalg.inv(C)
        if not np.allclose(N, np.round(N)):  # not a supercell of the given cell: use the primitive
            return supercell_setting(psym, P, symprec)
        supercell = np.round(N).astype(int)
    return supercell_setting(exact, as_supercell_matrix(supercell), symprec)


def enumerate_isotropy(setting: Setting, channels: list) -> dict:
    """Every channel's isotropy subgroups (all dimensions), by label: done once, before
    any relaxation, so a channel that cannot be enumerated stops the run at once."""
    return {c.label: isotropy_subgroups(setting, c, max_fixed_dim=None) for c in channels}


def select_targets(setting: Setting, channels: list, targets, kpoint=None, isotropy: dict | None = None) -> list:
    """The targets of an exploration (module docstring, item 4); ``kpoint`` keeps the
    channels at that star; ``isotropy`` is :func:`enumerate_isotropy` when already
    done. Refuses names no channel reaches."""
    k = None if kpoint is None else parse_kpoint(kpoint)
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
            a 3×3 matrix) and/or one k-star (``R`` or three numbers).
        engine: ``auto`` (the batched engine, unless the potential cannot batch: then
            ASE), ``ase``, ``batched``, or a runner object (an
            :class:`~ase_sbs.relax.engine.Engine` or :class:`~ase_sbs.relax.ase_runner.ASERunner`).
        engine_options: keyword arguments of the Engine (optimizer, limits, fire, bfgs).
        **settings: further :class:`~ase_sbs.explore.results.ExploreSettings` fields.
    """
    s = ExploreSettings(mode=mode, cell=cell, **settings)
    s.validate()
    setting0 = setting_of(atoms, supercell, kpoint, s.symprec)
    channels0 = distortion_channels(setting0)
    isotropy = enumerate_isotropy(setting0, channels0)
    store = Store(out)
    pot = calc if isinstance(calc, Potential) else get_potential(calc, atoms.get_chemical_symbols(), device)
    pot.check_covers(atoms.get_chemical_symbols())
    runner = make_runner(engine, pot, device, engine_options)
    parent = relax_parent(setting0, pot, s, store, runner)
    setting = setting0.rescaled(parent.atoms)
    channels = channel_curvatures(setting, channels0, pot, s, store, progress)
    target_list = select_targets(setting, channels, targets, kpoint, isotropy)
    base = digest(pot.name, asdict(s), structure_digest(setting.atoms), setting.order)
    descriptors: dict = {}
    plans: list[MemberPlan] = []
    for t in target_list:
        plans += member_plans(setting, symmetry_breaking_set(setting, t, max_l=s.max_l, channels=channels), s,
                              descriptors)
    relaxations: list = [None] * len(plans)
    pending = []
    bar = _progress(len(plans), progress)
    for i, plan in enumerate(plans):
        key = (f"{safe_name(plan.target)}-{digest(plan.target_elements)[:6]}-m{plan.member}"
               f"{'' if plan.sign > 0 else 'neg'}-{base}")
        rec = store.load(key)
        if rec is not None:
            relaxations[i] = Relaxation(**rec)
            bar.update(1)
        elif not plan.active:
            relaxations[i] = _inactive(plan, parent, setting)
            bar.update(1)
        else:
            pending.append((i, key, plan))

    def done(k, result):
        i, key, plan = pending[k]
        r = _relaxation(plan, result, parent, setting, s)
        store.save(key, record(r), r.atoms)
        relaxations[i] = r
        bar.update(1)

    if pending:
        runner.relax([member_job(setting, plan, s) for _, _, plan in pending], on_done=done)
    bar.close()
    phases = _phases(setting, plans, relaxations, parent, s)
    _attach_modes(phases, setting, channels)
    return Exploration(parent=parent, phases=phases, relaxations=relaxations, potential=pot.name, settings=s,
                       supercell=None if setting.supercell is None else setting.supercell.tolist(),
                       kpoint=None if kpoint is None else parse_kpoint(kpoint).tolist(), group_order=setting.order,
                       channels=channels, targets=target_list, runner=getattr(runner, "kind", "ase"),
                       reused=store.reused)


# ----------------------------------------------------------------------------------
# the parent and the channels


def relax_parent(setting: Setting, pot: Potential, s: ExploreSettings, store: Store, runner) -> ParentResult:
    """The parent (the primitive cell of a supercell setting, the input cell at k = 0)
    relaxed within its own group; from the store when it was relaxed before."""
    sym = setting.parent
    start = sym.atoms
    key = f"parent-{digest(pot.name, s.cell, s.release_fmax, s.parent_max_steps, s.symprec, structure_digest(start))}"
    rec = store.load(key)
    if rec is not None:
        atoms = rec.pop("atoms")
        result = ParentResult(atoms=atoms, **rec)
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
                          force_noise_eV_A=noise)
    store.save(key, record(result), atoms)
    return result


def channel_curvatures(setting: Setting, channels: list, pot: Potential, s: ExploreSettings, store: Store,
                       progress: bool = False) -> list:
    """Every channel with its curvature at the relaxed parent (from the store when known)."""
    key = f"curvatures-{digest(pot.name, s.curvature_step, structure_digest(setting.atoms), setting.order)}"
    known = store.load_data(key) or {}
    calc = torch_energy(pot.calc) or pot.calc
    out = []
    bar = _progress(len(channels), progress, "curvatures", "channel")
    for c in channels:
        if c.label not in known:
            known[c.label] = list(channel_curvature(setting, c, calc, s.curvature_step))
            store.save_data(key, known)
        out.append(c.with_curvature(known[c.label]))
        bar.update(1)
    bar.close()
    return out


def _warn_if_noisy(pot: Potential, noise: float, s: ExploreSettings) -> None:
    """Warn when the potential's own symmetry noise is comparable to the seed force."""
    if noise > 0.1 * s.seed_force:
        warnings.warn(
            f"{pot.name}: symmetry noise of the forces ({noise:.2g} eV/Å) is comparable to the "
            f"seed force ({s.seed_force} eV/Å); forces and stress are symmetrized onto each target",
            stacklevel=3,
        )


# ----------------------------------------------------------------------------------
# relaxations and phases


def _common(plan: MemberPlan) -> dict:
    b = np.asarray(plan.b, dtype=float)
    return dict(target=plan.target, member=plan.member, sign=plan.sign, irreps=plan.irreps,
                sbs_object=b.tolist(), natoms=len(plan.folded.atoms), channels=plan.channels)


def _inactive(plan: MemberPlan, parent: ParentResult, setting: Setting) -> Relaxation:
    sym = setting.parent
    atoms = plan.folded.atoms.copy()
    return Relaxation(**_common(plan), status="bias_inactive", energy_eV=parent.energy_per_atom * len(atoms),
                      spacegroup_number=sym.spacegroup_number, spacegroup_symbol=sym.spacegroup_symbol,
                      point_group=sym.schoenflies, point_group_order=sym.order, ladder={}, strength_eV=0.0,
                      steps={}, converged=True, max_displacement_A=0.0, cell_multiplication=1, atoms=atoms)


def _relaxation(plan: MemberPlan, result, parent: ParentResult, setting: Setting, s: ExploreSettings) -> Relaxation:
    """Classify a finished member relaxation."""
    factors = s.factors
    steps = {f"lambda_x{f:g}": n for f, n in zip(factors, result.steps)}
    steps["release"] = result.steps[-1]
    field_sg = None
    if s.mode == "field":
        fs, _ = classify(result.snapshots[factors.index(max(factors))], s.classify_symprec)
        field_sg = group_name(fs)
    atoms = result.atoms
    found, ladder = classify(atoms, s.classify_symprec)
    start = plan.folded.atoms
    status = relaxation_status(start, atoms, found, setting.parent, result.energy / len(atoms),
                               parent.energy_per_atom, bool(result.converged[-1]), s.energy_tol)
    return Relaxation(
        **_common(plan), status=status, energy_eV=result.energy, spacegroup_number=found.spacegroup_number,
        spacegroup_symbol=found.spacegroup_symbol, point_group=found.crystal_class or found.schoenflies,
        point_group_order=len(crystal_point_group_matrices(found)), ladder=ladder, strength_eV=plan.lam0,
        steps=steps, converged=bool(result.converged[-1]), max_displacement_A=max_displacement(start, atoms),
        max_strain=max_strain(start, atoms), field_spacegroup=field_sg,
        cell_multiplication=cell_multiplication(found, len(setting.parent.atoms)) if setting.periodic else 1,
        atoms=atoms)


def _phases(setting: Setting, plans: list[MemberPlan], relaxations: list[Relaxation], parent: ParentResult,
            s: ExploreSettings) -> list[Phase]:
    """Group broken relaxations by symmetry and energy; each phase in the setting's cell
    with its variants against G."""
    groups: list[list[int]] = []
    for i, r in enumerate(relaxations):
        if r.status != "broken":
            continue
        for g in groups:
            r0 = relaxations[g[0]]
            if (r0.spacegroup_number, r0.point_group) == (r.spacegroup_number, r.point_group) and abs(
                    r0.energy_per_atom - r.energy_per_atom) < s.energy_tol:
                g.append(i)
                break
        else:
            groups.append([i])
    fu_atoms = parent.natoms / parent.formula_units
    phases = []
    for g in groups:
        i = min(g, key=lambda k: relaxations[k].energy_per_atom)
        r = relaxations[i]
        structure = unfold(plans[i].folded, r.atoms)
        n_variants, images = variants(setting, structure, tol=s.classify_symprec)
        de = r.energy_per_atom - parent.energy_per_atom
        phases.append(Phase(
            target=relaxations[g[0]].target, targets=sorted({relaxations[k].target for k in g}),
            spacegroup_number=r.spacegroup_number, spacegroup_symbol=r.spacegroup_symbol,
            point_group=r.point_group, energy_per_atom_eV=r.energy_per_atom, delta_energy_per_atom_eV=de,
            delta_energy_per_formula_unit_eV=de * fu_atoms, n_variants=n_variants, spontaneous=de < -s.energy_tol,
            irreps=r.irreps, lattice=[float(x) for x in structure.cell.cellpar()] if structure.pbc.all() else None,
            max_displacement_A=r.max_displacement_A, steps=int(sum(r.steps.values())), atoms=structure,
            variants=images, cell_multiplication=r.cell_multiplication,
            channels=sorted({c for k in g for c in relaxations[k].channels})))
    phases.sort(key=lambda p: p.delta_energy_per_atom_eV)
    return phases


def _attach_modes(phases: list[Phase], setting: Setting, channels: list) -> None:
    """Each phase's symmetry-mode decomposition against the parent (:mod:`ase_sbs.analysis.modes`)."""
    from ..analysis.modes import decompose

    parent = setting.parent
    k0 = channels if setting.supercell is None else distortion_channels(parent)
    cache = None if setting.supercell is None else (setting, channels)
    for ph in phases:
        try:
            ph.modes = decompose(ph.atoms, parent, symprec=parent.symprec, channels=k0, max_strain=0.5,
                                 supercell_channels=cache).as_dict()
        except SBSInputError as exc:
            ph.modes = {"error": str(exc)}


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: int, enabled: bool, desc: str = "relaxations", unit: str = "relax"):
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)


__all__ = ["break_symmetry", "setting_of", "select_targets", "relax_parent", "channel_curvatures"]
