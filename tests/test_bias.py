"""The bias E_sb = −λ⟨b, D(x)⟩: equivariance, forces and stress, and what it pushes."""

import numpy as np
import pytest
import torch

from ase_sbs import detect_symmetry, symmetry_breaking_set
from ase_sbs.bias import BiasDescriptor, evaluate_bias
from ase_sbs.core.irreps import representation

from .conftest import random_orthogonal, transform


@pytest.mark.parametrize("irreps", ["1o", "1e", "0o", "2e", "2o", "3o", "1o+2e"])
@pytest.mark.parametrize("name", ["batio3", "prism"])
def test_bias_is_equivariant(irreps, name, request):
    atoms = request.getfixturevalue(name).copy()
    atoms.rattle(0.05, seed=1)  # a generic structure: nothing vanishes by symmetry
    rng = np.random.default_rng(5)
    desc = BiasDescriptor(irreps)
    b = rng.standard_normal(representation(irreps, np.eye(3)[None]).shape[1])
    ref = evaluate_bias(atoms, b, irreps, 0.7, desc)
    assert abs(ref.energy) > 1e-9  # chirality of a 0.05 Å rattle is a small, third-order effect
    for trial in range(6):
        g = random_orthogonal(rng, improper=trial % 2 == 1)
        perm = rng.permutation(len(atoms))
        moved = transform(atoms, g, perm, rng.normal(size=3))
        res = evaluate_bias(moved, representation(irreps, g[None])[0] @ b, irreps, 0.7, desc)
        assert res.energy == pytest.approx(ref.energy, abs=1e-10)
        assert np.allclose(res.forces, (ref.forces @ g.T)[perm], atol=1e-10)
        assert np.allclose(res.stress, g @ ref.stress @ g.T, atol=1e-10)


def test_bias_float32_agrees_with_float64(batio3):
    atoms = batio3.copy()
    atoms.rattle(0.05, seed=2)
    b = np.array([0.2, -0.5, 0.8])
    r64 = evaluate_bias(atoms, b, "1o", 1.0)
    r32 = evaluate_bias(atoms, b, "1o", 1.0, dtype=torch.float32)
    assert np.allclose(r32.forces, r64.forces, atol=1e-4 * np.abs(r64.forces).max())


def test_forces_and_stress_are_derivatives_of_the_energy(batio3):
    atoms = batio3.copy()
    atoms.rattle(0.05, seed=3)
    b = np.array([0.3, 0.1, -0.4, 0.8, 0.2])
    res = evaluate_bias(atoms, b, "2e", 1.3)
    h = 1e-5
    for i, a in [(1, 2), (3, 0)]:
        plus, minus = atoms.copy(), atoms.copy()
        plus.positions[i, a] += h
        minus.positions[i, a] -= h
        fd = -(evaluate_bias(plus, b, "2e", 1.3).energy - evaluate_bias(minus, b, "2e", 1.3).energy) / (2 * h)
        assert res.forces[i, a] == pytest.approx(fd, abs=1e-6)
    eps = np.zeros((3, 3))
    eps[0, 2] = eps[2, 0] = h
    energies = []
    for sign in (1, -1):
        strained = atoms.copy()
        strained.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + sign * eps).T, scale_atoms=True)
        energies.append(evaluate_bias(strained, b, "2e", 1.3).energy)
    fd_stress = (energies[0] - energies[1]) / (2 * h) / atoms.get_volume() / 2
    assert res.stress[0, 2] == pytest.approx(fd_stress, abs=1e-7)


def test_bias_vanishes_at_zero_strength_and_is_linear(batio3):
    b = np.array([0.0, 0.0, 1.0])
    atoms = batio3.copy()
    atoms.rattle(0.02, seed=4)
    assert evaluate_bias(atoms, b, "1o", 0.0).energy == 0.0
    e1, e2 = evaluate_bias(atoms, b, "1o", 1.0), evaluate_bias(atoms, b, "1o", 2.5)
    assert e2.energy == pytest.approx(2.5 * e1.energy)


def stabilizer_of_bias(sym, forces, stress, tol=1e-8):
    ops = sym.operations
    found = set()
    for R, perm, s in zip(ops.rotations, ops.permutations, ops.point_index):
        moved = np.zeros_like(forces)
        moved[perm] = forces @ R.T
        if np.abs(moved - forces).max() < tol and np.abs(R @ stress @ R.T - stress).max() < tol:
            found.add(int(s))
    return tuple(sorted(found))


@pytest.mark.parametrize(
    "name, target",
    [("batio3", "P4mm"), ("batio3", "Amm2"), ("batio3", "R3m"), ("batio3", "P4/mmm"), ("batio3", "R-3m"),
     ("batio3", "P-4m2"), ("cu_bcc", "I4/mmm"), ("nh3", "C3v"), ("prism", "D3"), ("prism", "C2v")],
)
def test_bias_at_the_parent_pushes_with_exactly_the_target_symmetry(name, target, request):
    sym = detect_symmetry(request.getfixturevalue(name))
    from ase_sbs.core.symmetry import symmetrized_atoms

    parent = symmetrized_atoms(sym)
    sym = detect_symmetry(parent)
    B = symmetry_breaking_set(sym, target)
    for j in range(len(B)):
        res = evaluate_bias(parent, B.objects[j], B.irreps, 1.0)
        size = max(np.abs(res.forces).max(), np.abs(res.stress).max())
        assert size > 1e-7
        assert stabilizer_of_bias(sym, res.forces, res.stress, tol=1e-8 * size) == B.stabilizers[j]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_bias_on_cuda_matches_cpu(batio3):
    atoms = batio3.copy()
    atoms.rattle(0.05, seed=2)
    b = np.array([0.2, -0.5, 0.8])
    cpu = evaluate_bias(atoms, b, "1o", 1.0)
    gpu = evaluate_bias(atoms, b, "1o", 1.0, device="cuda")
    assert np.allclose(cpu.forces, gpu.forces, atol=1e-10)
