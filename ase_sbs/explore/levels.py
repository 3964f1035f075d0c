"""One level of an exploration: a setting explored from one reference structure — the
relaxed root parent, or (in a cascade) a phase found before, with its own group K.

For the level's targets: the plans of every SBS member (:mod:`ase_sbs.explore.plans`),
the relaxations (taken from the store when finished before, else run by the runner and
saved as each one finishes), their classification against the level's reference (a
relaxation that comes back to the reference's group is ``returned``), and the phases:
broken relaxations grouped by symmetry and energy, each written in the setting's cell
with its domain variants counted against the root's group G and its symmetry modes
against the root parent.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from ..core.symmetry import crystal_point_group_matrices
from ..errors import SBSInputError
from ..potentials.batched import evaluate_structures
from ..potentials.registry import Potential, torch_energy
from ..sbs.sets import symmetry_breaking_set
from ..setting.cells import unfold
from ..setting.curvature import calculator_gradients, gradient_vector, setting_hessian
from ..setting.setting import Setting
from .classify import (
    cell_multiplication,
    classify,
    Distortion,
    distortion,
    elements_mapping,
    group_name,
    max_displacement,
    max_strain,
    one_phase,
    relaxation_status,
    variants,
)
from .plans import MemberPlan, member_job, member_plans
from .results import ExploreSettings, Phase, Relaxation
from .store import RecordError, Store, digest, finite_numbers, is_of_type, safe_name


PROTOCOL = 2  # part of every relaxation's key: 2 = BFGS from the reference's Hessian, kept across stages


@dataclass
class Run:
    """What every level of one exploration shares: the potential, settings, store and
    runner, the root setting with its channels and the root parent's k = 0 channels
    (modes against the root parent), and the atoms per formula unit."""

    potential: Potential
    settings: ExploreSettings
    store: Store
    runner: object
    root: Setting
    root_channels: list
    root_k0_channels: list
    formula_unit_atoms: float
    progress: bool = False
    descriptors: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Reference:
    """The structure a level starts from: its group's type, its energy (eV/atom), and
    ``key``, what identifies it in the store (the key of the relaxation that produced
    it, with the setting at the root). Keys of the level's own results derive from it,
    not from the structure's coordinates, so a rerun that reads a structure back from
    disk (rounded) or relaxes it again (a different batch) finds the same keys."""

    name: str
    spacegroup_number: int | None
    point_group: str
    point_group_order: int
    energy_per_atom: float
    key: str


@dataclass
class Level:
    """A setting explored from a reference: channels (with curvatures), targets, every
    member's plan and relaxation, and the phases below the reference."""

    setting: Setting
    reference: Reference
    channels: list
    targets: list
    plans: list
    relaxations: list
    phases: list


@dataclass
class PlannedLevel:
    """A level before its relaxations run: every member's plan, the relaxations already
    known (from the store, or bias-inactive), and the jobs still to run."""

    setting: Setting
    reference: Reference
    channels: list
    targets: list
    plans: list
    relaxations: list
    pending: list  # (index into plans, store key, RelaxJob)


def plan_level(setting: Setting, channels: list, targets: list, reference: Reference, run: Run,
               weights: dict | None = None, hessian: np.ndarray | None = None) -> PlannedLevel:
    """The plans and jobs of a level (module docstring). ``weights`` sizes the components
    of coupled targets' objects by channel; ``hessian`` (at the reference,
    :func:`channel_curvatures`) is each relaxation's initial Hessian."""
    s = run.settings
    base = digest(run.potential.name, asdict(s), reference.key, setting.order, PROTOCOL)
    plans: list[MemberPlan] = []
    for t in targets:
        B = symmetry_breaking_set(setting, t, max_l=s.max_l, channels=channels, per_atom=True if t.coupled else None,
                                  weights=weights)
        plans += member_plans(setting, B, s, run.descriptors)
    relaxations: list = [None] * len(plans)
    pending = []
    for i, plan in enumerate(plans):
        key = (f"{safe_name(plan.target)}-{digest(plan.target_elements)[:6]}-m{plan.member}"
               f"{'' if plan.sign > 0 else 'neg'}-{base}")
        rec = run.store.load(key, Relaxation.fromdict)  # validated; a bad record is moved aside: None
        if rec is not None:
            rec.key = key
            relaxations[i] = rec
        elif not plan.active:
            relaxations[i] = _inactive(plan, reference)
        else:
            pending.append((i, key, member_job(setting, plan, s, hessian)))
    return PlannedLevel(setting, reference, channels, targets, plans, relaxations, pending)


