"""Symmetry -> targets: the k = 0 distortion channels and their isotropy subgroups.

The distortion space W holds atomic displacements u (natoms x 3) and, for crystals,
the cell strain ε (symmetric 3x3, orthonormal 6-dim basis). A point-group element s,
through any space-group operation (R, t, π) with rotation R = s, acts as

    (s·u)_{π(i)} = R u_i,        s·ε = R ε Rᵀ.

Motions that are not distortions are removed: uniform translations (and, for a
crystal given in a centred cell, patterns that break the centring translations, which
are not k = 0 in the primitive cell); for molecules, rigid translations and rotations.

W is split into channels: the isotypic components of the real (physically)
irreducible representations Γ of S. A subgroup K is an isotropy subgroup of a space
U when some u in U has Stab_S(u) = K exactly; with dim U^K = (1/|K|) Σ_k χ_U(k) this
holds iff dim U^K > dim U^H for every minimal supergroup H ⊋ K (a vector space is
never a finite union of proper subspaces). The candidate targets are the isotropy
subgroups of W other than S, one per conjugacy class.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .groups import bits, element_type, hermann_mauguin_name, rotation_axis_angle, schoenflies_name
from .irreps import irreps_list, representation
from .symmetry import Symmetry, quiet_c_stderr

STRAIN_BASIS = np.array(
    [np.diag([1.0, 0, 0]), np.diag([0, 1.0, 0]), np.diag([0, 0, 1.0])]
    + [
        (np.outer(np.eye(3)[a], np.eye(3)[b]) + np.outer(np.eye(3)[b], np.eye(3)[a])) / np.sqrt(2)
        for a, b in ((1, 2), (0, 2), (0, 1))
    ]
)


@dataclass(frozen=True, eq=False)
class DistortionChannel:
    """One isotypic component of the distortion space.

    Attributes:
        label: Mulliken-style name of Γ (e.g. ``T1u``); conventions for the numeric
            subscript follow the usual axis choices and are indicative for D2-type groups.
        dimension: dimension of Γ (a complex-conjugate pair counts as one real irrep).
        multiplicity: how many copies of Γ occur in W.
        sources: which parts of W it occurs in: ``displacement`` and/or ``strain``.
        o3_irreps: smallest O(3) irreps (e3nn ``lp``) whose restriction to S contains Γ.
        character: χ_Γ(s) for every s in S.
        basis: (3 natoms [+ 6], multiplicity*dimension) orthonormal columns: the
            displacement (then strain) coordinates spanning the component.
    """

    label: str
    dimension: int
    multiplicity: int
    sources: tuple[str, ...]
    o3_irreps: str | None
    character: np.ndarray
    basis: np.ndarray

    def fixed_dimension(self, subgroup) -> int:
        """dim of the channel's K-fixed subspace, from characters."""
        idx = list(subgroup)
        return int(round(self.multiplicity * self.character[idx].mean()))


@dataclass(frozen=True, eq=False)
class Target:
    """A subgroup K of S to break to (one representative of its conjugacy class).

    Attributes:
        elements: indices of K in ``Symmetry.point_group_matrices``.
        schoenflies, hermann_mauguin: point-group type of K.
        spacegroup_number, spacegroup_symbol: space-group type of the broken crystal
            (the operations of the parent whose rotation lies in K); None for molecules.
        index: [S:K], the number of domain variants.
        n_conjugates: number of subgroups conjugate to K in S.
        channels: labels of the channels in which K is an isotropy subgroup; empty if K
            is reached only by coupling several channels.
    """

    elements: tuple[int, ...]
    schoenflies: str
    hermann_mauguin: str | None
    spacegroup_number: int | None
    spacegroup_symbol: str | None
    index: int
    n_conjugates: int
    channels: tuple[str, ...]

    @property
    def order(self) -> int:
        return len(self.elements)

    @property
    def name(self) -> str:
        if self.spacegroup_symbol:
            return f"{self.spacegroup_symbol} ({self.spacegroup_number})"
        return self.schoenflies


