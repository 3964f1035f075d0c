"""What a runner relaxes and what it returns: stages, jobs, results.

A :class:`RelaxJob` is one structure and a sequence of :class:`Stage` s; each stage is
exactly one ASE minimization of E_model + E_sb(λ) (λ in eV, E_sb = −λ ⟨b, D(x)⟩ with the
job's object b and descriptor D) to a force criterion (eV/Å) within a step budget, the
forces and stress symmetrized onto the job's group, the cell relaxed with ASE's
FrechetCellFilter (``cell``: full, volume or fixed; molecules move their atoms only).

Two runners implement ``relax(jobs, on_done=None) -> list[RelaxResult]``:
:class:`~ase_sbs.relax.ase_runner.ASERunner` (one structure at a time through ASE) and
:class:`~ase_sbs.relax.engine.Engine` (every structure together in torch, the same
optimizers step for step). ``on_done(index, result)`` is called as each job finishes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from ..errors import SBSInputError

CELL_MODES = ("full", "fixed", "volume")


@dataclass(frozen=True)
class Stage:
    """One minimization: bias strength λ (eV), force criterion (eV/Å) and step budget."""

    strength: float
    fmax: float
    max_steps: int


@dataclass
class RelaxJob:
    """A structure and the stages to run on it.

    Attributes:
        atoms: the starting structure (not modified).
        stages: the minimizations, in order.
        cell: ``full``, ``volume`` or ``fixed`` (crystals only).
        sbs_object: b, global (dim,) or per atom (natoms, dim); None: no bias.
        irreps: e3nn irreps of b.
        descriptor: the :class:`~ase_sbs.bias.descriptor.BiasDescriptor` of b's irreps.
        symmetrizer: the group the forces and stress are projected onto.
        snapshots: keep the structure after every stage.
    """

    atoms: Atoms
    stages: list[Stage]
    cell: str = "full"
    sbs_object: np.ndarray | None = None
    irreps: str | None = None
    descriptor: object = None
    symmetrizer: object = None
    snapshots: bool = False


@dataclass
class RelaxResult:
    """Final structure, energy (eV, at the last stage's λ), per-stage steps and convergence."""

    atoms: Atoms
    energy: float
    steps: list[int]
    converged: list[bool]
    fmax: float
    snapshots: list = field(default_factory=list, repr=False)


def check_jobs(jobs: list[RelaxJob], elements=None, potential_name: str = "the potential") -> None:
    """Refuse jobs a runner cannot run, with a message saying why."""
    for j in jobs:
        if not j.stages:
            raise SBSInputError("a relaxation job needs at least one stage")
        if j.cell not in CELL_MODES:
            raise SBSInputError(f"cell must be 'full', 'fixed' or 'volume', got {j.cell!r}")
        if j.atoms.pbc.any() and not j.atoms.pbc.all():
            raise SBSInputError("relaxations take crystals (pbc on all axes) or molecules (no pbc)")
        if elements is not None:
            missing = sorted(set(j.atoms.get_chemical_symbols()) - set(elements))
            if missing:
                raise SBSInputError(f"the potential {potential_name} does not cover {', '.join(missing)}")