MERGE_WITHIN = 0.03  # Å: a relaxation this close to a phase its level found, nearly still, is that phase
MERGE_FMAX = 0.05  # eV/Å: "nearly still"


class KnownPhases:
    """The phases a level's relaxations have ended in so far, for the others to stop at.

    A running relaxation (in its folded cell, unfolded into the setting's) stops when it
    is within :data:`MERGE_WITHIN` Å of one of them up to G (:func:`~ase_sbs.explore.classify.same_phase`,
    after a G-invariant fingerprint — sorted displacement lengths per species and the
    strain's eigenvalues — rules most out), its largest generalized force below
    :data:`MERGE_FMAX` and its energy per atom (without the bias) within 3 ``energy_tol``:
    it would end there, so it is recorded as ``merged`` into that phase.

    Only into a phase no more symmetric than the running relaxation's own target K_j
    (|G_P| ≤ |K_j|, G_P the elements of G that map the phase onto itself within
    :data:`MERGE_WITHIN`): a more symmetric phase lies in Fix(K_j) but may be a saddle
    there, and a relaxation passing close to it, nearly still, can still leave it along
    the directions that break G_P down to K_j (cubic CaZrO3 under SevenNet-0 in the
    10-atom Γ ⊕ R setting: the R3c target's relaxation passes within 0.03 Å of the R3m
    phase before its tilts grow, and ends 0.13 eV/f.u. below it).

    And only into a phase found by a relaxation earlier in the level's order, so that
    which relaxations stop does not depend on which finished first: a rerun that
    recomputes one damaged record ends as the clean run did."""

    def __init__(self, setting: Setting, energy_tol: float):
        self.setting = setting
        self.energy_tol = energy_tol
        self.phases: list = []  # (key, distortion, energy per atom, fingerprint, |G_P|, index)

    def fingerprint(self, d: Distortion) -> np.ndarray:
        """The G-invariant fingerprint of the distortion ``d`` = (u, ε)."""
        u, eps = d
        labels = self.setting.labels
        lengths = np.linalg.norm(u, axis=1)
        parts = [np.sort(lengths[labels == z]) for z in np.unique(labels)]
        scale = max(self.setting.atoms.cell.lengths()) if self.setting.periodic else 0.0
        return np.concatenate(parts + [np.linalg.eigvalsh(eps) * scale])

    def symmetry_order(self, d: Distortion) -> int:
        """|G_P|: the elements of the setting's group G that map the distortion ``d`` =
        (u, ε) onto itself within :data:`MERGE_WITHIN` Å (strain times the cell's largest
        length)."""
        return sum(1 for _ in elements_mapping(self.setting, d, d, MERGE_WITHIN))

    def add(self, key: str, structure, energy_per_atom: float, index: int = 0) -> None:
        """A phase the level's relaxation number ``index`` (in the level's order) ended in;
        ``structure`` in the setting's cell."""
        d = distortion(self.setting, structure)
        self.phases.append((key, d, energy_per_atom, self.fingerprint(d), self.symmetry_order(d), index))

    def match(self, structure, energy_per_atom: float, target_order: int, before: int | None = None) -> str | None:
        """The key of a known phase the running ``structure`` has reached, of a symmetry
        no higher than its target's (``target_order`` = |K_j|) and, with ``before``, found
        by a relaxation earlier in the level's order; None when there is none."""
        if not self.phases:
            return None
        d = distortion(self.setting, structure)
        fp = self.fingerprint(d)
        for key, known, e, kfp, order, index in self.phases:
            if before is not None and index >= before:
                continue
            if order <= target_order and abs(e - energy_per_atom) < 3 * self.energy_tol \
                    and np.abs(kfp - fp).max() <= 2 * MERGE_WITHIN \
                    and next(elements_mapping(self.setting, known, d, MERGE_WITHIN), None) is not None:
                return key
        return None


