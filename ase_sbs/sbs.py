"""targets -> SymmetryBreakingSet: the objects that break S exactly to K, one per variant.

For a target K ≤ S and an O(3) irreps V (e3nn), the K-fixed subspace V^K is the image
of P_K = (1/|K|) Σ_k D(k). A generic b ∈ V^K has stabilizer equal to the pointwise
fixer of V^K; for a direct sum the fixers intersect. The smallest irreps whose fixer is
exactly K is chosen (preferring irreps whose restriction to S contains a distortion
channel that reaches K), the S-invariant part of b is removed, and B = S·b, with
|B| = [S:K] and Stab_S(s·b) = s K s⁻¹.

Equivariance: b is P_K applied to a fixed seed vector expressed in the structure's
canonical frame (``Symmetry.frame``, defined up to S), with K replaced by the canonical
representative of its conjugacy class; B is closed under S, so the frame's ambiguity
cancels and B(g·structure) = D(g) B(structure) for every g in O(3).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import numpy as np

from .errors import SBSInputError
from .groups import (
    SCHOENFLIES_OF_HM,
    describe_operation,
    ideal_sbs_exists,
    mask_of,
    normalize_schoenflies,
    schoenflies_name,
)
from .irreps import dimension, fixed_space, irreps_list, pointwise_fixer, representation, stabilizer
from .symmetry import Symmetry
from .targets import (
    Target,
    as_symmetry,
    canonical_representative,
    distortion_channels,
    isotropy_subgroups,
    make_target,
)

OBJECT_TOL = 1e-6


@dataclass(frozen=True, eq=False)
class SymmetryBreakingSet:
    """A symmetry breaking set B = S·b for one target K.

    Attributes:
        symmetry: the parent's :class:`Symmetry` (S).
        target: the target K (member 0 has exactly this stabilizer).
        irreps: e3nn irreps string of the objects, e.g. ``"1o"`` or ``"1o+2e"``.
        objects: (|B|, dim) array, one row per member, in e3nn's basis (Cartesian frame
            of the input structure).
        coset_representatives: for each member j, the index s_j in S with b_j = D(s_j) b_0.
        stabilizers: for each member, the indices of Stab_S(b_j) = s_j K s_j⁻¹ in S.
        channels: labels of the distortion channels that reach K and occur in the
            restriction of ``irreps`` to S (the channels the objects can push along).
    """

    symmetry: Symmetry
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

    def representation(self, matrices) -> np.ndarray:
        """D(g) of ``irreps`` for each 3x3 orthogonal g."""
        return representation(self.irreps, np.asarray(matrices, dtype=np.float64).reshape(-1, 3, 3))

    @cached_property
    def _D_parent(self) -> np.ndarray:
        return self.representation(self.symmetry.point_group_matrices)

    def stabilizer_of(self, vector) -> tuple[int, ...]:
        """Stab_S(vector): indices into ``symmetry.point_group_matrices``."""
        return stabilizer(self._D_parent, np.asarray(vector, dtype=np.float64), OBJECT_TOL)

    def stabilizer_name(self, j: int) -> str:
        return schoenflies_name(self.symmetry.point_group_matrices[list(self.stabilizers[j])])

    def variant_operations(self, j: int) -> np.ndarray:
        """Indices of the parent's operations that keep member j's variant: those whose
        rotation lies in Stab_S(b_j)."""
        return np.flatnonzero(np.isin(self.symmetry.operations.point_index, self.stabilizers[j]))

    def is_closed_under(self, matrices, tol: float = OBJECT_TOL) -> bool:
        """True when D(g) B = B (as a set) for every given 3x3 orthogonal g."""
        B = self.objects
        for D in self.representation(matrices):
            moved = B @ D.T
            dist = np.abs(moved[:, None, :] - B[None, :, :]).max(axis=2)
            if (dist.min(axis=1) > tol).any():
                return False
        return True

    @cached_property
    def ideal(self) -> tuple[bool, str]:
        """(exists, reason): does an ideal equivariant *full* SBS exist for S? The
        paper's criterion: S has a complement in its O(3) normalizer N(S)."""
        return ideal_sbs_exists(self.symmetry.point_group_matrices)

    def as_dict(self) -> dict:
        mats = self.symmetry.point_group_matrices
        return {
            "target": target_dict(self.target, self.symmetry),
            "irreps": self.irreps,
            "size": len(self),
            "channels": list(self.channels),
            "ideal_full_sbs_exists": self.ideal[0],
            "ideal_reason": self.ideal[1],
            "members": [
                {
                    "object": [float(x) for x in b],
                    "coset_representative": describe_operation(mats[s]),
                    "stabilizer": self.stabilizer_name(j),
                    "stabilizer_operations": [describe_operation(mats[k]) for k in self.stabilizers[j]],
                }
                for j, (b, s) in enumerate(zip(self.objects, self.coset_representatives))
            ],
        }


