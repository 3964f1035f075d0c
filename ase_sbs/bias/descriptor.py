"""SBS -> bias: the equivariant coupling E_sb(x; b, λ) = −λ ⟨b, D(x)⟩ in torch.

D(x) is an E(3)-equivariant descriptor of the whole structure carrying the irreps of b:

    A_i^{c,l}  = Σ_{j ≠ i, r_ij < r_c} f_c(r_ij) s_c(Z_i, Z_j) Y^l(r̂_ij) / n_i    (two-body)
    n_i        = 1 + Σ_j fcut(r_ij)                           (smooth neighbour count)
    out_i      = W₁ A_i + TP₂(A_i, A_i) + TP₃(TP₂'(A_i, A_i), A_i)           (up to four-body)
    D(x)       = Σ_i out_i  projected on the irreps of b

with Gaussian radial channels f_c times a cosine cutoff, species weights
s_c(Z_i, Z_j) that are deliberately asymmetric (otherwise odd-l terms cancel between
i→j and j→i), and fixed, seeded e3nn tensor products: pseudo-parity irreps (``1e``,
``2o``) need products of two neighbour vectors, a pseudoscalar (``0o``, chirality)
needs three. Everything is a smooth function of the positions and the cell, so forces
−∂E/∂x and stress (1/V) ∂E/∂ε follow by autograd; D(g·x) = D(g) D(x) for g in O(3),
and D is invariant to translations and permutations. λ is in eV; E_sb is extensive
and bounded: A_i is a weighted average of bounded functions, so |E_sb| ≤ λ N C.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..core.irreps import float64_default

DEFAULT_CUTOFF = 5.0  # Å


def _natural(l: int) -> str:
    return "e" if l % 2 == 0 else "o"


class BiasDescriptor(torch.nn.Module):
    """Equivariant global descriptor with irreps ``irreps_out`` (an e3nn string).

    Args:
        irreps_out: irreps of the SBS object b.
        cutoff: neighbour cutoff in Å.
        n_radial: number of radial (and species) channels.
        seed: seed of the fixed random weights; same seed, same descriptor.
    """

    def __init__(self, irreps_out: str, cutoff: float = DEFAULT_CUTOFF, n_radial: int = 4, seed: int = 0):
        super().__init__()
        from e3nn import o3

        self.irreps_out = o3.Irreps(irreps_out).simplify()
        self.cutoff = float(cutoff)
        self.n_radial = n_radial
        l_max = max(2, max(ir.l for _, ir in self.irreps_out))
        self.irreps_sh = o3.Irreps([(1, (l, 1 if l % 2 == 0 else -1)) for l in range(l_max + 1)])
        self.irreps_a = o3.Irreps([(n_radial, (l, 1 if l % 2 == 0 else -1)) for l in range(l_max + 1)])
        every = o3.Irreps([(n_radial, (l, p)) for l in range(l_max + 1) for p in (1, -1)])
        gen = torch.Generator().manual_seed(seed)
        with torch.random.fork_rng(devices=[]), float64_default():
            torch.manual_seed(seed)
            self.linear = o3.Linear(self.irreps_a, self.irreps_out)
            self.tp2 = o3.FullyConnectedTensorProduct(self.irreps_a, self.irreps_a, self.irreps_out)
            self.tp2_mid = o3.FullyConnectedTensorProduct(self.irreps_a, self.irreps_a, every)
            self.tp3 = o3.FullyConnectedTensorProduct(every, self.irreps_a, self.irreps_out)
        for p in self.parameters():
            p.requires_grad_(False)
        # one spherical-harmonics module, evaluated by e3nn's plain Python polynomials (no
        # TorchScript), so the descriptor traces identically for any graph size (nequip-compile)
        from e3nn.o3._spherical_harmonics import _spherical_harmonics

        self.sh = o3.SphericalHarmonics(self.irreps_sh, normalize=True, normalization="component")
        self.sh.sph_func = _spherical_harmonics
        self.register_buffer("centres", torch.linspace(0.8, self.cutoff * 0.9, n_radial, dtype=torch.float64))
        self.register_buffer("species_phase", torch.rand(2, n_radial, generator=gen, dtype=torch.float64) * 2 * np.pi)
        self.width = self.cutoff / n_radial

    def species_weights(self, z_i: torch.Tensor, z_j: torch.Tensor) -> torch.Tensor:
        """s_c(Z_i, Z_j) = sin(0.37 Z_i + φ_c) + 0.5 cos(0.71 Z_j + ψ_c): not symmetric."""
        zi = z_i.to(self.centres.dtype)[:, None]
        zj = z_j.to(self.centres.dtype)[:, None]
        return torch.sin(0.37 * zi + self.species_phase[0]) + 0.5 * torch.cos(0.71 * zj + self.species_phase[1])

    def forward(self, vectors: torch.Tensor, edge_src: torch.Tensor, z_src: torch.Tensor,
                z_dst: torch.Tensor, n_atoms: int, graph: torch.Tensor | None = None,
                n_graphs: int = 1, per_atom: bool = False) -> torch.Tensor:
        """D for each graph: (n_graphs, dim). ``vectors`` are r_j − r_i for edges i→j,
        ``edge_src`` the index i, ``graph`` the graph of each atom (default: one graph).
        With ``per_atom`` the per-atom terms D_i = out_i, (n_atoms, dim): equivariant
        and permutation-covariant, for per-atom objects (supercells)."""
        out = self.atom_features(vectors, edge_src, z_src, z_dst, n_atoms)
        if per_atom:
            return out
        if graph is None:
            return out.sum(dim=0, keepdim=True)
        D = torch.zeros(n_graphs, out.shape[1], dtype=out.dtype, device=vectors.device)
        return D.index_add(0, graph, out)

    def atom_features(self, vectors: torch.Tensor, edge_src: torch.Tensor, z_src: torch.Tensor,
                      z_dst: torch.Tensor, n_atoms: int) -> torch.Tensor:
        """Per-atom terms out_i (n_atoms, dim) with D = Σ_i out_i."""

        dtype = vectors.dtype
        r = vectors.norm(dim=1).clamp_min(1e-9)
        centres = self.centres.to(dtype)
        radial = torch.exp(-(((r[:, None] - centres) / self.width) ** 2))
        cutoff = 0.5 * (torch.cos(np.pi * r / self.cutoff) + 1.0) * (r < self.cutoff)
        radial = radial * cutoff[:, None]
        weights = radial * self.species_weights(z_src, z_dst).to(dtype)  # (E, C)
        sh = self.sh(vectors)
        pieces, offset = [], 0
        for _, ir in self.irreps_sh:
            d = ir.dim
            pieces.append((weights[:, :, None] * sh[:, None, offset : offset + d]).flatten(1))
            offset += d
        edge_features = torch.cat(pieces, dim=1)
        A = torch.zeros(n_atoms, edge_features.shape[1], dtype=dtype, device=vectors.device)
        A = A.index_add(0, edge_src, edge_features)
        # smooth neighbour count: A_i becomes a weighted average, so |D| per atom (and
        # E_sb / N) stay bounded however much the structure is compressed
        count = torch.ones(n_atoms, dtype=dtype, device=vectors.device).index_add(0, edge_src, cutoff)
        A = A / count[:, None]
        return self.linear(A) + self.tp2(A, A) + self.tp3(self.tp2_mid(A, A), A)


@dataclass(frozen=True)
class Neighbours:
    """Edges i→j with integer cell shifts: r_ij = x_j − x_i + shift·cell."""

    src: np.ndarray
    dst: np.ndarray
    shifts: np.ndarray


def neighbour_list(atoms, cutoff: float) -> Neighbours:
    from ase.neighborlist import neighbor_list

    if atoms.pbc.all():
        i, j, S = neighbor_list("ijS", atoms, cutoff)
    else:
        pos = atoms.positions
        d = np.linalg.norm(pos[:, None] - pos[None], axis=2)
        i, j = np.nonzero((d < cutoff) & ~np.eye(len(atoms), dtype=bool))
        S = np.zeros((len(i), 3), dtype=int)
    return Neighbours(i, j, S)


def broadcast_objects(objects, n_atoms: int) -> np.ndarray:
    """b as one row per atom: a global object (dim,) repeated, per-atom objects (N, dim) as they are."""
    b = np.asarray(objects, dtype=np.float64)
    return np.repeat(b[None], n_atoms, axis=0) if b.ndim == 1 else b


def atom_bias_energies(descriptor: BiasDescriptor, vectors: torch.Tensor, src: torch.Tensor, dst: torch.Tensor,
                       numbers: torch.Tensor, objects: torch.Tensor, strengths: torch.Tensor) -> torch.Tensor:
    """Per-atom terms e_i = −λ_i ⟨b_i, D_i(x)⟩ (eV) of E_sb = Σ_i e_i, for the atoms of one or
    more structures: ``vectors`` r_j − r_i of the edges i→j (``src`` i, ``dst`` j),
    ``objects`` b_i (N, dim) (a global b repeated on every atom of its structure) and
    ``strengths`` λ_i (N,). The one place E_sb is computed: the ASE calculator, the
    batched engine and the NequIP modules all call it."""
    z_src, z_dst = torch.index_select(numbers, 0, src), torch.index_select(numbers, 0, dst)
    out = descriptor.atom_features(vectors, src, z_src, z_dst, numbers.size(0))  # size(0): traceable for any N
    return -strengths.to(out.dtype) * (objects.to(out.dtype) * out).sum(dim=1)


def bias_forces(descriptor: BiasDescriptor, positions: torch.Tensor, cells: torch.Tensor, graph: torch.Tensor,
                src: torch.Tensor, dst: torch.Tensor, shifts: torch.Tensor, numbers: torch.Tensor,
                objects: torch.Tensor, strengths: torch.Tensor, periodic: torch.Tensor):
    """E_sb per structure (G,), forces (N, 3) and stress (G, 3, 3) of a batch by autograd.

    Each structure is strained by its own symmetric ε_g (x ↦ (1 + ε_g) x, cell likewise);
    F = −∂E/∂x and σ_g = (1/V_g) ∂E/∂ε_g (zero for molecules, ``periodic`` False).
    Edges i→j with integer cell ``shifts`` S: r_ij = x_j − x_i + S·cell_g."""
    G = len(cells)
    dtype, dev = positions.dtype, positions.device
    eps = torch.zeros(G, 3, 3, dtype=dtype, device=dev, requires_grad=True)
    sym = (eps + eps.transpose(1, 2)) / 2
    x = positions.detach().clone().requires_grad_(True)
    x_s = x + torch.einsum("ni,nij->nj", x, sym[graph])
    cell_s = cells + torch.einsum("gij,gjk->gik", cells, sym)
    vec = x_s[dst] - x_s[src] + torch.einsum("ei,eij->ej", shifts.to(dtype), cell_s[graph[src]])
    e_atoms = atom_bias_energies(descriptor, vec, src, dst, numbers, objects, strengths)
    energy = torch.zeros(G, dtype=dtype, device=dev).index_add(0, graph, e_atoms)
    dx, de = torch.autograd.grad(energy.sum(), (x, eps))
    vol = torch.linalg.det(cells).abs()
    stress = torch.where(periodic[:, None, None], de / vol[:, None, None], torch.zeros_like(de))
    return energy.detach(), -dx, stress


@dataclass(frozen=True)
class BiasResult:
    """Energy (eV), forces (natoms, 3) eV/Å and stress (3, 3) eV/Å³ of E_sb."""

    energy: float
    forces: np.ndarray
    stress: np.ndarray


def _descriptor_on(descriptor: BiasDescriptor, device, dtype) -> BiasDescriptor:
    if descriptor.centres.device != torch.device(device) or descriptor.centres.dtype != dtype:
        descriptor = descriptor.to(device=device, dtype=dtype)  # .to() regenerates e3nn's code: only when needed
    return descriptor


def evaluate_bias(atoms, objects, irreps: str, strength: float, descriptor: BiasDescriptor | None = None,
                  dtype=torch.float64, device="cpu") -> BiasResult:
    """E_sb and its forces and stress for an ASE ``Atoms`` (crystal or molecule); ``objects``
    is one global b (dim,) or per-atom b_i (natoms, dim)."""
    descriptor = _descriptor_on(descriptor if descriptor is not None else BiasDescriptor(irreps), device, dtype)
    nbrs = neighbour_list(atoms, descriptor.cutoff)
    n = len(atoms)
    energy, forces, stress = bias_forces(
        descriptor,
        torch.tensor(atoms.positions, dtype=dtype, device=device),
        torch.tensor(np.asarray(atoms.cell), dtype=dtype, device=device)[None],
        torch.zeros(n, dtype=torch.long, device=device),
        torch.as_tensor(nbrs.src, device=device), torch.as_tensor(nbrs.dst, device=device),
        torch.as_tensor(nbrs.shifts, dtype=dtype, device=device),
        torch.as_tensor(atoms.numbers, device=device),
        torch.as_tensor(broadcast_objects(objects, n), dtype=dtype, device=device),
        torch.full((n,), float(strength), dtype=dtype, device=device),
        torch.tensor([bool(atoms.pbc.all())], device=device),
    )
    return BiasResult(float(energy[0]), forces.cpu().numpy().astype(np.float64), stress[0].cpu().numpy())


def descriptor_of(atoms, descriptor: BiasDescriptor) -> np.ndarray:
    """D(x) = Σ_i D_i(x) of an ASE ``Atoms`` (dim,), float64."""
    nbrs = neighbour_list(atoms, descriptor.cutoff)
    pos = torch.tensor(atoms.positions, dtype=torch.float64)
    cell = torch.tensor(np.asarray(atoms.cell), dtype=torch.float64)
    z = torch.as_tensor(atoms.numbers)
    src, dst = torch.as_tensor(nbrs.src), torch.as_tensor(nbrs.dst)
    vec = pos[dst] - pos[src] + torch.tensor(nbrs.shifts, dtype=torch.float64) @ cell
    with torch.no_grad():
        return descriptor(vec, src, z[src], z[dst], len(atoms))[0].numpy()
