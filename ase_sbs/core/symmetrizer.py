"""Projection of forces and stress onto the symmetric subspace of a group of operations.

With operations (R_g, π_g) of a finite group K acting on a structure,

    F ↦ (1/|K|) Σ_g (g·F),   (g·F)_{π_g(i)} = R_g F_i,
    σ ↦ (1/|K|) Σ_g R_g σ R_gᵀ.

Applied to the forces and stress of a structure that has the symmetry K, it removes
numerical noise (float32 models, finite differences) that would break it further.
One implementation serves one structure (:class:`Symmetrizer`, numpy in and out) and a
batch of structures with their own groups (:class:`BatchSymmetrizer`, torch tensors on
any device): both are index tables applied with two ``index_add`` calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch


@dataclass(frozen=True, eq=False)
class Symmetrizer:
    """The group K as operations on one structure's atoms.

    Attributes:
        rotations: (|K|, 3, 3) Cartesian rotations R_g.
        permutations: (|K|, natoms): g maps atom i onto atom ``permutations[g, i]``.
    """

    rotations: np.ndarray
    permutations: np.ndarray

    @classmethod
    def from_subgroup(cls, sym, elements) -> "Symmetrizer":
        """The operations of ``sym`` (a :class:`~ase_sbs.core.symmetry.Symmetry`) whose
        rotation is one of the point-group elements ``elements``."""
        keep = np.isin(sym.operations.point_index, list(elements))
        return cls(sym.operations.rotations[keep], sym.operations.permutations[keep])

    @cached_property
    def _tables(self) -> "BatchSymmetrizer":
        return BatchSymmetrizer([self], [self.permutations.shape[1]], "cpu", torch.float64)

    def forces(self, forces: np.ndarray) -> np.ndarray:
        """Symmetrize (natoms, 3) forces."""
        return self._tables.forces(torch.as_tensor(np.asarray(forces, dtype=np.float64))).numpy()

    def stress(self, stress: np.ndarray) -> np.ndarray:
        """Symmetrize a (3, 3) stress."""
        s = torch.as_tensor(np.asarray(stress, dtype=np.float64))[None]
        return self._tables.stress(s)[0].numpy()

    def positions(self, atoms) -> np.ndarray:
        """Group-averaged positions of a molecule (operations about its centre of mass)."""
        centre = atoms.get_center_of_mass()
        return self.forces(atoms.positions - centre) + centre


class BatchSymmetrizer:
    """The symmetrizers of several structures (atoms concatenated in order, ``sizes``
    atoms each) as flat index tables on one device; None stands for the trivial group."""

    def __init__(self, symmetrizers: list, sizes: list[int], device, dtype):
        src, dst, op, rots, op_graph, weights = [], [], [], [], [], []
        start = n_ops = 0
        for g, (sym, n) in enumerate(zip(symmetrizers, sizes)):
            if sym is None:
                R, P = np.eye(3)[None], np.arange(n)[None]
            else:
                R, P = np.asarray(sym.rotations, dtype=np.float64), np.asarray(sym.permutations)
            k = len(R)
            src.append(np.tile(np.arange(n), k) + start)
            dst.append(P.reshape(-1) + start)
            op.append(np.repeat(np.arange(k), n) + n_ops)
            rots.append(R)
            op_graph.append(np.full(k, g))
            weights.append(np.full(k, 1.0 / k))
            n_ops += k
            start += n
        self.src = torch.as_tensor(np.concatenate(src), device=device)
        self.dst = torch.as_tensor(np.concatenate(dst), device=device)
        self.op = torch.as_tensor(np.concatenate(op), device=device)
        self.R = torch.as_tensor(np.concatenate(rots), dtype=dtype, device=device)
        self.op_graph = torch.as_tensor(np.concatenate(op_graph), device=device)
        self.w = torch.as_tensor(np.concatenate(weights), dtype=dtype, device=device)

    def forces(self, f: torch.Tensor) -> torch.Tensor:
        """(N, 3) forces of the whole batch, each structure averaged over its group."""
        rotated = torch.einsum("mij,mj->mi", self.R[self.op], f[self.src]) * self.w[self.op][:, None]
        return torch.zeros_like(f).index_add(0, self.dst, rotated)

    def stress(self, s: torch.Tensor) -> torch.Tensor:
        """(G, 3, 3) stresses, each averaged over its structure's group."""
        R = self.R
        rotated = torch.einsum("gij,gjk,glk->gil", R, s[self.op_graph], R) * self.w[:, None, None]
        return torch.zeros_like(s).index_add(0, self.op_graph, rotated)
