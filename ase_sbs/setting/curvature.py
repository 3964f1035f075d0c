"""Setting + potential -> the curvature of each distortion channel at the parent.

By Schur's lemma the Hessian of a G-invariant potential restricted to an isotypic
component of multiplicity m is C ⊗ I_d (for a real, absolutely irreducible Γ), so m
Lanczos steps from one vector of one copy give the m×m block C; its eigenvalues are the
channel's curvatures. Each step is one Hessian-vector product: for an ASE calculator a
central finite difference of forces (and stress, for strain) along the current vector;
for a torch potential E(positions, cell, numbers) the exact product by autograd.

Units: eV/Å² per unit displacement of the whole setting cell (Σ_i |u_i|² = 1 Å²),
strain measured as ε·ℓ with ℓ = V^{1/3} of the setting cell. Negative: unstable.

The starting vector lies in one arm ±k of the channel's star: the Hessian keeps it
there, and the translations with k·T integer act trivially, so every evaluation runs in
the setting's cell folded by those translations (:mod:`ase_sbs.setting.cells`).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from ase.stress import voigt_6_to_full_3x3_stress

from ..core.groups import mask_of
from .cells import FoldedCell, fold_setting
from .channels import DistortionChannel
from .setting import STRAIN_BASIS, Setting


def _gradient(calc, folded: FoldedCell, q: np.ndarray, eps: np.ndarray, ell: float, periodic: bool):
    """(dE_s/du_i of the folded atoms, dE_s/dδ_k) with E_s = copies · E of the folded cell."""
    atoms = folded.atoms.copy()
    F = np.eye(3) + eps
    if periodic:
        atoms.set_cell(np.asarray(folded.atoms.cell) @ F.T, scale_atoms=False)
    atoms.positions = (folded.atoms.positions + q) @ F.T
    atoms.calc = calc
    forces = atoms.get_forces()
    if not periodic:
        return -forces, np.zeros(0)
    sigma = voigt_6_to_full_3x3_stress(atoms.get_stress())
    g_strain = folded.copies * atoms.get_volume() * np.einsum("ij,kij->k", sigma, STRAIN_BASIS) / ell
    return -forces, g_strain


def is_torch_energy(calc) -> bool:
    """A torch potential: a callable E(positions, cell, numbers) -> scalar tensor (eV),
    not an ASE calculator."""
    return callable(calc) and not hasattr(calc, "get_potential_energy") and not hasattr(calc, "calculate")


def _hvp_autograd(energy, folded: FoldedCell, u: np.ndarray, eps_dir: np.ndarray, ell: float, periodic: bool):
    """d/dt at t = 0 of the gradient of :func:`_gradient` at (t u, t ε): the same Hessian
    column as its central difference, exactly, by autograd (forward-over-reverse). The
    strain δ_k S_k / ℓ is composed on the left of the current deformation, as the stress
    of an ASE calculator is."""
    import torch

    dtype = torch.float64
    x0 = torch.as_tensor(folded.atoms.positions, dtype=dtype)
    c0 = torch.as_tensor(np.asarray(folded.atoms.cell), dtype=dtype)
    numbers = torch.as_tensor(folded.atoms.numbers)
    S = torch.as_tensor(STRAIN_BASIS, dtype=dtype) / ell
    U = torch.as_tensor(u, dtype=dtype)
    E = torch.as_tensor(eps_dir, dtype=dtype)
    I3 = torch.eye(3, dtype=dtype)

    def g_of_t(t):
        delta = torch.zeros(len(S), dtype=dtype, requires_grad=True)
        F = (I3 + torch.einsum("k,kij->ij", delta, S)) @ (I3 + t * E)
        pos_leaf = torch.zeros_like(x0, requires_grad=True)  # ∂E/∂r of the deformed positions r
        energy_red = energy((x0 + t * U) @ F.T + pos_leaf, c0 @ F.T, numbers)
        g_pos, g_strain = torch.autograd.grad(energy_red, (pos_leaf, delta), create_graph=True)
        return torch.cat([g_pos.reshape(-1), folded.copies * g_strain])

    _, jv = torch.autograd.functional.jvp(g_of_t, torch.zeros((), dtype=dtype), torch.ones((), dtype=dtype))
    jv = jv.detach().numpy()
    n = len(folded.atoms)
    return jv[: 3 * n].reshape(n, 3), (jv[3 * n:] if periodic else np.zeros(0))


def channel_curvature(setting: Setting, channel: DistortionChannel, calc, step: float = 0.01) -> tuple[float, ...]:
    """Eigenvalues of the m×m Hessian block of ``channel`` at the setting's structure (eV/Å²).

    Args:
        setting: the setting (its structure is the relaxed parent).
        channel: one of its channels.
        calc: an ASE calculator (central differences with ``step`` Å of total
            displacement) or a torch potential, a callable E(positions (N, 3), cell (3, 3),
            numbers) -> eV on float64 tensors, differentiable twice (exact products).
    """
    n = len(setting.atoms)
    periodic = setting.periodic
    k = np.array([float(Fraction(x)) for x in channel.kstar[0]])
    T = setting.pure_translations
    if periodic:
        tpar = setting.translations_frac[T] @ (np.eye(3) if setting.supercell is None else setting.supercell)
        weights = np.cos(2 * np.pi * tpar @ k)
    else:
        weights = np.ones(len(T))
    rng = np.random.default_rng(0)
    v0 = channel.copies[0] @ rng.standard_normal(channel.dimension)
    v0 = sum(w * setting.act_distortion(int(g), v0) for w, g in zip(weights, T)) / len(T)
    v0 /= np.linalg.norm(v0)
    kernel = mask_of(int(g) for w, g in zip(weights, T) if abs(w - 1) < 1e-9)
    folded = fold_setting(setting, kernel)
    ell = setting.atoms.get_volume() ** (1 / 3) if periodic else 1.0
    B = channel.basis
    torch_energy = is_torch_energy(calc)

    def hess(v):
        u = v[: 3 * n].reshape(n, 3)[folded.representatives]
        eps = np.einsum("k,kij->ij", v[3 * n:], STRAIN_BASIS) / ell if periodic else np.zeros((3, 3))
        if torch_energy:
            hu, hs = _hvp_autograd(calc, folded, u, eps, ell, periodic)
            g = np.concatenate([hu[folded.mapping].ravel(), hs])
        else:
            gp, sp = _gradient(calc, folded, step * u, step * eps, ell, periodic)
            gm, sm = _gradient(calc, folded, -step * u, -step * eps, ell, periodic)
            g = np.concatenate([((gp - gm) / (2 * step))[folded.mapping].ravel(), (sp - sm) / (2 * step)])
        return B @ (B.T @ g)

    vs = [v0]
    alphas, betas = [], []
    # m steps for a real (absolutely irreducible) irrep; the commutant of a complex or
    # quaternionic one is 2- or 4-dimensional, and Lanczos stops when β vanishes
    norm = int(round(channel.character @ channel.character / setting.order))
    steps = channel.multiplicity * max(norm, 1)
    for j in range(steps):
        w = hess(vs[-1])
        alphas.append(float(vs[-1] @ w))
        for v in vs:
            w = w - (v @ w) * v
        beta = float(np.linalg.norm(w))
        if j + 1 == steps or beta < 1e-6 * max(1.0, abs(alphas[-1])):
            break
        betas.append(beta)
        vs.append(w / beta)
    m = len(alphas)
    Tm = np.diag(alphas) + np.diag(betas[: m - 1], 1) + np.diag(betas[: m - 1], -1)
    return tuple(float(x) for x in np.linalg.eigvalsh(Tm))
