"""The ASE runner: each job's stages through ASE, one structure at a time.

Every stage is ``BFGS(FrechetCellFilter(atoms), maxstep=0.1).run(fmax, steps)`` (the
filter only for crystals with ``cell`` full or volume; BFGS's ``H0`` the job's initial
Hessian at the first stage, the previous stage's with ``keep_hessian``) on an
:class:`~ase_sbs.bias.calculator.SBSCalculator` (the model plus the bias term E_sb at the
stage's λ), the job's group a :class:`~ase_sbs.relax.constraints.SymmetryConstraint` on
the atoms (forces and stress symmetrized, as ASE's FixSymmetry). It works with any ASE
calculator; the batched engine follows the same trajectories.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from ..bias.calculator import SBSCalculator
from ..core.devices import resolve_device
from .constraints import SymmetryConstraint
from .jobs import RelaxJob, RelaxResult, check_jobs, optimizer_hessian


class _Stopped(Exception):
    """Raised by a job's monitor observer to end an ASE run early."""


def minimize(atoms: Atoms, calc, cell: str, fmax: float, max_steps: int, hessian: np.ndarray | None = None,
             monitor=None) -> tuple[bool, int, np.ndarray, bool]:
    """One ASE minimization of ``atoms`` in place, BFGS starting from ``hessian`` (in the
    optimizer's coordinates; None: α·1); ``monitor(target)`` is called after every step
    and ends the run when it returns True. Returns (converged, steps, the Hessian it
    ended with, stopped)."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms.calc = calc
    target = atoms
    if atoms.pbc.all() and cell != "fixed":
        target = FrechetCellFilter(atoms, hydrostatic_strain=cell == "volume")
    opt = BFGS(target, logfile=None, maxstep=0.1)
    if hessian is not None:
        opt.H0 = np.array(hessian, dtype=float)
    stopped = False
    if monitor is not None:
        def observe():
            if opt.nsteps and monitor(target):
                raise _Stopped
        opt.attach(observe, interval=1)
    try:
        converged = bool(opt.run(fmax=fmax, steps=max_steps))
    except _Stopped:
        converged, stopped = False, True
    return converged, int(opt.nsteps), np.array(opt.H if opt.state is not None else opt.H0), stopped


class ASERunner:
    """Relax jobs one at a time through ASE.

    Args:
        potential: a :class:`~ase_sbs.potentials.registry.Potential` or an ASE calculator.
        device: torch device of the bias (``cpu``, ``cuda``, ``auto``).
    """

    kind = "ase"

    def __init__(self, potential, device: str = "cpu"):
        self.calc = getattr(potential, "calc", potential)
        self.name = getattr(potential, "name", type(self.calc).__name__)
        self.elements = getattr(potential, "elements", None)
        self.device = resolve_device(device)

    def relax(self, jobs: list[RelaxJob], on_done=None) -> list[RelaxResult]:
        check_jobs(jobs, self.elements, self.name)
        results = []
        for index, job in enumerate(jobs):
            result = self._relax_one(job)
            results.append(result)
            if on_done is not None:
                on_done(index, result)
        return results

    def _relax_one(self, job: RelaxJob) -> RelaxResult:
        atoms = job.atoms.copy()
        atoms.set_constraint()
        b = np.zeros(1) if job.sbs_object is None else job.sbs_object
        calc = SBSCalculator(self.calc, b, job.irreps or "0e", 0.0, descriptor=job.descriptor, device=self.device)
        if job.symmetrizer is not None:
            atoms.set_constraint(SymmetryConstraint(job.symmetrizer))
        steps, converged, snapshots = [], [], []
        hessian = optimizer_hessian(job)
        done_steps = [0]
        stopped = False

        def monitor(target):
            done_steps[0] += 1
            if done_steps[0] % job.monitor_every:
                return False
            f = target.get_forces()
            model = calc.results["energy"] - calc.bias_results["energy"]
            return bool(job.monitor(_plain(atoms), float(np.linalg.norm(f, axis=1).max()), float(model)))

        for stage in job.stages:
            calc.strength = stage.strength if job.sbs_object is not None else 0.0
            ok, n, last, stopped = minimize(atoms, calc, job.cell, stage.fmax, stage.max_steps, hessian,
                                            monitor if job.monitor is not None else None)
            hessian = last if job.keep_hessian else None
            steps.append(n)
            converged.append(ok)
            if job.snapshots:
                snapshots.append(_plain(atoms))
            if stopped:
                break
        energy = float(atoms.get_potential_energy())
        if stopped:
            energy -= float(calc.bias_results["energy"])
        fmax = float(np.linalg.norm(atoms.get_forces(), axis=1).max()) if len(atoms) else 0.0
        return RelaxResult(atoms=_plain(atoms), energy=energy, steps=steps, converged=converged, fmax=fmax,
                           snapshots=snapshots, stopped=stopped)


def _plain(atoms: Atoms) -> Atoms:
    """A copy without calculator and constraints."""
    out = atoms.copy()
    out.calc = None
    out.set_constraint()
    return out
