"""Child + parent -> symmetry-mode decomposition of the distortion (ISODISTORT-style).

**Matching** (:mod:`ase_sbs.analysis.matching`): the child on the undistorted parent
supercell, rotation and strain undone, atoms in correspondence.

**Displacement and its norm.** u_i = (f_i^child − f_i^ref) S (Å, parent axes). The
distortion vector per parent cell is

    w = ( u^{k=0} ,  ℓ e(ε) ),    |w|² = (1/n) Σ_i |u_i|² + ℓ² ‖ε‖_F²   (beyond-k=0 aside)

with u^{k=0}_j = (1/n) Σ_{i → j} u_i the displacement averaged over the n copies of
parent atom j, e(ε) the strain in the orthonormal (Frobenius) strain basis of
``ase_sbs.setting.STRAIN_BASIS`` and ℓ = √N_p (V_p/N_p)^{1/3}: strain is converted to a length
as if each of the N_p atoms of the parent cell moved by ‖ε‖_F times the mean
interatomic spacing (V_p/N_p)^{1/3}. Both blocks are invariant under the parent group,
so the weighting keeps the decomposition orthogonal. All amplitudes are per parent cell
(as given), so they do not change when the child is written in a larger cell.

**Channels.** w is split by the orthogonal projectors of the parent's k = 0 distortion
channels (``ase_sbs.setting.distortion_channels``; uniform translations, and for molecules
rigid rotations, are not distortions). Amplitude a_Γ = |P_Γ w| in Å; what the parent
cell cannot represent (patterns that differ between the n copies, i.e. wave vectors
k ≠ 0 of the parent, and patterns breaking a centring) is one more entry, "beyond
k = 0". Exactly: Σ_Γ a_Γ² + a_beyond² = total², and the part that breaks the parent's
symmetry is breaking² = total² − a_{A1}² (A1 the identity channel), which is the
distance to the parent group of :mod:`ase_sbs.analysis.approx`.

**Beyond k = 0 on a supercell.** When the child holds n > 1 parent cells, the
beyond-k=0 entry is broken down further (``ModeDecomposition.beyond_modes``) into the
channels of G = parent space group / child-lattice translations
(:mod:`ase_sbs.setting`, which builds G, its channels and their isotropy subgroups):
with r_i = u_i − u^{k=0}_{j(i)} (no k = 0 component), a_c = |P_c r| / √n, so
Σ_c a_c² = a_beyond² and the k = 0 amplitudes together with these still add in
quadrature to the total. Each entry carries its k-star, the isotropy subgroup of its
component (stabilizer in G, |g·v − v|/√n ≤ symprec), and, for channels of dimension
× multiplicity ≤ 3, the channel's isotropy subgroups with one-dimensional fixed space.
A supercell too large for the decomposition keeps the single beyond-k=0 entry, with a
note saying why.

**Order parameter.** A channel Γ with m copies of a real irrep of dimension d is
expressed in a canonical basis: Γ's copy inside the smallest O(3) irreps ``lp`` that
contains it (for ``1o``, Cartesian x, y, z in the parent's axes). With orthonormal
intertwiners T_k (k = 1..m) the component becomes an m × d matrix M; its row space is
the order-parameter direction (rank 1 for a one-direction order parameter such as
(a, 0, 0), (a, a, 0), (a, a, a)), given as a unit vector in ``lp`` coordinates. The
isotropy subgroup of the component is its exact stabilizer in the parent's point group
(|ρ(s)c − c| ≤ symprec, in Å), named by its space-group type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from ase import Atoms

from ..core.groups import bits, mask_of
from ..core.irreps import representation
from ..core.spacegroups import group_label
from ..core.symmetry import detect_symmetry
from ..errors import SBSInputError
from ..setting.channels import DistortionChannel, distortion_channels, representation_on
from ..setting.isotropy import isotropy_subgroups, make_target
from ..setting.setting import STRAIN_BASIS, Setting, k0_setting, supercell_setting
from .matching import Match, match

BEYOND_K0 = "beyond k=0"
RIGID_RESIDUAL = "rigid motion"  # molecules: what superposition leaves of rotations (second order)


@dataclass(frozen=True)
class ModeAmplitude:
    """One channel's share of the distortion.

    Attributes:
        label: channel label (``T1u``, ``Eg`` …) or ``beyond k=0``.
        amplitude_A: |P_Γ w| in Å (displacement and ℓ·strain together).
        displacement_A: the atomic-displacement part (Å).
        strain: the strain part, ‖P_Γ ε‖_F (dimensionless).
        o3_irreps: the O(3) irreps in whose coordinates ``direction`` is given
            (``1o``: Cartesian x, y, z of the parent's axes).
        direction: unit order-parameter direction (sign: largest component positive),
            None when not defined (tiny amplitude, beyond k = 0, no real irrep).
        direction_rank: number of independent directions in the component (1 for a
            single order-parameter direction).
        isotropy: stabilizer of the component in the parent's point group (indices).
        isotropy_name: its space-group (crystals) or point-group (molecules) type.
        kstar: ``Γ`` for the parent cell's channels (crystals), the star's name (X, M, R,
            or a representative k) for a supercell channel, None otherwise.
        k_vectors: a supercell channel's k-vectors (fractions of the parent's
            reciprocal basis).
        channel_isotropy_subgroups: a supercell channel's isotropy subgroups with a
            one-dimensional fixed space (up to conjugacy), when cheap to list.
    """

    label: str
    amplitude_A: float
    displacement_A: float
    strain: float
    o3_irreps: str | None = None
    direction: tuple[float, ...] | None = None
    direction_rank: int | None = None
    isotropy: tuple[int, ...] | None = None
    isotropy_name: str | None = None
    isotropy_point_group: str | None = None
    kstar: str | None = None
    k_vectors: tuple[tuple[str, str, str], ...] | None = None
    channel_isotropy_subgroups: tuple[str, ...] | None = None

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "amplitude_A": self.amplitude_A,
            "displacement_A": self.displacement_A,
            "strain": self.strain,
            "o3_irreps": self.o3_irreps,
            "direction": list(self.direction) if self.direction is not None else None,
            "direction_rank": self.direction_rank,
            "isotropy_subgroup": self.isotropy_name,
            "isotropy_point_group": self.isotropy_point_group,
            "kstar": self.kstar,
            "k_vectors": [list(k) for k in self.k_vectors] if self.k_vectors is not None else None,
            "channel_isotropy_subgroups": (list(self.channel_isotropy_subgroups)
                                           if self.channel_isotropy_subgroups is not None else None),
        }


@dataclass(frozen=True, eq=False)
class ModeDecomposition:
    """The distortion of a child relative to its parent, channel by channel.

    ``total_A`` = sqrt(Σ amplitude²) over ``modes`` (beyond-k=0 entry included; for
    molecules the ``rigid motion`` entry, what superposition leaves of a rigid rotation
    at second order, is listed but not counted);
    ``breaking_A`` leaves out the identity channel (the symmetric part: volume, free
    Wyckoff coordinates): it is the distance to the parent's group. ``isotropy_name``
    is the stabilizer of the k = 0 part (the intersection of the channels' isotropy
    subgroups); a child whose distortion lies beyond k = 0 has lower symmetry
    (``child_symmetry``). ``beyond_modes`` splits the beyond-k=0 entry into the
    supercell group's channels (their amplitudes add in quadrature to it);
    ``beyond_note`` says why it was not split; ``supercell_isotropy_name`` is the
    stabilizer of the whole distortion in that group.
    """

    match: Match
    modes: list[ModeAmplitude]
    total_A: float
    breaking_A: float
    isotropy_name: str | None
    isotropy_point_group: str | None
    child_symmetry: str
    threshold_A: float
    beyond_modes: tuple[ModeAmplitude, ...] = ()
    beyond_note: str | None = None
    supercell_isotropy_name: str | None = None

    def mode(self, label: str) -> ModeAmplitude:
        return next(m for m in self.modes if m.label == label)

    def nonzero(self) -> list[ModeAmplitude]:
        return [m for m in self.modes if m.amplitude_A > self.threshold_A]

    def as_dict(self) -> dict:
        m = self.match
        return {
            "parent": m.parent.name(),
            "child_symmetry": self.child_symmetry,
            "n_cells": m.n_cells,
            "supercell": m.supercell.tolist(),
            "rotation": m.rotation.tolist(),
            "strain": m.strain.tolist(),
            "strain_length_A": m.strain_length,
            "total_A": self.total_A,
            "breaking_A": self.breaking_A,
            "isotropy_subgroup": self.isotropy_name,
            "isotropy_point_group": self.isotropy_point_group,
            "threshold_A": self.threshold_A,
            "modes": [x.as_dict() for x in self.modes],
            "beyond_k0_modes": [x.as_dict() for x in self.beyond_modes],
            "beyond_k0_note": self.beyond_note,
            "supercell_isotropy_subgroup": self.supercell_isotropy_name,
        }


def _is_identity(c: DistortionChannel) -> bool:
    return bool(np.allclose(c.character, 1.0))


def _irrep_copy(chi: np.ndarray, D: np.ndarray, seed: int = 0) -> np.ndarray | None:
    """Orthonormal columns E spanning one copy of the irrep with character χ inside D."""
    d = int(round(chi[0]))
    P = d * np.einsum("g,gij->ij", chi, D) / len(D)
    P = (P + P.T) / 2
    w, v = np.linalg.eigh(P)
    V = v[:, w > 0.5]
    if V.shape[1] == 0:
        return None
    if V.shape[1] == d:
        return V
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((V.shape[1], V.shape[1]))
    X = X + X.T
    rho = np.einsum("ai,gab,bj->gij", V, D, V)
    A = np.einsum("gij,jk,glk->il", rho, X, rho) / len(D)
    w, y = np.linalg.eigh(A)
    return V @ y[:, :d] if np.allclose(w[:d], w[0], atol=1e-7 * max(1, abs(w).max())) else None


def _intertwiners(rho: np.ndarray, gamma: np.ndarray, m: int) -> np.ndarray | None:
    """(m, d, md): orthonormal T_k with T_k ρ(s) = Γ(s) T_k and T_k T_kᵀ = I."""
    d, md = gamma.shape[1], rho.shape[1]
    rows = []
    for a in range(d):
        for b in range(md):
            X = np.zeros((d, md))
            X[a, b] = 1.0
            rows.append(np.einsum("gij,jk,glk->il", gamma, X, rho).ravel() / len(rho))
    u, s, vt = np.linalg.svd(np.array(rows))
    if (s > 1e-6).sum() != m:
        return None  # not of real type
    T = vt[:m].reshape(m, d, md) * np.sqrt(d)
    return T


def _direction(c: np.ndarray, ch: DistortionChannel, rho: np.ndarray, mats: np.ndarray):
    if ch.o3_irreps is None:
        return None, None
    D = representation(ch.o3_irreps, mats)
    E = _irrep_copy(ch.character, D)
    if E is None:
        return None, None
    gamma = np.einsum("ai,gab,bj->gij", E, D, E)
    T = _intertwiners(rho, gamma, ch.multiplicity)
    if T is None:
        return None, None
    M = np.einsum("kdi,i->kd", T, c)
    _, s, vt = np.linalg.svd(M)
    rank = int((s > 1e-3 * s[0]).sum())
    v = E @ vt[0]
    v = v * np.sign(v[np.argmax(np.abs(v))]) + 0.0
    return tuple(float(x) for x in np.round(v, 12) + 0.0), rank


def _subgroup_name(setting: Setting, elements) -> tuple[str, str]:
    t = make_target(setting, mask_of(elements))
    return t.name, t.schoenflies


def decompose(child: Atoms, parent, symprec: float = 1e-3, threshold: float = 1e-6,
              channels: list[DistortionChannel] | None = None,
              max_strain: float = 0.3, max_displacement: float | None = None, supercell: bool = True,
              supercell_channels: tuple | None = None, cell_in_parent=None) -> ModeDecomposition:
    """Symmetry-mode decomposition of ``child`` relative to ``parent`` (module docstring).

    Args:
        child, parent: ``ase.Atoms`` (the parent may also be a :class:`Symmetry` of an
            exactly symmetric structure).
        symprec: tolerance (Å) for the parent's and the child's symmetry, and of the
            stabilizers: s fixes a component c when |ρ(s)c − c| ≤ symprec.
        threshold: amplitudes (Å) above it count as present (direction, isotropy).
        channels: ``distortion_channels`` of the parent when already computed.
        supercell: split the beyond-k=0 part of a supercell child into the channels of
            the parent's space group modulo the child's lattice (module docstring).
        supercell_channels: ``(Setting, its distortion_channels)`` of a supercell setting
            when already computed; used when its lattice is the child's, else rebuilt.
        max_strain: largest principal stretch |U − 1| of the child's cell against the
            parent's lattice (0.3: 30 %; ``ase-sbs modes --max-strain``).
        max_displacement: largest atomic displacement (Å) accepted, as for ``match``.
        cell_in_parent: the child's cell in the parent's lattice basis when known, as for
            ``match`` (skips the lattice search).
    """
    try:
        m = match(child, parent, symprec=symprec, max_strain=max_strain, max_displacement=max_displacement,
                  cell_in_parent=cell_in_parent)
    except SBSInputError as exc:
        if "raise max_strain" not in str(exc):
            raise
        raise SBSInputError(f"{exc} (now {max_strain:g}: the max_strain argument, "
                            "or --max-strain of ase-sbs modes)") from exc
    psym = m.parent
    k0 = k0_setting(psym)
    chans = distortion_channels(k0) if channels is None else channels
    N = len(psym.atoms)
    u = m.displacement
    u0 = np.zeros((N, 3))
    np.add.at(u0, m.parent_index, u)
    u0 /= m.n_cells
    residual = u - u0[m.parent_index]
    ell = m.strain_length
    parts = [u0.ravel()]
    if psym.periodic:
        parts.append(ell * np.einsum("aij,ij->a", STRAIN_BASIS, m.strain))
    w = np.concatenate(parts)
    nd = 3 * N
    mats = psym.point_group_matrices
    modes, covered = [], np.zeros_like(w)
    stabs = []
    for ch in chans:
        B = ch.basis
        c = B.T @ w
        pw = B @ c
        covered += pw
        amp = float(np.linalg.norm(c))
        disp = float(np.linalg.norm(pw[:nd]))
        strain = float(np.linalg.norm(pw[nd:]) / ell) if ell > 0 else 0.0
        direction = rank = iso = name = pg = None
        if amp > threshold:
            rho = representation_on(k0, ch, one_copy=False)
            moved = np.linalg.norm(np.einsum("gij,j->gi", rho, c) - c[None], axis=1)
            near = np.flatnonzero(moved <= symprec)
            # a tolerance can leave a set that is not closed: take the group it generates
            iso = tuple(bits(psym.point_group.generate(near.tolist())))
            stabs.append(set(iso))
            name, pg = _subgroup_name(k0, iso)
            direction, rank = _direction(c, ch, rho, mats)
        modes.append(ModeAmplitude(ch.label, amp, disp, strain, ch.o3_irreps, direction, rank, iso, name, pg,
                                   kstar="Γ" if psym.periodic else None))
    beyond = float(np.sqrt(np.linalg.norm(w - covered) ** 2 + (residual**2).sum() / m.n_cells))
    modes.append(ModeAmplitude(BEYOND_K0 if psym.periodic else RIGID_RESIDUAL, beyond, beyond, 0.0))
    modes.sort(key=lambda x: -x.amplitude_A)
    # a molecule's leftover rigid motion is reported but is no distortion
    total = float(np.sqrt(sum(x.amplitude_A**2 for x in modes if x.label != RIGID_RESIDUAL)))
    ident = sum(x.amplitude_A**2 for x in modes if x.label in {c.label for c in chans if _is_identity(c)})
    breaking = float(np.sqrt(max(total**2 - ident, 0.0)))
    whole = set(range(psym.order)).intersection(*stabs) if stabs else set(range(psym.order))
    iso_name, iso_pg = _subgroup_name(k0, sorted(whole))
    beyond_modes, note, sc_iso = (), None, None
    if psym.periodic and m.n_cells > 1 and supercell:
        beyond_modes, note, sc_iso = _supercell_breakdown(m, residual, beyond, symprec, threshold, supercell_channels)
    try:
        csym = detect_symmetry(child, symprec=symprec)
        child_name = csym.name()
    except SBSInputError as exc:
        child_name = f"undetermined ({exc})"
    return ModeDecomposition(match=m, modes=modes, total_A=total, breaking_A=breaking, isotropy_name=iso_name,
                             isotropy_point_group=iso_pg, child_symmetry=child_name, threshold_A=threshold,
                             beyond_modes=beyond_modes, beyond_note=note, supercell_isotropy_name=sc_iso)


# ----------------------------------------------------------------------------------
# beyond k = 0 on a supercell


def _same_lattice(setting: Setting, lattice: np.ndarray) -> bool:
    """True when the setting's cell spans the lattice with rows ``lattice`` (Å)."""
    X = lattice @ np.linalg.inv(np.asarray(setting.atoms.cell, dtype=float))
    return bool(np.allclose(X, np.round(X), atol=1e-6) and round(abs(np.linalg.det(X))) == 1)


