"""Setting -> distortion channels: the isotypic components of G on the distortion space.

W (displacements ⊕ strain, less the motions that are no distortion; see
:mod:`ase_sbs.setting.setting`) splits into isotypic components of the real (physically)
irreducible representations Γ of G: the eigenspaces of a random symmetric matrix
averaged over G, grouped by character. Each channel is Γ with multiplicity m.

The pure translations of G act on a channel through the characters e^{2πi k·T}: the
k's that occur form the channel's k-star. Labels: Mulliken-style for k = 0 settings
(``T1u``, ``Eg``, ``A2''``, from the point-group character); in a supercell setting
``Γ-`` plus that label at k = 0, and ``<star>-d<dim><parity>`` elsewhere (``R-d3-``: the
star's name — the special point of the parent's Bravais lattice
(:func:`ase_sbs.setting.kpoints.special_kpoints`: X, M, R of a primitive cubic parent,
H, N, P of a body-centred one, X, L, W, K of a face-centred one …), else a
representative k — Γ's dimension, the sign of its character under inversion through the
origin when G has it); ``(n)`` tells apart channels that would share a label.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from ..core.irreps import character, irreps_list
from ..core.pointgroups import element_type, rotation_axis_angle
from .kpoints import commensurate_kpoints, fraction, parse_kpoint, special_kpoints, star_arms, star_name
from .setting import Setting, k0_setting


@dataclass(frozen=True, eq=False)
class DistortionChannel:
    """One isotypic component of the distortion space.

    Attributes:
        label: see the module docstring; conventions for numeric subscripts follow the
            usual axis choices and are indicative for D2-type groups.
        kstar: the k-vectors (fractions of the parent's reciprocal basis) in the channel.
        dimension: dimension of Γ (a complex-conjugate pair counts as one real irrep).
        multiplicity: how many copies of Γ occur in W.
        sources: which parts of W it occurs in: ``displacement`` and/or ``strain``.
        o3_irreps: k = 0 channels: the smallest O(3) irreps (e3nn ``lp``) whose
            restriction to the point group contains Γ; None elsewhere.
        character: χ_Γ(g) for every g in G.
        copies: m orthonormal (3N [+ 6], d) bases, one per irreducible copy, in
            displacement (⊕ strain) coordinates of the setting's atoms.
        curvature: eigenvalues of the m×m Hessian block at the parent (eV/Å²,
            :mod:`ase_sbs.setting.curvature`); None until computed.
    """

    label: str
    kstar: tuple
    dimension: int
    multiplicity: int
    sources: tuple[str, ...]
    o3_irreps: str | None
    character: np.ndarray
    copies: tuple[np.ndarray, ...]
    curvature: tuple[float, ...] | None = None

    @cached_property
    def basis(self) -> np.ndarray:
        """(3N [+ 6], m d) orthonormal columns spanning the channel."""
        return np.concatenate(self.copies, axis=1)

    def fixed_dimension(self, subgroup) -> int:
        """dim of the channel's K-fixed subspace, from characters."""
        idx = list(subgroup)
        return int(round(self.multiplicity * self.character[idx].mean()))

    @property
    def min_curvature(self) -> float | None:
        return None if self.curvature is None else min(self.curvature)

    @property
    def unstable(self) -> bool:
        return self.curvature is not None and min(self.curvature) < -1e-3

    def with_curvature(self, values) -> "DistortionChannel":
        return replace(self, curvature=tuple(float(x) for x in values))

    def as_dict(self) -> dict:
        return {
            "label": self.label, "kstar": [list(k) for k in self.kstar], "dimension": self.dimension,
            "multiplicity": self.multiplicity, "sources": list(self.sources), "o3_irreps": self.o3_irreps,
            "curvature_eV_A2": None if self.curvature is None else list(self.curvature),
        }


def eval_fraction(x) -> float:
    from fractions import Fraction

    return float(Fraction(str(x)))


# ----------------------------------------------------------------------------------
# isotypic decomposition


def _group_by(values: list, key) -> list[list]:
    groups: list[list] = []
    for v in values:
        for g in groups:
            if key(g[0], v):
                g.append(v)
                break
        else:
            groups.append([v])
    return groups


def isotypic_components(rho: np.ndarray, seed: int = 0, eig_tol: float = 1e-7,
                        char_tol: float = 1e-6) -> list[tuple[list[np.ndarray], np.ndarray]]:
    """Isotypic components of an orthogonal representation ``rho`` (|G|, d, d) of a finite group.

    A random symmetric M averaged over the group, A = (1/|G|) Σ_g rho(g) M rho(g)ᵀ,
    commutes with rho; its eigenspaces are irreducible (with probability one), and
    eigenspaces with the same character χ(g) = tr(Vᵀ rho(g) V) make one isotypic
    component. Returns [(copies, χ)]: the orthonormal (d, dim Γ) bases of the
    irreducible pieces of each component, and Γ's character.
    """
    d = rho.shape[1]
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((d, d))
    M = M + M.T
    A = np.matmul(np.matmul(rho, M), rho.transpose(0, 2, 1)).sum(axis=0) / len(rho)
    w, v = np.linalg.eigh((A + A.T) / 2)
    scale = max(np.abs(w).max(), 1.0)
    blocks = _group_by(list(range(d)), lambda a, b: abs(w[a] - w[b]) < eig_tol * scale)
    pieces = [(v[:, blk], np.einsum("ij,gij->g", v[:, blk], rho @ v[:, blk])) for blk in blocks]
    isotypic = _group_by(pieces, lambda a, b: np.allclose(a[1], b[1], atol=char_tol))
    return [([V for V, _ in grp], grp[0][1]) for grp in isotypic]


def point_character(setting: Setting, chi: np.ndarray) -> np.ndarray:
    """χ on the parent's point group, for a channel the pure translations fix."""
    first = np.zeros(len(setting.point_group_matrices), dtype=int)
    for g in range(setting.order - 1, -1, -1):
        first[setting.point_index[g]] = g
    return chi[first]


def distortion_channels(structure, seed: int = 0) -> list[DistortionChannel]:
    """The channels of a :class:`Setting` (or of the k = 0 setting of an ``ase.Atoms`` or
    a Symmetry), sorted by star (Γ, then the parent lattice's special points in the order
    of :func:`special_kpoints`, then the others), dimension and label."""
    setting = structure if isinstance(structure, Setting) else k0_setting(structure)
    Q = setting.distortion_basis
    if Q.shape[1] == 0:
        return []
    rho = setting.representation
    tol = (1e-7, 1e-6) if setting.supercell is None else (1e-8, 1e-5)
    n = len(setting.atoms)
    mats = setting.point_group_matrices
    o3_chars = {ir: character(ir, mats) for ir in irreps_list(6)}
    inversion = next((g for g in range(setting.order) if np.allclose(setting.rotations[g], -np.eye(3))
                      and (setting.translations_frac is None or np.abs(setting.translations_frac[g]).max() < 1e-9)),
                     None)
    channels = []
    for copies, chi in isotypic_components(rho, seed, *tol):
        copies = [Q @ V for V in copies]
        B = np.concatenate(copies, axis=1)
        sources = tuple(s for s, part in (("displacement", B[: 3 * n]), ("strain", B[3 * n:]))
                        if part.size and np.abs(part).max() > 1e-8)
        d = int(round(chi[0]))
        star = _kstar(setting, chi)
        gamma = star_name_of(setting, star) == "Γ"
        o3 = label = None
        if gamma:
            pchi = point_character(setting, chi)
            norm = float(np.round(pchi @ pchi / len(pchi)))
            label = mulliken_label(pchi, mats, complex_pair=norm > 1.5)
            o3 = next((ir for ir, c in o3_chars.items() if (c @ pchi) / len(pchi) > 0.5), None)
            if len(setting.pure_translations) > 1:
                label = "Γ-" + label
        else:
            parity = "" if inversion is None or abs(chi[inversion]) < 1e-6 else ("+" if chi[inversion] > 0 else "-")
            label = f"{star_name_of(setting, star)}-d{d}{parity}"
        channels.append(DistortionChannel(
            label=label, kstar=tuple(tuple(fraction(x) for x in k) for k in star), dimension=d,
            multiplicity=len(copies), sources=sources, o3_irreps=o3, character=chi, copies=tuple(copies)))
    names = ["Γ"] if setting.supercell is None else list(special_kpoints(setting.parent))
    order = {name: i for i, name in enumerate(names)}
    # ties (one label, different irreps) by character, not by the eigensolver's order,
    # so that the (n) of _disambiguate follows the irrep
    channels.sort(key=lambda c: (order.get(c.label.split("-")[0] if "-" in c.label else "Γ", len(order)),
                                 c.dimension, c.label, _character_key(c.character)))
    return _disambiguate(channels)


def _character_key(chi) -> tuple:
    """A sortable form of a (possibly complex) character: rounded real parts, then imaginary."""
    chi = np.asarray(chi, dtype=complex)
    return tuple(np.round(np.concatenate([chi.real, chi.imag]), 6) + 0.0)


def _disambiguate(channels: list[DistortionChannel]) -> list[DistortionChannel]:
    count: dict[str, int] = {}
    for c in channels:
        count[c.label] = count.get(c.label, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for c in channels:
        if count[c.label] > 1:
            seen[c.label] = seen.get(c.label, 0) + 1
            c = replace(c, label=f"{c.label}({seen[c.label]})")
        out.append(c)
    return out


def _kstar(setting: Setting, chi: np.ndarray) -> list[np.ndarray]:
    """The k-vectors on which the pure translations act in a channel of character χ."""
    if setting.supercell is None:
        return [np.zeros(3)]
    T = setting.pure_translations
    tpar = setting.translations_frac[T] @ setting.supercell  # in the parent's lattice basis
    star = []
    for k in commensurate_kpoints(setting.supercell):
        w = np.cos(2 * np.pi * tpar @ k)
        if chi[T] @ w / len(T) > 0.5:
            star.append(k)
    return star


def star_name_of(setting: Setting, star) -> str:
    if setting.supercell is None:
        return "Γ"
    return star_name(star, setting.parent)


def channel_matches_kpoint(channel: DistortionChannel, k, setting: Setting | None = None) -> bool:
    """True when k (or, given the setting, any arm of k's star under the parent's point
    group) is among the channel's k-vectors. k: fractions of the parent's reciprocal
    basis, or a name of the parent lattice's special points (read with the setting's
    parent, :func:`ase_sbs.setting.kpoints.parse_kpoint`)."""
    if isinstance(k, str):
        k = parse_kpoint(k, setting)
    k = np.mod(np.asarray(k, dtype=float), 1.0)
    arms = k[None] if setting is None else star_arms(k, setting.parent.operations.rotations_frac)
    for s in channel.kstar:
        ks = np.array([eval_fraction(x) for x in s])
        d = np.mod(ks[None] - arms + 1e-9, 1.0)
        if (np.abs(d).max(axis=1) < 1e-6).any():
            return True
    return False


def representation_on(setting: Setting, channels, one_copy: bool = True) -> np.ndarray:
    """(|G|, n, n): ρ(g) on the span of ``channels`` (one channel or several), in the
    channels' own bases: one copy of each irrep (``one_copy``) or every copy. A channel's
    own block is computed once per setting and reused (ρ on a direct sum is block
    diagonal: the channels are G-invariant)."""
    chans = [channels] if isinstance(channels, DistortionChannel) else list(channels)
    blocks = [_channel_representation(setting, c, one_copy) for c in chans]
    if len(blocks) == 1:
        return blocks[0]
    n = sum(b.shape[1] for b in blocks)
    out = np.zeros((setting.order, n, n))
    start = 0
    for b in blocks:
        d = b.shape[1]
        out[:, start:start + d, start:start + d] = b
        start += d
    return out


def _channel_representation(setting: Setting, channel: DistortionChannel, one_copy: bool) -> np.ndarray:
    """ρ(g) = Vᵀ R(g) V on one channel (V its basis in W's coordinates), by batched matrix
    products; kept with the setting (and freed with it), read-only."""
    key = (id(channel), one_copy)
    hit = setting.block_cache.get(key)
    if hit is None:
        V = setting.distortion_basis.T @ (channel.copies[0] if one_copy else channel.basis)
        out = V.T[None] @ setting.representation @ V[None]
        out.flags.writeable = False
        hit = setting.block_cache[key] = (channel, out)  # the channel kept: its id stays its own
    return hit[1]


def distortion_representation(structure) -> tuple[np.ndarray, np.ndarray]:
    """(Q, rho) of the k = 0 setting: Q the basis of W in displacement ⊕ strain
    coordinates, rho[s] = Qᵀ D(s) Q for every point-group element s."""
    setting = structure if isinstance(structure, Setting) else k0_setting(structure)
    return setting.distortion_basis, setting.representation


# ----------------------------------------------------------------------------------
# labels


def mulliken_label(chi: np.ndarray, mats: np.ndarray, complex_pair: bool = False) -> str:
    """Mulliken-style label of a real irrep from its character on a point group.

    Letter from the dimension (A/B by the principal rotation, E, T, G, H); g/u from
    inversion; '/'' from σh when there is no inversion (from the mirror of Cs);
    subscript 1/2 from a secondary operation (C2 ⊥ principal axis, else σ containing
    it), or k in E_k from χ(C_n) = 2cos(2πk/n). The principal operation is the
    rotation of highest order, or an S4 whose axis carries no C4 (S4, D2d: B has
    χ(S4) = -1).
    """
    d = int(round(chi[0]))
    types = [element_type(R) for R in mats]
    proper_n = [(n if det == 1 and k == 1 else 0) for det, n, k in types]
    n_max = max(proper_n)
    cubic = sum(1 for det, n, k in types if det == 1 and n == 3 and k == 1) > 2
    p_idx = proper_n.index(3 if cubic else n_max) if n_max > 1 else None
    # -R = C_n with 4 | n makes R an S_n: the principal axis when no C_n is there
    rotoreflection = [(n if det == -1 and k == 1 and n % 4 == 0 else 0) for det, n, k in types]
    if not cubic and max(rotoreflection) > n_max:
        p_idx = rotoreflection.index(max(rotoreflection))
    axis = rotation_axis_angle(types[p_idx][0] * mats[p_idx])[0] if p_idx is not None else None
    secondary = None
    if axis is not None:
        for want_det in (1, -1):
            for g, (det, n, _) in enumerate(types):
                if det == want_det and n == 2:
                    ax = rotation_axis_angle(det * mats[g])[0]
                    # C2' has its axis ⊥ principal; σv has its normal ⊥ principal
                    if abs(ax @ axis) < 1e-6:
                        secondary = g
                        break
            if secondary is not None:
                break
    sigma_h = None
    if axis is not None:
        for g, (det, n, _) in enumerate(types):
            if det == -1 and n == 2 and abs(abs(rotation_axis_angle(-mats[g])[0] @ axis) - 1) < 1e-6:
                sigma_h = g
    mirrors = [g for g, (det, n, _) in enumerate(types) if det == -1 and n == 2]
    if axis is None and len(mirrors) == 1:  # Cs: A', A''
        sigma_h = mirrors[0]
    inversion = next((g for g, M in enumerate(mats) if np.allclose(M, -np.eye(3), atol=1e-6)), None)
    sub = ""
    if d == 1 and not complex_pair:
        letter = "A" if (p_idx is None or cubic or chi[p_idx] > 0) else "B"
        if secondary is not None:
            sub = "1" if chi[secondary] > 0 else "2"
    elif d == 2:
        letter = "E"
        if p_idx is not None and n_max >= 5:  # E1, E2 of C6 are complex pairs
            k = int(round(np.arccos(np.clip(chi[p_idx] / 2, -1, 1)) * n_max / (2 * np.pi)))
            sub = str(k)
    elif d == 3:
        letter = "T"
        if secondary is not None:
            sub = "1" if chi[secondary] < 0 else "2"
    else:
        letter = {4: "G", 5: "H"}.get(d, f"Γ{d}")
    label = letter + sub
    if inversion is not None:
        label += "g" if chi[inversion] > 0 else "u"
    elif sigma_h is not None:
        label += "'" if chi[sigma_h] > 0 else "''"
    return label
