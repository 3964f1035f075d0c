"""O(3) representations in e3nn's basis, evaluated on finite groups (float64 numpy).

``D(irreps, R)`` is exactly ``e3nn.o3.Irreps(irreps).D_from_matrix(R)``: in e3nn 0.6
the ``1o`` block is the plain Cartesian vector (x, y, z), the parity ``p`` of ``lp``
is the sign D takes under inversion. Characters of the restriction to a group follow
from the traces.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np


@contextlib.contextmanager
def default_dtype(dtype):
    """Temporarily make ``dtype`` torch's default dtype (restored on exit)."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def float64_default():
    """Temporarily make float64 torch's default dtype.

    e3nn builds its constants (so(3) generators, Clebsch–Gordan coefficients, spherical
    harmonics normalisations) in the default dtype; built in float32 they carry 1e-7
    relative errors into float64 results.
    """
    import torch

    return default_dtype(torch.float64)


def irreps_list(max_l: int) -> list[str]:
    """All single O(3) irreps ``"lp"`` with l <= max_l, ordered by dimension then parity."""
    return [f"{l}{p}" for l in range(max_l + 1) for p in ("e", "o")]


def dimension(irreps: str) -> int:
    from e3nn import o3

    return o3.Irreps(irreps).dim


@functools.lru_cache(maxsize=1)
def _generic_rotations() -> np.ndarray:
    """A few fixed rotations far from e3nn's Euler-angle singularities (a constant)."""
    from scipy.spatial.transform import Rotation

    angles = [(0.3 + 0.9 * k, 1.2 + 0.17 * k, 0.7 + 0.5 * k) for k in range(6)]
    return Rotation.from_euler("zyz", angles).as_matrix()


def representation(irreps: str, matrices: np.ndarray) -> np.ndarray:
    """(n, dim, dim) matrices D(R) of ``irreps`` for each orthogonal R (float64).

    e3nn extracts Euler angles with ``acos``, which loses half the digits near its
    singularities (a rotation that maps y near ±y); D(R) = D(R Qᵀ) D(Q) with a fixed
    generic Q, chosen per R so that R Qᵀ is far from them, keeps machine precision.
    """
    import torch
    from e3nn import o3

    ir = o3.Irreps(irreps)
    mats = np.asarray(matrices, dtype=np.float64).reshape(-1, 3, 3)
    Qs = _generic_rotations()
    lefts, rights = [], []
    for R in mats:
        proper = R * np.sign(np.linalg.det(R))
        k = int(np.argmin([abs((proper @ Q.T)[1, 1]) for Q in Qs]))
        lefts.append(R @ Qs[k].T)
        rights.append(Qs[k])
    with float64_default(), torch.no_grad():
        A = ir.D_from_matrix(torch.as_tensor(np.array(lefts)))
        B = ir.D_from_matrix(torch.as_tensor(np.array(rights)))
    return (A @ B).numpy()


def character(irreps: str, matrices: np.ndarray) -> np.ndarray:
    """tr D(R) of ``irreps`` for each orthogonal R (float64), in closed form: for a single
    irrep lp, χ = p^[det R = −1] · sin((l + ½)θ) / sin(θ/2), θ the rotation angle of
    det(R)·R (χ = 2l + 1 at θ = 0); sums over the parts of ``irreps``."""
    from e3nn import o3

    mats = np.asarray(matrices, dtype=np.float64).reshape(-1, 3, 3)
    det = np.sign(np.linalg.det(mats))
    proper = mats * det[:, None, None]
    theta = np.arccos(np.clip((np.trace(proper, axis1=1, axis2=2) - 1.0) / 2.0, -1.0, 1.0))
    out = np.zeros(len(mats))
    for mul, ir in o3.Irreps(irreps):
        half = np.sin(theta / 2.0)
        small = np.abs(half) < 1e-9
        chi = np.where(small, 2 * ir.l + 1.0, np.sin((ir.l + 0.5) * theta) / np.where(small, 1.0, half))
        out += mul * np.where(det < 0, ir.p, 1) * chi
    return out


@functools.lru_cache(maxsize=256)
def _cached_representation(irreps: str, matrices: bytes, n: int) -> np.ndarray:
    return representation(irreps, np.frombuffer(matrices, dtype=np.float64).reshape(n, 3, 3))


def group_representation(irreps: str, matrices: np.ndarray) -> np.ndarray:
    """:func:`representation` for the matrices of a group, remembered across calls (the
    same point group's D is needed for every target). Read-only."""
    mats = np.ascontiguousarray(matrices, dtype=np.float64).reshape(-1, 3, 3)
    D = _cached_representation(irreps, mats.tobytes(), len(mats))
    D.setflags(write=False)
    return D


def fixed_space(D: np.ndarray, subgroup: list[int] | tuple[int, ...]) -> np.ndarray:
    """Orthonormal basis (columns) of the subspace fixed by ``D[k]`` for k in ``subgroup``.

    It is the image of the projector P_K = (1/|K|) Σ_k D(k).
    """
    P = D[list(subgroup)].mean(axis=0)
    P = (P + P.T) / 2.0  # exact for orthogonal representations
    w, v = np.linalg.eigh(P)
    return v[:, w > 0.5]


def pointwise_fixer(D: np.ndarray, basis: np.ndarray, tol: float = 1e-6) -> tuple[int, ...]:
    """Indices g with D(g) v = v for every v spanned by ``basis``."""
    if basis.shape[1] == 0:
        return tuple(range(len(D)))
    moved = np.abs(np.einsum("gij,jk->gik", D, basis) - basis[None]).max(axis=(1, 2))
    return tuple(int(g) for g in np.flatnonzero(moved < tol))


def stabilizer(D: np.ndarray, vector: np.ndarray, tol: float = 1e-6) -> tuple[int, ...]:
    """Stab(b) = {g : D(g) b = b}, as indices."""
    moved = np.abs(np.einsum("gij,j->gi", D, vector) - vector[None]).max(axis=1)
    return tuple(int(g) for g in np.flatnonzero(moved < tol))
