"""One parent's exploration as a task: what runs on a Dask worker (or in the calling
process), returning plain data — the exploration's JSON and its structures as
:class:`~ase.Atoms` — so that only the client writes the database.

Each worker keeps the potentials it has loaded (:class:`PotentialCache`, an attribute
of the worker), so a worker loads SevenNet-0 once for all its parents."""

from __future__ import annotations

import threading

from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator

from ..core.devices import resolve_device
from ..core.files import json_safe
from ..core.structure import check_structure
from ..errors import SBSInputError
from ..explore.protocol import break_symmetry
from ..potentials.registry import Potential, get_potential, potential_name
from .summary import deeper_nodes

CACHE_ATTRIBUTE = "ase_sbs_potentials"


class PotentialCache:
    """Potentials loaded once and reused, keyed by name, device and thread (an ASE
    calculator is not safe to share between threads)."""

    def __init__(self):
        self.loaded: dict = {}

    def get(self, calc, symbols, device: str = "cpu") -> Potential:
        """The potential ``calc`` (a name, as for :func:`get_potential`) covering
        ``symbols``; a calculator object is used as it is, not cached."""
        if not isinstance(calc, str):
            return get_potential(calc, symbols, device)
        key = (potential_name(calc, symbols), resolve_device(device), threading.get_ident())
        pot = self.loaded.get(key)
        if pot is None:
            pot = self.loaded[key] = get_potential(calc, symbols, device)
        pot.check_covers(symbols)
        return pot


def worker_cache() -> PotentialCache:
    """The :class:`PotentialCache` of the Dask worker running the current task, made on
    its first task."""
    from distributed import get_worker

    worker = get_worker()
    cache = getattr(worker, CACHE_ATTRIBUTE, None)
    if cache is None:
        cache = PotentialCache()
        setattr(worker, CACHE_ATTRIBUTE, cache)
    return cache


def explore_parent(atoms: Atoms, calc="auto", device: str = "cpu", options: dict | None = None,
                   cache: PotentialCache | None = None) -> dict:
    """Explore one parent: :func:`~ase_sbs.explore.protocol.break_symmetry` with the
    keyword arguments ``options``, the potential taken from ``cache`` (the worker's
    when None).

    Returns ``{"exploration": JSON dict, "parent": relaxed parent, "phases": [one
    structure per phase], "nodes": [one per cascade node below the first level]}``,
    each structure carrying its energy (eV); or ``{"error": message}`` when the input
    is refused (:class:`~ase_sbs.errors.SBSInputError`: a bad structure, an element
    the potential lacks). Other exceptions propagate, so a scheduler can retry them.
    """
    cache = cache if cache is not None else worker_cache()
    try:
        check_structure(atoms)  # before the potential: a bad structure is named as such
        pot = cache.get(calc, atoms.get_chemical_symbols(), device)
        ex = break_symmetry(atoms, calc=pot, progress=False, device=device, **(options or {}))
    except SBSInputError as exc:
        return {"error": str(exc)}
    data = json_safe(ex.as_dict())
    nodes = [ex.tree.nodes[n["id"]] for n in deeper_nodes(data)]  # the rows phase_keys gives them
    return {
        "exploration": data,
        "parent": with_energy(ex.parent.atoms, ex.parent.energy_eV),
        "phases": [with_energy(p.atoms, p.energy_per_atom_eV * len(p.atoms)) for p in ex.phases],
        "nodes": [with_energy(n.atoms, n.energy_per_atom_eV * len(n.atoms)) for n in nodes],
    }


def with_energy(atoms: Atoms, energy: float) -> Atoms:
    """A copy of ``atoms`` whose only calculator result is ``energy`` (eV)."""
    out = atoms.copy()
    out.calc = SinglePointCalculator(out, energy=float(energy))
    return out
