"""Finite subgroups of O(3): Cayley tables of matrices, exact refinement, names
(Schoenflies, Hermann–Mauguin), operation names, the O(3) normalizer, the paper's
ideal-SBS criterion, and the point group of a finite point set (a molecule).

Matrices act on column vectors; everything is float64 with explicit tolerances.
"""

from __future__ import annotations

import itertools
import re

import numpy as np

from ..errors import SBSInputError
from .groups import FiniteGroup, mask_of

MATRIX_TOL = 1e-6


def cayley_table(matrices: np.ndarray, tol: float = MATRIX_TOL) -> np.ndarray:
    """Multiplication table of a closed set of matrices (identity must be first)."""
    mats = np.asarray(matrices, dtype=np.float64)
    n = len(mats)
    flat = mats.reshape(n, -1)
    table = np.empty((n, n), dtype=np.int64)
    for a in range(n):
        prods = np.einsum("ij,bjk->bik", mats[a], mats).reshape(n, -1)
        dist = np.abs(prods[:, None, :] - flat[None, :, :]).max(axis=2)
        best = dist.argmin(axis=1)
        if (dist[np.arange(n), best] > tol).any():
            raise SBSInputError(
                "the operations do not form a group at this tolerance; "
                "use a looser symprec or symmetrize the structure first"
            )
        table[a] = best
    return table


def refine_group(matrices: np.ndarray, tol: float = 1e-3, iterations: int = 20,
                 table: np.ndarray | None = None) -> np.ndarray:
    """Nearby exact group: matrices that close under multiplication to machine precision.

    With the Cayley table of the noisy set (``table``, or read from the matrices at
    ``tol``), each M_a is replaced by the polar (orthogonal) part of
    (1/n) Σ_b M_{ab} M_bᵀ; the fixed point is an exact representation, reached in a few
    iterations from noise far below ``tol``.
    """
    mats = np.asarray(matrices, dtype=np.float64)
    table = cayley_table(mats, tol) if table is None else np.asarray(table)
    for _ in range(iterations):
        new = np.einsum("abij,bkj->aik", mats[table], mats) / len(mats)
        u, _, vt = np.linalg.svd(new)
        new = u @ vt
        if np.abs(new - mats).max() < 1e-15:
            return new
        mats = new
    return mats


def close_matrices(generators, tol: float = MATRIX_TOL, max_order: int = 10000) -> np.ndarray:
    """All products of ``generators`` (orthogonal 3x3), identity first."""
    elems = [np.eye(3)]
    gens = [np.asarray(g, dtype=np.float64) for g in generators]
    frontier = [np.eye(3)]
    while frontier:
        nxt = []
        for a in frontier:
            for g in gens:
                c = a @ g
                if not any(np.abs(c - e).max() < tol for e in elems):
                    elems.append(c)
                    nxt.append(c)
                    if len(elems) > max_order:
                        raise SBSInputError("generators produce an infinite (or huge) group")
        frontier = nxt
    return np.array(elems)


def rotation_axis_angle(R: np.ndarray) -> tuple[np.ndarray, float]:
    """Axis (unit vector) and angle in [0, π] of the proper rotation ``R``."""
    anti = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    angle = float(np.arctan2(np.linalg.norm(anti) / 2.0, (np.trace(R) - 1.0) / 2.0))
    if angle < 1e-6:
        return np.array([0.0, 0.0, 1.0]), 0.0
    if np.pi - angle < 1e-6:
        M = (R + np.eye(3)) / 2.0
        axis = M[np.argmax(np.diag(M))]
    else:
        axis = anti
    axis = axis / np.linalg.norm(axis)
    return axis, angle


def _canonical_direction(v: np.ndarray) -> np.ndarray:
    for x in v:
        if abs(x) > 1e-8:
            return v if x > 0 else -v
    return v


def element_type(R: np.ndarray) -> tuple[int, int, int]:
    """(det, n, k): the proper part ``det*R`` is a rotation by 2πk/n, k/n reduced."""
    det = int(round(np.linalg.det(R)))
    _, angle = rotation_axis_angle(det * R)
    if angle == 0.0:
        return det, 1, 0
    frac = angle / (2 * np.pi)
    for n in range(2, 121):
        k = round(frac * n)
        if k and abs(frac * n - k) < 1e-5:
            return det, n, k
    raise SBSInputError("operation has an angle that is not a rational multiple of 2π")


