"""Committees of potentials in explorations and screens
(:mod:`ase_sbs.explore.committee` has the mathematics).

``calc`` names several potentials as a comma-separated text (``"7net-0,7net-l3i5,chgnet"``,
as ``--calc`` takes it) or a list (names, :class:`~ase_sbs.potentials.registry.Potential`
objects or ASE calculators): :func:`committee_potentials` checks the names before
anything runs. Each potential explores the parent with the same settings; the compared
structure of each (:func:`compared`) is then relaxed within its group under every other
potential, and the ΔE matrix and the agreement follow.

In a screen (:func:`~ase_sbs.screen.screen.screen`), each (parent, potential) is one
exploration task with its own parent rows (tagged ``potential``; its own settings hash,
so a rerun skips every finished pair), and each parent gets one committee row once all
its potentials have rows (``kind=committee``, :func:`committee_keys`): ``name``,
``potentials`` (``7net-0,chgnet``), ``n_potentials``, ``agree``, ``same_sg``,
``spread`` (eV per formula unit: the largest difference between a potential's own
ground state and another's ground state under it), ``tolerance`` (eV per formula unit),
and per potential ``sg_<key>`` and ``dE_<key>`` (its ground state's space group and ΔE
in eV per formula unit against its own relaxed parent; ``<key>`` is the potential's
name in lower case with every character other than a letter or digit made ``_``:
``sg_7net_mf_0_r2scan``); its ``data`` is the committee's JSON
(:meth:`~ase_sbs.explore.committee.Committee.as_dict`) with ``parent_rows``
(potential: row id). Its ``settings_hash`` is a digest of the pairs' settings hashes
and the tolerance: a rerun skips it unless one of its pairs was explored again.

The evaluations run as tasks of their own (one per parent and potential: the other
potentials' structures relaxed under it), on the screen's Dask workers or in this
process; only the client writes the database.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ase import Atoms

from ..core.files import json_safe
from ..errors import SBSInputError
from ..core.structure import formula
from ..explore.committee import (
    TOLERANCE,
    Committee,
    Evaluation,
    Member,
    committee_of,
    evaluate_under,
    member,
    relax_in_group,
)
from ..explore.protocol import break_symmetry
from ..explore.results import ExploreSettings
from ..explore.store import digest
from ..potentials.registry import MODEL_SUFFIXES, get_potential, lookup, potential_name, registered_names
from .database import is_storage_failure, previous_row, storage_error, stored_keys, stored_text, transaction
from .summary import deeper_nodes, ground_state, phase_label
from .task import worker_cache


def committee_potentials(calc) -> list:
    """The potentials ``calc`` names: a text with commas or a list of two or more gives
    them in order, each checked before any exploration (a registered name with a valid
    option, or a NequIP model file; each potential once; not ``auto``, which picks one
    by the elements); anything else is one potential, ``[calc]``, checked when loaded."""
    if isinstance(calc, str) and "," in calc:
        given = [n.strip() for n in calc.split(",")]
    elif isinstance(calc, (list, tuple)):
        given = list(calc)
    else:
        return [calc]
    if not given:
        raise SBSInputError("calc names no potential")
    if len(given) == 1:
        return given
    text = calc if isinstance(calc, str) else ",".join(str(n) if isinstance(n, str) else potential_name(n)
                                                       for n in given)
    for name in given:
        if isinstance(name, str):
            check_name(name, text)
    names = [potential_name(n) for n in given]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SBSInputError(f"a committee names each potential once; {', '.join(twice)} is given twice in {text}")
    return given


def check_name(name: str, given: str) -> None:
    """Refuse, in one line, a name in the committee ``given`` that is empty, ``auto``,
    unknown to the registry (with the names it knows) or a registered name with an
    option it does not take."""
    if not name:
        raise SBSInputError(f"an empty potential name in {given!r}: separate the names with single commas")
    if name.lower() == "auto":
        raise SBSInputError(f"auto picks one potential by the elements; a committee names each one ({given})")
    spec, option = lookup(name)
    if spec is not None:
        spec.option(option)  # an option it does not take: one line naming the ones it does
        return
    if name.lower().endswith(MODEL_SUFFIXES):
        if not os.path.exists(name):
            raise SBSInputError(f"{name}: no such model file (in the committee {given})")
        return
    raise SBSInputError(f"unknown potential {name!r} in the committee {given}: use {', '.join(registered_names()[1:])} "
                        "('ase-sbs potentials' lists them) or a NequIP model file (.nequip.zip, .nequip.pt2, .ckpt)")


def potential_key(name: str) -> str:
    """A potential's name as part of a database key: lower case, every character other
    than a letter or a digit ``_`` (``7net-mf-0:R2SCAN`` -> ``7net_mf_0_r2scan``)."""
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def compared(data: dict) -> tuple[int | None, int | None, str | None, str]:
    """(index, space-group number, label, status) of the structure a committee compares
    for one exploration's JSON: its ground state when it names one
    (:func:`~ase_sbs.screen.summary.ground_state`), else its lowest phase, else the
    relaxed parent. The index counts its phase rows (the phases, then the cascade's
    deeper nodes: the order of :func:`~ase_sbs.screen.summary.phase_keys`); -1 is the
    parent."""
    status = str(ground_state(data)[3])
    phases, parent = data["phases"], data["parent"]
    tree = data.get("tree")
    if tree:
        node_id = tree["ground_state"] if tree.get("ground_state") is not None else tree.get("lowest") or 0
        node = tree["nodes"][node_id]
        if node["depth"] >= 2:
            index = len(phases) + [n["id"] for n in deeper_nodes(data)].index(node_id)
            return index, node["spacegroup_number"], node["name"], status
        if node["depth"] == 1:  # the root level's phase it was made from (the same relaxation)
            index = next(i for i, p in enumerate(phases) if p.get("relaxation_key") == node["relaxation_key"])
            return index, node["spacegroup_number"], node["name"], status
        return -1, parent["spacegroup_number"], parent["spacegroup"], status
    below = [i for i, p in enumerate(phases) if p["spontaneous"]]
    if below:
        i = min(below, key=lambda i: phases[i]["delta_energy_per_formula_unit_eV"])
        return i, phases[i]["spacegroup_number"], phase_label(phases[i]), status
    return -1, parent["spacegroup_number"], parent["spacegroup"], status


def member_of(potential: str, data: dict, parent: tuple[Atoms, float], structures: list[tuple[Atoms, float]]):
    """The committee :class:`~ase_sbs.explore.committee.Member` of one exploration: its
    JSON, its relaxed parent and its phase-row structures, each with its energy (eV)."""
    index, sg, label, status = compared(data)
    atoms, energy = parent if index == -1 else structures[index]
    return member(potential, status, atoms, energy, parent[1], data["parent"]["formula_units"], sg, label)


# ----------------------------------------------------------------------------------
# explore: one parent under several potentials, in this process


@dataclass
class CommitteeExploration:
    """One parent explored under each potential (by name, in order) and its committee."""

    explorations: dict
    committee: Committee

    def as_dict(self) -> dict:
        return {"explorations": {name: ex.as_dict() for name, ex in self.explorations.items()},
                "committee": self.committee.as_dict()}


def explore_committee(atoms: Atoms, calc, out: str | None = None, progress: bool = False, device: str = "cpu",
                      tolerance: float = TOLERANCE, **kwargs) -> CommitteeExploration:
    """Explore ``atoms`` under each potential of ``calc`` (:func:`committee_potentials`;
    two or more) with the same ``break_symmetry`` keyword arguments ``kwargs``, each
    into ``out/<key>`` (:func:`potential_key`; None: nothing written), then relax every
    potential's ground state within its group under every other
    (:mod:`ase_sbs.explore.committee`; ``tolerance`` in eV per formula unit)."""
    calcs = committee_potentials(calc)
    if len(calcs) < 2:
        raise SBSInputError(f"a committee needs two potentials or more, got {len(calcs)}")
    symbols = atoms.get_chemical_symbols()
    pots = [get_potential(c, symbols, device) for c in calcs]
    explorations, members = {}, []
    for pot in pots:
        sub = None if out is None else os.path.join(out, potential_key(pot.name))
        ex = break_symmetry(atoms, calc=pot, out=sub, progress=progress, device=device, **kwargs)
        explorations[pot.name] = ex
        data = json_safe(ex.as_dict())
        nodes = [ex.tree.nodes[n["id"]] for n in deeper_nodes(data)]
        structures = [(p.atoms, p.energy_per_atom_eV * len(p.atoms)) for p in ex.phases]
        structures += [(n.atoms, n.energy_per_atom_eV * len(n.atoms)) for n in nodes]
        members.append(member_of(pot.name, data, (ex.parent.atoms, ex.parent.energy_eV), structures))
    evaluations = []
    for j, pot in enumerate(pots):
        evaluations += evaluate_under(members, j, pot, explorations[pot.name].settings, kwargs.get("engine", "auto"),
                                      kwargs.get("engine_options"), device)
    return CommitteeExploration(explorations, committee_of(members, evaluations, tolerance))


# ----------------------------------------------------------------------------------
# screen: one committee row per parent


@dataclass
class CommitteeJob:
    """One parent's committee to compute: the parent (its index among the screen's
    parents, name, input structure), its potentials and their settings hashes, and the
    committee's own settings hash."""

    index: int
    name: str
    atoms: Atoms = field(repr=False)
    calcs: list = field(default_factory=list)
    hashes: list = field(default_factory=list)
    settings_hash: str = ""


