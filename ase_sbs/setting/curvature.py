"""Setting + potential -> the Hessian at the setting's structure and every channel's curvatures.

Coordinates q = (u, δ): u the Cartesian displacements of the setting's atoms (Å, 3N) and,
for crystals, δ the strain in the orthonormal basis :data:`~ase_sbs.setting.setting.STRAIN_BASIS`
measured as ε·ℓ (ε = Σ_k δ_k S_k / ℓ, ℓ = V^{1/3} of the setting cell; atoms follow the
strain affinely), so H is in eV/Å² throughout. The gradient is g = (−F, V σ:S_k / ℓ).
A channel's curvatures are per unit displacement of the whole setting cell
(Σ_i |u_i|² = 1 Å²); negative: unstable.

Symmetry. The structure is G-invariant, so H commutes with every M_g (G on q: atoms
permuted and rotated, strain rotated) and the gradient is equivariant,
∇E(x₀ + M_g y) = M_g ∇E(x₀ + y). One column c = H e (a probe e: one atom moved along d,
or one strain component) gives |G| of them, H (M_g e) = M_g c; probes are chosen, atom
orbit by atom orbit (then strain), until their images span q-space — phonopy's
symmetry-reduced displacements — and H is the least-squares solution of H E = C over all
images, symmetrized. A probe with an image M_g e = −e needs one evaluation (the gradient
at −h e is M_g times the one at +h e), otherwise two (central differences, error O(h²));
for a torch potential E(positions, cell, numbers) each column is an exact Hessian-vector
product by autograd.

The cost is a few evaluations per symmetry-distinct atom (7 for a 2×2×2 cubic
perovskite), whatever the number of atoms. By Schur's lemma each channel's block
Bᵀ H B is C ⊗ 1 on its m copies: its eigenvalues are the channel's curvatures
(:func:`channel_block_curvatures`), every channel from one Hessian.
"""


from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from .channels import DistortionChannel
from .setting import STRAIN_BASIS, Setting

# candidate directions of an atom probe: axes, then face and body diagonals
_DIRECTIONS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1],
                        [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, -1, 0], [1, 0, -1], [0, 1, -1],
                        [1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]], dtype=float)
_DIRECTIONS /= np.linalg.norm(_DIRECTIONS, axis=1)[:, None]


@dataclass(frozen=True)
class Probe:
    """One direction e in q-space (unit) whose Hessian column H e is evaluated.

    ``mirror``: an element g of G with M_g e = −e (then one evaluation suffices), or None."""

    vector: np.ndarray
    mirror: int | None


def _group_matrices(setting: Setting) -> np.ndarray:
    return np.array([setting.matrix_of(g) for g in range(setting.order)])


def _rank(vectors: list[np.ndarray], tol: float = 1e-8) -> int:
    if not vectors:
        return 0
    return int(np.linalg.matrix_rank(np.array(vectors), tol=tol))


def probes(setting: Setting) -> list[Probe]:
    """The symmetry-reduced probes of the setting (module docstring): per orbit of atoms,
    directions at one atom whose images under its site group span R³ (those with a −d
    image first), then strain components whose images span the strain space."""
    n = len(setting.atoms)
    dim = setting.dimension
    M = _group_matrices(setting)
    out: list[Probe] = []
    seen = np.zeros(n, dtype=bool)

    def mirror_of(e: np.ndarray, elements) -> int | None:
        for g in elements:
            if np.abs(M[g] @ e + e).max() < 1e-8:
                return int(g)
        return None

    def choose(candidates: list[np.ndarray], elements, images_of, rank_needed: int):
        span: list[np.ndarray] = []
        chosen = []
        with_mirror = [(e, mirror_of(e, elements)) for e in candidates]
        for pass_mirrored in (True, False):
            for e, m in with_mirror:
                if (m is not None) != pass_mirrored:
                    continue
                images = images_of(e, elements)
                if _rank(span + images) > _rank(span):
                    span += images
                    chosen.append(Probe(e, m))
                    if _rank(span) >= rank_needed:
                        return chosen
        return chosen

    for a in range(n):
        if seen[a]:
            continue
        seen[np.unique(setting.permutations[:, a])] = True
        site = [g for g in range(setting.order) if setting.permutations[g, a] == a]
        candidates = []
        for d in _DIRECTIONS:
            e = np.zeros(dim)
            e[3 * a: 3 * a + 3] = d
            candidates.append(e)

        def atom_images(e, elements, a=a):
            return [(M[g] @ e)[3 * a: 3 * a + 3] for g in elements]

        out += choose(candidates, site, atom_images, 3)
    if setting.periodic:
        candidates = []
        for k in range(6):
            e = np.zeros(dim)
            e[3 * n + k] = 1.0
            candidates.append(e)
        out += choose(candidates, range(setting.order), lambda e, elements: [(M[g] @ e)[3 * n:] for g in elements], 6)
    return out


