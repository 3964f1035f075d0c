"""Batched relaxation in torch: FIRE + FrechetCellFilter for many structures at once.

Each structure is a :class:`RelaxJob`: a sequence of stages (bias strength λ in eV,
force criterion in eV/Å, step budget), an optional SBS object b (with the irreps and
:class:`~ase_sbs.bias.BiasDescriptor` of its target) and an optional
:class:`~ase_sbs.symmetry.Symmetrizer`. Every stage is exactly one ASE minimization

    FIRE(FrechetCellFilter(atoms), dt=0.1, maxstep=0.2, ...).run(fmax, steps)

as :func:`ase_sbs.relax` would run it through ASE, in float64:

- degrees of freedom (FrechetCellFilter): u = x F⁻ᵀ (positions in the stage's reference
  cell) and L = log F, F the deformation gradient (cell = cell₀ Fᵀ, x = u Fᵀ); the cell
  rows of the optimizer's vector are N·(L + log N · 1), N the number of atoms
  (``exp_cell_factor``), so a step dX changes L by dX/N;
- generalized forces: f_u = f F per atom, and on L the adjoint Fréchet derivative of
  exp, D = Dexp_{Lᵀ}[W F⁻ᵀ] (W = −V σ the virial, replaced by tr(W)/3·1 for
  ``cell='volume'``), divided by N; D is the upper-right block of
  exp([[Lᵀ, W F⁻ᵀ], [0, Lᵀ]]);
- convergence: the largest row norm of the (N + 3, 3) generalized forces < fmax;
- FIRE: ASE's update rule and parameters, one (dt, α, N_P, v) per structure, the step
  norm over the whole vector capped at ``maxstep``.

The energy is E_model + E_sb(λ), E_sb = −λ⟨b, D(x)⟩ evaluated by the structure's own
descriptor (batched per irreps); forces and stress are symmetrized onto the
structure's group before the filter, as in :class:`~ase_sbs.calculator.SBSCalculator`.

Per-structure convergence: a structure whose stage converges (or runs out of steps)
moves to its next stage; after its last stage it leaves the batch and the next waiting
structure takes its place. The batch is limited by a number of structures and by an
estimate of memory (atoms and edges); a CUDA out-of-memory error halves the batch.
"""

from __future__ import annotations

import itertools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from ase import Atoms

from .batched import Graphs, batched_potential, radius_graph
from .bias import BiasDescriptor
from .errors import SBSInputError
from .symmetry import Symmetrizer


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


@dataclass(frozen=True)
class Stage:
    """One minimization: bias strength λ (eV), force criterion (eV/Å) and step budget."""

    strength: float
    fmax: float
    max_steps: int


@dataclass
class RelaxJob:
    """A structure and the stages to run on it. ``cell``: full | volume | fixed
    (crystals only; molecules move their atoms only)."""

    atoms: Atoms
    stages: list[Stage]
    cell: str = "full"
    sbs_object: np.ndarray | None = None
    irreps: str | None = None
    descriptor: BiasDescriptor | None = None
    symmetrizer: Symmetrizer | None = None
    snapshots: bool = False  # keep the structure after every stage


@dataclass
class RelaxResult:
    """Final structure, energy (eV, at the last stage's λ), per-stage steps and convergence."""

    atoms: Atoms
    energy: float
    steps: list[int]
    converged: list[bool]
    fmax: float
    snapshots: list = field(default_factory=list, repr=False)


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


def resolve_engine_device(device: str) -> torch.device:
    """``cpu``, ``cuda[:n]`` or ``auto``; CUDA asked for where there is none is an error,
    ``auto`` falls back to the CPU with a warning."""
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        warnings.warn("device 'auto': CUDA is not available, running on the CPU", stacklevel=3)
        return torch.device("cpu")
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            raise SBSInputError(f"device {device!r} requested but CUDA is not available here; use --device cpu or auto")
        return torch.device(device)
    if device != "cpu":
        raise SBSInputError(f"unknown device {device!r}: use cpu, cuda or auto")
    return torch.device("cpu")