# ----------------------------------------------------------------------------------
# the distortion representation


def _distortion_constraints(sym: Symmetry) -> np.ndarray:
    """Orthonormal basis (columns) of the true distortions inside displacement ⊕ strain."""
    atoms = sym.atoms
    n = len(atoms)
    ops = sym.operations
    nd = 3 * n
    total = nd + (6 if sym.periodic else 0)
    removed = []
    # uniform translations
    for a in range(3):
        v = np.zeros((n, 3))
        v[:, a] = 1.0
        removed.append(np.concatenate([v.ravel(), np.zeros(total - nd)]))
    if not sym.periodic:
        r = atoms.positions - atoms.get_center_of_mass()
        for a in range(3):
            v = np.cross(np.eye(3)[a], r)
            removed.append(v.ravel())
    R = np.array(removed).T
    q, s, _ = np.linalg.svd(R, full_matrices=False)
    rigid = q[:, s > 1e-8 * s.max()]
    P = np.eye(total) - rigid @ rigid.T
    if sym.periodic:
        # average over the centring translations (pure translations among the operations)
        pure = [k for k in range(len(ops)) if np.allclose(ops.rotations[k], np.eye(3), atol=1e-8)]
        C = np.zeros((total, total))
        for k in pure:
            C += _operation_matrix(sym, k)
        C /= len(pure)
        P = P @ C
    w, v = np.linalg.eigh((P + P.T) / 2)
    return v[:, w > 0.5]


def _operation_matrix(sym: Symmetry, k: int) -> np.ndarray:
    """Matrix of operation k on displacement (⊕ strain) coordinates."""
    ops = sym.operations
    n = len(sym.atoms)
    R, perm = ops.rotations[k], ops.permutations[k]
    nd = 3 * n
    total = nd + (6 if sym.periodic else 0)
    M = np.zeros((total, total))
    for i in range(n):
        j = perm[i]
        M[3 * j : 3 * j + 3, 3 * i : 3 * i + 3] = R
    if sym.periodic:
        M[nd:, nd:] = np.einsum("aij,ik,bkl,jl->ab", STRAIN_BASIS, R, STRAIN_BASIS, R)
    return M


def distortion_representation(sym: Symmetry) -> tuple[np.ndarray, np.ndarray]:
    """(Q, rho): Q the basis of W in displacement ⊕ strain coordinates, rho[s] = Qᵀ D(s) Q."""
    Q = _distortion_constraints(sym)
    rho = np.array(
        [Q.T @ _operation_matrix(sym, sym.representative_operation(s)) @ Q for s in range(sym.order)]
    )
    return Q, rho


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


def isotypic_components(rho: np.ndarray, seed: int = 0, eig_tol: float = 1e-7, char_tol: float = 1e-6,
                        exclude: np.ndarray | None = None) -> list[tuple[list[np.ndarray], np.ndarray]]:
    """Isotypic components of an orthogonal representation ``rho`` (|G|, d, d) of a finite group.

    A random symmetric M averaged over the group, A = (1/|G|) Σ_g rho(g) M rho(g)ᵀ,
    commutes with rho; its eigenspaces are irreducible (with probability one), and
    eigenspaces with the same character χ(g) = tr(Vᵀ rho(g) V) make one isotypic
    component. ``exclude`` (d, k orthonormal columns) is an invariant subspace left out
    (e.g. uniform translations). Returns [(copies, χ)]: the orthonormal (d, dim Γ) bases
    of the irreducible pieces of each component, and Γ's character.
    """
    d = rho.shape[1]
    rng = np.random.default_rng(seed)
    M = rng.standard_normal((d, d))
    M = M + M.T
    if exclude is not None:
        P = np.eye(d) - exclude @ exclude.T
        M = P @ M @ P
    A = (rho @ M @ rho.transpose(0, 2, 1)).sum(axis=0) / len(rho)
    w, v = np.linalg.eigh((A + A.T) / 2)
    scale = max(np.abs(w).max(), 1.0)
    blocks = _group_by(list(range(d)), lambda a, b: abs(w[a] - w[b]) < eig_tol * scale)
    pieces = []
    for blk in blocks:
        V = v[:, blk]
        if exclude is not None and np.linalg.norm(exclude.T @ V) > 0.5:
            continue
        pieces.append((V, np.einsum("ij,gij->g", V, rho @ V)))
    isotypic = _group_by(pieces, lambda a, b: np.allclose(a[1], b[1], atol=char_tol))
    return [([V for V, _ in grp], grp[0][1]) for grp in isotypic]


