"""A committee of potentials.

The screen: bcc Cu (falls to fcc) and fcc Al (stable) under EMT and the demo plugin's
``demo-emt`` (tests/data/sbs_plugin_demo: EMT with energy, forces and stress ×1.5, so the
same stationary points at 1.5 times the energies), with the cascade, on a real two-worker
local Dask cluster (about a minute on two shared cores, most of it starting the workers):
one parent row per (parent, potential) tagged with the potential and found by ``ase db
potential=demo-emt,ground_sg=225``, its phase rows, one committee row per parent whose
ground states and ΔE matrix equal what ASE computes directly (each relaxed parent, and
each potential's ground state relaxed under the other calculator with ``FixSymmetry`` +
``FrechetCellFilter`` + BFGS), and a rerun that starts no worker and computes nothing;
in one process, a pair explored again (its rows deleted) replaces its parent's committee row.

Also: the agreement on made-up members (ground states that differ, one put above
another's by more than the tolerance, one that a potential's own exploration missed),
``explore --calc emt,demo-emt`` (its committee table and committee.json), and bad
committees refused in one line.
"""

import importlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.db import connect

from ase_sbs.cli import main
from ase_sbs.errors import SBSInputError
from ase_sbs.explore.committee import Evaluation, Member, committee_of
from ase_sbs.screen import screen
from ase_sbs.screen.committee import committee_potentials, potential_key

from .conftest import EXAMPLES

distributed = pytest.importorskip("distributed", reason="Dask distributed is not installed (pip install -e '.[dask]')")

PLUGIN_SOURCE = Path(__file__).resolve().parent / "data" / "sbs_plugin_demo"
SCALE = 1.5  # demo-emt without an option
FMAX = 5e-4  # eV/Å: the explorations' release criterion, used for the direct relaxations too


def named(atoms, name):
    atoms.info["name"] = name
    return atoms


def parents():
    return [named(bulk("Cu", "bcc", a=2.87), "Cu_bcc"), named(bulk("Al", "fcc", a=4.05), "Al_fcc")]


@pytest.fixture(scope="module")
def plugin():
    """The demo plugin pip-installed into a private directory (offline, no build
    isolation), on this process's path and on the Dask workers' (PYTHONPATH)."""
    root = Path(__import__("tempfile").mkdtemp(prefix="ase_sbs_plugin_"))
    shutil.copytree(PLUGIN_SOURCE, root / "src")  # the build writes next to its sources
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-compile", "--target", str(root / "site"), str(root / "src")], check=True,
                   capture_output=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root / "site"))
        mp.setenv("PYTHONPATH", os.pathsep.join([str(root / "site"), os.environ.get("PYTHONPATH", "")]))
        importlib.invalidate_caches()
        yield importlib.import_module("sbs_plugin_demo")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def committee_screen(plugin, tmp_path_factory):
    path = str(tmp_path_factory.mktemp("committee") / "committee.db")
    t0 = time.perf_counter()
    first = screen(parents(), calc="emt,demo-emt", db=path, workers=2, progress=False, cascade=True, targets="I4/mmm")
    seconds = time.perf_counter() - t0

    def no_workers(*args, **kwargs):
        raise AssertionError("the rerun started Dask workers")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(importlib.import_module("ase_sbs.screen.screen"), "dask_client", no_workers)
        again = screen(parents(), calc=["emt", "demo-emt"], db=path, workers=2, progress=False, cascade=True,
                       targets="I4/mmm")
    return path, first, again, seconds


def calculator(potential: str, plugin):
    return EMT() if potential == "emt" else plugin.ScaledEMT(SCALE)


def relax_directly(atoms, calc) -> float:
    """ASE alone: ``atoms`` relaxed within its own group (FixSymmetry), cell free; eV
    per formula unit (one atom per formula unit in these metals)."""
    from ase.constraints import FixSymmetry
    from ase.filters import FrechetCellFilter
    from ase.optimize import BFGS

    a = atoms.copy()
    a.calc = calc
    a.set_constraint(FixSymmetry(a, symprec=1e-3))
    assert BFGS(FrechetCellFilter(a), logfile=None).run(fmax=FMAX, steps=1000)
    return a.get_potential_energy() / len(a)