def describe_operation(R: np.ndarray) -> str:
    """Schoenflies-style name of an orthogonal matrix: E, i, Cn^k [axis], σ [normal], Sn^k [axis]."""
    det, n, k = element_type(R)
    axis, _ = rotation_axis_angle(det * R)
    axis = np.where(np.abs(axis) < 1e-9, 0.0, axis)
    ax = "[" + ",".join(f"{x:.3g}" for x in _canonical_direction(axis) + 0.0) + "]"
    if det == 1:
        return "E" if n == 1 else f"C{n}{'' if k == 1 else '^' + str(k)} {ax}"
    if n == 1:
        return "i"
    if n == 2:
        return f"σ {ax}"
    # -R_proper(2πk/n) is a rotoreflection S_m by angle 2πk/n + π
    frac = (k / n + 0.5) % 1.0
    for m in range(1, 241):
        j = round(frac * m)
        if abs(frac * m - j) < 1e-6:
            break
    return f"S{m}{'' if j in (1,) else '^' + str(j)} {ax}"


def _proper_family(proper: np.ndarray) -> tuple[str, int]:
    """Classify a finite rotation group: ('C'|'D', n), ('T',12), ('O',24) or ('I',60)."""
    order = len(proper)
    types = [element_type(R) for R in proper]
    orders = [n for _, n, _ in types]
    def axes_of_order(order_n):
        return {tuple(np.round(_canonical_direction(rotation_axis_angle(R)[0]), 6))
                for R, (_, n, _) in zip(proper, types) if n == order_n}

    if len(axes_of_order(5)) > 1:
        return "I", 60
    if len(axes_of_order(3)) > 1:
        return ("O", 24) if 4 in orders else ("T", 12)
    axes = {tuple(np.round(_canonical_direction(rotation_axis_angle(R)[0]), 6))
            for R, (_, n, _) in zip(proper, types) if n > 1}
    if len(axes) <= 1:
        return "C", order
    return "D", order // 2


HERMANN_MAUGUIN = {
    "C1": "1", "Ci": "-1", "C2": "2", "Cs": "m", "C2h": "2/m", "D2": "222", "C2v": "mm2",
    "D2h": "mmm", "C4": "4", "S4": "-4", "C4h": "4/m", "D4": "422", "C4v": "4mm",
    "D2d": "-42m", "D4h": "4/mmm", "C3": "3", "S6": "-3", "C3i": "-3", "D3": "32", "C3v": "3m",
    "D3d": "-3m", "C6": "6", "C3h": "-6", "C6h": "6/m", "D6": "622", "C6v": "6mm",
    "D3h": "-6m2", "D6h": "6/mmm", "T": "23", "Th": "m-3", "O": "432", "Td": "-43m",
    "Oh": "m-3m", "I": "532", "Ih": "-5-3m",
}
SCHOENFLIES_OF_HM = {v: k for k, v in HERMANN_MAUGUIN.items() if k != "C3i"}
SCHOENFLIES_OF_HM.update({"-3": "C3i", "-4m2": "D2d", "3m1": "C3v", "31m": "C3v", "321": "D3",
                          "312": "D3", "-3m1": "D3d", "-31m": "D3d", "-62m": "D3h", "m3m": "Oh",
                          "m3": "Th", "m-3m": "Oh", "2mm": "C2v", "m2m": "C2v", "-3-m": "D3d"})


def schoenflies_name(matrices: np.ndarray) -> str:
    """Schoenflies symbol of a finite subgroup of O(3) (any n, crystallographic or not)."""
    mats = np.asarray(matrices, dtype=np.float64)
    dets = np.round(np.linalg.det(mats)).astype(int)
    proper = mats[dets == 1]
    fam, n = _proper_family(proper)
    if len(proper) == len(mats):
        return {"C": f"C{n}", "D": f"D{n}"}.get(fam, fam)
    has_inversion = any(np.abs(R + np.eye(3)).max() < 1e-6 for R in mats)
    if has_inversion:
        if fam == "C":
            return "Ci" if n == 1 else (f"C{n}h" if n % 2 == 0 else f"S{2 * n}")
        if fam == "D":
            return f"D{n}h" if n % 2 == 0 else f"D{n}d"
        return fam + "h"
    # No inversion: P' = P ∪ {-s : s improper} is a proper group containing P with index 2.
    big = np.concatenate([proper, -mats[dets == -1]])
    fam2, n2 = _proper_family(big)
    if fam == "C" and fam2 == "C":
        return "Cs" if n == 1 else (f"C{n}h" if n % 2 == 1 else f"S{2 * n}")
    if fam == "C" and fam2 == "D":
        return "Cs" if n == 1 else f"C{n}v"
    if fam == "D" and fam2 == "D":
        return f"D{n}h" if n % 2 == 1 else f"D{n}d"
    if fam == "T" and fam2 == "O":
        return "Td"
    raise SBSInputError("unrecognised finite subgroup of O(3)")


