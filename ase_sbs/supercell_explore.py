"""Supercell + potential -> channel curvatures and relaxations beyond k = 0.

The protocol of :mod:`ase_sbs.relax` on a supercell (DESIGN §2, last item):

1. parent: relax the primitive parent within its space group;
2. group and channels on the supercell (:mod:`ase_sbs.supercell`);
3. curvature of every channel at the parent (m Lanczos steps of Hessian-vector
   products: exact by autograd for eager NequIP models and other torch potentials,
   else central force differences, step ``curvature_step`` Å);
4. targets: the isotropy subgroups with one-dimensional fixed space of the unstable
   channels (negative curvature), most unstable first, optionally only those at one
   k-star; or named space groups among all channels' isotropy subgroups;
5. per target K: seed with the per-atom bias E_sb = −λ Σ_i ⟨b_i, D_i(x)⟩, anneal λ → 0,
   release, forces and stress symmetrized onto K, classify with spglib.

Every relaxation and force evaluation runs in the smallest cell K (or the channel)
allows: the lattice spanned by the supercell and the pure translations K keeps. A
K-symmetric structure is periodic in it, so this is exact and 2-4x cheaper than the
whole supercell; energies are compared per formula unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from .bias import BiasDescriptor
from .calculator import SBSCalculator
from .errors import SBSInputError
from .potentials import Potential, get_potential, resolve_device
from .relax import _classify, _minimize, bias_scale, formula_units, max_displacement, max_strain
from .supercell import (
    IsotropySubgroup,
    PerAtomSBS,
    SupercellChannel,
    SupercellGroup,
    channel_matches_kpoint,
    distortion_channels,
    isotropy_subgroups,
    per_atom_sbs,
    supercell_group,
)
from .symmetry import Symmetrizer, _permutation, detect_symmetry, symmetrized_atoms
from .targets import STRAIN_BASIS

KPOINT_NAMES = {"G": (0, 0, 0), "Γ": (0, 0, 0), "GAMMA": (0, 0, 0), "X": (0, 0.5, 0),
                "M": (0.5, 0.5, 0), "R": (0.5, 0.5, 0.5)}


# ----------------------------------------------------------------------------------
# reduced cells


def _lattice_basis(rows: np.ndarray) -> np.ndarray:
    """A basis (3 rows) of the integer lattice spanned by integer ``rows`` (Hermite form)."""
    A = [list(map(int, r)) for r in rows]
    out = []
    for col in range(3):
        while True:
            nz = [r for r in A if r[col] != 0]
            if not nz:
                raise SBSInputError("degenerate lattice")
            piv = min(nz, key=lambda r: abs(r[col]))
            others = [r for r in A if r is not piv]
            A = [piv] + [[x - (r[col] // piv[col]) * y for x, y in zip(r, piv)] for r in others]
            if all(r[col] == 0 for r in A[1:]):
                break
        out.append(A[0])
        A = A[1:]
    return np.array(out)


@dataclass(frozen=True, eq=False)
class ReducedCell:
    """The supercell folded by a group of its pure translations.

    ``atoms`` is the reduced structure, ``representatives[j]`` a supercell atom of
    reduced atom j, ``mapping[i]`` the reduced atom of supercell atom i, ``copies`` the
    number of reduced cells in the supercell."""

    atoms: Atoms
    representatives: np.ndarray
    mapping: np.ndarray
    copies: int


def reduced_cell(sg: SupercellGroup, translations, structure: Atoms | None = None) -> ReducedCell:
    """Fold the supercell (or ``structure`` with its atoms and cell) by the pure
    translations ``translations`` (element indices of G)."""
    atoms = sg.atoms if structure is None else structure
    d = sg.n_cells
    tf = sg.translations_frac[list(translations)]
    rows = np.round(np.concatenate([np.eye(3) * d, tf * d])).astype(int)
    basis = _lattice_basis(rows) / d
    cell = basis @ np.asarray(atoms.cell)
    frac = atoms.positions @ np.linalg.inv(cell)
    frac -= np.floor(frac + 1e-9)
    reps, mapping = [], np.empty(len(atoms), dtype=int)
    for i, f in enumerate(frac):
        for j, r in enumerate(reps):
            diff = f - frac[r]
            diff -= np.round(diff)
            if np.abs(diff @ cell).max() < 1e-3 and atoms.numbers[i] == atoms.numbers[r]:
                mapping[i] = j
                break
        else:
            mapping[i] = len(reps)
            reps.append(i)
    reps = np.array(reps)
    if len(atoms) % len(reps) or len(atoms) // len(reps) != len(tf):
        raise AssertionError("folding by the translations did not divide the atoms evenly")
    red = Atoms(atoms.numbers[reps], positions=atoms.positions[reps], cell=cell, pbc=True)
    return ReducedCell(red, reps, mapping, len(tf))


def reduced_symmetrizer(sg: SupercellGroup, elements, red: ReducedCell, tol: float = 1e-3) -> Symmetrizer:
    """The operations ``elements`` of G acting on the reduced cell."""
    cell = np.asarray(red.atoms.cell)
    to_frac = np.linalg.inv(cell.T)
    rots, perms = [], []
    for g in elements:
        R = sg.rotations[g]
        W = to_frac @ R @ cell.T
        if not np.allclose(W, np.round(W), atol=1e-5):
            raise AssertionError("an operation of K does not keep its own lattice")
        t = sg.translations[g] @ np.linalg.inv(cell)
        p = _permutation(red.atoms, np.round(W), t, tol, periodic=True)
        if p is None:
            raise AssertionError("an operation of K does not map the reduced cell onto itself")
        rots.append(R)
        perms.append(p)
    return Symmetrizer(np.array(rots), np.array(perms))


# ----------------------------------------------------------------------------------
# curvature


def _gradient(calc, red: ReducedCell, q_red: np.ndarray, eps: np.ndarray, ell: float) -> tuple[np.ndarray, np.ndarray]:
    """(dE_s/du_i for the reduced atoms, dE_s/de_k): supercell energy E_s = copies · E."""
    atoms = red.atoms.copy()
    F = np.eye(3) + eps
    atoms.set_cell(np.asarray(red.atoms.cell) @ F.T, scale_atoms=False)
    atoms.positions = (red.atoms.positions + q_red) @ F.T
    atoms.calc = calc
    forces = atoms.get_forces()
    from ase.stress import voigt_6_to_full_3x3_stress

    sigma = voigt_6_to_full_3x3_stress(atoms.get_stress())
    g_strain = red.copies * atoms.get_volume() * np.einsum("ij,kij->k", sigma, STRAIN_BASIS) / ell
    return -forces, g_strain


def _is_torch_energy(calc) -> bool:
    """A torch potential: a callable E(positions, cell, numbers) -> scalar tensor (eV),
    not an ASE calculator."""
    return callable(calc) and not hasattr(calc, "get_potential_energy") and not hasattr(calc, "calculate")


def _hvp_autograd(energy, red: ReducedCell, u: np.ndarray, eps_dir: np.ndarray, ell: float) -> tuple[np.ndarray, np.ndarray]:
    """d/dt at t = 0 of the gradient of :func:`_gradient` at (t u, t ε): the same Hessian
    column as its central difference, exactly, by autograd (forward-over-reverse).

    The gradient is (∂E_s/∂u_i, ∂E_s/∂δ_k) (E_s = copies · E of the reduced cell) with the strain δ_k S_k / ℓ composed on the
    left of the current deformation, as the stress of an ASE calculator is."""
    import torch

    dtype = torch.float64
    x0 = torch.as_tensor(red.atoms.positions, dtype=dtype)
    c0 = torch.as_tensor(np.asarray(red.atoms.cell), dtype=dtype)
    numbers = torch.as_tensor(red.atoms.numbers)
    S = torch.as_tensor(STRAIN_BASIS, dtype=dtype) / ell
    U = torch.as_tensor(u, dtype=dtype)
    E = torch.as_tensor(eps_dir, dtype=dtype)
    I3 = torch.eye(3, dtype=dtype)

    def g_of_t(t):
        q = t * U
        delta = torch.zeros(len(S), dtype=dtype, requires_grad=True)
        F = (I3 + torch.einsum("k,kij->ij", delta, S)) @ (I3 + t * E)
        pos_leaf = torch.zeros_like(x0, requires_grad=True)  # ∂E/∂r of the deformed positions r
        energy_red = energy((x0 + q) @ F.T + pos_leaf, c0 @ F.T, numbers)
        g_pos, g_strain = torch.autograd.grad(energy_red, (pos_leaf, delta), create_graph=True)
        # a supercell atom's force is its reduced-cell image's; the strain gradient is E_s = copies · E's
        return torch.cat([g_pos.reshape(-1), red.copies * g_strain])

    _, jv = torch.autograd.functional.jvp(g_of_t, torch.zeros((), dtype=dtype), torch.ones((), dtype=dtype))
    jv = jv.detach().numpy()
    n = len(red.atoms)
    return jv[: 3 * n].reshape(n, 3), jv[3 * n:]


def torch_energy_of(calc):
    """The torch potential E(positions, cell, numbers) behind an ASE calculator, for
    autograd curvatures: eager NequIP models (``ase_sbs.nequip.energy``); None otherwise
    (finite differences)."""
    if not any(c.__name__ == "NequIPCalculator" for c in type(calc).__mro__):
        return None
    from .nequip.energy import energy_function

    return energy_function(calc)


def channel_curvature(sg: SupercellGroup, channel: SupercellChannel, calc, step: float = 0.01) -> tuple[float, ...]:
    """Eigenvalues of the m×m Hessian block of ``channel`` at the parent (eV/Å²).

    By Schur's lemma H = C ⊗ I_d on the channel, so the Krylov space of any vector v
    of one irreducible copy has dimension m and H restricted to it has C's
    eigenvalues. Lanczos from a generic v of the first copy (in one arm of the star):
    each step one Hessian-vector product projected onto the channel: for an ASE
    calculator a central difference of the gradient (forces, and stress for strain)
    along the current vector, with ``step`` Å of total displacement; for a torch
    potential (``calc`` a callable E(positions (N, 3), cell (3, 3), numbers) -> eV,
    float64 tensors, differentiable twice) the exact product by autograd
    (``step`` unused)."""
    n = len(sg.atoms)
    # start in one arm ±k of the star: H keeps it there, and the translations with
    # k·T integer act trivially, so forces are evaluated in a cell that small
    from fractions import Fraction

    k = np.array([float(Fraction(x)) for x in channel.kstar[0]])
    T = sg.pure_translations
    weights = np.cos(2 * np.pi * sg.translations[T] @ np.linalg.inv(np.asarray(sg.parent.atoms.cell)) @ k)
    rng = np.random.default_rng(0)
    v0 = channel.copies[0] @ rng.standard_normal(channel.dimension)
    v0 = sum(w * _act(sg, g, v0) for w, g in zip(weights, T)) / len(T)
    v0 /= np.linalg.norm(v0)
    kernel = [g for w, g in zip(weights, T) if abs(w - 1) < 1e-9]
    red = reduced_cell(sg, kernel)
    ell = sg.atoms.get_volume() ** (1 / 3)
    B = channel.basis

    def hess(v):
        u = v[: 3 * n].reshape(n, 3)[red.representatives]
        eps = np.einsum("k,kij->ij", v[3 * n:], STRAIN_BASIS) / ell
        if _is_torch_energy(calc):
            hu, hs = _hvp_autograd(calc, red, u, eps, ell)
            g = np.concatenate([hu[red.mapping].ravel(), hs])
        else:
            gp, sp = _gradient(calc, red, step * u, step * eps, ell)
            gm, sm = _gradient(calc, red, -step * u, -step * eps, ell)
            g = np.concatenate([((gp - gm) / (2 * step))[red.mapping].ravel(), (sp - sm) / (2 * step)])
        return B @ (B.T @ g)

    vs = [v0]
    alphas, betas = [], []
    # m steps for a real (absolutely irreducible) irrep; the commutant of a complex or
    # quaternionic one is 2- or 4-dimensional, and Lanczos stops when β vanishes
    norm = int(round(channel.character @ channel.character / sg.order))
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
    T = np.diag(alphas) + np.diag(betas[: len(alphas) - 1], 1) + np.diag(betas[: len(alphas) - 1], -1)
    return tuple(float(x) for x in np.linalg.eigvalsh(T))


def _act(sg: SupercellGroup, g: int, v: np.ndarray) -> np.ndarray:
    return sg.act_distortion(int(g), v)


# ----------------------------------------------------------------------------------
# exploration


@dataclass
class SupercellPhase:
    """A relaxed structure of one target (stationary point of the unbiased potential)."""

    target: str
    channel: str
    spacegroup_number: int | None
    spacegroup_symbol: str | None
    cell_multiplication: int
    delta_energy_per_formula_unit_eV: float
    energy_per_atom_eV: float
    n_variants: int
    spontaneous: bool
    status: str
    converged: bool
    steps: dict
    max_displacement_A: float
    lattice: list
    atoms: Atoms = field(repr=False)

    @property
    def name(self) -> str:
        return f"{self.spacegroup_symbol} ({self.spacegroup_number})"


@dataclass
class SupercellExploration:
    parent_spacegroup: str
    parent_energy_per_atom_eV: float
    parent_atoms: Atoms
    supercell: list
    group_order: int
    channels: list[SupercellChannel]
    targets: list[IsotropySubgroup]
    phases: list[SupercellPhase]
    potential: str
    kpoint: list | None = None

    def as_dict(self) -> dict:
        return {
            "parent": {"spacegroup": self.parent_spacegroup, "energy_per_atom_eV": self.parent_energy_per_atom_eV,
                       "formula": self.parent_atoms.get_chemical_formula(),
                       "lattice": [float(x) for x in self.parent_atoms.cell.cellpar()]},
            "supercell": self.supercell, "group_order": self.group_order, "kpoint": self.kpoint,
            "potential": self.potential,
            "channels": [c.as_dict() for c in self.channels],
            "targets": [t.as_dict() for t in self.targets],
            "phases": [{k: v for k, v in p.__dict__.items() if k != "atoms"} for p in self.phases],
        }

    def describe(self) -> str:
        lines = [f"parent        {self.parent_atoms.get_chemical_formula()} {self.parent_spacegroup}, "
                 f"a = {self.parent_atoms.cell.cellpar()[0]:.4f} Å, E = {self.parent_energy_per_atom_eV:.5f} eV/atom",
                 f"supercell     {self.supercell}: |G| = {self.group_order} (space group / supercell translations)",
                 f"potential     {self.potential}", "",
                 "channels (curvature at the parent, eV/Å² per unit supercell displacement; < 0: unstable)"]
        for c in sorted(self.channels, key=lambda c: c.min_curvature if c.curvature else 0.0):
            curv = ", ".join(f"{x:+.3f}" for x in c.curvature) if c.curvature else "-"
            lines.append(f"  {c.label:<10} dim {c.dimension} x{c.multiplicity}  {'+'.join(c.sources):<20} "
                         f"{curv}{'   UNSTABLE' if c.unstable else ''}")
        lines += ["", "targets (isotropy subgroups, one-dimensional order parameter)"]
        for t in self.targets:
            lines.append(f"  {t.name:<16} channel {t.channel:<10} [G:K] = {t.index:<3} cell x{t.cell_multiplication}")
        lines += ["", "phases (ΔE per formula unit relative to the parent; spontaneous: below it by more than "
                  "energy_tol)"]
        for p in self.phases:
            lines.append(f"  {p.target:<16} -> {p.name:<16} cell x{p.cell_multiplication}  "
                         f"ΔE = {p.delta_energy_per_formula_unit_eV * 1000:+8.3f} meV/f.u.  "
                         f"max |u| {p.max_displacement_A:.3f} Å  {p.status}{' (spontaneous)' if p.spontaneous else ''}, {p.n_variants} variants")
        return "\n".join(lines)


def parse_kpoint(k) -> np.ndarray:
    """``R`` (Γ, X, M, R of a primitive cubic parent) or three numbers."""
    if isinstance(k, str):
        name = k.strip().upper()
        if name in KPOINT_NAMES:
            return np.array(KPOINT_NAMES[name], dtype=float)
        k = k.replace(",", " ").split()
    try:
        v = np.array([float(eval_fraction(x)) for x in k], dtype=float)
    except (TypeError, ValueError) as exc:
        raise SBSInputError(f"a k-point is a name (Γ/G, X, M, R) or three numbers, got {k!r}") from exc
    if v.shape != (3,):
        raise SBSInputError(f"a k-point has three components, got {k!r}")
    return v


def eval_fraction(x) -> float:
    from fractions import Fraction

    return float(Fraction(str(x)))


def supercell_for_kpoint(parent_atoms: Atoms, k, symprec: float = 1e-3) -> np.ndarray:
    """Smallest diagonal supercell commensurate with every arm of k's star."""
    sym = detect_symmetry(parent_atoms, symprec=symprec)
    ns = [1, 1, 1]
    for W in sym.operations.rotations_frac:
        kk = np.mod(np.asarray(k) @ np.linalg.inv(W), 1.0)
        for a in range(3):
            q = np.round(kk[a], 6)
            from fractions import Fraction

            den = Fraction(float(q)).limit_denominator(48).denominator
            ns[a] = ns[a] * den // math.gcd(ns[a], den)
    return np.diag(ns)