# ----------------------------------------------------------------------------------
# per-structure state


class _Slot:
    """State of one structure in the batch (all float64 tensors on the device)."""

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
        self._reset(torch.as_tensor(a.positions, dtype=dtype, device=device),
                    torch.as_tensor(np.asarray(a.cell), dtype=dtype, device=device))

    def _reset(self, positions, cell):
        """A fresh filter and optimizer at the current structure (a new ASE stage)."""
        self.cell0 = cell.clone()
        self.u = positions.clone()
        self.L = torch.zeros(3, 3, dtype=self.dtype, device=self.device)
        self.rows = self.n + (3 if self.has_cell else 0)
        self.vel = torch.zeros(self.rows, 3, dtype=self.dtype, device=self.device)
        self.first = True
        self.dt, self.a, self.nsteps_fire = self.fire.dt, self.fire.astart, 0
        self.nsteps = 0
        self.H = None  # BFGS
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


# ----------------------------------------------------------------------------------
# bias and symmetrization on a batch


def _bias(slots: list[_Slot], graphs: Graphs, pos: torch.Tensor, cells: torch.Tensor):
    """E_sb, forces and stress (eV, eV/Å, eV/Å³) for every structure with λ ≠ 0."""
    G = len(slots)
    dev, dtype = pos.device, pos.dtype
    energy = torch.zeros(G, dtype=dtype, device=dev)
    forces = torch.zeros_like(pos)
    stress = torch.zeros(G, 3, 3, dtype=dtype, device=dev)
    by_desc: dict = {}
    for g, s in enumerate(slots):
        if s.stage_spec.strength != 0.0 and s.job.sbs_object is not None:
            by_desc.setdefault(id(s.job.descriptor), []).append(g)
    if not by_desc:
        return energy, forces, stress
    for members in by_desc.values():
        desc = slots[members[0]].job.descriptor
        if desc.centres.device != dev or desc.centres.dtype != dtype:  # .to() re-generates e3nn's code
            desc = desc.to(device=dev, dtype=dtype)
        sel = torch.zeros(G, dtype=torch.bool, device=dev)
        sel[members] = True
        local = torch.full((G,), -1, dtype=torch.long, device=dev)
        local[members] = torch.arange(len(members), device=dev)
        eps = torch.zeros(len(members), 3, 3, dtype=dtype, device=dev, requires_grad=True)
        sym = (eps + eps.transpose(1, 2)) / 2
        atom_sel = sel[graphs.graph]
        atom_idx = atom_sel.nonzero().squeeze(1)
        x = pos.detach().clone().requires_grad_(True)
        lg = local[graphs.graph[atom_idx]]
        x_sub = x[atom_idx]
        x_s = x_sub + torch.einsum("ni,nij->nj", x_sub, sym[lg])
        cell_s = cells[members] + torch.einsum("gij,gjk->gik", cells[members], sym)
        remap = torch.full((len(pos),), -1, dtype=torch.long, device=dev)
        remap[atom_idx] = torch.arange(len(atom_idx), device=dev)
        e_keep = sel[graphs.graph[graphs.src]]
        r = graphs.edge_vectors(pos, cells)
        e_keep &= (r * r).sum(1) < desc.cutoff ** 2
        src, dst = remap[graphs.src[e_keep]], remap[graphs.dst[e_keep]]
        shifts = graphs.shifts[e_keep].to(dtype)
        vec = x_s[dst] - x_s[src] + torch.einsum("ei,eij->ej", shifts, cell_s[lg[src]])
        nums = graphs.numbers[atom_idx]
        D = desc(vec, src, nums[src], nums[dst], len(atom_idx), graph=lg, n_graphs=len(members))
        b = torch.stack([torch.as_tensor(np.asarray(slots[g].job.sbs_object), dtype=dtype, device=dev)
                         for g in members])
        lam = torch.tensor([slots[g].stage_spec.strength for g in members], dtype=dtype, device=dev)
        E = -lam * (b * D).sum(1)
        dx, de = torch.autograd.grad(E.sum(), (x, eps))
        energy[members] = E.detach()
        forces = forces - dx
        vol = torch.linalg.det(cells[members]).abs()
        per = torch.tensor([slots[g].periodic for g in members], device=dev)
        stress[members] = torch.where(per[:, None, None], de / vol[:, None, None], torch.zeros_like(de))
    return energy, forces, stress