@dataclass
class CommitteeOutcome:
    """What a screen wrote for one parent's committee (``groups``: each potential's
    compared structure, ``dE``: its ΔE in eV per formula unit against its own parent)."""

    id: int
    name: str
    formula: str
    potentials: list
    groups: dict
    dE: dict
    agree: bool
    spread: float | None
    reasons: list
    error: str | None = None


def committee_hash(hashes: list[str], tolerance: float) -> str:
    """The settings hash of a committee row: its pairs' hashes (in any order) and the tolerance."""
    return digest("committee", sorted(hashes), float(tolerance))


def committee_row(db, settings_hash: str):
    """The committee row with this settings hash, or None."""
    return next(iter(db.select(kind="committee", settings_hash=stored_text(settings_hash), limit=1)), None)


def pending_committees(db, parents: list, pairs: dict, computing: set, tolerance: float) -> tuple[list, int]:
    """(the committees to compute, the number skipped): a parent's committee is
    computed when it has no row yet or one of its (parent, potential) hashes is in
    ``computing`` (explored now); ``pairs`` maps a parent's index to its [(calc,
    settings hash)]; a parent given twice has one committee."""
    todo, skipped, seen = [], 0, set()
    for i, parent in enumerate(parents):
        calcs, hashes = [c for c, _ in pairs[i]], [h for _, h in pairs[i]]
        h = committee_hash(hashes, tolerance)
        if h in seen:
            skipped += 1
            continue
        seen.add(h)
        if committee_row(db, h) is not None and not computing & set(hashes):
            skipped += 1
            continue
        todo.append(CommitteeJob(i, parent.name, parent.atoms, calcs, hashes, h))
    return todo, skipped