def explore_supercell(atoms: Atoms, calc="auto", supercell=None, kpoint=None, targets="auto",
                      cell: str = "full", device: str = "cpu", symprec: float = 1e-3, seed_force: float = 0.05,
                      anneal=(0.3, 0.1), fmax: float = 0.01, release_fmax: float = 5e-4, max_steps: int = 400,
                      energy_tol: float = 1e-4, curvature_step: float = 0.01, max_fixed_dim: int = 1,
                      progress: bool = False, out: str | None = None, **_ignored) -> SupercellExploration:
    """Run the protocol on a supercell (see module docstring).

    Args:
        atoms: the primitive high-symmetry parent.
        supercell: three integers or a 3x3 integer matrix (rows: supercell vectors in
            the parent's basis); default: the smallest one that holds ``kpoint``'s star.
        kpoint: keep only channels whose k-star holds this k (a name or three numbers).
        targets: ``auto`` (one-dimensional isotropy subgroups of the unstable channels)
            or space-group numbers/symbols, comma-separated or a list, searched among
            the one-dimensional isotropy subgroups of every (selected) channel.
        out: unused here (the CLI writes the results with
            :func:`write_supercell_exploration`); other keywords of
            :func:`ase_sbs.break_symmetry` that do not apply are ignored.
    """
    if supercell is None and kpoint is None:
        raise SBSInputError("give a supercell (e.g. 2 2 2) or a k-point (e.g. R)")
    k = None if kpoint is None else parse_kpoint(kpoint)
    if supercell is None:
        supercell = supercell_for_kpoint(atoms, k, symprec)
    # early size check, before loading a potential or relaxing anything
    from .supercell import _as_matrix, check_size

    psym = detect_symmetry(atoms, symprec=symprec)
    check_size(psym, _as_matrix(supercell))
    pot = calc if isinstance(calc, Potential) else get_potential(calc, atoms.get_chemical_symbols(), device)
    if isinstance(calc, Potential):
        pot.check_covers(atoms.get_chemical_symbols())
    parent = symmetrized_atoms(psym)
    full = Symmetrizer(psym.operations.rotations, psym.operations.permutations)
    relax_calc = SBSCalculator(pot.calc, np.zeros(1), "0e", 0.0, symmetrize=full)
    converged, _ = _minimize(parent, relax_calc, cell, release_fmax, 1000)
    if not converged:
        raise SBSInputError("the parent did not converge within its own symmetry; check the structure")
    e_parent = float(parent.get_potential_energy()) / len(parent)
    parent.calc = None
    sg = supercell_group(parent, supercell, symprec)
    channels = distortion_channels(sg)
    curvature_calc = torch_energy_of(pot.calc) or pot.calc
    channels = [c.with_curvature(channel_curvature(sg, c, curvature_calc, curvature_step)) for c in channels]
    selected = [c for c in channels if k is None or channel_matches_kpoint(c, k, sg)]
    if not selected:
        raise SBSInputError(f"no distortion channel of the supercell {np.asarray(supercell).tolist()} lies at k = {kpoint}")
    selected.sort(key=lambda c: c.min_curvature)
    auto = isinstance(targets, str) and targets == "auto"
    wanted = None if auto else _wanted(targets)
    cands, seen = [], set()
    for c in selected:
        if auto and not c.unstable:
            continue
        for K in isotropy_subgroups(sg, c, max_fixed_dim):
            if K.mask in seen:
                continue
            if wanted is not None and not ({K.spacegroup_number, _norm(K.spacegroup_symbol)} & wanted):
                continue
            seen.add(K.mask)
            cands.append(K)
    if wanted is not None and not cands:
        raise SBSInputError(f"none of {targets!r} is a one-dimensional isotropy subgroup of the selected channels")
    fu_atoms = len(parent) / formula_units(parent)
    phases = []
    for K in cands:
        B = per_atom_sbs(sg, K)
        signs = (1,) if B.contains(-B.objects[0]) else (1, -1)
        for sign in signs:
            phases.append(_relax_target(sg, B, sign, pot, cell, seed_force, anneal, fmax, release_fmax,
                                        max_steps, energy_tol, e_parent, fu_atoms, symprec, resolve_device(device)))
    phases.sort(key=lambda p: p.delta_energy_per_formula_unit_eV)
    return SupercellExploration(
        parent_spacegroup=f"{psym.spacegroup_symbol} ({psym.spacegroup_number})", parent_energy_per_atom_eV=e_parent,
        parent_atoms=parent, supercell=np.asarray(sg.matrix).tolist(), group_order=sg.order,
        channels=channels, targets=cands, phases=phases, potential=pot.name,
        kpoint=None if k is None else k.tolist(),
    )


