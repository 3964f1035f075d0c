"""A quacc-style recipe: one parent's exploration as a job returning a JSON-able summary,
for workflow managers (quacc, and through it Dask, Parsl, Prefect, Jobflow, ...).

``explore_summary`` is the plain function; ``explore_job`` is the same function
decorated with quacc's ``@job`` when quacc is installed (quacc is not a dependency of
ase_sbs), and the plain function otherwise."""

from __future__ import annotations

from ase import Atoms

from ..core.files import json_safe
from ..explore.protocol import break_symmetry
from .summary import ground_state, parent_keys


def structure_dict(atoms: Atoms) -> dict:
    """A structure as JSON: atomic numbers, positions (Å), cell (Å), pbc."""
    return {"numbers": atoms.numbers.tolist(), "positions": atoms.positions.tolist(),
            "cell": atoms.cell.array.tolist(), "pbc": atoms.pbc.tolist()}


def explore_summary(atoms: Atoms, calc="auto", **kwargs) -> dict:
    """:func:`~ase_sbs.explore.protocol.break_symmetry` on ``atoms`` (``kwargs`` passed
    on), summarized as JSON types: the parent row's keys of a screen (parent_sg,
    ground_sg, ground_dE in eV per formula unit, n_phases, stable, potential), the
    formula, the ground state's label, the exploration's JSON and the relaxed parent
    and phase structures."""
    ex = break_symmetry(atoms, calc=calc, **{"progress": False, **kwargs})
    data = json_safe(ex.as_dict())
    return {"formula": data["parent"]["formula"], **parent_keys(data), "ground_group": ground_state(data)[1],
            "exploration": data,
            "structures": {"parent": structure_dict(ex.parent.atoms),
                           "phases": [structure_dict(p.atoms) for p in ex.phases]}}


def quacc_job(func):
    """``func`` decorated with quacc's ``@job``, or ``func`` itself without quacc."""
    try:
        from quacc import job
    except ImportError:
        return func
    return job(func)


explore_job = quacc_job(explore_summary)