def members_from_rows(db, job: CommitteeJob) -> tuple[list, dict]:
    """The committee members of one parent from its parent and phase rows, and the
    parent rows' ids by potential."""
    members, ids = [], {}
    symbols = job.atoms.get_chemical_symbols()
    for calc, h in zip(job.calcs, job.hashes):
        name = potential_name(calc, symbols)
        row = previous_row(db, h)
        if row is None or row.get("error") is not None:
            members.append(Member(name, error="no parent row" if row is None else row.error))
            if row is not None:
                ids[name] = row.id
            continue
        ids[name] = row.id
        phases = sorted(db.select(kind="phase", parent_id=row.id), key=lambda r: r.id)
        structures = [(r.toatoms(), r.energy) for r in phases]
        members.append(member_of(name, row.data, (row.toatoms(), row.energy), structures))
    return members, ids


def evaluation_task(structures: list[Atoms], calc, device: str = "cpu", options: dict | None = None,
                    cache=None) -> dict:
    """Relax ``structures`` within their groups under ``calc`` (on a Dask worker: its
    potentials' cache) with the screen's explore settings ``options``:
    ``{"results": [...]}`` (:func:`~ase_sbs.explore.committee.relax_in_group`) or
    ``{"error": message}`` for refused input."""
    cache = cache if cache is not None else worker_cache()
    options = options or {}
    names = set(ExploreSettings.__dataclass_fields__)
    try:
        symbols = sorted({s for a in structures for s in a.get_chemical_symbols()})
        pot = cache.get(calc, symbols, device)
        settings = ExploreSettings(**{k: v for k, v in options.items() if k in names})
        return {"results": relax_in_group(structures, pot, settings, options.get("engine", "auto"),
                                          options.get("engine_options"), device)}
    except SBSInputError as exc:
        return {"error": str(exc)}


