"""Which structures relax together: the batch's limits and the queue that fills it, apart
from the engine (as torch-sim's autobatching).

A batch is limited by a number of structures, of atoms and of edges (an estimate from
the density and the cutoff). CUDA: edges up to half the free memory over the
potential's bytes per edge (a GPU's throughput rises with the batch). CPU:
:data:`CPU_BATCH_ATOMS` atoms, since there a model's cost per atom is lowest for small
batches and rises for large ones (SevenNet-0 on 2 cores, forward+forces: 5-atom BaTiO3
0.092 s per structure alone, 0.083 s in a batch of 8 (40 atoms), 0.100 s in a batch of
26; 40-atom BaTiO3 0.48 s alone, 0.63 s per structure in a batch of 2). As structures
finish, waiting ones take their place; a CUDA out-of-memory error halves the number of
structures admitted from then on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from ase import Atoms

CPU_BATCH_ATOMS = 64  # default atom budget of a CPU batch


@dataclass(frozen=True)
class BatchLimits:
    """Batch size limits: structures, atoms and edges at once. ``None``: from the device."""

    max_structures: int = 512
    max_atoms: int | None = None
    max_edges: int | None = None


def edges_estimate(atoms: Atoms, cutoff: float) -> float:
    """Edges of a structure's radius graph at ``cutoff`` (at least 5 Å), from its density."""
    rc = max(cutoff, 5.0)
    density = len(atoms) / max(atoms.get_volume(), 1e-9) if atoms.pbc.all() else 0.1
    return len(atoms) * density * 4.0 / 3.0 * math.pi * rc ** 3


class BatchQueue:
    """The waiting jobs' structures, admitted into the active batch within the limits."""

    def __init__(self, structures: list[Atoms], limits: BatchLimits, device, cutoff: float, bytes_per_edge: float,
                 cap: int | None = None):
        self.structures = structures
        self.limits = limits
        self.device = torch.device(device)
        self.cutoff = cutoff
        self.bytes_per_edge = bytes_per_edge
        self.cap = limits.max_structures if cap is None else cap
        self.waiting = list(range(len(structures)))[::-1]
        self.max_atoms, self.max_edges = self.budget()

    def budget(self) -> tuple[float, float]:
        """(atoms, edges) a batch may hold on this device."""
        lim = self.limits
        max_atoms, max_edges = lim.max_atoms, lim.max_edges
        if self.device.type == "cuda" and max_edges is None and self.bytes_per_edge > 0:
            free, _ = torch.cuda.mem_get_info(self.device)
            max_edges = 0.5 * free / self.bytes_per_edge
        if max_atoms is None:
            max_atoms = math.inf if self.device.type == "cuda" else CPU_BATCH_ATOMS
        return float(max_atoms), float(max_edges if max_edges is not None else math.inf)

    def admit(self, active: list[int]) -> list[int]:
        """Indices of the waiting structures that join a batch holding ``active`` (at least
        one when the batch is empty), in order."""
        na = sum(len(self.structures[i]) for i in active)
        ne = sum(edges_estimate(self.structures[i], self.cutoff) for i in active)
        out = []
        while self.waiting:
            a = self.structures[self.waiting[-1]]
            n, e = len(a), edges_estimate(a, self.cutoff)
            if (active or out) and (len(active) + len(out) >= self.cap or na + n > self.max_atoms
                                    or ne + e > self.max_edges):
                break
            out.append(self.waiting.pop())
            na, ne = na + n, ne + e
        return out

    def halve(self, size: int) -> None:
        """After an out-of-memory error on a batch of ``size``: admit at most half from now on."""
        self.cap = min(self.cap, (size + 1) // 2)

    def plan(self) -> list[list[int]]:
        """How the structures would be split into successive batches if each ran alone (for
        reports); the engine refills the batch as structures finish."""
        batches, cur, na, ne = [], [], 0, 0.0
        for i, a in enumerate(self.structures):
            n, e = len(a), edges_estimate(a, self.cutoff)
            if cur and (len(cur) >= self.cap or na + n > self.max_atoms or ne + e > self.max_edges):
                batches.append(cur)
                cur, na, ne = [], 0, 0.0
            cur.append(i)
            na += n
            ne += e
        if cur:
            batches.append(cur)
        return batches
