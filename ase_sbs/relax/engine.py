"""Batched relaxation in torch: many structures at once, ASE's optimizers step for step.

Each :class:`~ase_sbs.relax.jobs.RelaxJob` stage is exactly one ASE minimization

    BFGS(FrechetCellFilter(atoms), maxstep=0.1).run(fmax, steps)     (or ASE's FIRE)

in float64 torch, cut along the seams ASE and torch-sim use:

- the energy is a sum of terms, E_model + E_sb(λ) (:mod:`ase_sbs.relax.terms`);
- forces and stress are symmetrized onto each structure's group by a constraint
  (:mod:`ase_sbs.relax.constraints`), as ASE's FixSymmetry;
- the cell is extra degrees of freedom behind one filter (:mod:`ase_sbs.relax.filters`);
- one state type per optimizer (:mod:`ase_sbs.relax.optimizers`);
- which structures share a batch is decided apart (:mod:`ase_sbs.relax.batching`).

Per-structure convergence: a structure whose stage converges (or runs out of steps)
moves to its next stage; after its last stage it leaves the batch and the next waiting
structure takes its place. A CUDA out-of-memory error halves the batch.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..core.devices import resolve_device
from ..errors import SBSInputError
from ..potentials.batched import Graphs, batched_potential, radius_graph
from ..potentials.registry import get_potential
from .batching import CPU_BATCH_ATOMS, BatchLimits, BatchQueue
from .constraints import BatchSymmetryConstraint
from .filters import batch_structures, generalized_forces
from .jobs import RelaxJob, RelaxResult, check_jobs
from .optimizers import BFGSParams, FireParams, bfgs_steps, fire_steps
from .slots import Slot
from .terms import Batch, BiasTerm, ModelTerm, SumTerm

__all__ = ["Engine", "BatchLimits", "CPU_BATCH_ATOMS", "relax"]


class Engine:
    """Relax many :class:`RelaxJob` s together with a batched potential.

    Args:
        potential: a name (``emt``, ``7net-0``, a NequIP model file), a
            :class:`~ase_sbs.potentials.batched.BatchedPotential`, a
            :class:`~ase_sbs.potentials.Potential` or any ASE calculator
            (see :func:`~ase_sbs.potentials.batched.batched_potential`).
        device: ``cpu``, ``cuda`` or ``auto``.
        limits: :class:`~ase_sbs.relax.batching.BatchLimits`.
        fire: :class:`FireParams` (ASE's defaults).
        optimizer: ``fire``, ``bfgs`` (the ASE path's optimizer, same trajectories) or
            ``auto`` (FIRE on CUDA, BFGS on the CPU).
        bfgs: :class:`BFGSParams`.
    """

    kind = "batched"

    def __init__(self, potential, device: str = "cpu", limits: BatchLimits | None = None,
                 fire: FireParams | None = None, optimizer: str = "fire", bfgs: BFGSParams | None = None):
        if optimizer not in ("fire", "bfgs", "auto"):
            raise SBSInputError(f"optimizer must be 'fire', 'bfgs' or 'auto', got {optimizer!r}")
        self.device = torch.device(resolve_device(device))
        if optimizer == "auto":  # BFGS needs an eigendecomposition per structure and step: slow on a GPU
            optimizer = "fire" if self.device.type == "cuda" else "bfgs"
        if isinstance(potential, str):
            potential = get_potential(potential, device=str(self.device))
        self.potential = batched_potential(potential, device=str(self.device))
        self.model, self.bias = ModelTerm(self.potential), BiasTerm()
        self.energy = SumTerm([self.model, self.bias])  # E = E_model + E_sb(λ); the bias part is kept apart too
        self.limits = limits or BatchLimits()
        self.optimizer = optimizer
        self.fire = fire or FireParams()
        self.bfgs = bfgs or BFGSParams()
        self.dtype = torch.float64
        self.evaluations: list[int] = []  # batch size of every potential evaluation (benchmarks)
        self._cap = self.limits.max_structures
        self._constraint = None  # the constraint of the current batch membership
        self._uid = itertools.count()
        self.seconds = 0.0  # wall time spent in relax() (benchmarks)

    def _queue(self, jobs: list[RelaxJob]) -> BatchQueue:
        return BatchQueue([j.atoms for j in jobs], self.limits, self.device, self.potential.cutoff or 0.0,
                          self.potential.bytes_per_edge, cap=self._cap)

    def budget(self) -> tuple[float, float]:
        """(atoms, edges) one batch may hold on this device."""
        return self._queue([]).budget()

    def plan(self, jobs: list[RelaxJob]) -> list[list[int]]:
        """How the jobs would be split into successive batches if each ran alone (for
        reports); the engine itself refills the batch as structures finish."""
        return self._queue(jobs).plan()

    def slot(self, index: int, job: RelaxJob) -> Slot:
        """The batch state of one job (a fresh stage 0)."""
        return Slot(index, job, self.device, self.dtype, self.optimizer, self.fire, next(self._uid))

    # -- main loop --------------------------------------------------------------------
    def relax(self, jobs: list[RelaxJob], on_done=None) -> list[RelaxResult]:
        """Run every job; ``on_done(index, result)`` is called as each one finishes."""
        check_jobs(jobs, self.potential.elements(), self.potential.name)
        t0 = time.perf_counter()
        results: list[RelaxResult | None] = [None] * len(jobs)
        queue = self._queue(jobs)
        active: list[Slot] = []
        while queue.waiting or active:
            active += [self.slot(i, jobs[i]) for i in queue.admit([s.index for s in active])]
            self.step(active)
            self._cap = queue.cap = min(queue.cap, self._cap)
            still = []
            for s in active:
                if s.done:
                    res = RelaxResult(atoms=s.atoms(), energy=s.energy, steps=s.steps, converged=s.converged,
                                      fmax=s.last_fmax, snapshots=s.snapshots, stopped=s.stopped)
                    results[s.index] = res
                    if on_done is not None:
                        on_done(s.index, res)
                else:
                    still.append(s)
            active = still
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.seconds += time.perf_counter() - t0
        return results  # type: ignore[return-value]

    def evaluate_jobs(self, jobs: list[RelaxJob]):
        """Energies (G,), forces (N, 3) and stresses (G, 3, 3) of model + bias at each job's
        structure and first stage, symmetrized onto each job's group (one batch)."""
        check_jobs(jobs, self.potential.elements(), self.potential.name)
        ev = self.evaluate([self.slot(i, j) for i, j in enumerate(jobs)])
        return ev.energy, ev.forces, ev.stress

    def evaluate(self, slots: list[Slot]) -> "Evaluation":
        """Model + bias (and the bias alone) of a batch, symmetrized, with the deformation
        gradients, cells and structure of each atom they were evaluated at."""
        try:
            return self._evaluate_once(slots)
        except torch.cuda.OutOfMemoryError:
            if len(slots) == 1:
                raise
            torch.cuda.empty_cache()
            half = (len(slots) + 1) // 2
            self._cap = min(self._cap, half)  # admit no more than this from now on
            return Evaluation.join(self.evaluate(slots[:half]), self.evaluate(slots[half:]))

    def _evaluate_once(self, slots: list[Slot]) -> "Evaluation":
        dev = self.device
        filters = [s.filter for s in slots]
        Fs, pos, cells, graph = batch_structures(filters)
        sizes = [s.n for s in slots]
        ptr = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        jobs = [s.job for s in slots]
        periodic = [s.periodic for s in slots]
        graphs = Graphs(pos, cells, torch.cat([s.numbers for s in slots]), graph, ptr, periodic)
        rc = self.energy.cutoff(jobs)
        if rc > 0:
            graphs.cutoff = rc
            graphs.src, graphs.dst, graphs.shifts = radius_graph(pos, cells, ptr, periodic, rc)
        strengths = [s.strength for s in slots]
        batch = Batch(graphs, jobs, strengths)
        (e_m, f_m, s_m), (e_b, f_b, s_b) = self.model.evaluate(batch), self.bias.evaluate(batch)
        self.evaluations.append(len(slots))
        key = tuple(s.uid for s in slots)
        if self._constraint is None or self._constraint[0] != key:
            self._constraint = (key, BatchSymmetryConstraint([j.symmetrizer for j in jobs], sizes, dev, self.dtype))
        c = self._constraint[1]
        f_b, s_b = c.adjust_forces(f_b), c.adjust_stress(s_b)
        return Evaluation(e_m + e_b, c.adjust_forces(f_m) + f_b, c.adjust_stress(s_m) + s_b, e_b, f_b, s_b,
                          strengths, Fs, cells, graph, ptr)

    def step(self, slots: list[Slot]) -> None:
        """One round: one evaluation of the batch, then per structure: converged or out of
        steps → next stage, otherwise one optimizer step. A new stage starts at the
        structure just evaluated, so its forces are the evaluation's with the bias scaled
        to the new λ (E_sb is linear in λ): no second evaluation of the model."""
        if not slots:
            return
        ev = self.evaluate(slots)
        rows, fmax = generalized_forces([s.filter for s in slots], ev.forces, ev.stress, ev.Fs, ev.cells, ev.graph)
        stepping = []
        pending = [(s, g, rows[g], float(fmax[g]), float(ev.energy[g])) for g, s in enumerate(slots)]
        while pending:
            again = []
            for s, g, gen, fm, e in pending:
                s.last_fmax, s.energy = fm, e
                spec = s.stage_spec
                converged = fm < spec.fmax
                if not (converged or s.nsteps >= spec.max_steps):
                    job = s.job
                    if job.monitor is not None and s.total_steps and s.total_steps % job.monitor_every == 0:
                        model_energy = e - float(ev.bias_energy[g]) * s.strength / (ev.strengths[g] or 1.0)
                        if job.monitor(s.atoms(), fm, model_energy):
                            s.stop(model_energy)
                            continue
                    stepping.append((s, gen))
                    continue
                s.finish_stage(converged)
                if s.done or not ev.scalable(g, s.strength):
                    continue  # finished, or a bias the evaluation did not have: evaluated next round
                energy, forces, stress = ev.at(g, s.strength)
                eye = torch.eye(3, dtype=self.dtype, device=self.device)[None]
                r, f = generalized_forces([s.filter], forces, stress[None], eye, s.filter.cell0[None],
                                          torch.zeros(s.n, dtype=torch.long, device=self.device))
                again.append((s, g, r[0], float(f[0]), energy))
            pending = again
        groups: dict = {}
        for s, gen in stepping:
            groups.setdefault((s.filter.rows, s.filter.has_cell), []).append((s, gen))
        for members in groups.values():
            ss = [m[0] for m in members]
            grads = torch.stack([m[1] for m in members])
            if self.optimizer == "fire":
                dr = fire_steps([s.state for s in ss], grads, self.fire)
            else:
                x = torch.stack([s.filter.coordinates() for s in ss])
                dr = bfgs_steps([s.state for s in ss], x, grads.reshape(len(ss), -1), self.bfgs)
                dr = dr.reshape(len(ss), -1, 3)
            for s, d in zip(ss, dr.unbind(0)):
                s.filter.step(d)
                s.nsteps += 1
                s.total_steps += 1


@dataclass
class Evaluation:
    """One evaluation of a batch: the totals (model + bias, symmetrized) and the bias part
    alone at the strengths λ it was evaluated with; the deformation gradients, cells,
    structure of each atom and atom offsets."""

    energy: torch.Tensor
    forces: torch.Tensor
    stress: torch.Tensor
    bias_energy: torch.Tensor
    bias_forces: torch.Tensor
    bias_stress: torch.Tensor
    strengths: list
    Fs: torch.Tensor
    cells: torch.Tensor
    graph: torch.Tensor
    ptr: list

    def scalable(self, g: int, strength: float) -> bool:
        """The totals at another λ follow from this evaluation (λ was not 0, or is 0 now)."""
        return self.strengths[g] != 0.0 or strength == 0.0

    def at(self, g: int, strength: float):
        """(energy, forces (n, 3), stress (3, 3)) of structure ``g`` with the bias at
        ``strength``: E = E_model + (λ/λ₀) E_sb(λ₀)."""
        a, b = self.ptr[g], self.ptr[g + 1]
        scale = (strength / self.strengths[g] - 1.0) if self.strengths[g] != 0.0 else 0.0
        return (float(self.energy[g] + scale * self.bias_energy[g]),
                self.forces[a:b] + scale * self.bias_forces[a:b], self.stress[g] + scale * self.bias_stress[g])

    @staticmethod
    def join(a: "Evaluation", b: "Evaluation") -> "Evaluation":
        n = len(a.strengths)
        cat = torch.cat
        return Evaluation(cat([a.energy, b.energy]), cat([a.forces, b.forces]), cat([a.stress, b.stress]),
                          cat([a.bias_energy, b.bias_energy]), cat([a.bias_forces, b.bias_forces]),
                          cat([a.bias_stress, b.bias_stress]), a.strengths + b.strengths, cat([a.Fs, b.Fs]),
                          cat([a.cells, b.cells]), cat([a.graph, b.graph + n]),
                          a.ptr + [p + a.ptr[-1] for p in b.ptr[1:]])


def relax(jobs: list[RelaxJob], potential, device: str = "cpu", limits: BatchLimits | None = None,
          optimizer: str = "fire", on_done=None, **params) -> list[RelaxResult]:
    """Relax ``jobs`` together (see :class:`Engine`)."""
    return Engine(potential, device=device, limits=limits, optimizer=optimizer, **params).relax(jobs, on_done=on_done)