def evaluation_calls(db, jobs: list[CommitteeJob]) -> tuple[dict, list]:
    """Each committee's members (by committee hash: (job, members, row ids)) and the
    evaluation calls: (key, committee hash, j, structures, calc), one per potential
    with a result and another member to relax under it."""
    state, calls = {}, []
    for job in jobs:
        members, ids = members_from_rows(db, job)
        state[job.settings_hash] = (job, members, ids, [])
        for j, m in enumerate(members):
            others = [o.structure for i, o in enumerate(members) if i != j and o.structure is not None]
            if m.error is None and m.parent_energy_per_formula_unit_eV is not None and others:
                calls.append((f"ase-sbs-committee-{job.settings_hash}-{j}", job.settings_hash, j, others,
                              job.calcs[j]))
    return state, calls


def run_evaluations(calls: list, device: str, options: dict, client=None, retries: int = 2, cache=None):
    """Run the evaluation calls (on the Dask ``client``, or here with ``cache``) and
    yield (call, result) as each finishes; a task that keeps failing gives
    ``{"error": message}``."""
    if client is None:
        for call in calls:
            try:
                result = evaluation_task(call[3], call[4], device, options, cache)
            except Exception as exc:  # recorded in the committee, as a failed Dask task is
                result = {"error": f"{type(exc).__name__}: {exc}"}
            yield call, result
        return
    from distributed import as_completed

    futures = {client.submit(evaluation_task, call[3], call[4], device, options, key=call[0], pure=False,
                             retries=retries): call for call in calls}
    for future in as_completed(futures):
        call = futures.pop(future)
        if future.status == "error":
            exc = future.exception()
            result = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            result = future.result()
        future.release()
        yield call, result


def committees(db, jobs: list[CommitteeJob], device: str, options: dict, tolerance: float = TOLERANCE,
               client=None, retries: int = 2, cache=None):
    """Compute and write the committee of every job (module docstring), yielding its
    :class:`CommitteeOutcome` as each is written."""
    state, calls = evaluation_calls(db, jobs)
    waiting = {h: sum(c[1] == h for c in calls) for h in state}
    for h in [h for h, n in waiting.items() if n == 0]:
        job, members, ids, evaluations = state.pop(h)
        yield write_committee(db, job, committee_of(members, evaluations, tolerance), ids)
    for call, result in run_evaluations(calls, device, options, client, retries, cache):
        _, h, j, _, _ = call
        job, members, ids, evaluations = state[h]
        under = members[j].potential
        others = [m for i, m in enumerate(members) if i != j and m.structure is not None]
        if "error" in result:
            evaluations += [Evaluation(m.potential, under, error=result["error"]) for m in others]
        else:
            evaluations += [Evaluation(m.potential, under, **r) for m, r in zip(others, result["results"])]
        waiting[h] -= 1
        if waiting[h] == 0:
            del state[h]
            yield write_committee(db, job, committee_of(members, evaluations, tolerance), ids)


