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


def evaluate_as_batch_and_alone(engine, structures, calc, tol, stress_tol=None):
    """Evaluate ``structures`` as one batch of ``engine`` and check each against ``calc``
    alone: energy (eV) and forces (eV/Å) within ``tol``, the stress (eV/Å³) within
    ``stress_tol`` when given. Returns the batch's (energy, forces, stress)."""
    from ase.stress import voigt_6_to_full_3x3_stress

    from ase_sbs.relax.jobs import RelaxJob, Stage

    energy, forces, stress = engine.evaluate_jobs([RelaxJob(a, [Stage(0.0, 1e-9, 0)]) for a in structures])
    start = 0
    for g, a in enumerate(structures):
        ref = a.copy()
        ref.calc = calc
        assert abs(float(energy[g]) - ref.get_potential_energy()) < tol
        assert np.abs(forces[start:start + len(a)].cpu().numpy() - ref.get_forces()).max() < tol
        if stress_tol is not None:
            assert np.abs(stress[g].cpu().numpy() - voigt_6_to_full_3x3_stress(ref.get_stress())).max() < stress_tol
        start += len(a)
    return energy, forces, stress
