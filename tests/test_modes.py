"""Symmetry-mode decomposition: round trips through random rigid motions, permutations
and supercells, the beyond-k=0 remainder, molecules, and bad input."""

import numpy as np
import pytest

from ase_sbs.analysis.matching import parent_symmetry, strain_length
from ase_sbs.analysis.modes import BEYOND_K0, decompose
from ase_sbs.cli import main
from ase_sbs.core.symmetry import detect_symmetry
from ase_sbs.errors import SBSInputError
from ase_sbs.setting import STRAIN_BASIS, distortion_channels

from .conftest import random_orthogonal, transform


def distort(parent, channels, amplitudes, rng):
    """The parent moved by amplitude a_Γ along a random unit vector of each channel Γ
    (displacement u and strain ε = e/ℓ from the modes' coordinates), and that w."""
    n = len(parent)
    w = np.zeros(channels[0].basis.shape[0])
    for c in channels:
        v = c.basis @ rng.standard_normal(c.basis.shape[1])
        w += amplitudes.get(c.label, 0.0) * v / np.linalg.norm(v)
    u = w[: 3 * n].reshape(n, 3)
    child = parent.copy()
    if parent.pbc.all():
        F = np.eye(3) + np.einsum("a,aij->ij", w[3 * n:], STRAIN_BASIS) / strain_length(parent)
        child.positions = (parent.positions + u) @ F.T
        child.cell = np.asarray(parent.cell) @ F.T
    else:
        child.positions = parent.positions + u
    return child