def displaced(setting: Setting, q: np.ndarray) -> Atoms:
    """The setting's structure displaced by q = (u, δ) (module docstring)."""
    atoms = setting.atoms.copy()
    atoms.calc = None
    n = len(atoms)
    u = q[: 3 * n].reshape(n, 3)
    if not setting.periodic:
        atoms.positions = atoms.positions + u
        return atoms
    ell = atoms.get_volume() ** (1 / 3)
    F = np.eye(3) + np.einsum("k,kij->ij", q[3 * n:], STRAIN_BASIS) / ell
    atoms.set_cell(np.asarray(atoms.cell) @ F.T, scale_atoms=False)
    atoms.positions = (setting.atoms.positions + u) @ F.T
    return atoms


def gradient_vector(setting: Setting, atoms: Atoms, forces: np.ndarray, stress: np.ndarray | None) -> np.ndarray:
    """g = (−F, V σ:S_k / ℓ) of a displaced structure (``stress`` a 3×3 matrix, eV/Å³)."""
    g = -np.asarray(forces, dtype=float).ravel()
    if not setting.periodic:
        return g
    ell = setting.atoms.get_volume() ** (1 / 3)
    return np.concatenate([g, atoms.get_volume() * np.einsum("ij,kij->k", stress, STRAIN_BASIS) / ell])


def hessian_from_columns(setting: Setting, probe_list: list[Probe], columns: list[np.ndarray]) -> np.ndarray:
    """H from the columns c_j = H e_j of the probes: the least-squares solution of
    H [M_g e_j] = [M_g c_j] over every g and j, symmetrized (module docstring)."""
    M = _group_matrices(setting)
    E = np.concatenate([M @ p.vector for p in probe_list])  # (|G| · probes, D)
    C = np.concatenate([M @ c for c in columns])
    Ht, *_ = np.linalg.lstsq(E, C, rcond=None)
    H = Ht.T
    return (H + H.T) / 2


def finite_difference_hessian(setting: Setting, gradients, step: float = 0.01) -> tuple[np.ndarray, int]:
    """(H, evaluations) by central differences of the gradient along every probe.

    Args:
        gradients: a callable taking a list of displaced structures (``ase.Atoms``) and
            returning their gradient vectors (:func:`gradient_vector`), so a batched
            potential evaluates them together.
        step: the probe's displacement (Å, or strain coordinate ε·ℓ in Å).
    """
    probe_list = probes(setting)
    structures, index = [], []
    for p in probe_list:
        index.append(len(structures))
        structures.append(displaced(setting, step * p.vector))
        if p.mirror is None:
            structures.append(displaced(setting, -step * p.vector))
    grads = gradients(structures)
    columns = []
    for p, i in zip(probe_list, index):
        plus = grads[i]
        minus = setting.act_distortion(p.mirror, plus) if p.mirror is not None else grads[i + 1]
        columns.append((plus - minus) / (2 * step))
    return hessian_from_columns(setting, probe_list, columns), len(structures)