def _norm(s) -> str:
    return str(s).replace(" ", "").replace("_", "").lower()


def _wanted(targets) -> set:
    items = targets.split(",") if isinstance(targets, str) else list(targets)
    out = set()
    for t in items:
        t = str(t).strip()
        if t:
            out.add(int(t) if t.isdigit() else _norm(t))
    return out


def _relax_target(sg: SupercellGroup, B: PerAtomSBS, sign: int, pot: Potential, cell: str, seed_force: float,
                  anneal, fmax: float, release_fmax: float, max_steps: int, energy_tol: float, e_parent: float,
                  fu_atoms: float, symprec: float, device: str = "cpu") -> SupercellPhase:
    K = B.target
    kept = [g for g in K.elements if g in set(sg.pure_translations.tolist())]
    red = reduced_cell(sg, kept)
    b = sign * B.objects[0][red.representatives]
    symm = reduced_symmetrizer(sg, K.elements, red)
    atoms = red.atoms.copy()
    desc = BiasDescriptor(B.irreps)
    scale = bias_scale(atoms, b, B.irreps, desc)
    if scale < 1e-9:  # cannot happen for a generic descriptor; recorded, not raised
        return SupercellPhase(
            target=K.name, channel=K.channel, spacegroup_number=sg.parent.spacegroup_number,
            spacegroup_symbol=sg.parent.spacegroup_symbol, cell_multiplication=1,
            delta_energy_per_formula_unit_eV=0.0, energy_per_atom_eV=e_parent, n_variants=len(B),
            spontaneous=False, status="bias_inactive", converged=True, steps={}, max_displacement_A=0.0,
            lattice=[float(x) for x in atoms.cell.cellpar()], atoms=atoms)
    lam0 = seed_force / scale
    calc = SBSCalculator(pot.calc, b, B.irreps, lam0, symmetrize=symm, descriptor=desc, device=device)
    steps = {}
    for f in (1.0, *anneal):
        calc.strength = lam0 * f
        _, n = _minimize(atoms, calc, cell, fmax, max_steps)
        steps[f"lambda_x{f:g}"] = n
    calc.strength = 0.0
    converged, n = _minimize(atoms, calc, cell, release_fmax, max_steps)
    steps["release"] = n
    energy = float(atoms.get_potential_energy()) / len(atoms)
    found, _ = _classify(atoms, symprec)
    prim_atoms = len(atoms) / len(found.centering_translations)
    de = (energy - e_parent) * fu_atoms
    disp = max_displacement(red.atoms, atoms)
    strain = max_strain(red.atoms, atoms)
    # as in relax.py: a residue at the parent's energy, displacement and strain is the parent
    back = found.spacegroup_number == sg.parent.spacegroup_number or (
        abs(de) < energy_tol * fu_atoms and disp < 0.01 and strain < 2e-3)
    clean = atoms.copy()
    clean.calc = None
    return SupercellPhase(
        target=K.name + ("" if sign > 0 else " (-b)"), channel=K.channel,
        spacegroup_number=found.spacegroup_number, spacegroup_symbol=found.spacegroup_symbol,
        cell_multiplication=int(round(prim_atoms / len(sg.parent.atoms))),
        delta_energy_per_formula_unit_eV=de, energy_per_atom_eV=energy, n_variants=len(B),
        spontaneous=bool(not back and de < -energy_tol * fu_atoms),
        status="unconverged" if not converged else ("returned" if back else "broken"),
        converged=converged, steps=steps,
        max_displacement_A=disp, lattice=[float(x) for x in atoms.cell.cellpar()],
        atoms=clean,
    )


def write_supercell_exploration(ex: SupercellExploration, out: str) -> dict:
    """``out/explore.json`` and one extxyz per phase under ``out/phases``; returns the dict."""
    import os

    from ase.io import write

    from .report import write_json

    os.makedirs(os.path.join(out, "phases"), exist_ok=True)
    data = ex.as_dict()
    for p, d in zip(ex.phases, data["phases"]):
        name = "".join(ch if ch.isalnum() else "_" for ch in p.target).strip("_")
        path = os.path.join(out, "phases", f"{name}.extxyz")
        write(path, p.atoms, format="extxyz")
        d["structure_file"] = path
    write_json(data, os.path.join(out, "explore.json"))
    return data