def distortion_channels(sym: Symmetry, seed: int = 0) -> list[DistortionChannel]:
    """Split W into isotypic components of the real irreps of S (:func:`isotypic_components`)."""
    Q, rho = distortion_representation(sym)
    if Q.shape[1] == 0:
        return []
    isotypic = isotypic_components(rho, seed)
    nd = 3 * len(sym.atoms)
    mats = sym.point_group_matrices
    o3_chars = {ir: np.trace(representation(ir, mats), axis1=1, axis2=2) for ir in irreps_list(6)}
    channels = []
    for copies, chi in isotypic:
        basis = Q @ np.concatenate(copies, axis=1)
        sources = []
        if np.abs(basis[:nd]).max() > 1e-8:
            sources.append("displacement")
        if basis.shape[0] > nd and np.abs(basis[nd:]).max() > 1e-8:
            sources.append("strain")
        norm = float(np.round(chi @ chi / len(chi)))
        irr_dim = int(round(chi[0]))
        o3 = next((ir for ir, c in o3_chars.items() if (c @ chi) / len(chi) > 0.5), None)
        channels.append(
            DistortionChannel(
                label=mulliken_label(chi, mats, complex_pair=norm > 1.5),
                dimension=irr_dim,
                multiplicity=len(copies),
                sources=tuple(sources),
                o3_irreps=o3,
                character=chi,
                basis=basis,
            )
        )
    channels.sort(key=lambda c: (c.dimension, c.label))
    return _disambiguate(channels)


def _disambiguate(channels: list[DistortionChannel]) -> list[DistortionChannel]:
    seen: dict[str, int] = {}
    out = []
    for c in channels:
        seen[c.label] = seen.get(c.label, 0) + 1
    count: dict[str, int] = {}
    for c in channels:
        if seen[c.label] > 1:
            count[c.label] = count.get(c.label, 0) + 1
            c = DistortionChannel(**{**c.__dict__, "label": f"{c.label}({count[c.label]})"})
        out.append(c)
    return out


def mulliken_label(chi: np.ndarray, mats: np.ndarray, complex_pair: bool = False) -> str:
    """Mulliken-style label of a real irrep from its character.

    Letter from the dimension (A/B by the principal rotation, E, T, G, H); g/u from
    inversion; '/'' from σh when there is no inversion; subscript 1/2 from a
    secondary operation (C2 ⊥ principal axis, else σ containing it), or k in E_k from
    χ(C_n) = 2cos(2πk/n).
    """
    d = int(round(chi[0]))
    types = [element_type(R) for R in mats]
    proper_n = [(n if det == 1 and k == 1 else 0) for det, n, k in types]
    n_max = max(proper_n)
    cubic = sum(1 for det, n, k in types if det == 1 and n == 3 and k == 1) > 2
    p_idx = proper_n.index(3 if cubic else n_max) if n_max > 1 else None
    axis = rotation_axis_angle(mats[p_idx])[0] if p_idx is not None else None
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
    inversion = next((g for g, M in enumerate(mats) if np.allclose(M, -np.eye(3), atol=1e-6)), None)
    sub = ""
    if d == 1 and not complex_pair:
        letter = "A" if (p_idx is None or cubic or chi[p_idx] > 0) else "B"
        if secondary is not None:
            sub = "1" if chi[secondary] > 0 else "2"
    elif d == 2:
        letter = "E"
        if p_idx is not None and n_max >= 5 and not complex_pair:
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


# ----------------------------------------------------------------------------------
# isotropy subgroups and candidate targets