def exact_hessian(setting: Setting, energy) -> tuple[np.ndarray, int]:
    """(H, products) with each probe's column an exact Hessian-vector product of a torch
    potential E(positions, cell, numbers) (autograd, forward over reverse)."""
    import torch

    dtype = torch.float64
    atoms = setting.atoms
    n = len(atoms)
    x0 = torch.as_tensor(atoms.positions, dtype=dtype)
    c0 = torch.as_tensor(np.asarray(atoms.cell), dtype=dtype)
    numbers = torch.as_tensor(atoms.numbers)
    periodic = setting.periodic
    ell = atoms.get_volume() ** (1 / 3) if periodic else 1.0
    S = torch.as_tensor(STRAIN_BASIS, dtype=dtype) / ell
    I3 = torch.eye(3, dtype=dtype)
    probe_list = probes(setting)
    columns = []
    for p in probe_list:
        v = torch.as_tensor(p.vector, dtype=dtype)
        U = v[: 3 * n].reshape(n, 3)
        Edir = torch.einsum("k,kij->ij", v[3 * n:], S) if periodic else torch.zeros(3, 3, dtype=dtype)

        def grad_of_t(t, U=U, Edir=Edir):
            delta = torch.zeros(6, dtype=dtype, requires_grad=True)
            F = (I3 + torch.einsum("k,kij->ij", delta, S)) @ (I3 + t * Edir)
            pos_leaf = torch.zeros_like(x0, requires_grad=True)
            e = energy((x0 + t * U) @ F.T + pos_leaf, c0 @ F.T, numbers)
            g_pos, g_strain = torch.autograd.grad(e, (pos_leaf, delta), create_graph=True)
            return torch.cat([g_pos.reshape(-1), g_strain]) if periodic else g_pos.reshape(-1)

        _, jv = torch.autograd.functional.jvp(grad_of_t, torch.zeros((), dtype=dtype), torch.ones((), dtype=dtype))
        columns.append(jv.detach().numpy())
    return hessian_from_columns(setting, probe_list, columns), len(probe_list)


def channel_block_curvatures(channel: DistortionChannel, H: np.ndarray, order: int) -> tuple[float, ...]:
    """The curvatures of ``channel``: eigenvalues of its block Bᵀ H B (B its orthonormal
    basis). By Schur's lemma the block is C ⊗ 1 on m copies of a d-dimensional Γ: each of
    C's eigenvalues appears d / ν times (ν = ⟨χ, χ⟩ = 1, 2, 4 for real, complex and
    quaternionic Γ), so m ν values are returned, each the mean of its group."""
    B = channel.basis
    w = np.linalg.eigvalsh(B.T @ H @ B)
    nu = max(int(round(channel.character @ channel.character / order)), 1)
    group = max(channel.dimension // nu, 1)
    if len(w) % group:
        group = 1
    return tuple(float(x) for x in w.reshape(-1, group).mean(axis=1))


def is_torch_energy(calc) -> bool:
    """A torch potential: a callable E(positions, cell, numbers) -> scalar tensor (eV),
    not an ASE calculator."""
    return callable(calc) and not hasattr(calc, "get_potential_energy") and not hasattr(calc, "calculate")


def calculator_gradients(setting: Setting, calc):
    """The gradients callable of :func:`finite_difference_hessian` for an ASE calculator
    (one structure at a time)."""
    from ase.stress import voigt_6_to_full_3x3_stress

    def gradients(structures: list[Atoms]) -> list[np.ndarray]:
        out = []
        for atoms in structures:
            atoms.calc = calc
            stress = voigt_6_to_full_3x3_stress(atoms.get_stress()) if setting.periodic else None
            out.append(gradient_vector(setting, atoms, atoms.get_forces(), stress))
        return out

    return gradients


@dataclass(frozen=True, eq=False)
class SettingHessian:
    """The Hessian H (D × D, D = 3N [+ 6], eV/Å²) of a potential at a setting's structure,
    in the coordinates q of the module docstring, and the evaluations it took."""

    matrix: np.ndarray
    evaluations: int

    def curvatures(self, channel: DistortionChannel, order: int) -> tuple[float, ...]:
        return channel_block_curvatures(channel, self.matrix, order)


def setting_hessian(setting: Setting, calc, step: float = 0.01, gradients=None) -> SettingHessian:
    """The Hessian at the setting's structure (module docstring).

    Args:
        calc: an ASE calculator (central differences of forces and stress with ``step``
            Å on one atom, or ``step`` of a strain coordinate), or a torch potential
            E(positions (N, 3), cell (3, 3), numbers) -> eV on float64 tensors,
            differentiable twice (exact products).
        gradients: instead of ``calc``'s own calls, a callable taking a list of
            displaced structures and returning their gradient vectors
            (:func:`gradient_vector`), e.g. one batched evaluation of them all.
    """
    if gradients is None and is_torch_energy(calc):
        H, n = exact_hessian(setting, calc)
    else:
        H, n = finite_difference_hessian(setting, gradients or calculator_gradients(setting, calc), step)
    return SettingHessian(H, n)


def channel_curvature(setting: Setting, channel: DistortionChannel, calc, step: float = 0.01) -> tuple[float, ...]:
    """The curvatures of one channel at the setting's structure (eV/Å²); for several
    channels compute :func:`setting_hessian` once and read each from it."""
    return setting_hessian(setting, calc, step).curvatures(channel, setting.order)
