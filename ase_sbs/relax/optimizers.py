"""ASE's optimizers for groups of structures in torch, one state type per optimizer.

Each step function reproduces ``ase.optimize.FIRE.step`` / ``ase.optimize.BFGS.step`` for
a group of structures with the same number of coordinate rows (the cell filter's, see
:mod:`ase_sbs.relax.filters`), vectorized over the group; it reads and updates each
structure's own :class:`FireState` / :class:`BFGSState` and returns the steps to take.
A state is created at the start of every stage (a new ASE run), BFGS's optionally from
a Hessian (the job's initial one, or the one the previous stage ended with).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class FireParams:
    """ASE's FIRE defaults (ase.optimize.FIRE): time steps in ASE units, maxstep in Å."""

    dt: float = 0.1
    maxstep: float = 0.2
    dtmax: float = 1.0
    Nmin: int = 5
    finc: float = 1.1
    fdec: float = 0.5
    astart: float = 0.1
    fa: float = 0.99


@dataclass(frozen=True)
class BFGSParams:
    """ASE's BFGS (ase.optimize.BFGS) as :func:`ase_sbs.relax` runs it: maxstep 0.1 Å,
    initial Hessian α·1 with α = 70 eV/Å²."""

    maxstep: float = 0.1
    alpha: float = 70.0


class FireState:
    """FIRE's memory of one structure: velocity (rows, 3), dt, α and the count of steps
    since the last reset; ``first``: no step taken yet."""

    def __init__(self, rows: int, params: FireParams, dtype, device):
        self.vel = torch.zeros(rows, 3, dtype=dtype, device=device)
        self.first = True
        self.dt, self.a, self.nsteps = params.dt, params.astart, 0


class BFGSState:
    """BFGS's memory of one structure: the Hessian H (None: α·1 at the first step) and the
    previous coordinates and gradient (None at a stage's first step: no update)."""

    def __init__(self, hessian: torch.Tensor | None = None):
        self.H = hessian
        self.x0 = None
        self.g0 = None


def fire_steps(states: list[FireState], grad: torch.Tensor, fp: FireParams) -> torch.Tensor:
    """ase.optimize.FIRE.step for a group; ``grad`` (k, rows, 3) are the generalized forces.
    Per structure: if v·f > 0 mix v ← (1−α) v + α |v| f/|f| (and after N_min such steps
    dt ← min(dt f_inc, dt_max), α ← α f_α), else v ← 0, α ← α_start, dt ← dt f_dec; then
    v ← v + dt f, dr = dt v scaled to at most ``maxstep`` in norm over the whole vector.
    Returns dr (k, rows, 3)."""
    vel = torch.stack([s.vel for s in states])
    sums = torch.stack([(grad * vel).sum((1, 2)), (grad * grad).sum((1, 2)), (vel * vel).sum((1, 2))]).cpu().numpy()
    mix, zero = [], []
    for k, s in enumerate(states):
        if s.first:
            s.first = False
            mix.append(0.0), zero.append(False)
            continue
        if sums[0, k] > 0.0:
            mix.append(s.a), zero.append(False)
            if s.nsteps > fp.Nmin:
                s.dt = min(s.dt * fp.finc, fp.dtmax)
                s.a *= fp.fa
            s.nsteps += 1
        else:
            mix.append(0.0), zero.append(True)
            s.a = fp.astart
            s.dt *= fp.fdec
            s.nsteps = 0
    dev, dtype = grad.device, grad.dtype
    a = torch.as_tensor(mix, dtype=dtype, device=dev)[:, None, None]
    scale = torch.as_tensor(np.where(sums[1] > 0, np.sqrt(sums[2]) / np.sqrt(np.where(sums[1] > 0, sums[1], 1.0)), 0.0),
                            dtype=dtype, device=dev)[:, None, None]
    vel = (1.0 - a) * vel + a * grad * scale
    vel = torch.where(torch.as_tensor(zero, device=dev)[:, None, None], torch.zeros_like(vel), vel)
    dt = torch.as_tensor([s.dt for s in states], dtype=dtype, device=dev)[:, None, None]
    vel = vel + dt * grad
    dr = dt * vel
    norm = torch.sqrt((dr * dr).sum((1, 2)))[:, None, None]
    dr = torch.where(norm > fp.maxstep, fp.maxstep * dr / norm, dr)
    for s, v in zip(states, vel.unbind(0)):
        s.vel = v
    return dr


def bfgs_steps(states: list[BFGSState], x: torch.Tensor, forces: torch.Tensor, bp: BFGSParams) -> torch.Tensor:
    """ase.optimize.BFGS.step for a group: ``x`` (k, n) the coordinates, ``forces`` (k, n)
    the generalized forces. H ← H + ΔgΔgᵀ/(Δx·Δg) − (HΔx)(HΔx)ᵀ/(Δx·HΔx) (skipped on a
    stage's first step and when |Δx| < 1e-7), step −V (Vᵀg / |ω|) from H's eigenpairs,
    scaled so that no row of three moves more than ``maxstep``. H starts as α·1 unless
    the state holds one. Returns dx (k, n)."""
    k = len(states)
    dev, dtype = forces.device, forces.dtype
    g = -forces
    n = g.shape[1]
    fresh = [s.x0 is None for s in states]  # a stage's first step: no update
    eye = torch.eye(n, dtype=dtype, device=dev)
    H = torch.stack([eye * bp.alpha if s.H is None else s.H for s in states])
    if not all(fresh):
        x0 = torch.stack([x[i] if f else s.x0 for i, (s, f) in enumerate(zip(states, fresh))])
        g0 = torch.stack([g[i] if f else s.g0 for i, (s, f) in enumerate(zip(states, fresh))])
        dx = x - x0
        dg = g - g0
        update = (dx.abs().amax(1) >= 1e-7) & ~torch.as_tensor(fresh, device=dev)
        hdx = torch.einsum("kij,kj->ki", H, dx)
        a = (dx * dg).sum(1)
        b = (dx * hdx).sum(1)
        one = torch.ones_like(a)
        a = torch.where(update, a, one)
        b = torch.where(update, b, one)
        dH = dg[:, :, None] * dg[:, None, :] / a[:, None, None] - hdx[:, :, None] * hdx[:, None, :] / b[:, None, None]
        H = H + torch.where(update[:, None, None], dH, torch.zeros_like(dH))
    omega, V = torch.linalg.eigh(H)
    dx = -torch.einsum("kij,kj->ki", V, torch.einsum("ki,kij->kj", g, V) / omega.abs())
    longest = dx.reshape(k, -1, 3).norm(dim=2).amax(1)
    dx = torch.where((longest >= bp.maxstep)[:, None], dx * (bp.maxstep / longest)[:, None], dx)
    for i, s in enumerate(states):
        s.H, s.x0, s.g0 = H[i], x[i], g[i]
    return dx