def run_levels(planned: list[PlannedLevel], run: Run) -> list[Level]:
    """Run the pending relaxations of several levels in one call of the runner (a batch
    fills from all of them), save each as it finishes, and classify every level; a
    relaxation that reaches a phase its level already found stops there (:class:`KnownPhases`),
    except with ``all_variants``, where each member is relaxed to its own end (the variants of
    one phase are what the user asked for)."""
    work = [(lv, i, key, job) for lv in planned for i, key, job in lv.pending]
    bar = progress_bar(len(work), run.progress and bool(work))
    known = {id(lv): KnownPhases(run.root, run.settings.energy_tol) for lv in planned}
    for lv in planned:
        for i, r in enumerate(lv.relaxations):
            if r is not None and r.status == "broken":
                known[id(lv)].add(r.key, unfold(lv.plans[i].folded, r.atoms), r.energy_per_atom, i)
    reached: dict = {}

    def monitor_for(k):
        lv, i, _, _ = work[k]

        def monitor(atoms, fmax, energy):
            if fmax > MERGE_FMAX:
                return False
            plan = lv.plans[i]
            key = known[id(lv)].match(unfold(plan.folded, atoms), energy / len(atoms), plan.stabilizer.bit_count(),
                                      before=i)
            if key is not None:
                reached[k] = key
            return key is not None
        return monitor

    def done(k, result):
        lv, i, key, _ = work[k]
        r = _relaxation(lv.plans[i], result, lv.reference, lv.setting, run.settings, key, reached.get(k))
        run.store.save(key, r.todict(), r.atoms)
        lv.relaxations[i] = r
        if r.status == "broken":
            known[id(lv)].add(key, unfold(lv.plans[i].folded, r.atoms), r.energy_per_atom, i)
        bar.update(1)

    if work:
        jobs = [job if run.settings.all_variants else replace(job, monitor=monitor_for(k))
                for k, (*_, job) in enumerate(work)]
        run.runner.relax(jobs, on_done=done)
    bar.close()
    return [Level(lv.setting, lv.reference, lv.channels, lv.targets, lv.plans, lv.relaxations,
                  _phases(lv.plans, lv.relaxations, lv.reference, run)) for lv in planned]


def explore_level(setting: Setting, channels: list, targets: list, reference: Reference, run: Run,
                  weights: dict | None = None, hessian: np.ndarray | None = None) -> Level:
    """Relax every target of a level and classify the results (module docstring)."""
    return run_levels([plan_level(setting, channels, targets, reference, run, weights, hessian)], run)[0]


def _common(plan: MemberPlan) -> dict:
    b = np.asarray(plan.b, dtype=float)
    return dict(target=plan.target, member=plan.member, sign=plan.sign, irreps=plan.irreps,
                sbs_object=b.tolist(), natoms=len(plan.folded.atoms), channels=plan.channels)


def _inactive(plan: MemberPlan, reference: Reference) -> Relaxation:
    atoms = plan.folded.atoms.copy()
    symbol = reference.name.split(" (")[0] if reference.spacegroup_number else None
    return Relaxation(**_common(plan), status="bias_inactive", energy_eV=reference.energy_per_atom * len(atoms),
                      spacegroup_number=reference.spacegroup_number, spacegroup_symbol=symbol,
                      point_group=reference.point_group, point_group_order=reference.point_group_order, ladder={},
                      strength_eV=0.0, steps={}, converged=True, max_displacement_A=0.0, cell_multiplication=1,
                      atoms=atoms)


