"""Shared structures: the example files and helpers that transform them."""

from pathlib import Path

import numpy as np
import pytest
from ase.io import read

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="session")
def batio3():
    return read(EXAMPLES / "BaTiO3_cubic.cif")


@pytest.fixture(scope="session")
def cu_bcc():
    return read(EXAMPLES / "Cu_bcc.cif")


@pytest.fixture(scope="session")
def nh3():
    return read(EXAMPLES / "NH3_planar.xyz")


@pytest.fixture(scope="session")
def prism():
    return read(EXAMPLES / "triangular_prism.xyz")


def transform(atoms, g, perm, shift):
    """g·atoms: rotate (g in O(3)) about the origin, translate, then reorder atoms."""
    out = atoms.copy()
    out.positions = atoms.positions @ np.asarray(g).T + shift
    if atoms.pbc.all():
        out.cell = np.asarray(atoms.cell) @ np.asarray(g).T
    return out[list(perm)]


def random_orthogonal(rng, improper):
    from scipy.spatial.transform import Rotation

    g = Rotation.random(random_state=int(rng.integers(2**31))).as_matrix()
    return -g if improper else g


def same_set(A, B, tol=1e-6):
    A, B = np.atleast_2d(A), np.atleast_2d(B)
    if A.shape != B.shape:
        return False
    return all(np.abs(B - a).max(axis=1).min() < tol for a in A) and all(
        np.abs(A - b).max(axis=1).min() < tol for b in B
    )


@pytest.fixture(autouse=True)
def _restore_torch_default_dtype():
    """NequIP's set_global_state() changes torch's default dtype for the whole process;
    each test starts from and leaves the dtype it found."""
    import torch

    dtype = torch.get_default_dtype()
    yield
    torch.set_default_dtype(dtype)


@pytest.fixture
def nequip_dtype():
    """NequIP's process-wide state inside a test: ``set_global_state()`` (a no-op after its
    first call in the process) and its float64 default dtype, which the fixture above
    resets after every test. Modules that build NequIP data use it for every test."""
    import torch
    from nequip.utils.global_state import set_global_state

    set_global_state()
    torch.set_default_dtype(torch.float64)
    yield
