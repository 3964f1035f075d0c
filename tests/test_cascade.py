"""Cascades through the subgroup tree with EMT: bcc Cu falls to fcc along the Bain path
and stops there; fcc Cu is a local minimum at once; a cascade interrupted half-way
resumes from the relaxations it had finished."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import spglib
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.constraints import FixSymmetry
from ase.filters import FrechetCellFilter
from ase.io import read
from ase.optimize import BFGS

from ase_sbs import break_symmetry
from ase_sbs.errors import SBSInputError
from ase_sbs.report.exploration import write_exploration

from .conftest import EXAMPLES


@pytest.fixture(scope="module")
def bcc_cascade(tmp_path_factory):
    out = tmp_path_factory.mktemp("bcc_cascade")
    ex = break_symmetry(read(EXAMPLES / "Cu_bcc.cif"), calc="emt", cascade=True, out=str(out / "store"),
                        progress=False)
    return ex, out


def _emt_fcc_energy_per_atom() -> float:
    """fcc Cu relaxed by plain ASE (cell and positions, symmetry kept), eV/atom."""
    atoms = bulk("Cu", "fcc", a=3.6)
    atoms.calc = EMT()
    atoms.set_constraint(FixSymmetry(atoms))
    BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=1e-4, steps=500)
    return atoms.get_potential_energy() / len(atoms)


def test_bcc_cascade_reaches_fcc_as_its_ground_state(bcc_cascade):
    ex, _ = bcc_cascade
    tree = ex.tree
    root = tree.nodes[0]
    assert root.unstable, "bcc Cu is a saddle of EMT: some channel must be unstable"
    ground = tree.nodes[tree.ground_state]
    cell = (ground.atoms.cell[:], ground.atoms.get_scaled_positions(), ground.atoms.numbers)
    assert spglib.get_symmetry_dataset(cell, symprec=1e-3).number == 225
    assert ground.local_minimum and all(min(v) > 0 for v in ground.curvatures.values())
    assert ground.energy_per_atom_eV == pytest.approx(_emt_fcc_energy_per_atom(), abs=1e-3)
    # fcc is [Im-3m : I4/mmm] = 3 Bain variants of bcc
    assert ground.n_variants == 3


def test_every_node_lies_below_the_node_it_was_reached_from(bcc_cascade):
    tree = bcc_cascade[0].tree
    for node in tree.nodes[1:]:
        assert node.routes, node.name
        for route in node.routes:
            assert tree.nodes[route["from"]].energy_per_atom_eV > node.energy_per_atom_eV
        assert node.depth == tree.nodes[node.parent].depth + 1
    minima = [n for n in tree.nodes if n.local_minimum]
    assert tree.ground_state == min(minima, key=lambda n: n.energy_per_atom_eV).id
    names = [(n.spacegroup_number, n.cell_multiplication) for n in tree.nodes]
    assert len(names) == len(set(names)), "a phase reached by two routes is one node"


def test_cascade_writes_the_tree(bcc_cascade):
    ex, out = bcc_cascade
    data = write_exploration(ex, str(out / "report"))
    assert data["tree"]["ground_state"] == ex.tree.ground_state
    on_disk = json.loads((out / "report" / "explore.json").read_text())
    assert [n["name"] for n in on_disk["tree"]["nodes"]] == [n.name for n in ex.tree.nodes]
    assert (out / "report" / "phase_tree.png").stat().st_size > 0
    written = sorted(os.listdir(out / "report" / "tree"))
    assert len(written) == len(ex.tree.nodes) - 1
    for node in ex.tree.nodes[1:]:
        name = next(f for f in written if f.startswith(f"node{node.id:02d}_"))
        back = read(out / "report" / "tree" / name)
        assert np.allclose(back.positions, node.atoms.positions)


def test_fcc_is_a_local_minimum_and_the_cascade_stops_at_the_root():
    ex = break_symmetry(bulk("Cu", "fcc", a=3.6), calc="emt", cascade=True, progress=False)
    tree = ex.tree
    assert len(tree.nodes) == 1 and tree.ground_state == 0
    assert tree.nodes[0].local_minimum and not tree.nodes[0].unstable


def test_an_interrupted_cascade_resumes_from_its_finished_relaxations(bcc_cascade, tmp_path):
    ex, out = bcc_cascade
    store = out / "store" / "relaxations"
    kept = tmp_path / "store"
    (kept / "relaxations").mkdir(parents=True)
    finished = sorted(f for f in os.listdir(store) if f.endswith(".json"))
    assert len(finished) >= 4
    for f in finished[: len(finished) // 2]:  # as if stopped half-way
        for suffix in (".json", ".extxyz"):
            src = store / f.replace(".json", suffix)
            (kept / "relaxations" / src.name).write_bytes(src.read_bytes())
    again = break_symmetry(read(EXAMPLES / "Cu_bcc.cif"), calc="emt", cascade=True, out=str(kept), progress=False)
    assert again.reused == len(finished) // 2
    assert sorted(os.listdir(kept / "relaxations")) == sorted(os.listdir(store))
    assert [n.name for n in again.tree.nodes] == [n.name for n in ex.tree.nodes]
    for a, b in zip(again.tree.nodes, ex.tree.nodes):
        assert a.energy_per_atom_eV == pytest.approx(b.energy_per_atom_eV, abs=1e-8)


def test_resume_does_not_depend_on_the_last_digits_of_stored_structures(bcc_cascade, tmp_path):
    """A structure read back from disk differs from the one in memory in its last digits
    (extxyz keeps 8 decimals); keys derive from the relaxation that produced a structure,
    so moving every stored structure by 1e-7 Å still reuses every relaxation."""
    ex, out = bcc_cascade
    store = out / "store"
    copy = tmp_path / "store"
    for sub in ("relaxations", "channels"):
        (copy / sub).mkdir(parents=True)
        for f in os.listdir(store / sub):
            (copy / sub / f).write_bytes((store / sub / f).read_bytes())
    for f in os.listdir(copy / "relaxations"):
        if f.endswith(".extxyz"):
            atoms = read(copy / "relaxations" / f)
            atoms.positions += 1e-7 * np.random.default_rng(0).standard_normal(atoms.positions.shape)
            atoms.write(copy / "relaxations" / f)
    n = len([f for f in os.listdir(store / "relaxations") if f.endswith(".json")])
    again = break_symmetry(read(EXAMPLES / "Cu_bcc.cif"), calc="emt", cascade=True, out=str(copy), progress=False)
    assert again.reused == n
    assert sorted(os.listdir(copy / "channels")) == sorted(os.listdir(store / "channels"))
    assert [n.name for n in again.tree.nodes] == [n.name for n in ex.tree.nodes]


def test_max_depth_must_be_a_positive_number_of_levels():
    with pytest.raises(SBSInputError, match="max_depth"):
        break_symmetry(bulk("Cu", "fcc", a=3.6), calc="emt", cascade=True, max_depth=0, progress=False)


def test_cli_cascade_prints_the_tree_and_its_ground_state(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "ase_sbs", "explore", str(EXAMPLES / "Cu_bcc.cif"), "--calc", "emt", "--cascade",
         "--max-depth", "1", "--out", str(tmp_path), "--no-progress"],
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    assert "ground state in this setting: Fm-3m (225)" in run.stdout
    assert (tmp_path / "phase_tree.png").exists()