def _onto_supercell(reference: Atoms, sg: Setting) -> np.ndarray | None:
    """order[i] = the atom of ``sg.atoms`` that reference atom i sits on, after one rigid
    translation of the reference (it differs from G's origin by the match's shift)."""
    Ls = np.asarray(sg.atoms.cell, dtype=float)
    inv = np.linalg.inv(Ls)
    zr, zs = reference.numbers, sg.atoms.numbers
    rp, sp = reference.positions, sg.atoms.positions
    same = zr[:, None] == zs[None]
    for j in np.flatnonzero(zs == zr[0]):
        d = (rp - (rp[0] - sp[j]))[:, None, :] - sp[None]
        f = d @ inv
        dist = np.linalg.norm((f - np.round(f)) @ Ls, axis=-1)
        dist[~same] = np.inf
        hit = dist.argmin(axis=1)
        if dist[np.arange(len(rp)), hit].max() < 1e-5 and len(set(hit.tolist())) == len(rp):
            return hit
    return None


def _stabilizer_name(sg: Setting, v: np.ndarray, tol: float) -> str | None:
    """Space-group type of {g ∈ G : |g·v − v| ≤ tol} (the group it generates)."""
    moved = np.array([np.linalg.norm(sg.act_distortion(g, v) - v) for g in range(sg.order)])
    num, symbol = sg.spacegroup_of(sg.group.generate(np.flatnonzero(moved <= tol).tolist()))
    return group_label(num, symbol)