def test_round_trip_recovers_every_amplitude_under_random_motions_and_supercells(batio3):
    rng = np.random.default_rng(7)
    parent = parent_symmetry(batio3)
    channels = distortion_channels(parent)
    assert {c.label for c in channels} == {"A1g", "Eg", "T1u", "T2g", "T2u"}
    for trial in range(20):
        present = rng.choice([c.label for c in channels], size=3, replace=False)
        amplitudes = {label: float(rng.uniform(0.01, 0.12)) for label in present}
        child = distort(batio3, channels, amplitudes, rng)
        if trial % 5 == 4:
            child = child.repeat([(2, 1, 1), (1, 2, 1), (1, 1, 2), (2, 2, 1)][trial // 5])
        g = random_orthogonal(rng, improper=trial % 2 == 1)
        moved = transform(child, g, rng.permutation(len(child)), rng.normal(scale=3.0, size=3))
        dec = decompose(moved, parent, channels=channels)
        got = {m.label: m.amplitude_A for m in dec.modes}
        for label, a in amplitudes.items():
            assert got[label] == pytest.approx(a, abs=1e-6), (trial, label)
        for label, a in got.items():
            if label not in amplitudes:
                assert a < 1e-6, (trial, label, a)
        assert dec.total_A == pytest.approx(np.sqrt(sum(a**2 for a in amplitudes.values())), abs=1e-9)
        # the rigid rotation found is the one applied, up to a symmetry of the parent
        rest = g.T @ dec.match.rotation
        assert np.abs(parent.point_group_matrices - rest).max(axis=(1, 2)).min() < 1e-8


def test_a_cell_doubling_pattern_is_reported_beyond_k0(batio3):
    sc = batio3.repeat((1, 1, 2))
    ti = [i for i, s in enumerate(sc.get_chemical_symbols()) if s == "Ti"]
    sc.positions[ti[0]] += [0.04, 0, 0]
    sc.positions[ti[1]] -= [0.04, 0, 0]  # antipolar along x, alternating along z: k = (0, 0, 1/2)
    dec = decompose(sc, batio3)
    # per parent cell: two Ti moved by 0.04 Å in two cells -> 0.04 Å, none of it at k = 0
    assert dec.mode(BEYOND_K0).amplitude_A == pytest.approx(0.04, abs=1e-9)
    assert all(m.amplitude_A < 1e-9 for m in dec.modes if m.label != BEYOND_K0)
    assert dec.breaking_A == pytest.approx(0.04, abs=1e-9)


def test_polar_order_parameter_directions_and_isotropy_subgroups(batio3):
    expected = {(0, 0, 1): "P4mm (99)", (0, 1, 1): "Amm2 (38)", (1, 1, 1): "R3m (160)"}
    for direction, name in expected.items():
        child = batio3.copy()
        d = np.array(direction, dtype=float) / np.linalg.norm(direction)
        ti = child.get_chemical_symbols().index("Ti")
        child.positions[ti] += 0.08 * d
        dec = decompose(child, batio3)
        polar = dec.mode("T1u")
        assert np.allclose(np.sort(np.abs(polar.direction)), np.sort(d), atol=1e-9)
        assert polar.direction_rank == 1
        assert polar.isotropy_name == dec.isotropy_name == name
        assert dec.child_symmetry.startswith(name)


def test_molecule_round_trip_removes_rigid_rotation(nh3):
    rng = np.random.default_rng(3)
    sym = detect_symmetry(nh3)
    channels = distortion_channels(sym)
    amplitudes = {c.label: 0.05 * (k + 1) for k, c in enumerate(channels)}
    child = distort(nh3, channels, amplitudes, rng)
    for trial in range(4):
        g = random_orthogonal(rng, improper=trial % 2 == 1)
        dec = decompose(transform(child, g, rng.permutation(len(child)), rng.normal(size=3)), nh3)
        for label, a in amplitudes.items():
            # finite rigid rotations are removed exactly, small distortions to first order
            assert dec.mode(label).amplitude_A == pytest.approx(a, rel=0.02), label


def test_bad_input_gives_clear_errors(batio3, tmp_path, capsys):
    from ase.io import write

    not_a_distortion = batio3.copy()
    not_a_distortion.set_scaled_positions([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5]])
    other_species = batio3.copy()
    other_species.symbols[0] = "Sr"
    stretched = batio3.copy()
    stretched.set_cell(np.asarray(batio3.cell) @ np.diag([1.0, 1.0, 1.6]), scale_atoms=True)
    cases = {
        "not a distortion": not_a_distortion,
        "species mismatch": other_species,
        "not a sublattice match": stretched,
    }
    parent_file = tmp_path / "parent.cif"
    write(parent_file, batio3)
    for phrase, child in cases.items():
        with pytest.raises(SBSInputError, match=phrase):
            decompose(child, batio3)
        path = tmp_path / f"{phrase.replace(' ', '_')}.extxyz"
        write(path, child)
        assert main(["modes", str(path), "--parent", str(parent_file)]) == 2
        err = capsys.readouterr().err.strip()
        assert phrase in err and "\n" not in err and "Traceback" not in err
    # a parent cell larger than the child's cannot be a sublattice of it
    with pytest.raises(SBSInputError, match="not a sublattice match"):
        decompose(batio3, batio3.repeat((2, 1, 1)))


def test_modes_cli_table_and_json(batio3, tmp_path, capsys):
    import json

    from ase.io import write

    child = batio3.copy()
    child.positions[1] += [0, 0, 0.1]
    write(tmp_path / "child.extxyz", child)
    write(tmp_path / "parent.cif", batio3)
    out = tmp_path / "modes.json"
    assert main(["modes", str(tmp_path / "child.extxyz"), "--parent", str(tmp_path / "parent.cif"),
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "T1u" in text and "P4mm (99)" in text
    data = json.loads(out.read_text())
    t1u = next(m for m in data["modes"] if m["label"] == "T1u")
    # Ti up by 0.1 Å, uniform translation removed: |u|² = 0.1² (1 - 1/5)
    assert t1u["amplitude_A"] == pytest.approx(0.1 * np.sqrt(0.8), abs=1e-9)
    assert data["total_A"] == pytest.approx(t1u["amplitude_A"], abs=1e-9)
