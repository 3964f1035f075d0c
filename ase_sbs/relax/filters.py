"""ASE's FrechetCellFilter for batches of structures, in torch: the cell as extra degrees
of freedom behind one facade.

Per structure (as ``ase.filters.FrechetCellFilter``): u = x F⁻ᵀ, the positions in the
stage's reference cell cell₀, and L = log F, F the deformation gradient (cell = cell₀ Fᵀ,
x = u Fᵀ). The optimizer's coordinates are the N atom rows u and, when the cell relaxes,
3 cell rows N·L; their generalized forces are f F per atom and, on L, the adjoint
Fréchet derivative of exp, D = Dexp_{Lᵀ}[W F⁻ᵀ] with W = −V σ the virial (tr(W)/3·1 for
``cell='volume'``), divided by N. Convergence is the largest row norm of the generalized
forces below fmax. A new stage starts a new filter at the current structure, as a new
ASE run would.
"""

from __future__ import annotations

import torch


def frechet_adjoint(L: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Σ_{μν} E_μν ⟨Dexp_L[E_μν], W⟩ = Dexp_{Lᵀ}[W] for batches of 3×3 matrices."""
    n = L.shape[0]
    M = torch.zeros(n, 6, 6, dtype=L.dtype, device=L.device)
    Lt = L.transpose(1, 2)
    M[:, :3, :3] = Lt
    M[:, 3:, 3:] = Lt
    M[:, :3, 3:] = W
    return torch.linalg.matrix_exp(M)[:, :3, 3:]


class CellFilter:
    """One structure's filter: u, L and cell₀ (float64 tensors on the device)."""

    def __init__(self, positions: torch.Tensor, cell: torch.Tensor, has_cell: bool, hydrostatic: bool):
        self.n = len(positions)
        self.has_cell = has_cell
        self.hydrostatic = hydrostatic
        self.reset(positions, cell)

    def reset(self, positions: torch.Tensor, cell: torch.Tensor) -> None:
        """A fresh filter at this structure (F = 1)."""
        self.cell0 = cell.clone()
        self.u = positions.clone()
        self.L = torch.zeros(3, 3, dtype=positions.dtype, device=positions.device)

    @property
    def rows(self) -> int:
        """Rows of the optimizer's coordinates: N atoms (+ 3 cell rows)."""
        return self.n + (3 if self.has_cell else 0)

    def deformation(self) -> torch.Tensor:
        if not self.has_cell:
            return torch.eye(3, dtype=self.u.dtype, device=self.u.device)
        return torch.linalg.matrix_exp(self.L)

    def structure(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions, cell) now."""
        F = self.deformation()
        return self.u @ F.T, self.cell0 @ F.T

    def coordinates(self) -> torch.Tensor:
        """The optimizer's coordinates, flat: u, then N·L (row-major)."""
        if not self.has_cell:
            return self.u.reshape(-1)
        return torch.cat([self.u.reshape(-1), (self.n * self.L).reshape(-1)])

    def step(self, d: torch.Tensor) -> None:
        """Coordinates += d, d in rows (``rows``, 3)."""
        self.u = self.u + d[: self.n]
        if self.has_cell:
            self.L = self.L + d[self.n:] / self.n


def batch_structures(filters: list[CellFilter]):
    """(deformation gradients (G, 3, 3), positions (N, 3), cells (G, 3, 3), structure of each atom (N,))."""
    dev = filters[0].u.device
    Fs = torch.linalg.matrix_exp(torch.stack([f.L for f in filters]))  # L = 0 without a cell: F = 1
    sizes = torch.as_tensor([f.n for f in filters], device=dev)
    graph = torch.repeat_interleave(torch.arange(len(filters), device=dev), sizes)
    pos = torch.einsum("nij,nj->ni", Fs[graph], torch.cat([f.u for f in filters]))
    cells = torch.stack([f.cell0 for f in filters]) @ Fs.transpose(1, 2)
    return Fs, pos, cells, graph


def generalized_forces(filters: list[CellFilter], forces: torch.Tensor, stress: torch.Tensor, Fs: torch.Tensor,
                       cells: torch.Tensor, graph: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Each structure's generalized forces (rows × 3) and the largest row norm of each (G,)."""
    dev, dtype = forces.device, forces.dtype
    G = len(filters)
    f_u = torch.einsum("ni,nij->nj", forces, Fs[graph])  # f F per atom
    fmax = torch.zeros(G, dtype=dtype, device=dev).scatter_reduce_(
        0, graph, torch.linalg.norm(f_u, dim=1), "amax", include_self=True)
    cell_idx = [g for g, f in enumerate(filters) if f.has_cell]
    cell_rows = {}
    if cell_idx:
        ci = torch.as_tensor(cell_idx, device=dev)
        vols = torch.linalg.det(cells[ci]).abs()
        W = -vols[:, None, None] * stress[ci]
        hyd = torch.as_tensor([filters[g].hydrostatic for g in cell_idx], device=dev)
        W_h = torch.eye(3, dtype=dtype, device=dev) * (W.diagonal(dim1=1, dim2=2).sum(1) / 3)[:, None, None]
        W = torch.where(hyd[:, None, None], W_h, W)
        L = torch.stack([filters[g].L for g in cell_idx])
        D = frechet_adjoint(L, W @ torch.linalg.inv(Fs[ci].transpose(1, 2)))
        D = D / torch.as_tensor([filters[g].n for g in cell_idx], dtype=dtype, device=dev)[:, None, None]
        fmax = fmax.index_put((ci,), torch.maximum(fmax[ci], torch.linalg.norm(D, dim=2).amax(1)))
        cell_rows = {g: D[k] for k, g in enumerate(cell_idx)}
    starts = [0]
    for f in filters:
        starts.append(starts[-1] + f.n)
    rows = []
    for g, f in enumerate(filters):
        atoms = f_u[starts[g]:starts[g + 1]]
        rows.append(torch.cat([atoms, cell_rows[g]]) if f.has_cell else atoms)
    return rows, fmax