def _supercell_breakdown(m: Match, residual: np.ndarray, beyond: float, symprec: float, threshold: float,
                         cache: tuple | None):
    """(entries, note, isotropy of the whole distortion in G): the beyond-k=0 part of a
    supercell child in the channels of its supercell setting (module docstring)."""
    psym = m.parent
    H = m.supercell if np.linalg.det(m.supercell) > 0 else -m.supercell
    Lp = np.asarray(psym.atoms.cell, dtype=float)
    try:
        if cache is not None and _same_lattice(cache[0], H @ Lp):
            sg, chans = cache
        else:
            sg = supercell_setting(psym, H, symprec=psym.symprec)
            chans = distortion_channels(sg)
    except SBSInputError as exc:
        return (), f"beyond k=0 not split into supercell channels: {exc}", None
    order = _onto_supercell(m.reference, sg)
    if order is None:
        return (), "beyond k=0 not split into supercell channels: the parent supercell does not map onto itself", None
    n, N = m.n_cells, len(sg.atoms)
    r = np.zeros((N, 3))
    r[order] = residual
    q = np.concatenate([r.ravel(), np.zeros(6)])
    tol = symprec * np.sqrt(n)  # components are per supercell, amplitudes per parent cell
    entries = []
    for ch in chans:
        if ch.label.startswith("Γ"):
            continue  # r has no k = 0 part (the parent's channels hold it)
        c = ch.basis.T @ q
        amp = float(np.linalg.norm(c) / np.sqrt(n))
        iso = chan_iso = None
        if amp > threshold:
            iso = _stabilizer_name(sg, ch.basis @ c, tol)
            if ch.dimension * ch.multiplicity <= 3:
                try:
                    chan_iso = tuple(k.name for k in isotropy_subgroups(sg, ch))
                except SBSInputError:
                    chan_iso = None
        entries.append(ModeAmplitude(ch.label, amp, amp, 0.0, isotropy_name=iso, kstar=ch.label.split("-")[0],
                                     k_vectors=ch.kstar, channel_isotropy_subgroups=chan_iso))
    rest = float(np.sqrt(max(beyond**2 - sum(e.amplitude_A**2 for e in entries), 0.0)))
    if rest > threshold:  # what the parent cell cannot hold but r does not carry (a centring)
        entries.append(ModeAmplitude(BEYOND_K0 + " (not in supercell channels)", rest, rest, 0.0))
    entries.sort(key=lambda x: -x.amplitude_A)
    u = np.zeros((N, 3))
    u[order] = m.displacement
    strain = np.sqrt(n) * m.strain_length * np.einsum("aij,ij->a", STRAIN_BASIS, m.strain)
    whole = np.concatenate([u.ravel(), strain])
    return tuple(entries), None, _stabilizer_name(sg, whole, tol)
