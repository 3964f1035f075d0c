"""Setting + target -> SymmetryBreakingSet: the objects that break G exactly to K, one
per domain variant.

Global objects (the paper's construction), when K keeps every lattice translation of
the setting: K is then the preimage of a point group K̄ ≤ S. For an O(3) irreps V
(e3nn), V^K̄ is the image of P_K̄ = (1/|K̄|) Σ_k D(k); a generic b ∈ V^K̄ has stabilizer
equal to the pointwise fixer of V^K̄, and for a direct sum the fixers intersect. The
smallest irreps whose fixer is exactly K̄ is chosen (preferring irreps whose restriction
to S contains a distortion channel that reaches K), the S-invariant part of b is
removed, and B = S·b, |B| = [S:K̄] = [G:K], Stab(s·b) = s K s⁻¹. Equivariance: b is P_K̄
applied to a fixed seed vector expressed in the structure's canonical frame
(``Symmetry.frame``, defined up to S), with K̄ replaced by the canonical representative
of its conjugacy class; B is closed under S, so the frame's ambiguity cancels and
B(g·structure) = D(g) B(structure) for every g in O(3).

Per-atom objects, when K breaks a translation of the setting (cell doubling, tilts): a
global object cannot. For V^K the K-fixed distortions of K's channel(s), b_i = u_i
(``1o`` on each atom) from a generic u ∈ V^K, plus the strain's l = 2 part (``2e``,
the same on every atom) when u has one; G acts as (g·b)_{π(i)} = D(R) b_i. By
construction Stab_G(b) = Stab_G(u) = K; B = G·b has [G:K] members, translational
(antiphase) domains included.

One type holds both; ``objects`` is (|B|, dim) for global and (|B|, N, dim) for
per-atom objects, and every index (stabilizers, coset representatives) refers to G.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..core.groups import bits, mask_of
from ..core.irreps import (
    character,
    dimension,
    fixed_space,
    float64_default,
    group_representation,
    irreps_list,
    pointwise_fixer,
    representation,
    stabilizer,
)
from ..core.pointgroups import describe_operation, ideal_sbs_exists, schoenflies_name
from ..errors import SBSInputError
from ..setting.channels import distortion_channels, point_character, representation_on
from ..setting.isotropy import Target, make_target, null_space, reaches
from ..setting.setting import STRAIN_BASIS, Setting, k0_setting
from .resolve import generators_text, resolve_target

OBJECT_TOL = 1e-6


@dataclass(frozen=True, eq=False)
class SymmetryBreakingSet:
    """A symmetry breaking set B = G·b for one target K.

    Attributes:
        setting: the setting whose group G acts (for an ``ase.Atoms`` or a Symmetry, its
            k = 0 setting: G is the point group S).
        target: the target K (member 0 has exactly this stabilizer).
        irreps: e3nn irreps of the object (of each atom's object when per atom), e.g.
            ``"1o"``, ``"2e"``, ``"1o+2e"``.
        objects: (|B|, dim) global objects or (|B|, N, dim) per-atom objects, in e3nn's
            basis (Cartesian frame of the setting's structure).
        coset_representatives: for each member j, g_j in G with b_j = g_j·b_0.
        stabilizers: for each member, Stab_G(b_j) = g_j K g_j⁻¹ as indices of G.
        channels: labels of the distortion channels that reach K and that the objects
            can push along.
    """

    setting: Setting
    target: Target
    irreps: str
    objects: np.ndarray
    coset_representatives: tuple[int, ...]
    stabilizers: tuple[tuple[int, ...], ...]
    channels: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.objects)

    def __iter__(self):
        return iter(self.objects)

    @property
    def symmetry(self):
        """The parent's :class:`~ase_sbs.core.symmetry.Symmetry`."""
        return self.setting.parent

    @property
    def per_atom(self) -> bool:
        return self.objects.ndim == 3

    def representation(self, matrices) -> np.ndarray:
        """D(g) of ``irreps`` for each 3x3 orthogonal g."""
        return representation(self.irreps, np.asarray(matrices, dtype=np.float64).reshape(-1, 3, 3))

    @cached_property
    def D(self) -> np.ndarray:
        """D(R_g) for every element g of G."""
        return self.representation(self.setting.rotations)

    def act(self, g: int, b: np.ndarray) -> np.ndarray:
        """g·b: D(R_g) b, and for per-atom objects also the atom permutation of g."""
        if self.per_atom:
            return self.setting.act(g, b, self.D[g])
        return self.D[g] @ b

    def stabilizer_of(self, b, tol: float = OBJECT_TOL) -> tuple[int, ...]:
        """Stab_G(b) as indices of G."""
        b = np.asarray(b, dtype=np.float64)
        if self.per_atom:
            return tuple(g for g in range(self.setting.order) if np.abs(self.act(g, b) - b).max() < tol)
        return stabilizer(self.D, b, tol)

    def contains(self, b, tol: float = OBJECT_TOL) -> bool:
        axes = tuple(range(1, self.objects.ndim))
        return bool((np.abs(self.objects - np.asarray(b)[None]).max(axis=axes) < tol).any())

    def stabilizer_name(self, j: int) -> str:
        """Schoenflies symbol of member j's stabilizer (its rotations)."""
        point = bits(self.setting.point_part(mask_of(self.stabilizers[j])))
        return schoenflies_name(self.setting.point_group_matrices[point])

    def symmetrizer(self, j: int):
        """Stab_G(b_j) as a :class:`~ase_sbs.core.symmetrizer.Symmetrizer` on the setting's atoms."""
        return self.setting.symmetrizer(mask_of(self.stabilizers[j]))

    def is_closed_under(self, matrices, tol: float = OBJECT_TOL) -> bool:
        """True when D(g) B = B (as a set) for every given 3x3 orthogonal g (global objects)."""
        if self.per_atom:
            raise SBSInputError("per-atom objects are closed under G's operations (with their atom permutations), "
                                "not under bare rotations; use contains(act(g, b))")
        B = self.objects
        for D in self.representation(matrices):
            dist = np.abs((B @ D.T)[:, None, :] - B[None, :, :]).max(axis=2)
            if (dist.min(axis=1) > tol).any():
                return False
        return True

    @cached_property
    def ideal(self) -> tuple[bool, str]:
        """(exists, reason): does an ideal equivariant *full* SBS exist for S? The
        paper's criterion: S has a complement in its O(3) normalizer N(S)."""
        return ideal_sbs_exists(self.setting.point_group_matrices)

    def as_dict(self) -> dict:
        rot = self.setting.rotations
        return {
            "target": target_dict(self.target, self.setting),
            "irreps": self.irreps,
            "size": len(self),
            "per_atom": self.per_atom,
            "channels": list(self.channels),
            "ideal_full_sbs_exists": self.ideal[0],
            "ideal_reason": self.ideal[1],
            "members": [
                {
                    "object": np.asarray(b, dtype=float).tolist(),
                    "coset_representative": describe_operation(rot[s]),
                    "stabilizer": self.stabilizer_name(j),
                    "stabilizer_operations": [describe_operation(rot[k]) for k in self.stabilizers[j]],
                }
                for j, (b, s) in enumerate(zip(self.objects, self.coset_representatives))
            ],
        }


def target_dict(t: Target, setting: Setting | None = None) -> dict:
    """A target as JSON: its type, index, channels and (given the setting) generators."""
    extra = {} if setting is None else {"generators": generators_text(setting, t.mask)}
    return {
        "schoenflies": t.schoenflies,
        "hermann_mauguin": t.hermann_mauguin,
        "spacegroup_number": t.spacegroup_number,
        "spacegroup_symbol": t.spacegroup_symbol,
        "index": t.index,
        "n_conjugates": t.n_conjugates,
        "channels": list(t.channels),
        "cell_multiplication": t.cell_multiplication,
        **extra,
    }


# ----------------------------------------------------------------------------------
# global objects


def _choose_irreps(parent_D: dict, sym_elements: tuple, rep_elements: tuple, order: int,
                   preferred: set[str], max_parts: int = 3) -> list[tuple[str, np.ndarray]]:
    """Smallest list of distinct irreps whose pointwise fixers intersect exactly to K̄."""
    rep_mask = mask_of(rep_elements)
    options = []
    for ir, D in parent_D.items():
        VK = fixed_space(D, rep_elements)
        VS = fixed_space(D, sym_elements)
        if VS.shape[1]:
            VK = VK - VS @ (VS.T @ VK)
            u, s, _ = np.linalg.svd(VK, full_matrices=False)
            VK = u[:, s > 1e-8]
        if VK.shape[1] == 0:
            continue
        options.append((ir, VK, mask_of(pointwise_fixer(D, VK))))
    best = None
    for n in range(1, max_parts + 1):
        for combo in itertools.combinations(options, n):
            fix = (1 << order) - 1
            for _, _, f in combo:
                fix &= f
            if fix != rep_mask:
                continue
            names = [ir for ir, _, _ in combo]
            key = (not any(ir in preferred for ir in names), sum(dimension(ir) for ir in names),
                   [int(ir[:-1]) for ir in names], names)
            if best is None or key < best[0]:
                best = (key, [(ir, VK) for ir, VK, _ in combo])
    return [] if best is None else best[1]


def _global(setting: Setting, mask: int, channels, max_l: int, seed: int):
    """(irreps, objects, cosets, stabilizers, channel labels) of a translation-keeping K."""
    sym = setting.parent
    point_group = setting.point_group
    mats = setting.point_group_matrices
    order = len(mats)
    point_mask = setting.point_part(mask)
    rep = min(point_group.conjugates(point_mask))
    conj = next(s for s in range(order) if point_group.conjugate(rep, s) == point_mask)
    rep_el = point_group.elements_of(rep)
    reaching = [c for c in channels if reaches(representation_on(setting, c), setting.group, mask)]
    gamma = [c for c in reaching if c.o3_irreps is not None]
    point_chars = [point_character(setting, c.character) for c in gamma]
    parent_D = {ir: group_representation(ir, mats) for ir in irreps_list(max_l)}
    traces = {ir: character(ir, mats) for ir in parent_D}
    preferred = {ir for ir, tr in traces.items() if any(tr @ chi > 0.5 * len(mats) for chi in point_chars)}
    chosen = _choose_irreps(parent_D, tuple(range(order)), rep_el, order, preferred)
    if not chosen:
        raise SBSInputError(
            f"no object with l <= {max_l} has stabilizer exactly {schoenflies_name(mats[list(rep_el)])} "
            f"in {schoenflies_name(mats)}; raise max_l"
        )
    irreps = "+".join(ir for ir, _ in chosen)
    D_all = group_representation(irreps, mats)
    D_frame = representation(irreps, sym.frame[None])[0]
    for attempt in range(20):
        rng = np.random.default_rng(seed + attempt)
        y = D_frame @ rng.standard_normal(D_all.shape[1])
        b_parts, offset = [], 0
        for _, VK in chosen:
            d = VK.shape[0]
            part = VK @ (VK.T @ y[offset: offset + d])
            b_parts.append(part / np.linalg.norm(part))
            offset += d
        b_rep = np.concatenate(b_parts)
        if mask_of(stabilizer(D_all, b_rep, OBJECT_TOL)) == rep:
            break
    else:  # pragma: no cover - probability zero
        raise SBSInputError("could not draw a generic object; try another seed")
    b0 = D_all[conj] @ b_rep
    D_G = group_representation(irreps, setting.rotations)
    objects, cosets = [], []
    for g in range(setting.order):
        v = D_G[g] @ b0
        if not any(np.abs(v - o).max() < OBJECT_TOL for o in objects):
            objects.append(v)
            cosets.append(g)
    objects = np.array(objects)
    objects[np.abs(objects) < 1e-12] = 0.0
    stabs = tuple(stabilizer(D_G, b, OBJECT_TOL) for b in objects)
    labels = tuple(c.label for c, chi in zip(gamma, point_chars)
                   if any(traces[ir] @ chi > 0.5 * len(mats) for ir, _ in chosen))
    return irreps, objects, tuple(cosets), stabs, labels, tuple(c.label for c in reaching)


# ----------------------------------------------------------------------------------
# per-atom objects


def strain_2e(eps: np.ndarray) -> np.ndarray:
    """The l = 2 (traceless) part of a symmetric 3x3 tensor in e3nn's ``2e`` basis."""
    import torch
    from e3nn.io import CartesianTensor

    with float64_default():
        ct = CartesianTensor("ij=ji")
        v = ct.from_cartesian(torch.as_tensor(eps, dtype=torch.float64)).numpy()
    return v[1:]  # ct is 0e + 2e


def _fixed_distortions(setting: Setting, target: Target, mask: int) -> np.ndarray:
    """V^K in displacement ⊕ strain coordinates: the target's own, else all of W's."""
    if target.fixed_space is not None and target.fixed_space.shape[1]:
        return target.fixed_space
    rho = setting.representation
    gens = setting.group.generators(mask)
    eye = np.eye(rho.shape[1])
    S = null_space(np.concatenate([rho[g] - eye for g in gens])) if gens else eye
    return setting.distortion_basis @ S


def _per_atom(setting: Setting, target: Target, mask: int, seed: int, weights: dict | None = None):
    n = len(setting.atoms)
    V = _fixed_distortions(setting, target, mask)
    if V.shape[1] == 0:
        raise SBSInputError(f"{target.name}: no distortion of this setting has this symmetry")
    rng = np.random.default_rng(seed)
    if weights and len(target.components) > 1:
        # a coupled order parameter: each channel's component a generic unit vector of
        # its part of V^K, scaled by that channel's weight
        u = np.zeros(V.shape[0])
        for label, part, _ in target.components:
            v = part @ rng.standard_normal(part.shape[1])
            u += float(weights.get(label, 1.0)) * v / np.linalg.norm(v)
    else:
        u = V @ rng.standard_normal(V.shape[1])
    u /= np.linalg.norm(u)
    u *= np.sign(u[np.flatnonzero(np.abs(u) > 1e-6)[0]])
    disp = u[: 3 * n].reshape(n, 3)
    eps = np.einsum("k,kij->ij", u[3 * n:], STRAIN_BASIS) if setting.periodic else np.zeros((3, 3))
    parts, names = [], []
    if np.abs(disp).max() > 1e-8:
        parts.append(disp)
        names.append("1o")
    if np.abs(eps - np.trace(eps) / 3 * np.eye(3)).max() > 1e-8:
        parts.append(np.repeat(strain_2e(eps)[None], n, axis=0))
        names.append("2e")
    if not parts:
        raise SBSInputError(f"{target.name}: its order parameter is a pure volume change; nothing to break")
    b = np.concatenate(parts, axis=1)
    irreps = "+".join(names)
    D = representation(irreps, setting.rotations)
    objects, cosets = [], []
    for g in range(setting.order):
        v = setting.act(g, b, D[g])
        if not any(np.abs(v - o).max() < OBJECT_TOL for o in objects):
            objects.append(v)
            cosets.append(g)
    group = setting.group
    stabs = tuple(tuple(bits(group.conjugate(mask, g))) for g in cosets)
    return irreps, np.array(objects), tuple(cosets), stabs


# ----------------------------------------------------------------------------------


def symmetry_breaking_set(structure, target, max_l: int = 4, symprec: float = 1e-3,
                          angle_tolerance: float = -1.0, seed: int = 0, channels: list | None = None,
                          per_atom: bool | None = None, weights: dict | None = None) -> SymmetryBreakingSet:
    """Build the symmetry breaking set that breaks G to ``target``.

    Args:
        structure: a :class:`~ase_sbs.setting.Setting`, or an ``ase.Atoms`` / Symmetry
            (its k = 0 setting).
        target: see :func:`~ase_sbs.sbs.resolve.resolve_target`.
        max_l: largest O(3) degree l searched for global objects.
        seed: seed of the fixed generic vector the object is drawn from.
        channels: ``distortion_channels`` of the setting when already computed.
        per_atom: per-atom objects also for a target that keeps every translation
            (None: only for one that breaks a translation).
        weights: for a coupled target (:attr:`Target.components`), the relative size of
            each channel's component in the object, by channel label (per-atom objects).

    Raises:
        SBSInputError: unknown or ambiguous target, the whole group, or no object up to
            ``max_l``.
    """
    if not isinstance(max_l, (int, np.integer)) or max_l < 0:
        raise SBSInputError(f"max_l must be a non-negative integer, got {max_l!r}")
    setting = structure if isinstance(structure, Setting) else k0_setting(structure, symprec, angle_tolerance)
    mask = resolve_target(setting, target)
    if mask == setting.group.full:
        raise SBSInputError(f"the target is the whole symmetry group {setting.parent.schoenflies}: nothing to break")
    channels = distortion_channels(setting) if channels is None else channels
    t = target if isinstance(target, Target) else None
    if setting.keeps_translations(mask) and not per_atom:
        irreps, objects, cosets, stabs, labels, reach = _global(setting, mask, channels, max_l, seed)
        if t is None:
            t = make_target(setting, mask, reach)
        elif not t.channels:
            t = make_target(setting, mask, reach, t.fixed_space, t.fixed_dimension, t.maximal)
    else:
        if t is None:
            t = make_target(setting, mask, tuple(c.label for c in channels
                                                 if reaches(representation_on(setting, c), setting.group, mask)))
        irreps, objects, cosets, stabs = _per_atom(setting, t, mask, seed, weights)
        labels = t.channels or tuple(label for label, _, _ in t.components)
    return SymmetryBreakingSet(setting=setting, target=t, irreps=irreps, objects=objects,
                               coset_representatives=cosets, stabilizers=stabs, channels=labels)
