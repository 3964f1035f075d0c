"""The energy of a batch as a sum of terms, as ASE's ``SumCalculator`` and torch-sim's
``SumModel``: E = E_model + E_sb(λ), each term giving energies (G,) in eV, forces (N, 3)
in eV/Å and stresses (G, 3, 3) in eV/Å³ (ASE's sign) for a :class:`Batch`.

- :class:`ModelTerm`: a :class:`~ase_sbs.potentials.batched.BatchedPotential` on the
  batch's radius graph (the edges within its own cutoff);
- :class:`BiasTerm`: E_sb = −λ ⟨b, D(x)⟩ of every structure with λ ≠ 0 and an object,
  grouped by descriptor, through the one bias function
  (:func:`~ase_sbs.bias.descriptor.bias_forces`);
- :class:`SumTerm`: the sum of terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..bias.descriptor import bias_forces, broadcast_objects
from ..errors import SBSInputError
from ..potentials.batched import BatchedPotential, Graphs
from .jobs import RelaxJob


@dataclass
class Batch:
    """G structures being relaxed: their graph (edges within the largest cutoff any term
    needs), the jobs they come from and each one's bias strength λ now (eV)."""

    graphs: Graphs
    jobs: list[RelaxJob]
    strengths: list[float]


class ModelTerm:
    """The potential's energies, forces and stresses (refused when not finite)."""

    def __init__(self, potential: BatchedPotential):
        self.potential = potential

    def cutoff(self, batch_jobs) -> float:
        return self.potential.cutoff or 0.0

    def evaluate(self, batch: Batch):
        g = batch.graphs
        cut = self.potential.cutoff
        if cut is not None and g.src is not None and cut < (g.cutoff or 0.0):
            r = g.edge_vectors()
            keep = (r * r).sum(1) < cut ** 2
            g = Graphs(g.positions, g.cells, g.numbers, g.graph, g.ptr, g.periodic, cut, g.src[keep], g.dst[keep],
                       g.shifts[keep])
        dev, dtype = g.positions.device, g.positions.dtype
        energy, forces, stress = (x.to(dev, dtype) for x in self.potential.evaluate(g))
        if not (torch.isfinite(energy).all() and torch.isfinite(forces).all() and torch.isfinite(stress).all()):
            raise SBSInputError(f"the potential {self.potential.name} returned a non-finite energy, force or stress; "
                                "check the structures and the potential")
        return energy, forces, stress


class BiasTerm:
    """E_sb of every structure with λ ≠ 0 and a symmetry-breaking object."""

    def cutoff(self, batch_jobs) -> float:
        return max((j.descriptor.cutoff for j in batch_jobs if j.descriptor is not None), default=0.0)

    def evaluate(self, batch: Batch):
        g = batch.graphs
        pos, cells = g.positions, g.cells
        G = g.n_graphs
        dev, dtype = pos.device, pos.dtype
        energy = torch.zeros(G, dtype=dtype, device=dev)
        forces = torch.zeros_like(pos)
        stress = torch.zeros(G, 3, 3, dtype=dtype, device=dev)
        by_desc: dict = {}
        for k, (job, lam) in enumerate(zip(batch.jobs, batch.strengths)):
            if lam != 0.0 and job.sbs_object is not None:
                by_desc.setdefault(id(job.descriptor), []).append(k)
        sizes = g.sizes()
        for members in by_desc.values():
            desc = batch.jobs[members[0]].descriptor
            if desc.centres.device != dev or desc.centres.dtype != dtype:  # .to() re-generates e3nn's code
                desc = desc.to(device=dev, dtype=dtype)
            local = torch.full((G,), -1, dtype=torch.long, device=dev)
            local[members] = torch.arange(len(members), device=dev)
            atom_idx = (local[g.graph] >= 0).nonzero().squeeze(1)
            remap = torch.full((len(pos),), -1, dtype=torch.long, device=dev)
            remap[atom_idx] = torch.arange(len(atom_idx), device=dev)
            keep = local[g.graph[g.src]] >= 0
            r = g.edge_vectors()
            keep &= (r * r).sum(1) < desc.cutoff ** 2
            objects = torch.as_tensor(np.concatenate([broadcast_objects(batch.jobs[k].sbs_object, sizes[k])
                                                      for k in members]), dtype=dtype, device=dev)
            lam = torch.cat([torch.full((sizes[k],), float(batch.strengths[k]), dtype=dtype, device=dev)
                             for k in members])
            e, f, s = bias_forces(desc, pos[atom_idx], cells[members], local[g.graph[atom_idx]],
                                  remap[g.src[keep]], remap[g.dst[keep]], g.shifts[keep], g.numbers[atom_idx],
                                  objects, lam, torch.as_tensor([g.periodic[k] for k in members], device=dev))
            energy[members] = e
            forces = forces.index_add(0, atom_idx, f)
            stress[members] = s
        return energy, forces, stress


class SumTerm:
    """The sum of terms (each evaluated on the same batch)."""

    def __init__(self, terms: list):
        self.terms = list(terms)

    def cutoff(self, batch_jobs) -> float:
        return max(t.cutoff(batch_jobs) for t in self.terms)

    def evaluate(self, batch: Batch):
        parts = [t.evaluate(batch) for t in self.terms]
        return tuple(sum(p[k] for p in parts) for k in range(3))
