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
from ..setting.setting import STRAIN_BASIS

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
        hessian: BFGS's initial Hessian (eV/Å²) at ``atoms``, in the coordinates
            q = (u, δ) of :mod:`ase_sbs.setting.curvature` (3N displacements, then for a
            crystal 6 strain coordinates ε·ℓ, ℓ = V^{1/3}); None: ASE's α·1.
        keep_hessian: each stage's BFGS starts from the Hessian the previous stage ended
            with (one ASE run restarted from its own Hessian) instead of anew.
        monitor: called as ``monitor(atoms, fmax, energy)`` every ``monitor_every``
            optimizer steps (the structure now, its largest generalized force in eV/Å and
            the potential's energy without the bias, eV); True ends the relaxation there
            (``RelaxResult.stopped``).
    """

    atoms: Atoms
    stages: list[Stage]
    cell: str = "full"
    sbs_object: np.ndarray | None = None
    irreps: str | None = None
    descriptor: object = None
    symmetrizer: object = None
    snapshots: bool = False
    hessian: np.ndarray | None = None
    keep_hessian: bool = False
    monitor: object = None
    monitor_every: int = 3


@dataclass
class RelaxResult:
    """Final structure, energy (eV, at the last stage's λ; when ``stopped``, the potential's
    without the bias), per-stage steps and convergence; ``stopped``: the job's monitor
    ended it early."""

    atoms: Atoms
    energy: float
    steps: list[int]
    converged: list[bool]
    fmax: float
    snapshots: list = field(default_factory=list, repr=False)
    stopped: bool = False


HESSIAN_FLOOR = 1.0  # eV/Å²: the smallest |eigenvalue| of an initial Hessian (soft and zero modes)


def optimizer_hessian(job: RelaxJob) -> np.ndarray | None:
    """The job's initial Hessian in the optimizer's coordinates: the positions (3N) and, when
    the cell relaxes, the 9 cell coordinates of ASE's FrechetCellFilter, x = N log F, whose
    symmetric part is N ε (so δ_k = (ℓ/N) S_k : x); its eigenvalues kept in sign and
    raised in magnitude to at least :data:`HESSIAN_FLOOR` (zero modes — translations,
    rotations of the cell — and very soft ones would make the first steps unbounded)."""
    if job.hessian is None:
        return None
    a = job.atoms
    n = len(a)
    H = np.asarray(job.hessian, dtype=float)
    periodic = bool(a.pbc.all())
    if periodic and job.cell != "fixed":
        J = (a.get_volume() ** (1 / 3) / n) * STRAIN_BASIS.reshape(6, 9)
        T = np.zeros((3 * n + 6, 3 * n + 9))
        T[: 3 * n, : 3 * n] = np.eye(3 * n)
        T[3 * n:, 3 * n:] = J
        H = T.T @ H @ T
    else:
        H = H[: 3 * n, : 3 * n]
    w, V = np.linalg.eigh((H + H.T) / 2)
    w = np.where(w < 0, np.minimum(w, -HESSIAN_FLOOR), np.maximum(w, HESSIAN_FLOOR))
    return (V * w) @ V.T


def check_jobs(jobs: list[RelaxJob], elements=None, potential_name: str = "the potential") -> None:
    """Refuse jobs a runner cannot run, with a message saying why."""
    for j in jobs:
        if not j.stages:
            raise SBSInputError("a relaxation job needs at least one stage")
        if j.cell not in CELL_MODES:
            raise SBSInputError(f"cell must be 'full', 'fixed' or 'volume', got {j.cell!r}")
        if j.atoms.pbc.any() and not j.atoms.pbc.all():
            raise SBSInputError("relaxations take crystals (pbc on all axes) or molecules (no pbc)")
        if j.hessian is not None:
            dim = 3 * len(j.atoms) + (6 if j.atoms.pbc.all() else 0)
            if np.shape(j.hessian) != (dim, dim) or not np.isfinite(j.hessian).all():
                raise SBSInputError(f"a job's initial Hessian must be a finite {dim}×{dim} matrix in (u, δ) "
                                    f"coordinates, got shape {np.shape(j.hessian)}")
        if elements is not None:
            missing = sorted(set(j.atoms.get_chemical_symbols()) - set(elements))
            if missing:
                raise SBSInputError(f"the potential {potential_name} does not cover {', '.join(missing)}")
