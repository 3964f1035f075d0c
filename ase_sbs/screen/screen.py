"""Screen many parents: explore each (:func:`~ase_sbs.explore.protocol.break_symmetry`,
k = 0 unless a supercell or k-point is given) and write its rows to an ASE database as
each result arrives (:mod:`ase_sbs.screen.database`).

A parent already in the database with the same settings hash — a digest of the
potential's name, every explore setting (targets, :class:`ExploreSettings`, supercell,
k-point, cascade and its depth) and the input structure — is skipped, so the same
command resumes an interrupted screen. The engine, its options and the device change how
an exploration runs, not what it finds: they are not part of the hash.

Several potentials (``calc="7net-0,chgnet"`` or a list): each (parent, potential) is
one exploration with its own rows and settings hash, and each parent gets a committee
row once all its potentials have rows (:mod:`ase_sbs.screen.committee`), skipped on a
rerun unless one of its pairs was explored again.

A parent whose exploration fails (refused input, an exception, a Dask task that keeps
failing) gets an error row and the screen goes on. Its row is kept on a rerun like a
finished parent's (delete it to try again: ``ase db results.db error --delete``), and
:class:`ScreenSummary` counts it among the screen's failures either way. A database the
storage stops taking rows (:class:`~ase_sbs.errors.SBSStorageError`) ends the screen:
what was written is kept.
"""

from __future__ import annotations

import os
import sys
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import SBSInputError
from ..explore.results import ExploreSettings
from ..explore.store import digest, structure_digest
from ..potentials.registry import potential_name
from ..report.screen import describe_outcome
from .committee import TOLERANCE, committee_potentials, committees, pending_committees
from .database import ParentOutcome, open_database, previous_row, write_parent
from .fanout import Job, dask_client, run_in_process, run_on_dask
from .task import PotentialCache
from .inputs import collect_parents

# break_symmetry's arguments in the hash
PROTOCOL = ("targets", "supercell", "kpoint", "cascade", "max_depth", "budget")
RUNNING = ("engine", "engine_options")  # passed on, not hashed
OWN = ("calc", "out", "progress", "device")  # set by the screen itself


@dataclass
class ScreenSummary:
    """What a screen did: ``computed`` parents explored now (``failed`` of them refused
    or failing, with an ``error`` row), ``skipped`` already in the database (or given
    twice: ``repeated``; ``failed_before`` of them have an error row from an earlier
    run), the database, each outcome in the order written, and the files of input
    directories that ase.io could not read."""

    db: str
    computed: int = 0
    skipped: int = 0
    failed: int = 0
    outcomes: list[ParentOutcome] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    repeated: int = 0
    failed_before: int = 0
    committees: list = field(default_factory=list)  # committee.CommitteeOutcome, one per parent computed now
    committees_skipped: int = 0
    plot: str | None = None  # the committee plot written

    @property
    def parents(self) -> int:
        """The distinct parents of the screen (computed now or found in the database)."""
        return self.computed + self.skipped - self.repeated

    @property
    def failures(self) -> int:
        """The screen's parents whose row is an error row, written now or before."""
        return self.failed + self.failed_before


def explore_options(kwargs: dict) -> tuple[dict, dict]:
    """(the keyword arguments every exploration gets, what of them the settings hash
    covers). ``kwargs`` are :func:`break_symmetry`'s (without calc, out, progress and
    device) and :class:`ExploreSettings` fields; unknown names are refused."""
    own = sorted(set(kwargs) & set(OWN))
    if own:
        raise SBSInputError(f"screen sets {', '.join(own)} itself")
    fields = {k: v for k, v in kwargs.items() if k not in PROTOCOL + RUNNING}
    try:
        settings = ExploreSettings(**fields)
    except TypeError as exc:
        raise SBSInputError(f"unknown explore option: {exc}") from exc
    settings.validate()
    protocol = {"targets": "auto", "supercell": None, "kpoint": None, "cascade": False, "max_depth": 3,
                **{k: kwargs[k] for k in PROTOCOL if k in kwargs}}
    if not protocol["cascade"]:
        protocol["max_depth"] = None  # no tree: the depth changes nothing
        protocol.pop("budget", None)
    elif protocol.get("budget") is not None:
        protocol["budget"] = {k: v for k, v in sorted(dict(protocol["budget"]).items())}
    if protocol["supercell"] is not None:
        protocol["supercell"] = np.asarray(protocol["supercell"]).tolist()
    return dict(kwargs), {**protocol, "settings": asdict(settings)}


def settings_hash(calc, atoms, hashed: dict) -> str:
    """The digest that identifies one parent's exploration (module docstring)."""
    return digest("screen", potential_name(calc, atoms.get_chemical_symbols()), hashed, structure_digest(atoms))