def committee_keys(name: str, committee: Committee) -> dict:
    """The key-value pairs of a committee row (module docstring); a value that does not
    exist is left out (ase.db keys cannot be None)."""
    keys = {"kind": "committee", "name": name, "potentials": ",".join(committee.potentials),
            "n_potentials": len(committee.members), "agree": committee.agree, "same_sg": committee.same_group,
            "spread": committee.spread, "tolerance": committee.tolerance}
    for m in committee.members:
        key = potential_key(m.potential)
        keys[f"sg_{key}"] = m.spacegroup_number
        keys[f"dE_{key}"] = m.delta_energy_per_formula_unit_eV
    return {k: v for k, v in keys.items() if v is not None}


def write_committee(db, job: CommitteeJob, committee: Committee, ids: dict) -> CommitteeOutcome:
    """Write one parent's committee row (replacing one with the same settings hash) in
    one transaction; a storage failure raises :class:`~ase_sbs.errors.SBSStorageError`."""
    keys = stored_keys({**committee_keys(job.name, committee), "settings_hash": job.settings_hash})
    atoms = job.atoms.copy()
    atoms.calc = None
    try:
        with transaction(db):
            old = [r.id for r in db.select(kind="committee", settings_hash=keys["settings_hash"])]
            if old:
                db.delete(old)
            row_id = db.write(atoms, key_value_pairs=keys, data={**json_safe(committee.as_dict()), "parent_rows": ids})
    except Exception as exc:
        if not is_storage_failure(exc):
            raise
        raise storage_error(db, exc, f"the committee row of {keys['name']}") from exc
    return CommitteeOutcome(row_id, keys["name"], formula(atoms), committee.potentials,
                            {m.potential: m.label for m in committee.members},
                            {m.potential: m.delta_energy_per_formula_unit_eV for m in committee.members},
                            committee.agree, committee.spread, committee.reasons)


def committee_records(db, select: str = "") -> list[dict]:
    """The committee rows of a database (``select``: more conditions, ``ase db``
    syntax) in row order, as the plot takes them
    (:func:`~ase_sbs.report.committee.committee_record`)."""
    from ..report.committee import committee_record

    return [committee_record(row.name, row.data)
            for row in db.select(",".join(s for s in ("kind=committee", select) if s), sort="id")]


def explore_command(args, atoms: Atoms, options: dict) -> int:
    """``ase-sbs explore FILE --calc A,B,...``: :func:`explore_committee` into ``--out``
    (each potential's exploration in ``out/<key>/``, as ``explore`` writes one), then
    ``out/committee.json`` and ``out/committee.png``; prints each exploration, then the
    committee table. Exit status 3 when an exploration is inconclusive."""
    import sys

    from ..core.files import write_json
    from ..report.committee import committee_record, describe_committee, plot_committees
    from ..report.exploration import describe_exploration, write_exploration

    out = args.out = args.out or os.path.splitext(os.path.basename(args.file))[0] + "_sbs"
    result = explore_committee(atoms, args.calc, out=out, progress=not args.no_progress and sys.stderr.isatty(),
                               device=args.device, **options)
    quiet = args.json == "-"
    data = {}
    for name, ex in result.explorations.items():
        data[name] = write_exploration(ex, os.path.join(out, potential_key(name)))
        if not quiet:
            print(f"== {name} ({os.path.join(out, potential_key(name))}/) ==\n{describe_exploration(ex)}\n")
    committee = json_safe(result.committee.as_dict())
    write_json(committee, os.path.join(out, "committee.json"))
    plot_committees([committee_record(formula(atoms), committee)], os.path.join(out, "committee.png"))
    if not quiet:
        print(describe_committee(result.committee, f"committee     {formula(atoms)} under "
                                 f"{', '.join(result.committee.potentials)}"))
        print(f"\nwritten: {os.path.join(out, 'committee.json')}, {os.path.join(out, 'committee.png')}")
    if args.json:
        write_json({"explorations": data, "committee": committee}, args.json)
    inconclusive = [(n, ex) for n, ex in result.explorations.items() if ex.verdict == "inconclusive"]
    for name, ex in inconclusive:
        print(f"{args.file}: {name}: inconclusive: " + "; ".join(ex.verdict_reasons), file=sys.stderr)
    return 3 if inconclusive else 0
