"""Approximate symmetry levels: group averaging distances, their consistency with the
mode decomposition, and their order along supergroup chains."""

import numpy as np
import pytest

from ase_sbs.analysis.approx import symmetry_levels
from ase_sbs.analysis.modes import decompose
from ase_sbs.cli import main

from .conftest import random_orthogonal, transform


def tetragonal(batio3, polar=0.09, c_over_a=1.02):
    child = batio3.copy()
    ti = child.get_chemical_symbols().index("Ti")
    child.positions[ti] += [0, 0, polar]
    child.positions[[i for i, s in enumerate(child.get_chemical_symbols()) if s == "O"]] -= [0, 0, polar / 3]
    child.set_cell(np.asarray(child.cell) @ np.diag([1.0, 1.0, c_over_a]), scale_atoms=True)
    return child


def assert_monotone(levels):
    for small in levels:
        for big in levels:
            if set(small.elements) < set(big.elements) and not small.own:
                assert small.distance_A <= big.distance_A + 1e-12, (small.name, big.name)


def test_levels_against_the_parent_match_the_decomposition(batio3):
    child = tetragonal(batio3)
    rng = np.random.default_rng(5)
    moved = transform(child, random_orthogonal(rng, improper=True), rng.permutation(5), rng.normal(size=3))
    res = symmetry_levels(moved, batio3)
    dec = decompose(moved, batio3)
    names = [lv.name for lv in res.levels]
    assert names[0] == "P4mm (99)" and res.levels[0].own
    assert {"P4mm (99)", "P4/mmm (123)", "Pm-3m (221)"} <= set(names)
    assert res.distance("P4mm") < 1e-8
    assert res.distance("Pm-3m") == pytest.approx(dec.breaking_A, abs=1e-10)
    # P4/mmm keeps the tetragonal strain and removes exactly the polar channel
    assert res.distance("P4/mmm") == pytest.approx(dec.mode("T1u").amplitude_A, abs=1e-10)
    assert_monotone(res.levels)


def test_levels_without_a_parent_are_invariant_and_ordered(batio3):
    child = tetragonal(batio3, polar=0.06, c_over_a=1.01)
    child.positions[0] += [0.004, 0.0, 0.0]  # a little below P4mm: Pm
    res = symmetry_levels(child, symprec=1e-3)
    assert res.levels[0].own and res.levels[0].name.startswith("Pm ")
    assert res.top.spacegroup_symbol == "Pm-3m"
    assert 0 < res.distance("P4mm") < res.distance("P4/mmm") < res.distance("Pm-3m")
    assert_monotone(res.levels)
    rng = np.random.default_rng(11)
    for trial in range(3):
        moved = transform(child, random_orthogonal(rng, improper=trial == 1), rng.permutation(5), rng.normal(size=3))
        again = symmetry_levels(moved, symprec=1e-3)
        assert [lv.name for lv in again.levels] == [lv.name for lv in res.levels]
        assert np.allclose([lv.distance_A for lv in again.levels], [lv.distance_A for lv in res.levels], atol=1e-9)


def test_symmetry_levels_cli(batio3, tmp_path, capsys):
    import json

    from ase.io import write

    write(tmp_path / "child.extxyz", tetragonal(batio3))
    write(tmp_path / "parent.cif", batio3)
    out = tmp_path / "levels.json"
    assert main(["symmetry-levels", str(tmp_path / "child.extxyz"), "--parent", str(tmp_path / "parent.cif"),
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "P4/mmm (123)" in text and "distance (Å)" in text
    data = json.loads(out.read_text())
    assert data["levels"][-1]["group"] == "Pm-3m (221)"
    assert main(["symmetry-levels", str(tmp_path / "missing.cif")]) == 2
