"""One structure in a batched relaxation: ASE's FrechetCellFilter degrees of freedom
and the optimizer's state, in torch.

Degrees of freedom (as ``ase.filters.FrechetCellFilter``): u = x F⁻ᵀ, the positions in the
stage's reference cell, and L = log F, F the deformation gradient (cell = cell₀ Fᵀ,
x = u Fᵀ); a new stage starts a new filter and optimizer at the current structure, as a
new ASE run would.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from ase import Atoms

from .jobs import RelaxJob, Stage, optimizer_hessian
from .optimizers import FireParams


class Slot:
    """State of one structure in the batch (float64 tensors on the device): the filter's
    degrees of freedom u (positions in the stage's reference cell) and L = log F, and the
    optimizer's memory (FIRE: velocity, dt, α; BFGS: Hessian and previous step)."""

    def __init__(self, index: int, job: RelaxJob, device, dtype, fire: FireParams):
        a = job.atoms
        self.fire = fire
        self.index = index
        self.uid = -1 - index  # Engine.slot sets one unique within the engine
        self.job = job
        self.n = len(a)
        self.periodic = bool(a.pbc.all())
        self.has_cell = self.periodic and job.cell != "fixed"
        self.hydrostatic = job.cell == "volume"
        self.numbers = torch.as_tensor(a.numbers, dtype=torch.long, device=device)
        self.stage = 0
        self.steps: list[int] = []
        self.converged: list[bool] = []
        self.snapshots: list[Atoms] = []
        self.device, self.dtype = device, dtype
        self.last_fmax = math.inf
        self.energy = 0.0
        H0 = optimizer_hessian(job)
        self.H = None if H0 is None else torch.as_tensor(H0, dtype=dtype, device=device)
        self._reset(torch.as_tensor(a.positions, dtype=dtype, device=device),
                    torch.as_tensor(np.asarray(a.cell), dtype=dtype, device=device))

    def _reset(self, positions, cell):
        """A fresh filter and optimizer at the current structure (a new ASE stage); BFGS
        starts from the job's initial Hessian (first stage), the previous stage's
        (``keep_hessian``) or α·1."""
        self.cell0 = cell.clone()
        self.u = positions.clone()
        self.L = torch.zeros(3, 3, dtype=self.dtype, device=self.device)
        self.rows = self.n + (3 if self.has_cell else 0)
        self.vel = torch.zeros(self.rows, 3, dtype=self.dtype, device=self.device)
        self.first = True
        self.dt, self.a, self.nsteps_fire = self.fire.dt, self.fire.astart, 0
        self.nsteps = 0
        if self.stage > 0 and not self.job.keep_hessian:
            self.H = None  # BFGS: α·1 at its first step
        self.x0 = None
        self.g0 = None

    def deformation(self) -> torch.Tensor:
        return torch.linalg.matrix_exp(self.L) if self.has_cell else torch.eye(3, dtype=self.dtype, device=self.device)

    def structure(self):
        F = self.deformation()
        return self.u @ F.T, self.cell0 @ F.T

    @property
    def stage_spec(self) -> Stage:
        return self.job.stages[self.stage]

    def atoms(self) -> Atoms:
        pos, cell = self.structure()
        out = self.job.atoms.copy()
        out.calc = None
        out.positions = pos.cpu().numpy()
        if self.periodic:
            out.set_cell(cell.cpu().numpy(), scale_atoms=False)
        return out