def rows_of(path):
    db = connect(path)
    return {(r.name, r.potential): r for r in db.select(kind="parent")}, list(db.select(kind="committee"))


# ---------------------------------------------------------------------------------
# the screen: two potentials, two Dask workers


def test_one_parent_row_per_parent_and_potential_with_its_phase_rows(committee_screen):
    path, first, _, seconds = committee_screen
    assert (first.computed, first.failed, first.skipped) == (4, 0, 0)
    parent_rows, _ = rows_of(path)
    assert sorted(parent_rows) == [("Al_fcc", "demo-emt"), ("Al_fcc", "emt"), ("Cu_bcc", "demo-emt"),
                                   ("Cu_bcc", "emt")]
    db = connect(path)
    for (name, potential), row in parent_rows.items():
        phases = list(db.select(kind="phase", parent_id=row.id))
        assert len(phases) == row.n_phases + sum(n["depth"] >= 2 for n in row.data["tree"]["nodes"])
        assert all(p.potential == potential and p.name for p in phases)
        assert row.data["potential"] == potential and row.ground_status == "ground state"
    assert len({r.settings_hash for r in parent_rows.values()}) == 4  # one hash per (parent, potential)
    cu, al = parent_rows["Cu_bcc", "emt"], parent_rows["Al_fcc", "emt"]
    assert (cu.parent_sg, cu.ground_sg, al.ground_sg, al.ground_dE) == (229, 225, 225, 0.0)
    # the same stationary points, every energy x1.5
    assert parent_rows["Cu_bcc", "demo-emt"].ground_dE == pytest.approx(SCALE * cu.ground_dE, abs=1e-5)
    print(f"committee screen: {seconds:.1f} s")


def test_ase_db_selects_by_potential(committee_screen):
    path = committee_screen[0]
    proc = subprocess.run([sys.executable, "-m", "ase", "db", path, "potential=demo-emt,ground_sg=225", "-c",
                           "id,name,potential,ground_sg"], capture_output=True, text=True, check=True)
    assert "Rows: 2" in proc.stdout and "Cu_bcc" in proc.stdout and "Al_fcc" in proc.stdout
    db = connect(path)
    assert sorted(r.name for r in db.select("kind=phase,potential=emt,sg=225")) == ["Fm-3m (225)"]
    agree = subprocess.run([sys.executable, "-m", "ase", "db", path, "kind=committee,agree=True,sg_demo_emt=225",
                            "-c", "name,potentials,agree,spread"], capture_output=True, text=True, check=True)
    assert "Rows: 2" in agree.stdout and "emt,demo-emt" in agree.stdout