class _SymmetryTables:
    """The Symmetrizers of a batch as flat index tables: F ↦ (1/|G|) Σ_g (g·F) and
    σ ↦ (1/|G|) Σ_g R σ Rᵀ for all structures in two index_add calls."""

    def __init__(self, slots: list[_Slot], ptr: list[int], dev, dtype):
        src, dst, op, rots, op_graph, weights = [], [], [], [], [], []
        n_ops = 0
        for g, s in enumerate(slots):
            sym = s.job.symmetrizer
            if sym is None:
                R = np.eye(3)[None]
                P = np.arange(s.n)[None]
            else:
                R, P = np.asarray(sym.rotations, dtype=np.float64), np.asarray(sym.permutations)
            k = len(R)
            src.append(np.tile(np.arange(s.n), k) + ptr[g])
            dst.append(P.reshape(-1) + ptr[g])
            op.append(np.repeat(np.arange(k), s.n) + n_ops)
            rots.append(R)
            op_graph.append(np.full(k, g))
            weights.append(np.full(k, 1.0 / k))
            n_ops += k
        self.src = torch.as_tensor(np.concatenate(src), device=dev)
        self.dst = torch.as_tensor(np.concatenate(dst), device=dev)
        self.op = torch.as_tensor(np.concatenate(op), device=dev)
        self.R = torch.as_tensor(np.concatenate(rots), dtype=dtype, device=dev)
        self.op_graph = torch.as_tensor(np.concatenate(op_graph), device=dev)
        self.w = torch.as_tensor(np.concatenate(weights), dtype=dtype, device=dev)
        self.G = len(slots)

    def forces(self, f: torch.Tensor) -> torch.Tensor:
        rotated = torch.einsum("mij,mj->mi", self.R[self.op], f[self.src]) * self.w[self.op][:, None]
        return torch.zeros_like(f).index_add(0, self.dst, rotated)

    def stress(self, s: torch.Tensor) -> torch.Tensor:
        R = self.R
        rotated = torch.einsum("gij,gjk,glk->gil", R, s[self.op_graph], R) * self.w[:, None, None]
        return torch.zeros_like(s).index_add(0, self.op_graph, rotated)


