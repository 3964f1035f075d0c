"""Channels -> isotropy subgroups (single channels and direct sums), as targets.

A subgroup K ≤ G is an isotropy subgroup of a representation V when some v ∈ V has
Stab_G(v) = K exactly. Every isotropy subgroup is the pointwise fixer of its fixed
space V^K, and K ↦ V^K is a G-equivariant bijection between isotropy subgroups and
fixed spaces, so the classes of isotropy subgroups up to conjugacy are the classes of
fixed spaces up to the action of G.

Enumeration without listing subgroups. The fixed spaces are the intersections of the
element fixed spaces Fix(g) = ker(ρ(g) − 1), and the maximal fixed spaces strictly
inside a fixed space S are among the S ∩ Fix(g) (if T ⊊ S is maximal, any g fixing T
but not S gives T ⊆ S ∩ Fix(g) ⊊ S, a fixed space, hence equal to T). A breadth-first
walk down from V, intersecting each class representative with the distinct element
fixed spaces, therefore reaches every fixed space; each new one is recorded with its
whole conjugacy class (s·V^K = V^{sKs⁻¹}), so the work grows with the number of
classes (tens for the channels of a cubic perovskite on 2×2×2), not with the number
of subgroups of G or of fixed spaces. Distinct element fixed spaces number at most
|image of G| (the kernel of ρ acts trivially).

Multiplicity. For a channel Γ ⊗ R^m the fixed spaces are Γ^K ⊗ R^m and the isotropy
subgroups are those of Γ, so one copy of Γ is enumerated; a direct sum of channels
(coupled order parameters) takes one copy of each. ``max_fixed_dim`` counts dimensions
in one copy of each channel (the order-parameter direction's free parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..core.groups import bits, mask_of
from ..core.pointgroups import hermann_mauguin_name, schoenflies_name
from ..core.spacegroups import group_label
from ..errors import SBSInputError
from .channels import DistortionChannel, representation_on
from .setting import Setting

TOL = 1e-6
MAX_CLASSES = 4000


@dataclass(frozen=True, eq=False)
class Target:
    """A subgroup K of the setting's group G to break to (one representative of its
    conjugacy class): an isotropy subgroup of one or more channels.

    Attributes:
        elements: indices of K in G (for a k = 0 setting, in the point group S).
        schoenflies, hermann_mauguin: point-group type of K.
        spacegroup_number, spacegroup_symbol: space-group type of K (crystals), from
            K's own operations; None for molecules.
        index: [G:K], the number of domain variants (translational ones included).
        n_conjugates: number of subgroups conjugate to K in G.
        channels: labels of the channels in which K is an isotropy subgroup; empty if K
            is reached only by coupling several channels.
        cell_multiplication: primitive parent cells in K's primitive cell.
        fixed_space: (3N [+ 6], f) orthonormal columns spanning the K-fixed part of the
            channel(s) it was enumerated in (every copy), or None.
        fixed_dimension: dim V^K in one copy of each of those channels.
        maximal: no isotropy subgroup of those channels lies strictly between K and G.
        components: for each of those channels in which V^K is not zero, (label, its
            part of ``fixed_space``, the dimension in one copy): the order parameter's
            components, several for a coupled order parameter.
    """

    elements: tuple[int, ...]
    schoenflies: str
    hermann_mauguin: str | None
    spacegroup_number: int | None
    spacegroup_symbol: str | None
    index: int
    n_conjugates: int
    channels: tuple[str, ...]
    cell_multiplication: int = 1
    fixed_space: np.ndarray | None = None
    fixed_dimension: int | None = None
    maximal: bool | None = None
    components: tuple = ()

    @property
    def order(self) -> int:
        return len(self.elements)

    @property
    def mask(self) -> int:
        return mask_of(self.elements)

    @property
    def name(self) -> str:
        return group_label(self.spacegroup_number, self.spacegroup_symbol, self.schoenflies)

    @property
    def channel(self) -> str:
        """The channel label (``A+B`` for an order parameter with components in several)."""
        return "+".join(self.channels) if self.channels else "+".join(c[0] for c in self.components)

    @property
    def coupled(self) -> bool:
        """True when no single channel reaches K: its order parameter couples several."""
        return not self.channels and len(self.components) > 1

    def as_dict(self) -> dict:
        return {"schoenflies": self.schoenflies, "hermann_mauguin": self.hermann_mauguin,
                "spacegroup_number": self.spacegroup_number, "spacegroup_symbol": self.spacegroup_symbol,
                "order": self.order, "index": self.index, "n_conjugates": self.n_conjugates,
                "channels": list(self.channels), "channel": self.channel,
                "cell_multiplication": self.cell_multiplication, "fixed_dimension": self.fixed_dimension,
                "maximal": self.maximal, "coupled": self.coupled,
                "order_parameter": {label: dim for label, _, dim in self.components}}


def make_target(setting: Setting, mask: int, channels: tuple[str, ...] = (), fixed_space=None,
                fixed_dimension: int | None = None, maximal: bool | None = None, components: tuple = ()) -> Target:
    """The :class:`Target` of the subgroup ``mask`` of G, typed."""
    el = tuple(bits(mask))
    schoen = schoenflies_name(setting.point_group_matrices[bits(setting.point_part(mask))])
    number, symbol = setting.spacegroup_of(mask)
    kept = setting.translation_count(mask)
    return Target(
        elements=el, schoenflies=schoen, hermann_mauguin=hermann_mauguin_name(schoen),
        spacegroup_number=number, spacegroup_symbol=symbol, index=setting.order // len(el),
        n_conjugates=len(setting.group.conjugates(mask)), channels=tuple(channels),
        cell_multiplication=setting.n_cells // max(kept, 1), fixed_space=fixed_space,
        fixed_dimension=fixed_dimension, maximal=maximal, components=tuple(components),
    )


# ----------------------------------------------------------------------------------
# linear algebra


def null_space(A: np.ndarray, tol: float = TOL) -> np.ndarray:
    """Orthonormal columns spanning ker A."""
    if A.shape[0] == 0:
        return np.eye(A.shape[1])
    _, s, vt = np.linalg.svd(A)
    return vt[int((s > tol).sum()):].T


def intersect(S: np.ndarray, F: np.ndarray) -> np.ndarray:
    """Orthonormal basis of span(S) ∩ span(F) (orthonormal columns in, out)."""
    N = null_space(np.concatenate([S, -F], axis=1))
    if N.shape[1] == 0:
        return np.zeros((S.shape[0], 0))
    u, s, _ = np.linalg.svd(S @ N[: S.shape[1]], full_matrices=False)
    return u[:, s > 1e-8]


def _fixer(rho: np.ndarray, S: np.ndarray) -> int:
    """Bitmask of {g : ρ(g) v = v for every v in span S}."""
    moved = np.abs(np.matmul(rho, S) - S[None]).max(axis=(1, 2)) if S.shape[1] else np.zeros(len(rho))
    return mask_of(np.flatnonzero(moved < TOL))


def fixed_space_classes(rho: np.ndarray, group, max_classes: int = MAX_CLASSES, what: str = "the representation"):
    """Every nonzero fixed space of ρ up to conjugacy (module docstring).

    Returns [(K, basis, maximal)]: the isotropy subgroup K (bitmask, the smallest of
    its class), an orthonormal basis of V^K, and whether no fixed space lies strictly
    between V^K and 0. The fixer of V itself (the kernel of ρ) comes first.
    """
    d = rho.shape[1]
    if d == 0:
        return []
    eye = np.eye(d)
    elements: dict[int, np.ndarray] = {}
    for g in range(len(rho)):
        F = null_space(rho[g] - eye)
        if 0 < F.shape[1] < d:
            elements.setdefault(_fixer(rho, F), F)
    kernel = _fixer(rho, eye)
    found = {kernel: [eye, True]}
    seen = {kernel}
    queue = [(kernel, eye, kernel)]
    while queue:
        K, S, rep_K = queue.pop(0)
        for m, F in elements.items():
            if m & ~K == 0:
                continue  # F contains S
            T = intersect(S, F)
            if T.shape[1] == 0 or T.shape[1] == S.shape[1]:
                continue
            found[rep_K][1] = False
            K2 = _fixer(rho, T)
            if K2 in seen:
                continue
            conjugates = group.conjugates(K2)
            seen.update(conjugates)
            rep = min(conjugates)
            if rep != K2:
                s = next(s for s in range(group.order) if group.conjugate(K2, s) == rep)
                T_rep = rho[s] @ T
            else:
                T_rep = T
            found[rep] = [T_rep, True]
            if len(found) > max_classes:
                raise SBSInputError(
                    f"{what}: more than {max_classes} classes of isotropy subgroups; enumerate fewer channels "
                    "(--kpoint one star, or fewer coupled channels) or use a smaller supercell"
                )
            if T.shape[1] > 1:
                queue.append((K2, T, rep))
    return [(K, S, maximal) for K, (S, maximal) in found.items()]


# ----------------------------------------------------------------------------------
# isotropy subgroups of channels


def _fixed_part(rho: np.ndarray, group, mask: int) -> np.ndarray:
    """Orthonormal basis of the vectors every element of ``mask`` fixes."""
    gens = group.generators(mask)
    if not gens:
        return np.eye(rho.shape[1])
    eye = np.eye(rho.shape[1])
    return null_space(np.concatenate([rho[g] - eye for g in gens]))


def isotropy_subgroups(setting: Setting, channels, max_fixed_dim: int | None = 1,
                       max_classes: int = MAX_CLASSES) -> list[Target]:
    """Isotropy subgroups of a channel or of a direct sum of channels, up to conjugacy in G.

    Args:
        setting: the setting.
        channels: one :class:`DistortionChannel` or several (their direct sum: coupled
            order parameters; the subgroups need a component in more than one channel
            only when no single channel reaches them).
        max_fixed_dim: keep those whose fixed space in one copy of each channel has at
            most this dimension (1: one-dimensional order-parameter directions); None
            keeps every one (the whole group G excluded).
        max_classes: refuse (SBSInputError, naming what would work) beyond this many.

    Returns targets sorted by fixed dimension, then larger groups first, then space-group
    number. ``fixed_space`` spans V^K in every copy of the channels.
    """
    chans = [channels] if isinstance(channels, DistortionChannel) else list(channels)
    what = "channel " + "+".join(c.label for c in chans)
    rho = representation_on(setting, chans)
    group = setting.group
    full = [representation_on(setting, c, one_copy=False) for c in chans]
    one = [representation_on(setting, c) for c in chans] if len(chans) > 1 else [rho]
    out = []
    for K, S, maximal in fixed_space_classes(rho, group, max_classes, what):
        if K == group.full or (max_fixed_dim is not None and S.shape[1] > max_fixed_dim):
            continue
        parts = [c.basis @ _fixed_part(r, group, K) for c, r in zip(chans, full)]
        components = tuple((c.label, part, _fixed_part(r1, group, K).shape[1])
                           for c, part, r1 in zip(chans, parts, one) if part.shape[1])
        reach = tuple(c.label for c, r in zip(chans, full) if reaches(r, group, K)) if len(chans) > 1 \
            else (chans[0].label,)
        out.append(make_target(setting, K, reach, np.concatenate(parts, axis=1), S.shape[1], maximal, components))
    out.sort(key=lambda t: (t.fixed_dimension, -t.order, t.spacegroup_number or 0, t.mask))
    return out


def reaches(rho: np.ndarray, group, mask: int) -> bool:
    """True when ``mask`` is an isotropy subgroup of ρ alone (its fixed space there is
    nonzero and fixed by nothing more)."""
    S = _fixed_part(rho, group, mask)
    return S.shape[1] > 0 and _fixer(rho, S) == mask


def candidate_targets(structure, symprec: float = 1e-3, angle_tolerance: float = -1.0,
                      channels: list[DistortionChannel] | None = None) -> list[Target]:
    """Every isotropy subgroup of the whole distortion space, up to conjugacy: for a
    k = 0 setting (an ``ase.Atoms`` or a Symmetry) the subgroups of the point group S
    that are exact stabilizers of some distortion.

    Args:
        structure: an ``ase.Atoms``, a Symmetry or a :class:`Setting`.
        channels: ``distortion_channels`` of it when already computed.

    Returns one :class:`Target` per conjugacy class, largest subgroups first; each lists
    the channels in which it is an isotropy subgroup ("coupled" ones list none).
    """
    from .channels import distortion_channels
    from .setting import k0_setting

    setting = structure if isinstance(structure, Setting) else k0_setting(structure, symprec, angle_tolerance)
    channels = distortion_channels(setting) if channels is None else channels
    if not channels:
        return []
    targets = isotropy_subgroups(setting, channels, max_fixed_dim=None)
    targets.sort(key=lambda t: (-t.order, t.mask))
    return targets


def coupled_targets(setting: Setting, channels: list[DistortionChannel], size: int = 2,
                    max_classes: int = MAX_CLASSES) -> list[Target]:
    """Coupled order parameters of every ``size``-tuple of ``channels`` (ISOTROPY's
    COUPLED): the isotropy subgroups of each direct sum that no single channel reaches,
    with one free parameter in each channel (the most symmetric coupled directions, such
    as the a⁻a⁻c⁺ tilts, Pnma, of the antiphase and in-phase tilt channels), each class
    once, largest first."""
    from itertools import combinations

    out, seen = [], set()
    for group in combinations(channels, size):
        for t in isotropy_subgroups(setting, list(group), max_fixed_dim=size, max_classes=max_classes):
            if t.coupled and len(t.components) == size and all(d == 1 for _, _, d in t.components) \
                    and t.mask not in seen:
                seen.add(t.mask)
                out.append(t)
    out.sort(key=lambda t: (-t.order, t.spacegroup_number or 0, t.mask))
    return out