def normalize_schoenflies(name: str) -> str:
    aliases = {"C1h": "Cs", "S2": "Ci", "C3i": "S6", "C1v": "Cs", "D1": "C2", "D1h": "C2v", "D1d": "C2h",
               "V": "D2", "Vh": "D2h", "Vd": "D2d"}
    return aliases.get(name, name)


def hermann_mauguin_name(schoenflies: str) -> str | None:
    """Hermann–Mauguin symbol of a Schoenflies point-group type, where one is tabulated."""
    s = normalize_schoenflies(schoenflies)
    if s == "S6":
        return "-3"
    if s in HERMANN_MAUGUIN:
        return HERMANN_MAUGUIN[s]
    # general axial groups (non-crystallographic n)
    m = re.fullmatch(r"([CDS])(\d+)([hvd]?)", s)
    if not m:
        return None
    kind, n, suf = m.group(1), int(m.group(2)), m.group(3)
    if kind == "C":
        return {"": f"{n}", "v": f"{n}m" + ("m" if n % 2 == 0 else ""),
                "h": f"{n}/m" if n % 2 == 0 else f"-{2 * n}"}[suf]
    if kind == "D":
        return {"": f"{n}2" + ("2" if n % 2 == 0 else ""),
                "h": f"{n}/mmm" if n % 2 == 0 else f"-{2 * n}m2",
                "d": f"-{2 * n}2m" if n % 2 == 0 else f"-{n}m"}[suf]
    if kind == "S":
        return f"-{n}" if n % 4 == 0 else f"-{n // 2}"
    return None


# ----------------------------------------------------------------------------------
# the normalizer in O(3) and the ideal-SBS criterion


def _marked_directions(mats: np.ndarray) -> list[tuple[tuple, np.ndarray]]:
    """Rotation axes and mirror normals of the group, labelled by element type."""
    out = []
    for R in mats:
        det, n, k = element_type(R)
        if n == 1:
            continue
        axis, _ = rotation_axis_angle(det * R)
        axis = _canonical_direction(axis)
        label = (det, n)
        if not any(lab == label and abs(abs(axis @ v) - 1) < 1e-6 for lab, v in out):
            out.append((label, axis))
    return out


