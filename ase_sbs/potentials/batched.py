"""Potentials evaluated on whole batches of structures (the engine's side of potentials.py).

A batch is a :class:`Graphs`: the atoms of G structures concatenated (positions in Å,
float64), their cells, and one radius graph (edges i→j with integer cell shifts,
r_ij = x_j − x_i + shift·cell) built once per evaluation by :func:`radius_graph` on the
engine's device. A :class:`BatchedPotential` returns for it the energies (G,) in eV,
forces (N, 3) in eV/Å and stresses (G, 3, 3) in eV/Å³ (ASE's sign: σ = (1/V) ∂E/∂ε).

Implementations: SevenNet (one forward+backward of the whole batch through
sevenn's batched ``AtomGraphSequential``; a multi-fidelity model gets its fidelity as one
modality per structure), NequIP-framework models (package, AOTInductor-compiled or
checkpoint: the model's own ``AtomicDataDict`` batch), CHGNet (one forward over the
batch's crystal graphs, :mod:`ase_sbs.potentials.chgnet`) and a sequential fallback that
calls any ASE calculator once per structure.
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from ase import Atoms

from ..errors import SBSInputError


@dataclass
class Graphs:
    """G structures in one batch. ``graph[i]`` is the structure of atom i; ``ptr`` the
    offsets (G+1,); edges are at ``cutoff`` (or absent when None)."""

    positions: torch.Tensor  # (N, 3) float64, Å
    cells: torch.Tensor  # (G, 3, 3) float64, rows are lattice vectors
    numbers: torch.Tensor  # (N,) long
    graph: torch.Tensor  # (N,) long
    ptr: list[int]
    periodic: list[bool]
    cutoff: float | None = None
    src: torch.Tensor | None = None
    dst: torch.Tensor | None = None
    shifts: torch.Tensor | None = None  # (E, 3) float64

    @property
    def n_graphs(self) -> int:
        return len(self.ptr) - 1

    def sizes(self) -> list[int]:
        return [b - a for a, b in zip(self.ptr[:-1], self.ptr[1:])]

    def edge_vectors(self, positions: torch.Tensor | None = None, cells: torch.Tensor | None = None) -> torch.Tensor:
        pos = self.positions if positions is None else positions
        cell = self.cells if cells is None else cells
        return pos[self.dst] - pos[self.src] + torch.einsum("ei,eij->ej", self.shifts.to(pos.dtype),
                                                            cell[self.graph[self.src]])

    @classmethod
    def of(cls, structures: list[Atoms], cutoff: float | None, device="cpu") -> "Graphs":
        """The batch of ``structures`` (positions as float64 on ``device``), with its radius
        graph at ``cutoff`` (none when None)."""
        import numpy as np

        pos = torch.tensor(np.concatenate([a.positions for a in structures]), dtype=torch.float64, device=device)
        cells = torch.tensor(np.stack([np.asarray(a.cell) for a in structures]), dtype=torch.float64, device=device)
        sizes = [len(a) for a in structures]
        ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(int).tolist()
        graph = torch.repeat_interleave(torch.arange(len(sizes), device=device), torch.as_tensor(sizes, device=device))
        numbers = torch.as_tensor(np.concatenate([a.numbers for a in structures]), device=device)
        periodic = [bool(a.pbc.all()) for a in structures]
        g = cls(pos, cells, numbers, graph, ptr, periodic)
        if cutoff:
            g.cutoff = cutoff
            g.src, g.dst, g.shifts = radius_graph(pos, cells, ptr, periodic, cutoff)
        return g

    def atoms(self, g: int) -> Atoms:
        a, b = self.ptr[g], self.ptr[g + 1]
        out = Atoms(numbers=self.numbers[a:b].cpu().numpy(), positions=self.positions[a:b].detach().cpu().numpy())
        if self.periodic[g]:
            out.set_cell(self.cells[g].detach().cpu().numpy())
            out.pbc = True
        return out


def radius_graph(positions: torch.Tensor, cells: torch.Tensor, ptr: list[int], periodic: list[bool],
                 cutoff: float, max_pairs: int = 4_000_000):
    """All edges i→j (i ≠ j or a non-zero shift) with |r_ij| < cutoff, in torch.

    Structures with the same number of atoms and periodicity are handled together:
    positions are wrapped into the cell (fractional coordinates in [0, 1)), every
    integer shift within ceil(cutoff / plane spacing) is tried, and the shifts are
    mapped back to the unwrapped positions. Returns (src, dst, shifts) with global atom
    indices and float64 integer shifts.
    """
    device = positions.device
    sizes = [b - a for a, b in zip(ptr[:-1], ptr[1:])]
    groups: dict = {}
    for g, (n, p) in enumerate(zip(sizes, periodic)):
        groups.setdefault((n, p), []).append(g)
    out_src, out_dst, out_shift = [], [], []
    for (n, p), members in groups.items():
        if n == 0:
            continue
        idx_all = torch.as_tensor(members, device=device)
        starts_all = torch.as_tensor([ptr[g] for g in members], device=device)
        arange = torch.arange(n, device=device)
        pos_all = positions[(starts_all[:, None] + arange[None, :]).reshape(-1)].reshape(len(members), n, 3).detach()
        cell_all = cells[idx_all].detach()
        if p:
            inv_all = torch.linalg.inv(cell_all)
            reach = torch.ceil(cutoff * inv_all.norm(dim=1).max(dim=0).values).long().tolist()
            ranges = [range(-r, r + 1) for r in reach]
            S = torch.tensor(list(itertools.product(*ranges)), dtype=positions.dtype, device=device)
        else:
            S = torch.zeros(1, 3, dtype=positions.dtype, device=device)
        chunk = max(1, max_pairs // (len(S) * n * n))
        for c0 in range(0, len(members), chunk):
            pos = pos_all[c0:c0 + chunk]
            starts = starts_all[c0:c0 + chunk]
            if p:
                cell = cell_all[c0:c0 + chunk]
                frac = pos @ inv_all[c0:c0 + chunk]
                off = torch.floor(frac)
                wpos = pos - off @ cell
                svec = torch.einsum("sk,gkj->gsj", S, cell)  # (g, S, 3)
            else:
                off = torch.zeros_like(pos)
                wpos = pos
                svec = torch.zeros(len(pos), 1, 3, dtype=pos.dtype, device=device)
            vec = wpos[:, None, None, :, :] - wpos[:, None, :, None, :] + svec[:, :, None, None, :]
            d2 = (vec * vec).sum(-1)  # (g, S, i, j)
            keep = d2 < cutoff * cutoff
            zero = (S.abs().sum(1) == 0).nonzero()
            if len(zero):
                keep[:, int(zero[0, 0])] &= ~torch.eye(n, dtype=torch.bool, device=device)
            g_, s_, i_, j_ = keep.nonzero(as_tuple=True)
            out_src.append(starts[g_] + i_)
            out_dst.append(starts[g_] + j_)
            out_shift.append(S[s_] - off[g_, j_] + off[g_, i_])
    if not out_src:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty, torch.zeros(0, 3, dtype=positions.dtype, device=device)
    return torch.cat(out_src), torch.cat(out_dst), torch.cat(out_shift)


class BatchedPotential:
    """Energies, forces and stresses for a :class:`Graphs` batch. ``cutoff`` is the
    radius of the graph the potential needs from the engine (None: it builds its own);
    ``batched`` is False for potentials evaluated one structure at a time."""

    name: str = "potential"
    cutoff: float | None = None
    batched: bool = True
    bytes_per_edge: float = 2048.0  # memory estimate for batch sizing (float32 model + autograd)

    def evaluate(self, graphs: Graphs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def elements(self) -> frozenset | None:
        return None


class ASEBatched(BatchedPotential):
    """Any ASE calculator, called once per structure (the sequential fallback)."""

    batched = False
    bytes_per_edge = 0.0

    def __init__(self, calc, name: str | None = None, warn: bool = True):
        self.calc = calc
        self.name = name or type(calc).__name__
        if warn:
            warnings.warn(
                f"the potential {self.name} cannot evaluate batches; the batched engine calls it once "
                "per structure (sequential fallback, no speed-up from batching)",
                stacklevel=3,
            )

    def evaluate(self, graphs: Graphs):
        from ase.stress import voigt_6_to_full_3x3_stress

        G = graphs.n_graphs
        device = graphs.positions.device
        energies = torch.zeros(G, dtype=torch.float64, device=device)
        forces = torch.zeros_like(graphs.positions)
        stresses = torch.zeros(G, 3, 3, dtype=torch.float64, device=device)
        for g in range(G):
            atoms = graphs.atoms(g)
            atoms.calc = self.calc
            energies[g] = float(atoms.get_potential_energy())
            a, b = graphs.ptr[g], graphs.ptr[g + 1]
            forces[a:b] = torch.as_tensor(atoms.get_forces(), dtype=torch.float64, device=device)
            if graphs.periodic[g]:
                stresses[g] = torch.as_tensor(voigt_6_to_full_3x3_stress(atoms.get_stress()),
                                              dtype=torch.float64, device=device)
        return energies, forces, stresses


class SevenNetBatched(BatchedPotential):
    """A SevenNet ``AtomGraphSequential`` run on whole batches (``is_batch_data``).

    Built from a SevenNet calculator (its model is shared: switched to batch mode for
    each evaluation and back, and run on the calculator's device; its fidelity ``modal``
    kept) or from a checkpoint name (``7net-0``) or file, with ``modal`` for a
    multi-fidelity model (``PBE``, ``R2SCAN`` for SevenNet-MF-0). Edge vectors come from
    the engine's graph; forces and the virial come from the model's
    ``ForceStressOutputFromEdge``. A multi-fidelity model takes its fidelity as
    ``modal_type``, one index per structure of the batch (what the model's own
    ``modal_map`` lookup makes of ``data_modality``), from which it builds the one-hot
    modality input of every atom; the lookup itself is switched off for the call, since it
    expects sevenn's graph objects rather than a dict.
    """

    bytes_per_edge = 6144.0

    def __init__(self, calc=None, device="cpu", name: str = "7net-0", checkpoint: str = "7net-0",
                 modal: str | None = None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import sevenn._keys as KEY

            if calc is None:
                from sevenn import util

                cp = util.load_checkpoint(checkpoint)
                model = cp.build_model().to(device)
                model.eval()
                type_map, cutoff = cp.config[KEY.TYPE_MAP], cp.config[KEY.CUTOFF]
            else:
                model = calc.model
                type_map, cutoff = calc.type_map, calc.cutoff
                modal = modal or getattr(calc, "modal", None)
        modal_map = getattr(model, "modal_map", None) or {}
        if modal_map and modal not in modal_map:
            raise SBSInputError(f"{name} is a multi-fidelity model: give its fidelity, one of {', '.join(modal_map)}"
                                + (f" (got {modal!r})" if modal else ""))
        self.modal = modal if modal_map else None
        self.modal_index = int(modal_map[modal]) if modal_map else None
        self.KEY = KEY
        self.model = model
        self.device = next(model.parameters()).device
        self.type_map = dict(type_map)
        self.cutoff = float(cutoff)
        self.name = name
        self.dtype = next(self.model.parameters()).dtype
        table = torch.full((120,), -1, dtype=torch.long)
        for z, t in self.type_map.items():
            table[int(z)] = int(t)
        self._table = table.to(self.device)

    def elements(self):
        from ase.data import chemical_symbols

        return frozenset(chemical_symbols[int(z)] for z in self.type_map)

    def evaluate(self, graphs: Graphs):
        KEY = self.KEY
        dev = self.device
        numbers = graphs.numbers.to(dev)
        if (self._table[numbers] < 0).any():
            raise SBSInputError(f"{self.name} does not cover every element of the batch")
        vec = graphs.edge_vectors().to(device=dev, dtype=self.dtype).detach().requires_grad_(True)
        G = graphs.n_graphs
        sizes = torch.as_tensor(graphs.sizes(), device=dev)
        volumes = torch.linalg.det(graphs.cells).abs().to(device=dev, dtype=self.dtype)
        volumes = torch.where(torch.as_tensor(graphs.periodic, device=dev), volumes, torch.zeros_like(volumes))
        data = {
            KEY.NODE_FEATURE: numbers,
            KEY.ATOMIC_NUMBERS: numbers,
            KEY.POS: graphs.positions.to(device=dev, dtype=self.dtype),
            KEY.EDGE_IDX: torch.stack([graphs.src, graphs.dst]).to(dev),
            KEY.EDGE_VEC: vec,
            KEY.CELL_VOLUME: volumes,
            KEY.NUM_ATOMS: sizes,
            KEY.BATCH: graphs.graph.to(dev),
        }
        if self.modal_index is not None:
            data[KEY.MODAL_TYPE] = torch.full((G,), self.modal_index, dtype=torch.long, device=dev)
        was_batch = bool(getattr(self.model, "is_batch_data", False))
        was_modal = getattr(self.model, "eval_modal_map", False)
        self.model.set_is_batch_data(True)
        self.model.eval_modal_map = False
        try:
            out = self.model(data)
        finally:
            self.model.set_is_batch_data(was_batch)
            self.model.eval_modal_map = was_modal
        energy = out[KEY.PRED_TOTAL_ENERGY].detach().reshape(G).to(torch.float64)
        forces = out[KEY.PRED_FORCE].detach().to(torch.float64)
        s = -out[KEY.PRED_STRESS].detach().to(torch.float64).reshape(G, 6)  # xx yy zz xy yz zx
        stress = torch.stack([
            torch.stack([s[:, 0], s[:, 3], s[:, 5]], -1),
            torch.stack([s[:, 3], s[:, 1], s[:, 4]], -1),
            torch.stack([s[:, 5], s[:, 4], s[:, 2]], -1),
        ], 1)
        stress = stress * torch.as_tensor(graphs.periodic, device=dev, dtype=torch.float64)[:, None, None]
        out_dev = graphs.positions.device
        return energy.to(out_dev), forces.to(out_dev), stress.to(out_dev)


class NequIPBatched(BatchedPotential):
    """A NequIP-framework model (package, compiled or checkpoint, as loaded by
    ``NequIPCalculator``) evaluated on a batch: each structure goes through the
    calculator's own transforms (type mapping, neighbour list), the frames are joined
    with ``AtomicDataDict.batched_from_list`` and the model runs once."""

    bytes_per_edge = 4096.0

    def __init__(self, calc, name: str = "nequip"):
        from nequip.data import AtomicDataDict

        self.calc = calc
        self.name = name
        # an AOTInductor-compiled model takes batches only if compiled for a batch target
        inputs = getattr(calc.model, "input_keys", None)
        self.batched = inputs is None or AtomicDataDict.BATCH_KEY in inputs
        if not self.batched:
            warnings.warn(f"{name} was compiled for one frame at a time (--target ase or ase_sbs; compile with "
                          "--target batch or batch_sbs to batch): the engine evaluates it one structure at a time",
                          stacklevel=3)

    def evaluate(self, graphs: Graphs):
        from nequip.data import AtomicDataDict

        from ..nequip.calculator import nequip_data_dtype

        c = self.calc
        with nequip_data_dtype():
            frames = [c.atoms_to_data(graphs.atoms(g)) for g in range(graphs.n_graphs)]
        out = None
        G = graphs.n_graphs
        if self.batched or len(frames) == 1:
            try:
                out = c.call_model(AtomicDataDict.batched_from_list(frames))
                if out[AtomicDataDict.TOTAL_ENERGY_KEY].numel() != G:
                    raise RuntimeError(f"{out[AtomicDataDict.TOTAL_ENERGY_KEY].numel()} energies for {G} frames")
            except RuntimeError as exc:  # e.g. a TorchScript model specialized to one frame
                if len(frames) == 1:
                    raise
                out = None
                self.batched = False
                warnings.warn(f"{self.name} cannot evaluate batches ({exc}); the engine evaluates it one "
                              "structure at a time", stacklevel=2)
        if out is None:
            parts = [c.call_model(f) for f in frames]
            out = {k: torch.cat([p[k].detach().reshape(-1, *p[k].shape[1:]) for p in parts])
                   for k in (AtomicDataDict.TOTAL_ENERGY_KEY, AtomicDataDict.FORCE_KEY, AtomicDataDict.STRESS_KEY)
                   if k in parts[0]}
        dev = graphs.positions.device
        e_unit = float(c.energy_units_to_eV)
        f_unit = e_unit / float(c.length_units_to_A)
        energy = out[AtomicDataDict.TOTAL_ENERGY_KEY].detach().reshape(G).to(device=dev, dtype=torch.float64) * e_unit
        forces = out[AtomicDataDict.FORCE_KEY].detach().to(device=dev, dtype=torch.float64) * f_unit
        if AtomicDataDict.STRESS_KEY in out:
            stress = out[AtomicDataDict.STRESS_KEY].detach().reshape(G, 3, 3).to(device=dev, dtype=torch.float64)
            stress = stress * (e_unit / float(c.length_units_to_A) ** 3)
            stress = stress * torch.as_tensor(graphs.periodic, device=dev, dtype=torch.float64)[:, None, None]
        else:
            stress = torch.zeros(G, 3, 3, dtype=torch.float64, device=dev)
        return energy, forces, stress


def evaluate_structures(potential: BatchedPotential, structures: list[Atoms], max_atoms: float = 64,
                        device="cpu") -> list[tuple[float, np.ndarray, np.ndarray]]:
    """(energy eV, forces (N, 3) eV/Å, stress (3, 3) eV/Å³) of each structure, in batches of
    at most ``max_atoms`` atoms (one structure at least) through the batched potential."""
    out = []
    batch: list[Atoms] = []

    def flush():
        if not batch:
            return
        g = Graphs.of(batch, potential.cutoff, device)
        e, f, s = potential.evaluate(g)
        e, f, s = e.cpu().numpy(), f.cpu().numpy(), s.cpu().numpy()
        out.extend((float(e[k]), f[g.ptr[k]:g.ptr[k + 1]], s[k]) for k in range(len(batch)))
        batch.clear()

    for a in structures:
        if batch and sum(len(b) for b in batch) + len(a) > max_atoms:
            flush()
        batch.append(a)
    flush()
    return out


def batched_potential(calc, device: str = "cpu", name: str | None = None) -> BatchedPotential:
    """The batched form of an ASE calculator (or of a :class:`~ase_sbs.potentials.Potential`:
    its own ``batched_form`` when it has one): SevenNet, NequIP and CHGNet calculators
    batch natively; anything else falls back to one call per structure, with a warning."""
    if isinstance(calc, BatchedPotential):
        return calc
    pot_name = name
    if hasattr(calc, "calc") and hasattr(calc, "name") and hasattr(calc, "check_covers"):  # a Potential
        if isinstance(getattr(calc, "batched_form", None), BatchedPotential):
            return calc.batched_form
        pot_name = pot_name or calc.name
        calc = calc.calc
    cls = type(calc).__name__
    module = type(calc).__module__ or ""
    if module.startswith("sevenn") and hasattr(calc, "model") and hasattr(calc, "type_map"):
        return SevenNetBatched(calc, device=device, name=pot_name or "7net-0")
    if module.startswith(("chgnet", "ase_sbs.potentials.chgnet")):
        from .chgnet import CHGNetBatched, is_chgnet

        if is_chgnet(calc):
            return CHGNetBatched(calc, name=pot_name or "chgnet")
    nequip_based = any((c.__module__ or "").startswith("nequip.") for c in type(calc).__mro__)
    if nequip_based and hasattr(calc, "atoms_to_data") and hasattr(calc, "call_model"):  # incl. subclasses
        return NequIPBatched(calc, name=pot_name or cls)
    return ASEBatched(calc, name=pot_name or cls)


__all__ = ["Graphs", "radius_graph", "BatchedPotential", "ASEBatched", "SevenNetBatched", "NequIPBatched",
           "batched_potential", "evaluate_structures"]
