"""The ASE runner: each job's stages through ASE, one structure at a time.

Every stage is ``BFGS(FrechetCellFilter(atoms), maxstep=0.1).run(fmax, steps)`` (the
filter only for crystals with ``cell`` full or volume; BFGS's ``H0`` the job's initial
Hessian at the first stage, the previous stage's with ``keep_hessian``) on an
:class:`~ase_sbs.bias.calculator.SBSCalculator` (the model plus E_sb at the stage's λ,
forces and stress symmetrized onto the job's group). It works with any ASE calculator;
the batched engine follows the same trajectories.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms

from ..bias.calculator import SBSCalculator
from ..core.devices import resolve_device
from .jobs import RelaxJob, RelaxResult, check_jobs, optimizer_hessian


def minimize(atoms: Atoms, calc, cell: str, fmax: float, max_steps: int,
             hessian: np.ndarray | None = None) -> tuple[bool, int, np.ndarray]:
    """One ASE minimization of ``atoms`` in place, BFGS starting from ``hessian`` (in the
    optimizer's coordinates; None: α·1): (converged, steps, the Hessian it ended with)."""
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    atoms.calc = calc
    target = atoms
    if atoms.pbc.all() and cell != "fixed":
        target = FrechetCellFilter(atoms, hydrostatic_strain=cell == "volume")
    opt = BFGS(target, logfile=None, maxstep=0.1)
    if hessian is not None:
        opt.H0 = np.array(hessian, dtype=float)
    converged = bool(opt.run(fmax=fmax, steps=max_steps))
    return converged, int(opt.nsteps), np.array(opt.H if opt.state is not None else opt.H0)


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
        b = np.zeros(1) if job.sbs_object is None else job.sbs_object
        calc = SBSCalculator(self.calc, b, job.irreps or "0e", 0.0, symmetrize=job.symmetrizer,
                             descriptor=job.descriptor, device=self.device)
        steps, converged, snapshots = [], [], []
        hessian = optimizer_hessian(job)
        for stage in job.stages:
            calc.strength = stage.strength if job.sbs_object is not None else 0.0
            ok, n, last = minimize(atoms, calc, job.cell, stage.fmax, stage.max_steps, hessian)
            hessian = last if job.keep_hessian else None
            steps.append(n)
            converged.append(ok)
            if job.snapshots:
                snap = atoms.copy()
                snap.calc = None
                snapshots.append(snap)
        energy = float(atoms.get_potential_energy())
        fmax = float(np.linalg.norm(atoms.get_forces(), axis=1).max()) if len(atoms) else 0.0
        out = atoms.copy()
        out.calc = None
        return RelaxResult(atoms=out, energy=energy, steps=steps, converged=converged, fmax=fmax,
                           snapshots=snapshots)