def _orthonormal_frame(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    e1 = a / np.linalg.norm(a)
    e2 = b - (b @ e1) * e1
    e2 /= np.linalg.norm(e2)
    return np.stack([e1, e2, np.cross(e1, e2)], axis=1)


def _same_set(A: np.ndarray, B: np.ndarray, tol: float = 1e-6) -> bool:
    if len(A) != len(B):
        return False
    fa, fb = A.reshape(len(A), -1), B.reshape(len(B), -1)
    d = np.abs(fa[:, None, :] - fb[None, :, :]).max(axis=2)
    return bool((d.min(axis=1) < tol).all())


def o3_normalizer(matrices: np.ndarray) -> np.ndarray | None:
    """The normalizer N(S) = {g in O(3): g S g^-1 = S} of a finite S, or None if infinite.

    N(S) is finite exactly when S has two non-collinear marked directions (rotation
    axes of order > 1 or mirror/rotoreflection axes). Any g in N(S) maps marked
    directions to marked directions of the same type, so g is found among the
    orthogonal maps sending one fixed non-collinear pair (a, b) onto a pair of the
    same types and angle, composed with ±1.
    """
    mats = np.asarray(matrices, dtype=np.float64)
    marked = _marked_directions(mats)
    pair = None
    for (la, a), (lb, b) in itertools.combinations(marked, 2):
        if np.linalg.norm(np.cross(a, b)) > 1e-3:
            pair = (la, a, lb, b)
            break
    if pair is None:
        return None
    la, a, lb, b = pair
    frame_ab = _orthonormal_frame(a, b)
    found = []
    for (lc, c), (ld, d) in itertools.permutations(marked, 2):
        if lc != la or ld != lb:
            continue
        for sc, sd in itertools.product((1, -1), repeat=2):
            cc, dd = sc * c, sd * d
            if abs(cc @ dd - a @ b) > 1e-6:
                continue
            for hand in (1, -1):
                F = _orthonormal_frame(cc, dd)
                F[:, 2] *= hand
                g = F @ frame_ab.T
                if _same_set(np.einsum("ij,njk,lk->nil", g, mats, g), mats) and not any(
                    np.abs(g - h).max() < 1e-6 for h in found
                ):
                    found.append(g)
    return close_matrices(found)


def ideal_sbs_exists(matrices: np.ndarray) -> tuple[bool, str]:
    """The paper's criterion: an ideal equivariant full SBS for S exists iff S has a
    complement M in N(S) (M ∩ S = {e}, MS = N(S)). Returns (answer, reason)."""
    mats = np.asarray(matrices, dtype=np.float64)
    N = o3_normalizer(mats)
    if N is None:
        # N(S) contains SO(2) about the unique axis (or SO(3) for C1, Ci). A complement M
        # would need an identity component equal to that of N(S), which meets S
        # non-trivially iff S contains a proper rotation other than E.
        proper_nontrivial = any(
            element_type(R)[0] == 1 and element_type(R)[1] > 1 for R in mats
        )
        if proper_nontrivial:
            return False, "N(S) is continuous and its rotations about the axis meet S: no complement"
        return True, "N(S) is continuous and its identity component meets S trivially: complement exists"
    table = cayley_table(N)
    group = FiniteGroup(table)
    flat_n, flat_s = N.reshape(len(N), 1, -1), mats.reshape(1, len(mats), -1)
    sub_mask = mask_of(np.abs(flat_n - flat_s).max(axis=2).argmin(axis=0))
    comp = group.complement(sub_mask)
    n_over_s = len(N) // len(mats)
    if comp is None:
        return False, f"|N(S)/S| = {n_over_s} and S has no complement in N(S)"
    return True, f"|N(S)/S| = {n_over_s}; complement of order {n_over_s} found"


# ----------------------------------------------------------------------------------
# the point group of a finite point set (a molecule)


def _fitted_rotation(x: np.ndarray, y: np.ndarray, det: int) -> np.ndarray:
    """The orthogonal R of determinant ``det`` minimising Σ_i |R x_i − y_i|² (rows x_i,
    y_i): with xᵀy = U Σ Vᵀ, R = V diag(1, 1, d) Uᵀ, d = det · det(V Uᵀ) (Kabsch)."""
    u, _, vt = np.linalg.svd(x.T @ y)
    d = det * np.sign(np.linalg.det(vt.T @ u.T))
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def collinear(r: np.ndarray, tol: float) -> bool:
    """True when every point of ``r`` (rows, about the centre) lies within ``tol`` of one
    line through the centre (a linear molecule: its symmetry group is continuous)."""
    far = int(np.argmax(np.linalg.norm(r, axis=1)))
    if np.linalg.norm(r[far]) <= tol:
        return True
    axis = r[far] / np.linalg.norm(r[far])
    return bool((np.linalg.norm(np.cross(r, axis), axis=1) <= tol).all())


def point_set_group(r: np.ndarray, labels: np.ndarray, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """(matrices, permutations): the point group of the labelled points ``r`` (rows, about
    a fixed centre such as the centre of mass), as an exact closed group, identity first;
    operation k maps point i onto point ``permutations[k, i]``.

    An operation is an orthogonal R with |R r_i − r_π(i)| ≤ ``tol`` for every i, π a
    permutation within each label. The search is exhaustive and reads nothing from the
    inertia tensor, whose eigenvectors are arbitrary for a symmetric or nearly symmetric
    top (they would depend on the linear-algebra library's rounding). An orthogonal map is
    fixed by the images of two non-collinear vectors and its determinant. Take two points
    a, b not collinear with the centre, each with the fewest possible images (points of
    its label at its distance from the centre, within 2·tol); every operation maps them
    to such images a′, b′ with r_a′·r_b′ ≈ r_a·r_b, hence is among the candidates
    R = F′ diag(1, 1, ±1) Fᵀ, F the orthonormal frame of (r_a, r_b) and F′ that of
    (r_a′, r_b′). Each candidate gives π (each R r_i matched to the nearest point of its
    label, a bijection or nothing); R is then refitted to all points (orthogonal
    Procrustes at fixed determinant) and kept when it maps every point within ``tol``.
    Rotation axes through atoms, bond midpoints, inertia axes and their cross products, and
    mirror normals of every kind are all covered: whatever an operation's axis, it maps a
    and b somewhere.

    A structure symmetric only within ``tol`` can give operations whose products do not
    all map it within ``tol``. Operations multiply as their (π, det R), exactly; the
    group is grown from the best-fitting operation on, each joining when the closure
    stays among the operations kept: a largest closed set (maximal: no kept operation
    can join it). Its matrices are then made an exact representation of that
    multiplication table (:func:`refine_group`).

    Raises:
        SBSInputError: the points are collinear (the group is continuous).
    """
    r = np.asarray(r, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(r)
    if collinear(r, tol):
        raise SBSInputError("all atoms are collinear: linear molecules have continuous symmetry")
    radius = np.linalg.norm(r, axis=1)
    same = labels[:, None] == labels[None, :]
    images = [np.flatnonzero(same[i] & (np.abs(radius - radius[i]) <= 2 * tol)) for i in range(n)]
    usable = [i for i in range(n) if radius[i] > tol]  # not empty: the points are not collinear
    a = min(usable, key=lambda i: (len(images[i]), -radius[i], i))
    sin = np.linalg.norm(np.cross(r[a] / radius[a], r), axis=1) / np.maximum(radius, 1e-300)
    away = [j for j in usable if radius[j] * sin[j] > tol]  # off the line of a
    if not away:
        raise SBSInputError(f"the molecule is linear within the tolerance ({tol} Å); "
                            "use a smaller symprec, or a truly linear geometry (its symmetry is continuous)")
    best = [j for j in away if sin[j] > 0.2] or away
    b = min(best, key=lambda j: (len(images[j]), -sin[j], j))
    F = _orthonormal_frame(r[a], r[b])
    dot = r[a] @ r[b]
    found: dict[tuple, tuple[float, np.ndarray]] = {}
    for a2 in images[a]:
        for b2 in images[b]:
            if a2 == b2 or abs(r[a2] @ r[b2] - dot) > 2 * tol * (radius[a] + radius[b]) + tol**2:
                continue
            F2 = _orthonormal_frame(r[a2], r[b2])
            for det in (1, -1):
                guess = F2 @ np.diag([1.0, 1.0, float(det)]) @ F.T
                dist = np.linalg.norm((r @ guess.T)[:, None, :] - r[None, :, :], axis=2)
                dist[~same] = np.inf
                perm = dist.argmin(axis=1)
                if len(set(perm.tolist())) != n:
                    continue
                R = _fitted_rotation(r, r[perm], det)
                err = float(np.linalg.norm(r @ R.T - r[perm], axis=1).max())
                key = (det, *perm.tolist())
                if err <= tol and key not in found:
                    found[key] = (err, R)
    identity = (1, *range(n))
    if identity not in found:
        raise SBSInputError(f"the symmetry search at tolerance {tol} Å does not find the identity; "
                            "use a smaller symprec")

    def times(k1, k2):  # (π1, d1)(π2, d2): point i -> π1(π2(i)), determinants multiply
        return (k1[0] * k2[0], *(k1[1 + j] for j in k2[1:]))

    def closure(generators):  # the group they generate, or None when it leaves ``found``
        group, frontier = [identity], [identity]
        members = {identity}
        while frontier:
            new = [times(g, h) for g in frontier for h in generators]
            frontier = [k for k in dict.fromkeys(new) if k not in members]
            if any(k not in found for k in frontier):
                return None
            members.update(frontier)
            group += frontier
        return group

    group, generators = [identity], []
    for key in sorted(found, key=lambda k: (found[k][0], k)):
        if key not in group:
            grown = closure(generators + [key])
            if grown is not None:
                group, generators = grown, generators + [key]
    keys = group  # identity first
    index = {k: i for i, k in enumerate(keys)}
    table = np.array([[index[times(k1, k2)] for k2 in keys] for k1 in keys])
    mats = refine_group(np.array([found[k][1] for k in keys]), table=table)
    return mats, np.array([k[1:] for k in keys], dtype=int)