def _relaxation(plan: MemberPlan, result, reference: Reference, setting: Setting, s: ExploreSettings,
                key: str, merged_into: str | None = None) -> Relaxation:
    """Classify a finished member relaxation (saved under ``key``); one its monitor stopped
    is ``merged`` into the relaxation ``merged_into``."""
    factors = s.factors
    steps = {f"lambda_x{f:g}": n for f, n in zip(factors, result.steps)}
    if len(result.steps) > len(factors):  # a relaxation stopped early has no release stage
        steps["release"] = result.steps[-1]
    field_sg = None
    if s.mode == "field":
        fs, _ = classify(result.snapshots[factors.index(max(factors))], s.classify_symprec)
        field_sg = group_name(fs)
    atoms = result.atoms
    found, ladder = classify(atoms, s.classify_symprec)
    start = plan.folded.atoms
    order = len(crystal_point_group_matrices(found))
    status = relaxation_status(start, atoms, found, order, reference.spacegroup_number, reference.point_group_order,
                               result.energy / len(atoms), reference.energy_per_atom, bool(result.converged[-1]),
                               s.energy_tol, all(result.converged))
    if result.stopped and merged_into is not None:
        status = "merged"
    return Relaxation(
        **_common(plan), status=status, energy_eV=result.energy, spacegroup_number=found.spacegroup_number,
        spacegroup_symbol=found.spacegroup_symbol, point_group=found.crystal_class or found.schoenflies,
        point_group_order=order, ladder=ladder, strength_eV=plan.lam0,
        steps=steps, converged=bool(result.converged[-1]), max_displacement_A=max_displacement(start, atoms),
        max_strain=max_strain(start, atoms), field_spacegroup=field_sg, stages_converged=list(result.converged),
        cell_multiplication=cell_multiplication(found, len(setting.parent.atoms)) if setting.periodic else 1,
        key=key, merged_into=merged_into if status == "merged" else None, atoms=atoms)


def _phases(plans: list[MemberPlan], relaxations: list[Relaxation], reference: Reference, run: Run) -> list[Phase]:
    """Broken relaxations grouped into phases by the one rule of :func:`~ase_sbs.explore.classify.one_phase`
    (every target that reached a phase listed); each phase named by its most symmetric
    member (an end a hair off a higher symmetry is that phase), in the setting's cell, with
    its variants against the root's G; lowest first."""
    s = run.settings
    broken = [i for i, r in enumerate(relaxations) if r.status == "broken"]
    structures = {i: unfold(plans[i].folded, relaxations[i].atoms) for i in broken}
    groups: list[list[int]] = []
    for i in broken:
        r = relaxations[i]
        for g in groups:
            r0 = relaxations[g[0]]
            if one_phase(run.root, structures[g[0]], r0, structures[i], r, s.energy_tol):
                g.append(i)
                break
        else:
            groups.append([i])
    keys = {relaxations[i].key: g for g in groups for i in g}
    for i, r in enumerate(relaxations):
        if r.status == "merged" and r.merged_into in keys:
            keys[r.merged_into].append(i)  # listed with the phase it reached
    phases = []
    for g in groups:
        i = max((k for k in g if relaxations[k].status == "broken"),
                key=lambda k: (relaxations[k].point_group_order, relaxations[k].spacegroup_number or 0,
                               -relaxations[k].energy_per_atom))
        r = relaxations[i]
        structure = structures[i]
        n_variants, images = variants(run.root, structure, tol=s.classify_symprec)
        de = r.energy_per_atom - reference.energy_per_atom
        phases.append(Phase(
            target=relaxations[g[0]].target, targets=sorted({relaxations[k].target for k in g}),
            spacegroup_number=r.spacegroup_number, spacegroup_symbol=r.spacegroup_symbol,
            point_group=r.point_group, energy_per_atom_eV=r.energy_per_atom, delta_energy_per_atom_eV=de,
            delta_energy_per_formula_unit_eV=de * run.formula_unit_atoms, n_variants=n_variants,
            spontaneous=de < -s.energy_tol, irreps=r.irreps,
            lattice=[float(x) for x in structure.cell.cellpar()] if structure.pbc.all() else None,
            max_displacement_A=r.max_displacement_A, steps=int(sum(r.steps.values())), atoms=structure,
            variants=images, cell_multiplication=r.cell_multiplication,
            channels=sorted({c for k in g for c in relaxations[k].channels}), relaxation_key=r.key,
            ladder=dict(r.ladder)))
    phases.sort(key=lambda p: p.delta_energy_per_atom_eV)
    attach_modes(phases, run)
    return phases


def attach_modes(phases: list[Phase], run: Run) -> None:
    """Each phase's symmetry-mode decomposition against the root parent
    (:mod:`ase_sbs.analysis.modes`)."""
    from ..analysis.modes import decompose

    root = run.root
    cache = None if root.supercell is None else (root, run.root_channels)
    cell = np.eye(3, dtype=int) if root.supercell is None else root.supercell  # phases are in the setting's cell
    for ph in phases:
        try:
            ph.modes = decompose(ph.atoms, root.parent, symprec=root.parent.symprec, channels=run.root_k0_channels,
                                 max_strain=0.5, supercell_channels=cache, cell_in_parent=cell).as_dict()
        except SBSInputError as exc:
            ph.modes = {"error": str(exc)}