def target_dict(t: Target, sym: Symmetry | None = None) -> dict:
    extra = {}
    if sym is not None:
        extra["generators"] = _generators(sym, mask_of(t.elements))
    return {
        "schoenflies": t.schoenflies,
        "hermann_mauguin": t.hermann_mauguin,
        "spacegroup_number": t.spacegroup_number,
        "spacegroup_symbol": t.spacegroup_symbol,
        "index": t.index,
        "n_conjugates": t.n_conjugates,
        "channels": list(t.channels),
        **extra,
    }


# ----------------------------------------------------------------------------------
# target resolution


def _normalize_symbol(s: str) -> str:
    return s.replace(" ", "").replace("_", "").lower()


@lru_cache(maxsize=1)
def _known_spacegroup_symbols() -> dict[str, int]:
    """Normalized Hermann–Mauguin symbols (short, full, spaced) of the 230 types -> number."""
    import warnings

    import spglib

    out = {}
    for hall in range(1, 531):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            t = spglib.get_spacegroup_type(hall)
        out[_normalize_symbol(t.international_short)] = t.number
        out[_normalize_symbol(t.international)] = t.number
        out[_normalize_symbol(t.international_full)] = t.number
    return out


_SCHOENFLIES_RE = re.compile(r"^(C\d+[hvi]?|D\d+[hd]?|S\d+|T[dh]?|O[h]?|I[h]?|C[si])$")


def resolve_target(sym: Symmetry, target) -> int:
    """The subgroup of S that ``target`` names, as a bitmask.

    ``target`` may be a :class:`Target`, a point-group name (Schoenflies or
    Hermann–Mauguin), a space-group symbol or number (crystals), or explicit
    operations (an array of 3x3 Cartesian matrices, or indices into S).
    """
    group = sym.point_group
    if isinstance(target, Target):
        mask = mask_of(target.elements)
        if mask >= 1 << group.order or not group.is_subgroup(target.elements):
            raise SBSInputError("this Target belongs to another structure; recompute candidate_targets")
        return mask
    if isinstance(target, str) and target.strip().isdigit():
        target = int(target.strip())
    if isinstance(target, (int, np.integer)):
        if not sym.periodic:
            raise SBSInputError(f"a space-group number ({target}) needs a crystal; this is a molecule")
        if not 1 <= int(target) <= 230:
            raise SBSInputError(f"space-group numbers run from 1 to 230, got {target}")
        return _match_classes(sym, lambda t: t.spacegroup_number == int(target), f"space group {target}")
    if isinstance(target, str):
        name = target.strip()
        schoen = None
        if _SCHOENFLIES_RE.match(name):
            schoen = normalize_schoenflies(name)
        elif name.replace(" ", "") in SCHOENFLIES_OF_HM:
            schoen = SCHOENFLIES_OF_HM[name.replace(" ", "")]
        if schoen is not None:
            return _match_classes(sym, lambda t: normalize_schoenflies(t.schoenflies) == schoen, name)
        if sym.periodic:
            known = _known_spacegroup_symbols()
            num = known.get(_normalize_symbol(name))
            if num is not None:
                return _match_classes(
                    sym, lambda t: t.spacegroup_number == num, f"{name} (space group {num})"
                )
        raise SBSInputError(
            f"unknown group name {target!r}: give a Schoenflies symbol (C4v), a Hermann–Mauguin "
            "point group (4mm)" + (", a space-group symbol (P4mm) or number (99)" if sym.periodic else "")
        )
    return _explicit_subgroup(sym, target)


def _explicit_subgroup(sym: Symmetry, target) -> int:
    arr = np.asarray(target)
    mats = sym.point_group_matrices
    if arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer):
        idx = [int(i) for i in arr]
        if any(i < 0 or i >= len(mats) for i in idx):
            raise SBSInputError(f"operation indices must lie in 0..{len(mats) - 1}")
    else:
        try:
            arr = np.asarray(target, dtype=np.float64).reshape(-1, 3, 3)
        except (TypeError, ValueError) as exc:
            raise SBSInputError(
                "a target must be a group name, a space-group number, a Target, or an array of 3x3 matrices"
            ) from exc
        idx = []
        for R in arr:
            d = np.abs(mats - R[None]).max(axis=(1, 2))
            if d.min() > 1e-4:
                raise SBSInputError(
                    f"operation {np.round(R, 4).tolist()} is not a symmetry of the structure ({sym.name()})"
                )
            idx.append(int(d.argmin()))
    idx = sorted(set(idx) | {0})
    if not sym.point_group.is_subgroup(idx):
        raise SBSInputError(
            "the given operations are not closed under multiplication: they do not form a subgroup of "
            f"{sym.schoenflies}; add the missing products or give a group name"
        )
    return mask_of(idx)


def _match_classes(sym: Symmetry, predicate, what: str) -> int:
    group = sym.point_group
    matches = []
    for cls in group.conjugacy_classes_of_subgroups():
        rep = min(cls)
        t = make_target(sym, rep)
        if predicate(t):
            matches.append((rep, t))
    if not matches:
        raise SBSInputError(f"{what} is not a subgroup of the structure's symmetry {sym.name()}")
    if len(matches) > 1:
        opts = "; ".join(
            f"{t.name} [{t.schoenflies}] of index {t.index}" + (f", e.g. generated by {_generators(sym, rep)}")
            for rep, t in matches
        )
        raise SBSInputError(
            f"{what} matches {len(matches)} inequivalent subgroups of {sym.schoenflies}: {opts}. "
            "Pass a more specific name, a candidate_targets() entry or explicit operations instead."
        )
    return matches[0][0]