def screen(parents, calc="auto", db: str = "results.db", workers: int | None = None, scheduler: str | None = None,
           progress=True, *, select: str | None = None, index: str = "-1", device: str = "cpu", retries: int = 2,
           tolerance: float = TOLERANCE, plot: str | None = "auto", **explore_kwargs) -> ScreenSummary:
    """Explore every parent and write the results to the database ``db``.

    Args:
        parents: ``Atoms``, structure files, directories, ASE databases (``select``: the
            rows, in ``ase db`` syntax), or a list of them
            (:func:`~ase_sbs.screen.inputs.collect_parents`; ``index``: the frames of a file).
        calc: the potential, as for ``break_symmetry`` (``auto``: EMT for the metals it
            covers, SevenNet-0 otherwise); several as a comma-separated text or a list:
            a committee (module docstring).
        db: an SQLite file (``*.db``) or a ``postgresql://`` URL.
        workers: explore on a new local Dask cluster of this many worker processes.
        scheduler: explore on the Dask scheduler at this address (``tcp://host:8786``).
            Neither: one after the other in this process.
        progress: True prints one line per parent on stderr as it is written; a callable
            is called with each :class:`~ase_sbs.screen.database.ParentOutcome` (and
            each committee's :class:`~ase_sbs.screen.committee.CommitteeOutcome`).
        device: the potential's device on the workers.
        retries: times a failing Dask task is resubmitted.
        tolerance: a committee's energy tolerance, eV per formula unit
            (:mod:`ase_sbs.explore.committee`).
        plot: a committee's plot of every committee row's ground-state ΔE (PNG):
            ``auto`` writes ``<db stem>_committee.png`` beside an SQLite database, None none.
        **explore_kwargs: ``break_symmetry``'s targets, supercell, kpoint, cascade,
            max_depth, engine, engine_options and :class:`ExploreSettings` fields.
    """
    options, hashed = explore_options(explore_kwargs)
    calcs = committee_potentials(calc)
    found = collect_parents(parents, select, index)
    database = open_database(str(db))
    summary = ScreenSummary(str(db), unreadable=found.unreadable)
    jobs, seen, pairs = [], set(), {}
    for i, parent in enumerate(found.parents):
        pairs[i] = [(c, settings_hash(c, parent.atoms, hashed)) for c in calcs]
        for c, h in pairs[i]:
            job = Job(i, parent.atoms, h, calc=c)
            row = None if h in seen else previous_row(database, h)
            if h in seen or row is not None:
                summary.skipped += 1
                summary.repeated += h in seen
                summary.failed_before += row is not None and "error" in row
            else:
                jobs.append(job)
            seen.add(h)
    pending = []
    if len(calcs) > 1:
        pending, summary.committees_skipped = pending_committees(database, found.parents, pairs,
                                                                 {j.settings_hash for j in jobs}, tolerance)
    report = _reporter(progress)

    def write_all(results) -> None:
        for job, result in results:
            parent = found.parents[job.index]
            outcome = write_parent(database, parent, job.settings_hash,
                                   potential_name(job.calc, parent.atoms.get_chemical_symbols()), result)
            summary.computed += 1
            summary.failed += outcome.error is not None
            summary.outcomes.append(outcome)
            report(outcome)

    def write_committees(client=None, cache=None) -> None:
        for outcome in committees(database, pending, device, options, tolerance, client, retries, cache):
            summary.committees.append(outcome)
            report(outcome)

    if not jobs and not pending:
        return summary
    if workers is None and scheduler is None:
        cache = PotentialCache()
        write_all(run_in_process(jobs, calc, device, options, cache))
        write_committees(cache=cache)
    else:
        with dask_client(workers, scheduler) as client:
            write_all(run_on_dask(client, jobs, calc, device, options, retries))
            write_committees(client)
    if summary.committees and plot is not None:
        summary.plot = committee_plot(database, str(db), plot)
    return summary


def committee_plot(database, db: str, plot: str) -> str | None:
    """Plot every committee row of the database (:func:`~ase_sbs.report.committee.plot_committees`)
    to ``plot``; ``auto``: ``<db stem>_committee.png`` beside an SQLite file, none for a server."""
    from ..report.committee import plot_committees
    from .committee import committee_records

    if plot == "auto":
        if "://" in db:
            return None
        plot = os.path.splitext(db)[0] + "_committee.png"
    plot_committees(committee_records(database), plot)
    return plot


def _reporter(progress):
    if callable(progress):
        return progress
    if progress:
        return lambda outcome: print(describe_outcome(outcome), file=sys.stderr, flush=True)
    return lambda outcome: None