def isotropy_subgroups(group, character: np.ndarray, multiplicity: int = 1) -> list[int]:
    """Bitmasks of the subgroups K that are exact stabilizers of some vector of a
    representation with character ``character`` (times ``multiplicity``)."""
    dims = {m: int(round(multiplicity * character[bits(m)].mean())) for m in group.subgroups}
    out = []
    for m in group.subgroups:
        if dims[m] == 0:
            continue
        if all(dims[h] < dims[m] for h in group.minimal_supergroups(m)):
            out.append(m)
    return out


def canonical_representative(group, mask: int) -> tuple[int, int]:
    """(representative, s): the conjugate of ``mask`` with the smallest bitmask, and an
    element s with mask = s · representative · s⁻¹ (first in canonical order)."""
    rep = min(group.conjugates(mask))
    for s in range(group.order):
        if group.conjugate(rep, s) == mask:
            return rep, s
    raise AssertionError("conjugate not found")


def spacegroup_of_subgroup(sym: Symmetry, elements) -> tuple[int | None, str | None]:
    """Space-group type of the parent's operations whose rotation lies in K."""
    if not sym.periodic:
        return None, None
    return _spacegroup_type(sym, tuple(sorted(elements)))


def _spacegroup_type(sym: Symmetry, elements: tuple[int, ...]) -> tuple[int | None, str | None]:
    import spglib

    keep = np.isin(sym.operations.point_index, elements)
    with quiet_c_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        t = spglib.get_spacegroup_type_from_symmetry(
            sym.operations.rotations_frac[keep],
            sym.operations.translations_frac[keep],
            np.asarray(sym.atoms.cell),
            symprec=sym.symprec,
        )
    if t is None:
        return None, None
    return int(t.number), str(t.international_short)


def make_target(sym: Symmetry, mask: int, channels: tuple[str, ...] = ()) -> Target:
    group = sym.point_group
    el = group.elements_of(mask)
    schoen = schoenflies_name(sym.point_group_matrices[list(el)])
    sg_num, sg_sym = spacegroup_of_subgroup(sym, el)
    return Target(
        elements=el,
        schoenflies=schoen,
        hermann_mauguin=hermann_mauguin_name(schoen),
        spacegroup_number=sg_num,
        spacegroup_symbol=sg_sym,
        index=sym.order // len(el),
        n_conjugates=len(group.conjugates(mask)),
        channels=channels,
    )


def candidate_targets(structure, symprec: float = 1e-3, angle_tolerance: float = -1.0,
                      channels: list[DistortionChannel] | None = None) -> list[Target]:
    """The k = 0 isotropy subgroups of the structure's distortions, up to conjugacy.

    Args:
        structure: an ``ase.Atoms`` or a :class:`Symmetry`.
        channels: ``distortion_channels(sym)`` when already computed.

    Returns:
        One :class:`Target` per conjugacy class, largest subgroups first; each lists
        the channels in which it is an isotropy subgroup.
    """
    sym = as_symmetry(structure, symprec, angle_tolerance)
    group = sym.point_group
    channels = distortion_channels(sym) if channels is None else channels
    total_chi = sum(c.multiplicity * c.character for c in channels) if channels else np.zeros(sym.order)
    full = isotropy_subgroups(group, total_chi)
    per_channel = {c.label: set(isotropy_subgroups(group, c.character)) for c in channels}
    seen, targets = set(), []
    for m in sorted(full, key=lambda m: (-bin(m).count("1"), m)):
        if m == group.full:
            continue
        rep, _ = canonical_representative(group, m)
        if rep in seen:
            continue
        seen.add(rep)
        reach = tuple(label for label, iso in per_channel.items() if m in iso)
        targets.append(make_target(sym, rep, reach))
    return targets


def as_symmetry(structure, symprec: float = 1e-3, angle_tolerance: float = -1.0) -> Symmetry:
    if isinstance(structure, Symmetry):
        return structure
    from .symmetry import detect_symmetry

    return detect_symmetry(structure, symprec=symprec, angle_tolerance=angle_tolerance)
