"""Where the explorations run: on Dask distributed (a ``LocalCluster`` of worker
processes, or an existing scheduler), one task per parent, or one after the other in
the calling process. Both yield ``(job, result)`` as each result arrives; the caller
writes it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from ase import Atoms

from ..errors import SBSInputError
from .task import PotentialCache, explore_parent


@dataclass
class Job:
    """One parent to explore: its index among the parents, its structure, its settings
    hash and, in a committee, its potential (None: the screen's one)."""

    index: int
    atoms: Atoms = field(repr=False)
    settings_hash: str = ""
    calc: object = field(default=None, repr=False)

    @property
    def key(self) -> str:
        """The Dask task key: the same parent with the same settings is the same task."""
        return f"ase-sbs-explore-{self.settings_hash}"


def describe_failure(exc: BaseException) -> str:
    """The error message a parent row keeps for an exception."""
    return f"{type(exc).__name__}: {exc}"


def require_distributed():
    """The ``distributed`` module, or a one-line error naming the extra to install."""
    try:
        import distributed
    except ImportError as exc:
        raise SBSInputError("workers and a scheduler need Dask distributed: pip install 'ase-sbs[dask]'") from exc
    return distributed


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None):
    """A Dask client: on the scheduler at ``scheduler`` (e.g. ``tcp://host:8786``, or a
    dask-jobqueue cluster's address), else on a new ``LocalCluster`` of ``workers``
    single-threaded worker processes, closed on leaving. Local workers share the
    machine's cores among them for their numerical libraries (``OMP_NUM_THREADS``):
    more threads than cores make OpenMP threads wait on each other."""
    distributed = require_distributed()
    if scheduler is not None:
        try:
            client = distributed.Client(scheduler, timeout="30s")
        except OSError as exc:
            raise SBSInputError(f"no Dask scheduler answers at {scheduler} ({exc})") from exc
        with client:
            yield client
        return
    if workers is None or workers < 1:
        raise SBSInputError(f"workers takes a positive number of worker processes, got {workers!r}")
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                                  env={"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}) as cluster, \
            distributed.Client(cluster) as client:
        yield client


def run_on_dask(client, jobs: list[Job], calc, device: str, options: dict, retries: int = 2) -> Iterator:
    """Submit one task per job (``pure=False``, keyed by its settings hash, retried
    ``retries`` times when it fails; a task whose worker dies is rescheduled by the
    scheduler) and yield ``(job, result)`` in the order they complete; a task that
    still fails gives ``{"error": message}``."""
    distributed = require_distributed()
    futures = {client.submit(explore_parent, job.atoms, calc if job.calc is None else job.calc, device, options,
                             key=job.key, pure=False, retries=retries): job for job in jobs}
    for future in distributed.as_completed(futures):
        job = futures.pop(future)
        if future.status == "error":
            result = {"error": describe_failure(future.exception())}
        else:
            result = future.result()
        future.release()
        yield job, result


def run_in_process(jobs: list[Job], calc, device: str, options: dict, cache: PotentialCache | None = None) -> Iterator:
    """Explore the jobs one after the other here, one potential per name loaded once
    (in ``cache`` when given); yield ``(job, result)`` as :func:`run_on_dask` does."""
    cache = cache if cache is not None else PotentialCache()
    for job in jobs:
        try:
            result = explore_parent(job.atoms, calc if job.calc is None else job.calc, device, options, cache)
        except Exception as exc:  # recorded in the parent's row, as a failed Dask task is
            result = {"error": describe_failure(exc)}
        yield job, result