def _generators(sym: Symmetry, mask: int) -> str:
    mats = sym.point_group_matrices
    improper = np.linalg.det(mats) < 0
    return ", ".join(describe_operation(mats[k]) for k in sym.point_group.generators(mask, improper)) or "E"


# ----------------------------------------------------------------------------------
# construction


def _choose_irreps(parent_D: dict, sym_elements: tuple, rep_elements: tuple, order: int,
                   preferred: set[str], max_parts: int = 3) -> list[tuple[str, np.ndarray]]:
    """Smallest list of distinct irreps whose pointwise fixers intersect exactly to K."""
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
            key = (
                not any(ir in preferred for ir in names),
                sum(dimension(ir) for ir in names),
                [int(ir[:-1]) for ir in names],
                names,
            )
            if best is None or key < best[0]:
                best = (key, [(ir, VK) for ir, VK, _ in combo])
    return [] if best is None else best[1]


def symmetry_breaking_set(structure, target, max_l: int = 4, symprec: float = 1e-3,
                          angle_tolerance: float = -1.0, seed: int = 0,
                          channels: list | None = None) -> SymmetryBreakingSet:
    """Build the symmetry breaking set that breaks the structure's point group S to ``target``.

    Args:
        structure: ``ase.Atoms`` or :class:`Symmetry`.
        target: see :func:`resolve_target`.
        max_l: largest O(3) degree l to search (objects use l <= max_l).
        seed: seed of the fixed generic vector that b is projected from.
        channels: ``distortion_channels(sym)`` when already computed (saves the work
            when building sets for many targets of one structure).

    Raises:
        SBSInputError: unknown or ambiguous target, a target that is not a proper
            subgroup of S, or no object up to ``max_l``.
    """
    if not isinstance(max_l, (int, np.integer)) or max_l < 0:
        raise SBSInputError(f"max_l must be a non-negative integer, got {max_l!r}")
    sym = as_symmetry(structure, symprec, angle_tolerance)
    group = sym.point_group
    mask = resolve_target(sym, target)
    if mask == group.full:
        raise SBSInputError(f"the target is the whole symmetry group {sym.schoenflies}: nothing to break")
    rep, conj = canonical_representative(group, mask)
    rep_el = group.elements_of(rep)
    mats = sym.point_group_matrices
    channels = distortion_channels(sym) if channels is None else channels
    reaching = [c for c in channels if rep in set(isotropy_subgroups(group, c.character))]
    parent_D = {ir: representation(ir, mats) for ir in irreps_list(max_l)}
    preferred = {
        ir for ir, D in parent_D.items()
        if any(np.trace(D, axis1=1, axis2=2) @ c.character > 0.5 * len(mats) for c in reaching)
    }
    chosen = _choose_irreps(parent_D, tuple(range(sym.order)), rep_el, sym.order, preferred)
    if not chosen:
        raise SBSInputError(
            f"no object with l <= {max_l} has stabilizer exactly {schoenflies_name(mats[list(rep_el)])} "
            f"in {sym.schoenflies}; raise max_l"
        )
    irreps = "+".join(ir for ir, _ in chosen)
    D_all = representation(irreps, mats)
    D_frame = representation(irreps, sym.frame[None])[0]
    for attempt in range(20):
        rng = np.random.default_rng(seed + attempt)
        y = D_frame @ rng.standard_normal(D_all.shape[1])
        b_parts, offset = [], 0
        for _, VK in chosen:
            d = VK.shape[0]
            part = VK @ (VK.T @ y[offset : offset + d])
            b_parts.append(part / np.linalg.norm(part))
            offset += d
        b_rep = np.concatenate(b_parts)
        if mask_of(stabilizer(D_all, b_rep, OBJECT_TOL)) == rep:
            break
    else:  # pragma: no cover - probability zero
        raise SBSInputError("could not draw a generic object; try another seed")
    b0 = D_all[conj] @ b_rep
    objects, cosets = [], []
    for s in range(sym.order):
        v = D_all[s] @ b0
        if not any(np.abs(v - o).max() < OBJECT_TOL for o in objects):
            objects.append(v)
            cosets.append(s)
    objects = np.array(objects)
    objects[np.abs(objects) < 1e-12] = 0.0
    stabs = tuple(stabilizer(D_all, b, OBJECT_TOL) for b in objects)
    channel_labels = tuple(
        c.label for c in reaching
        if any(np.trace(parent_D[ir], axis1=1, axis2=2) @ c.character > 0.5 * len(mats) for ir, _ in chosen)
    )
    return SymmetryBreakingSet(
        symmetry=sym,
        target=make_target(sym, mask, tuple(c.label for c in reaching)),
        irreps=irreps,
        objects=objects,
        coset_representatives=tuple(cosets),
        stabilizers=stabs,
        channels=channel_labels,
    )
