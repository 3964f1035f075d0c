"""One structure in a batched relaxation: its job, the stage it is in, its cell filter
(:mod:`ase_sbs.relax.filters`) and its optimizer's state (:mod:`ase_sbs.relax.optimizers`).
A new stage starts a new filter and optimizer state at the current structure, as a new
ASE run would; BFGS starts from the job's initial Hessian (first stage), the previous
stage's (``keep_hessian``) or α·1.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from ase import Atoms

from .filters import CellFilter
from .jobs import RelaxJob, Stage, optimizer_hessian
from .optimizers import BFGSState, FireParams, FireState


class Slot:
    """A job being relaxed (float64 tensors on the device)."""

    def __init__(self, index: int, job: RelaxJob, device, dtype, optimizer: str, fire: FireParams, uid: int):
        a = job.atoms
        self.index = index
        self.uid = uid
        self.job = job
        self.optimizer = optimizer
        self.fire_params = fire
        self.n = len(a)
        self.periodic = bool(a.pbc.all())
        self.numbers = torch.as_tensor(a.numbers, dtype=torch.long, device=device)
        self.stage = 0
        self.nsteps = 0
        self.steps: list[int] = []
        self.converged: list[bool] = []
        self.snapshots: list[Atoms] = []
        self.last_fmax = math.inf
        self.energy = 0.0
        self.stopped = False
        self.total_steps = 0
        self.filter = CellFilter(torch.as_tensor(a.positions, dtype=dtype, device=device),
                                 torch.as_tensor(np.asarray(a.cell), dtype=dtype, device=device),
                                 self.periodic and job.cell != "fixed", job.cell == "volume")
        H0 = optimizer_hessian(job)
        self.state = self._new_state(None if H0 is None else torch.as_tensor(H0, dtype=dtype, device=device))

    def _new_state(self, hessian=None):
        if self.optimizer == "fire":
            f = self.filter
            return FireState(f.rows, self.fire_params, f.u.dtype, f.u.device)
        return BFGSState(hessian)

    @property
    def stage_spec(self) -> Stage:
        return self.job.stages[self.stage]

    @property
    def strength(self) -> float:
        """λ of the current stage (0 without an object)."""
        return float(self.stage_spec.strength) if self.job.sbs_object is not None else 0.0

    def finish_stage(self, converged: bool) -> None:
        """Record the stage's steps and convergence and start the next stage (if any) at
        the current structure."""
        self.steps.append(self.nsteps)
        self.converged.append(bool(converged))
        if self.job.snapshots:
            self.snapshots.append(self.atoms())
        self.stage += 1
        self.nsteps = 0
        if self.stage < len(self.job.stages):
            self.filter.reset(*self.filter.structure())
            kept = self.state.H if self.optimizer == "bfgs" and self.job.keep_hessian else None
            self.state = self._new_state(kept)

    def stop(self, energy: float) -> None:
        """End the job now (its monitor said so), the current stage unconverged."""
        self.steps.append(self.nsteps)
        self.converged.append(False)
        self.stage = len(self.job.stages)
        self.stopped = True
        self.energy = energy

    @property
    def done(self) -> bool:
        return self.stage >= len(self.job.stages)

    def atoms(self) -> Atoms:
        pos, cell = self.filter.structure()
        out = self.job.atoms.copy()
        out.calc = None
        out.positions = pos.cpu().numpy()
        if self.periodic:
            out.set_cell(cell.cpu().numpy(), scale_atoms=False)
        return out
