"""Batched relaxation in torch: many structures at once, ASE's optimizers step for step.

Each :class:`~ase_sbs.relax.jobs.RelaxJob` stage is exactly one ASE minimization

    BFGS(FrechetCellFilter(atoms), maxstep=0.1).run(fmax, steps)     (or ASE's FIRE)

in float64 torch (:mod:`ase_sbs.relax.slots`, :mod:`ase_sbs.relax.optimizers`):

- generalized forces: f_u = f F per atom, and on L the adjoint Fréchet derivative of exp,
  D = Dexp_{Lᵀ}[W F⁻ᵀ] (W = −V σ the virial, replaced by tr(W)/3·1 for
  ``cell='volume'``), divided by N;
- convergence: the largest row norm of the (N + 3, 3) generalized forces < fmax.

The energy is E_model + E_sb(λ), E_sb evaluated by :func:`ase_sbs.bias.descriptor.bias_forces`
for every structure with λ ≠ 0 (global or per-atom objects, batched per descriptor);
forces and stress are symmetrized onto each structure's group before the filter, as in
:class:`~ase_sbs.bias.calculator.SBSCalculator`.

Per-structure convergence: a structure whose stage converges (or runs out of steps)
moves to its next stage; after its last stage it leaves the batch and the next waiting
structure takes its place. The batch is limited by a number of structures and by an
estimate of memory (atoms and edges); a CUDA out-of-memory error halves the batch.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from ..bias.descriptor import bias_forces, broadcast_objects
from ..core.devices import resolve_device
from ..core.symmetrizer import BatchSymmetrizer
from ..errors import SBSInputError
from ..potentials.batched import Graphs, batched_potential, radius_graph
from ..potentials.registry import get_potential
from .jobs import RelaxJob, RelaxResult, check_jobs
from .optimizers import BFGSParams, FireParams, bfgs_steps, fire_steps, frechet_adjoint
from .slots import Slot


@dataclass(frozen=True)
class BatchLimits:
    """Batch size limits: structures, atoms and edges at once. ``None``: from the device.

    CUDA: edges up to half the free memory over the potential's bytes per edge (a GPU's
    throughput rises with the batch). CPU: :data:`CPU_BATCH_ATOMS` atoms, since there a
    model's cost per atom is lowest for small batches and rises for large ones (SevenNet-0
    on 2 cores, forward+forces: 5-atom BaTiO3 0.092 s per structure alone, 0.083 s in a
    batch of 8 (40 atoms), 0.100 s in a batch of 26; 40-atom BaTiO3 0.48 s alone, 0.63 s
    per structure in a batch of 2)."""

    max_structures: int = 512
    max_atoms: int | None = None
    max_edges: int | None = None


CPU_BATCH_ATOMS = 64  # default atom budget of a CPU batch (see BatchLimits)


def batch_bias(slots: list[Slot], graphs: Graphs, pos: torch.Tensor, cells: torch.Tensor):
    """E_sb (G,), forces (N, 3) and stress (G, 3, 3) (eV, eV/Å, eV/Å³) of the batch: every
    structure with λ ≠ 0 and an object, grouped by descriptor, through the one bias function."""
    G = len(slots)
    dev, dtype = pos.device, pos.dtype
    energy = torch.zeros(G, dtype=dtype, device=dev)
    forces = torch.zeros_like(pos)
    stress = torch.zeros(G, 3, 3, dtype=dtype, device=dev)
    by_desc: dict = {}
    for g, s in enumerate(slots):
        if s.stage_spec.strength != 0.0 and s.job.sbs_object is not None:
            by_desc.setdefault(id(s.job.descriptor), []).append(g)
    for members in by_desc.values():
        desc = slots[members[0]].job.descriptor
        if desc.centres.device != dev or desc.centres.dtype != dtype:  # .to() re-generates e3nn's code
            desc = desc.to(device=dev, dtype=dtype)
        local = torch.full((G,), -1, dtype=torch.long, device=dev)
        local[members] = torch.arange(len(members), device=dev)
        atom_idx = (local[graphs.graph] >= 0).nonzero().squeeze(1)
        remap = torch.full((len(pos),), -1, dtype=torch.long, device=dev)
        remap[atom_idx] = torch.arange(len(atom_idx), device=dev)
        keep = local[graphs.graph[graphs.src]] >= 0
        r = graphs.edge_vectors(pos, cells)
        keep &= (r * r).sum(1) < desc.cutoff ** 2
        objects = torch.as_tensor(np.concatenate([broadcast_objects(slots[g].job.sbs_object, slots[g].n)
                                                  for g in members]), dtype=dtype, device=dev)
        lam = torch.cat([torch.full((slots[g].n,), float(slots[g].stage_spec.strength), dtype=dtype, device=dev)
                         for g in members])
        e, f, s = bias_forces(desc, pos[atom_idx], cells[members], local[graphs.graph[atom_idx]],
                              remap[graphs.src[keep]], remap[graphs.dst[keep]], graphs.shifts[keep],
                              graphs.numbers[atom_idx], objects, lam,
                              torch.as_tensor([slots[g].periodic for g in members], device=dev))
        energy[members] = e
        forces = forces.index_add(0, atom_idx, f)
        stress[members] = s
    return energy, forces, stress



class Engine:
    """Relax many :class:`RelaxJob` s together with a :class:`BatchedPotential`.

    Args:
        potential: a name (``emt``, ``7net-0``, a NequIP model file), a
            :class:`BatchedPotential`, a :class:`~ase_sbs.potentials.Potential` or any ASE
            calculator (see :func:`~ase_sbs.batched.batched_potential`).
        device: ``cpu``, ``cuda`` or ``auto``.
        limits: :class:`BatchLimits`.
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
        self.limits = limits or BatchLimits()
        self.optimizer = optimizer
        self.fire = fire or FireParams()
        self.bfgs = bfgs or BFGSParams()
        self.dtype = torch.float64
        self.evaluations: list[int] = []  # batch size of every potential evaluation (benchmarks)
        self._cap = self.limits.max_structures
        self._tables = None  # symmetrization tables of the current batch membership
        self._uid = itertools.count()
        self.seconds = 0.0  # wall time spent in relax() (benchmarks)

    # -- memory-aware admission -------------------------------------------------------
    def _edges_estimate(self, atoms: Atoms) -> float:
        rc = max(self.potential.cutoff or 0.0, 5.0)
        if atoms.pbc.all():
            density = len(atoms) / max(atoms.get_volume(), 1e-9)
        else:
            density = 0.1
        return len(atoms) * density * 4.0 / 3.0 * math.pi * rc ** 3

    def budget(self) -> tuple[float, float]:
        lim = self.limits
        max_atoms = lim.max_atoms
        max_edges = lim.max_edges
        if self.device.type == "cuda" and max_edges is None and self.potential.bytes_per_edge > 0:
            free, _ = torch.cuda.mem_get_info(self.device)
            max_edges = 0.5 * free / self.potential.bytes_per_edge
        if max_atoms is None:
            max_atoms = math.inf if self.device.type == "cuda" else CPU_BATCH_ATOMS
        return float(max_atoms), float(max_edges if max_edges is not None else math.inf)

    def plan(self, jobs: list[RelaxJob]) -> list[list[int]]:
        """How the jobs would be split into successive batches if each ran alone (for
        reports); the engine itself refills the batch as structures finish."""
        max_atoms, max_edges = self.budget()
        batches, cur, na, ne = [], [], 0, 0.0
        for i, j in enumerate(jobs):
            a, e = len(j.atoms), self._edges_estimate(j.atoms)
            if cur and (len(cur) >= self._cap or na + a > max_atoms or ne + e > max_edges):
                batches.append(cur)
                cur, na, ne = [], 0, 0.0
            cur.append(i)
            na += a
            ne += e
        if cur:
            batches.append(cur)
        return batches

    def slot(self, index: int, job: RelaxJob) -> Slot:
        """The batch state of one job (a fresh stage 0)."""
        s = Slot(index, job, self.device, self.dtype, self.fire)
        s.uid = next(self._uid)
        return s

    # -- main loop --------------------------------------------------------------------
    def relax(self, jobs: list[RelaxJob], on_done=None) -> list[RelaxResult]:
        """Run every job; ``on_done(index, result)`` is called as each one finishes."""
        check_jobs(jobs, self.potential.elements(), self.potential.name)
        import time

        t0 = time.perf_counter()
        results: list[RelaxResult | None] = [None] * len(jobs)
        waiting = list(range(len(jobs)))[::-1]
        active: list[Slot] = []
        max_atoms, max_edges = self.budget()
        while waiting or active:
            na = sum(s.n for s in active)
            ne = sum(self._edges_estimate(s.job.atoms) for s in active)
            while waiting:
                j = jobs[waiting[-1]]
                a, e = len(j.atoms), self._edges_estimate(j.atoms)
                if active and (len(active) >= self._cap or na + a > max_atoms or ne + e > max_edges):
                    break
                slot = self.slot(waiting.pop(), j)
                active.append(slot)
                na, ne = na + a, ne + e
            self.step(active)
            still = []
            for s in active:
                if s.stage >= len(s.job.stages):
                    res = RelaxResult(atoms=s.atoms(), energy=s.energy, steps=s.steps, converged=s.converged,
                                      fmax=s.last_fmax, snapshots=s.snapshots)
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

    def evaluate(self, slots: list[Slot]):
        """Energies (G,), forces (N, 3), stresses (G, 3, 3) of model + bias, symmetrized;
        also the deformation gradients, the cells and the atom offsets they were evaluated at."""
        try:
            return self._evaluate_once(slots)
        except torch.cuda.OutOfMemoryError:
            if len(slots) == 1:
                raise
            torch.cuda.empty_cache()
            half = (len(slots) + 1) // 2
            self._cap = min(self._cap, half)  # admit no more than this from now on
            a, b = self.evaluate(slots[:half]), self.evaluate(slots[half:])
            ptr = torch.cat([a[5], b[5][1:] + a[5][-1]])  # atom offsets of the joined batch
            return (*(torch.cat([a[k], b[k]]) for k in range(5)), ptr)

    def _evaluate_once(self, slots: list[Slot]):
        dev, dtype = self.device, self.dtype
        Fs = torch.linalg.matrix_exp(torch.stack([s.L for s in slots]))  # L = 0 without a cell: F = 1
        sizes = [s.n for s in slots]
        ptr = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        graph = torch.repeat_interleave(torch.arange(len(slots), device=dev), torch.as_tensor(sizes, device=dev))
        pos = torch.einsum("nij,nj->ni", Fs[graph], torch.cat([s.u for s in slots]))
        cells = torch.stack([s.cell0 for s in slots]) @ Fs.transpose(1, 2)
        numbers = torch.cat([s.numbers for s in slots])
        periodic = [s.periodic for s in slots]
        rc = max(self.potential.cutoff or 0.0, max((s.job.descriptor.cutoff for s in slots
                                                    if s.job.descriptor is not None), default=0.0))
        graphs = Graphs(pos, cells, numbers, graph, ptr, periodic)
        if rc > 0:
            graphs.cutoff = rc
            graphs.src, graphs.dst, graphs.shifts = radius_graph(pos, cells, ptr, periodic, rc)
        if self.potential.cutoff is not None and graphs.src is not None and self.potential.cutoff < rc:
            r = graphs.edge_vectors()
            keep = (r * r).sum(1) < self.potential.cutoff ** 2
            model_graphs = Graphs(pos, cells, numbers, graph, ptr, periodic, self.potential.cutoff,
                                  graphs.src[keep], graphs.dst[keep], graphs.shifts[keep])
        else:
            model_graphs = graphs
        energy, forces, stress = self.potential.evaluate(model_graphs)
        self.evaluations.append(len(slots))
        energy, forces, stress = energy.to(dev, dtype), forces.to(dev, dtype), stress.to(dev, dtype)
        if not (torch.isfinite(energy).all() and torch.isfinite(forces).all() and torch.isfinite(stress).all()):
            raise SBSInputError(f"the potential {self.potential.name} returned a non-finite energy, force or stress; "
                                "check the structures and the potential")
        e_b, f_b, s_b = batch_bias(slots, graphs, pos, cells)
        energy, forces, stress = energy + e_b, forces + f_b, stress + s_b
        key = tuple(s.uid for s in slots)
        if self._tables is None or self._tables[0] != key:
            self._tables = (key, BatchSymmetrizer([s.job.symmetrizer for s in slots], sizes, dev, dtype))
        tables = self._tables[1]
        return energy, tables.forces(forces), tables.stress(stress), Fs, cells, torch.as_tensor(ptr, device=dev)

    def step(self, slots: list[Slot]) -> None:
        """One round: one evaluation of the batch, then per structure: converged or out of
        steps → next stage (re-evaluated next round), otherwise one optimizer step."""
        if not slots:
            return
        energy, forces, stress, Fs, cells, ptr_t = self.evaluate(slots)
        ptr = ptr_t.tolist()
        dev, dtype = forces.device, forces.dtype
        G = len(slots)
        graph = torch.repeat_interleave(torch.arange(G, device=dev), torch.as_tensor([s.n for s in slots], device=dev))
        f_u = torch.einsum("ni,nij->nj", forces, Fs[graph])  # f F per atom
        fmax_atoms = torch.zeros(G, dtype=dtype, device=dev).scatter_reduce_(
            0, graph, torch.linalg.norm(f_u, dim=1), "amax", include_self=True)
        cell_idx = [g for g, s in enumerate(slots) if s.has_cell]
        fmax = fmax_atoms
        cell_rows = {}
        if cell_idx:
            ci = torch.as_tensor(cell_idx, device=dev)
            vols = torch.linalg.det(cells[ci]).abs()
            W = -vols[:, None, None] * stress[ci]
            hyd = torch.as_tensor([slots[g].hydrostatic for g in cell_idx], device=dev)
            W_h = torch.eye(3, dtype=dtype, device=dev) * (W.diagonal(dim1=1, dim2=2).sum(1) / 3)[:, None, None]
            W = torch.where(hyd[:, None, None], W_h, W)
            L = torch.stack([slots[g].L for g in cell_idx])
            D = frechet_adjoint(L, W @ torch.linalg.inv(Fs[ci].transpose(1, 2)))
            D = D / torch.as_tensor([slots[g].n for g in cell_idx], dtype=dtype, device=dev)[:, None, None]
            fmax = fmax.index_put((ci,), torch.maximum(fmax[ci], torch.linalg.norm(D, dim=2).amax(1)))
            cell_rows = {g: D[k] for k, g in enumerate(cell_idx)}
        fmax_host = fmax.cpu().tolist()
        energy_host = energy.cpu().tolist()
        stepping = []
        for g, s in enumerate(slots):
            s.last_fmax = fmax_host[g]
            s.energy = energy_host[g]
            spec = s.stage_spec
            converged = fmax_host[g] < spec.fmax
            if converged or s.nsteps >= spec.max_steps:
                s.steps.append(s.nsteps)
                s.converged.append(bool(converged))
                pos, cell = s.structure()
                if s.job.snapshots:
                    s.snapshots.append(s.atoms())
                s.stage += 1
                if s.stage < len(s.job.stages):
                    s._reset(pos, cell)
                continue
            gen = f_u[ptr[g]:ptr[g + 1]]
            if s.has_cell:
                gen = torch.cat([gen, cell_rows[g]])
            stepping.append((s, gen))
        groups: dict = {}
        for s, gen in stepping:
            groups.setdefault((s.rows, s.has_cell), []).append((s, gen))
        for members in groups.values():
            ss = [m[0] for m in members]
            grads = torch.stack([m[1] for m in members])
            if self.optimizer == "fire":
                fire_steps(ss, grads, self.fire)
            else:
                bfgs_steps(ss, grads, self.bfgs)
            for s in ss:
                s.nsteps += 1


def relax(jobs: list[RelaxJob], potential, device: str = "cpu", limits: BatchLimits | None = None,
          optimizer: str = "fire", on_done=None, **params) -> list[RelaxResult]:
    """Relax ``jobs`` together (see :class:`Engine`)."""
    return Engine(potential, device=device, limits=limits, optimizer=optimizer, **params).relax(jobs, on_done=on_done)