def _frechet_adjoint(L: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Σ_{μν} E_μν ⟨Dexp_L[E_μν], W⟩ = Dexp_{Lᵀ}[W] for batches of 3×3 matrices."""
    n = L.shape[0]
    M = torch.zeros(n, 6, 6, dtype=L.dtype, device=L.device)
    Lt = L.transpose(1, 2)
    M[:, :3, :3] = Lt
    M[:, 3:, 3:] = Lt
    M[:, :3, 3:] = W
    return torch.linalg.matrix_exp(M)[:, :3, 3:]


# ----------------------------------------------------------------------------------


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

    def __init__(self, potential, device: str = "cpu", limits: BatchLimits | None = None,
                 fire: FireParams | None = None, optimizer: str = "fire", bfgs: BFGSParams | None = None):
        if optimizer not in ("fire", "bfgs", "auto"):
            raise SBSInputError(f"optimizer must be 'fire', 'bfgs' or 'auto', got {optimizer!r}")
        self.device = resolve_engine_device(device)
        if optimizer == "auto":  # BFGS needs an eigendecomposition per structure and step: slow on a GPU
            optimizer = "fire" if self.device.type == "cuda" else "bfgs"
        if isinstance(potential, str):
            from .potentials import get_potential

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

    def _budget(self) -> tuple[float, float]:
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
        max_atoms, max_edges = self._budget()
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

    def slot(self, index: int, job: RelaxJob) -> _Slot:
        """The batch state of one job (a fresh stage 0)."""
        s = _Slot(index, job, self.device, self.dtype, self.fire)
        s.uid = next(self._uid)
        return s

    # -- main loop --------------------------------------------------------------------
    def relax(self, jobs: list[RelaxJob], on_done=None) -> list[RelaxResult]:
        """Run every job; ``on_done(index, result)`` is called as each one finishes."""
        for j in jobs:
            if not j.stages:
                raise SBSInputError("a relaxation job needs at least one stage")
            if j.cell not in ("full", "fixed", "volume"):
                raise SBSInputError(f"cell must be 'full', 'fixed' or 'volume', got {j.cell!r}")
            if j.atoms.pbc.any() and not j.atoms.pbc.all():
                raise SBSInputError("the batched engine relaxes crystals (pbc on all axes) or molecules (no pbc)")
        elements = self.potential.elements()
        if elements is not None:
            for j in jobs:
                missing = sorted(set(j.atoms.get_chemical_symbols()) - set(elements))
                if missing:
                    raise SBSInputError(f"the potential {self.potential.name} does not cover {', '.join(missing)}")
        import time

        t0 = time.perf_counter()
        results: list[RelaxResult | None] = [None] * len(jobs)
        waiting = list(range(len(jobs)))[::-1]
        active: list[_Slot] = []
        max_atoms, max_edges = self._budget()
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
            self._round(active)
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

    def _evaluate(self, slots: list[_Slot]):
        """Energies (G,), forces (N, 3), stresses (G, 3, 3) of model + bias, symmetrized;
        also the deformation gradients and structures they were evaluated at."""
        try:
            return self._evaluate_once(slots)
        except torch.cuda.OutOfMemoryError:
            if len(slots) == 1:
                raise
            torch.cuda.empty_cache()
            half = (len(slots) + 1) // 2
            self._cap = min(self._cap, half)  # admit no more than this from now on
            a, b = self._evaluate(slots[:half]), self._evaluate(slots[half:])
            ptr = torch.cat([a[5], b[5][1:] + a[5][-1]])  # atom offsets of the joined batch
            return (*(torch.cat([a[k], b[k]]) for k in range(5)), ptr)

    def _evaluate_once(self, slots: list[_Slot]):
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
        e_b, f_b, s_b = _bias(slots, graphs, pos, cells)
        energy, forces, stress = energy + e_b, forces + f_b, stress + s_b
        key = tuple(s.uid for s in slots)
        if self._tables is None or self._tables[0] != key:
            self._tables = (key, _SymmetryTables(slots, ptr, dev, dtype))
        tables = self._tables[1]
        return energy, tables.forces(forces), tables.stress(stress), Fs, cells, torch.as_tensor(ptr, device=dev)

    def _round(self, slots: list[_Slot]) -> None:
        """One evaluation of the batch, then per structure: converged/out of steps → next
        stage (re-evaluated next round), otherwise one optimizer step."""
        if not slots:
            return
        energy, forces, stress, Fs, cells, ptr_t = self._evaluate(slots)
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
            D = _frechet_adjoint(L, W @ torch.linalg.inv(Fs[ci].transpose(1, 2)))
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
                _fire_steps(ss, grads, self.fire)
            else:
                _bfgs_steps(ss, grads, self.bfgs)
            for s in ss:
                s.nsteps += 1

def _apply(slots: list[_Slot], dr: torch.Tensor) -> None:
    """x += dr for a group of structures with the same layout (atom rows, then L rows × N)."""
    for s, d in zip(slots, dr.unbind(0)):
        s.u = s.u + d[: s.n]
        if s.has_cell:
            s.L = s.L + d[s.n:] / s.n


def _fire_steps(slots: list[_Slot], grad: torch.Tensor, fp: FireParams) -> None:
    """ase.optimize.FIRE.step for a group of structures with the same number of rows;
    ``grad`` (k, rows, 3) are the generalized forces. Per structure: if v·f > 0 mix
    v ← (1−α) v + α |v| f/|f| (and after N_min such steps dt ← min(dt f_inc, dt_max),
    α ← α f_α), else v ← 0, α ← α_start, dt ← dt f_dec; then v ← v + dt f,
    dr = dt v scaled to at most ``maxstep`` in norm over the whole vector."""
    vel = torch.stack([s.vel for s in slots])
    sums = torch.stack([(grad * vel).sum((1, 2)), (grad * grad).sum((1, 2)), (vel * vel).sum((1, 2))]).cpu().numpy()
    mix, zero = [], []
    for k, s in enumerate(slots):
        if s.first:
            s.first = False
            mix.append(0.0), zero.append(False)
            continue
        if sums[0, k] > 0.0:
            mix.append(s.a), zero.append(False)
            if s.nsteps_fire > fp.Nmin:
                s.dt = min(s.dt * fp.finc, fp.dtmax)
                s.a *= fp.fa
            s.nsteps_fire += 1
        else:
            mix.append(0.0), zero.append(True)
            s.a = fp.astart
            s.dt *= fp.fdec
            s.nsteps_fire = 0
    dev, dtype = grad.device, grad.dtype
    a = torch.as_tensor(mix, dtype=dtype, device=dev)[:, None, None]
    scale = torch.as_tensor(np.where(sums[1] > 0, np.sqrt(sums[2]) / np.sqrt(np.where(sums[1] > 0, sums[1], 1.0)), 0.0),
                            dtype=dtype, device=dev)[:, None, None]
    vel = (1.0 - a) * vel + a * grad * scale
    vel = torch.where(torch.as_tensor(zero, device=dev)[:, None, None], torch.zeros_like(vel), vel)
    dt = torch.as_tensor([s.dt for s in slots], dtype=dtype, device=dev)[:, None, None]
    vel = vel + dt * grad
    dr = dt * vel
    norm = torch.sqrt((dr * dr).sum((1, 2)))[:, None, None]
    dr = torch.where(norm > fp.maxstep, fp.maxstep * dr / norm, dr)
    for s, v in zip(slots, vel.unbind(0)):
        s.vel = v
    _apply(slots, dr)


def _bfgs_steps(slots: list[_Slot], forces: torch.Tensor, bp: BFGSParams) -> None:
    """ase.optimize.BFGS.step for a group of structures with the same number of rows:
    H ← H + ΔgΔgᵀ/(Δx·Δg) − (HΔx)(HΔx)ᵀ/(Δx·HΔx) (skipped on the first step and when
    |Δx| < 1e-7), step −V (Vᵀg / |ω|) from H's eigenpairs, scaled so that no row
    moves more than ``maxstep``."""
    k = len(slots)
    dev, dtype = forces.device, forces.dtype
    x = torch.stack([torch.cat([s.u.reshape(-1), (s.n * s.L).reshape(-1)]) if s.has_cell else s.u.reshape(-1)
                     for s in slots])
    g = -forces.reshape(k, -1)
    n = g.shape[1]
    first = [s.H is None for s in slots]
    eye = torch.eye(n, dtype=dtype, device=dev)
    H = torch.stack([eye * bp.alpha if s.H is None else s.H for s in slots])
    if not all(first):
        x0 = torch.stack([x[i] if f else s.x0 for i, (s, f) in enumerate(zip(slots, first))])
        g0 = torch.stack([g[i] if f else s.g0 for i, (s, f) in enumerate(zip(slots, first))])
        dx = x - x0
        dg = g - g0
        update = (dx.abs().amax(1) >= 1e-7) & ~torch.as_tensor(first, device=dev)
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
    for i, s in enumerate(slots):
        s.H, s.x0, s.g0 = H[i], x[i], g[i]
    _apply(slots, dx.reshape(k, -1, 3))


def relax(jobs: list[RelaxJob], potential, device: str = "cpu", limits: BatchLimits | None = None,
          optimizer: str = "fire", on_done=None, **params) -> list[RelaxResult]:
    """Relax ``jobs`` together (see :class:`Engine`)."""
    return Engine(potential, device=device, limits=limits, optimizer=optimizer, **params).relax(jobs, on_done=on_done)