def test_the_agreement_summary_equals_ase_run_directly(committee_screen, plugin):
    path, first, _, _ = committee_screen
    parent_rows, committees = rows_of(path)
    assert sorted(r.name for r in committees) == ["Al_fcc", "Cu_bcc"] and len(first.committees) == 2
    db = connect(path)
    start = {p.info["name"]: p for p in parents()}
    for row in committees:
        data = row.data
        assert data["potentials"] == ["emt", "demo-emt"] and row.potentials == "emt,demo-emt"
        assert (row.agree, row.same_sg, row.n_potentials) == (True, True, 2) and data["reasons"] == []
        members = {m["potential"]: m for m in data["members"]}
        # each potential's own relaxed parent, and its ground state, as its parent row says
        for potential, m in members.items():
            parent = parent_rows[row.name, potential]
            assert data["parent_rows"][potential] == parent.id
            assert (m["spacegroup_number"], m["status"]) == (parent.ground_sg, parent.ground_status)
            assert m["delta_energy_per_formula_unit_eV"] == pytest.approx(parent.ground_dE, abs=1e-9)
            assert row.get(f"dE_{potential_key(potential)}") == pytest.approx(parent.ground_dE, abs=1e-9)
            assert row.get(f"sg_{potential_key(potential)}") == 225
            direct = relax_directly(start[row.name], calculator(potential, plugin))
            assert m["parent_energy_per_formula_unit_eV"] == pytest.approx(direct, abs=1e-6)
        # every ground state relaxed within its group under the other potential, against that one's parent
        matrix = data["delta_energy_per_formula_unit_eV"]
        for i, of in enumerate(data["potentials"]):
            parent = parent_rows[row.name, of]
            ground = parent if parent.ground_sg == parent.parent_sg else next(
                r for r in db.select(kind="phase", parent_id=parent.id) if r.sg == parent.ground_sg)
            for j, under in enumerate(data["potentials"]):
                if i == j:
                    continue
                ref = members[under]["parent_energy_per_formula_unit_eV"]
                direct = relax_directly(ground.toatoms(), calculator(under, plugin)) - ref
                assert matrix[i][j] == pytest.approx(direct, abs=2e-6), (row.name, of, under)
        assert matrix[0][1] == pytest.approx(SCALE * matrix[0][0], abs=2e-5)
        assert matrix[1][0] == pytest.approx(matrix[0][0], abs=2e-5)
        assert row.spread == pytest.approx(max(abs(matrix[0][1] - matrix[1][1]), abs(matrix[1][0] - matrix[0][0])))
        evaluations = data["evaluations"]
        assert len(evaluations) == 2 and all(e["converged"] and e["spacegroup_number"] == 225 for e in evaluations)
    assert first.plot and Path(first.plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_rerun_computes_nothing(committee_screen):
    path, first, again, _ = committee_screen
    assert (again.computed, again.skipped, again.committees, again.committees_skipped) == (0, 4, [], 2)
    db = connect(path)
    assert (db.count(kind="parent"), db.count(kind="committee")) == (4, 2)
    assert sorted(r.id for r in db.select(kind="committee")) == sorted(c.id for c in first.committees)


def test_a_pair_explored_again_replaces_its_committee_row(plugin, tmp_path):
    path = str(tmp_path / "one.db")
    cu = [named(bulk("Cu", "bcc", a=2.87), "Cu_bcc")]
    first = screen(cu, calc="emt,demo-emt", db=path, progress=False, targets="I4/mmm")  # in this process
    assert (first.computed, len(first.committees)) == (2, 1) and first.committees[0].agree
    db = connect(path)
    demo = next(db.select(kind="parent", potential="demo-emt"))
    db.delete([demo.id] + [r.id for r in db.select(kind="phase", parent_id=demo.id)])
    again = screen(cu, calc="emt,demo-emt", db=path, progress=False, targets="I4/mmm")
    assert (again.computed, again.skipped, len(again.committees), again.committees_skipped) == (1, 1, 1, 0)
    rows = list(connect(path).select(kind="committee"))
    assert [r.id for r in rows] == [again.committees[0].id] and rows[0].id != first.committees[0].id
    new = next(connect(path).select(kind="parent", potential="demo-emt"))
    assert rows[0].data["parent_rows"] == {"emt": first.outcomes[0].id if first.outcomes[0].potential == "emt"
                                           else first.outcomes[1].id, "demo-emt": new.id}


# ---------------------------------------------------------------------------------
# the agreement, on made-up members


def member(potential, sg, label, dE, parent=-1.0):
    return Member(potential, "ground state", sg, label, parent + dE, parent, Atoms("Cu", cell=np.eye(3) * 3,
                                                                                    pbc=True))


def test_the_potentials_disagree_where_groups_or_energies_differ():
    a, b = member("a", 225, "Fm-3m (225)", -0.030, parent=-2.0), member("b", 139, "I4/mmm (139)", -0.020)
    evaluations = [Evaluation("a", "b", -1.0 - 0.010, 225, "Fm-3m (225)", 12, True),  # above b's own by 10 meV
                   Evaluation("b", "a", -2.0 - 0.035, 139, "I4/mmm (139)", 9, True)]  # below a's own by 5 meV
    c = committee_of([a, b], evaluations, tolerance=1e-3)
    assert np.array(c.matrix) == pytest.approx(np.array([[-0.030, -0.010], [-0.035, -0.020]]))
    assert np.array(c.excess) == pytest.approx(np.array([[0.0, 0.010], [-0.005, 0.0]]))
    assert not c.agree and not c.same_group and c.spread == pytest.approx(0.010)
    reasons = "\n".join(c.reasons)
    assert "the ground states differ: a Fm-3m (225), b I4/mmm (139)" in reasons
    assert "b puts a's Fm-3m (225) 10.00 meV/f.u. above its own ground state I4/mmm (139)" in reasons
    assert "a puts b's I4/mmm (139) 5.00 meV/f.u. below its own ground state Fm-3m (225) (its own exploration " \
           "missed it)" in reasons
    same = committee_of([member("a", 99, "P4mm (99)", -0.05), member("b", 99, "P4mm (99)", -0.04)],
                        [Evaluation("a", "b", -1.0405, 99, "P4mm (99)", 3, True),
                         Evaluation("b", "a", -1.0499, 99, "P4mm (99)", 3, True)], tolerance=1e-3)
    assert same.agree and same.reasons == [] and same.spread == pytest.approx(0.0005)
    unconverged = committee_of(same.members, [Evaluation("a", "b", -1.0405, 99, "P4mm (99)", 400, False)])
    assert not unconverged.agree and "did not converge under b in 400 steps" in unconverged.reasons[0]
    failed = committee_of([same.members[0], Member("b", error="the potential b does not cover Cu")], [])
    assert not failed.agree and "b has no structure to compare (the potential b does not cover Cu)" in failed.reasons
    with pytest.raises(SBSInputError, match="tolerance"):
        committee_of(same.members, [], tolerance=-1.0)


def test_committee_names_are_checked_before_anything_runs(tmp_path, capsys):
    assert committee_potentials("emt") == ["emt"] and committee_potentials("emt, 7net-0") == ["emt", "7net-0"]
    assert potential_key("7net-mf-0:R2SCAN") == "7net_mf_0_r2scan"
    for calc, words in [("emt,no-such-model", ["no-such-model", "7net-0", "chgnet"]), ("emt,EMT", ["twice"]),
                        ("auto,emt", ["auto"]), ("emt,", ["empty"]), ("emt,7net-mf-0", ["7net-mf-0:R2SCAN"])]:
        assert main(["explore", str(EXAMPLES / "Cu_bcc.cif"), "--calc", calc, "--out", str(tmp_path / "x")]) == 2
        assert main(["screen", str(EXAMPLES / "Cu_bcc.cif"), "--calc", calc, "--db", str(tmp_path / "x.db")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2 and all(line.startswith("ase-sbs: error: ") for line in err), err
        assert all(w in err[0] for w in words), (calc, err)
    assert not (tmp_path / "x").exists() and not (tmp_path / "x.db").exists()


# ---------------------------------------------------------------------------------
# explore under two potentials


def test_explore_prints_the_committee_and_writes_committee_json(plugin, tmp_path, capsys):
    import json

    out = tmp_path / "cu"
    assert main(["explore", str(EXAMPLES / "Cu_bcc.cif"), "--calc", "emt,demo-emt", "--targets", "I4/mmm", "--out",
                 str(out), "--no-progress", "--json", str(tmp_path / "all.json")]) == 0
    text = capsys.readouterr().out
    assert "== emt (" in text and "== demo-emt (" in text and text.index("== demo-emt") < text.index("committee ")
    assert "structure of \\ under" in text and "agree: Fm-3m (225) under every potential" in text
    data = json.loads((out / "committee.json").read_text())
    assert data["agree"] and data["potentials"] == ["emt", "demo-emt"]
    assert [m["status"] for m in data["members"]] == ["lowest phase", "lowest phase"]
    own = [json.loads((out / key / "explore.json").read_text()) for key in ("emt", "demo_emt")]
    fcc = [min(p["delta_energy_per_formula_unit_eV"] for p in o["phases"] if p["spontaneous"]) for o in own]
    assert np.diag(data["delta_energy_per_formula_unit_eV"]) == pytest.approx(fcc, abs=1e-12)
    assert json.loads((tmp_path / "all.json").read_text())["committee"] == data
    assert (out / "committee.png").read_bytes()[:4] == b"\x89PNG"