CURVATURE_METHOD = "symmetry-reduced Hessian"  # part of the store key: another method recomputes


def channel_curvatures(setting: Setting, channels: list, origin: str, pot: Potential, s: ExploreSettings,
                       store: Store, progress: bool = False, runner=None) -> tuple[list, np.ndarray]:
    """Every channel with its curvature at the setting's structure, and the Hessian they
    come from (:mod:`ase_sbs.setting.curvature`), from the store when known (``origin`` is
    the :attr:`Reference.key` of the structure). The displaced structures go through
    ``runner``'s batched potential when it has one (one batch on a GPU), else through
    the potential's calculator; an eager NequIP model gives exact products instead."""
    key = f"curvatures-{digest(pot.name, s.curvature_step, origin, setting.order, CURVATURE_METHOD)}"
    known = store.load_data(key, curvatures_fromdict)
    H = store.load_array(key, (setting.dimension, setting.dimension))
    if known is None or H is None or any(c.label not in known for c in channels):
        energy = torch_energy(pot.calc)
        batched = getattr(runner, "potential", None)
        batched = batched if getattr(batched, "batched", False) else None
        single = calculator_gradients(setting, pot.calc)

        def gradients(structures):
            bar = progress_bar(len(structures), progress, "curvatures", "probe")
            out = []
            step = 8 if batched is not None else 1
            for k in range(0, len(structures), step):
                chunk = structures[k:k + step]
                if batched is not None:
                    results = evaluate_structures(batched, chunk, runner.budget()[0], runner.device)
                    out += [gradient_vector(setting, a, f, st if setting.periodic else None)
                            for a, (_, f, st) in zip(chunk, results)]
                else:
                    out += single(chunk)
                bar.update(len(chunk))
            bar.close()
            return out

        hessian = setting_hessian(setting, energy or pot.calc, s.curvature_step, None if energy else gradients)
        H = hessian.matrix
        known = {c.label: list(hessian.curvatures(c, setting.order)) for c in channels}
        store.save_array(key, H)
        store.save_data(key, {"schema": CURVATURES_SCHEMA, "curvatures": known})
    return [c.with_curvature(known[c.label]) for c in channels], H


CURVATURES_SCHEMA = 1  # of the record {"schema": 1, "curvatures": {label: [κ, ...]}}


def curvatures_fromdict(data) -> dict:
    """The curvatures by channel label in a curvatures record, validated when the store
    reads it (:mod:`ase_sbs.explore.store`): ``{"schema": 1, "curvatures": {label: [κ,
    ...]}}``, or the labels alone as written before versions (version 1); each label's
    curvatures a non-empty list of finite numbers. :class:`~ase_sbs.explore.store.RecordError`
    otherwise (the record is then recomputed)."""
    if isinstance(data, dict) and "schema" in data:
        if not is_of_type(data["schema"], int) or data["schema"] != CURVATURES_SCHEMA:
            raise RecordError(f"schema version {data['schema']!r:.40}; this version reads curvature records "
                              f"of version {CURVATURES_SCHEMA}")
        data = data.get("curvatures")
    if not isinstance(data, dict):
        raise RecordError(f"a JSON {type(data).__name__}, not curvatures by channel (an object)")
    for label, values in data.items():
        if not (finite_numbers(values) and values and not any(isinstance(v, list) for v in values)):
            raise RecordError(f"the curvatures of channel {label!r} are {values!r:.40}, not a list of finite numbers")
    return data


def channel_weights(channels: list) -> dict:
    """The size of each channel's component when a coupled order parameter is seeded:
    √|κ| of its most negative curvature (Landau: an unstable mode's amplitude grows as
    √(−κ) for comparable quartic terms), by label."""
    return {c.label: float(np.sqrt(max(-(c.min_curvature or 0.0), 1e-3))) for c in channels}


class _NoBar:
    def update(self, n):
        pass

    def close(self):
        pass


def progress_bar(total: int, enabled: bool, desc: str = "relaxations", unit: str = "relax"):
    """A progress bar on stderr (tqdm), or one that shows nothing."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False)
