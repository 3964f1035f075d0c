"""supercell="auto" through break_symmetry and the screen (ASE's EMT on bcc metals): the
parent is relaxed, its instability scan stored and reused, the setting holds the unstable
stars, the exploration (and a screen row) records the matrix chosen; molecules and bad
values are refused in one line."""

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.db import connect

from ase_sbs import SBSInputError, break_symmetry, scan
from ase_sbs.cli import main
from ase_sbs.explore.protocol import auto_supercell, saved_scan
from ase_sbs.screen import screen
from ase_sbs.setting.kpoints import full_star


@pytest.fixture(scope="module")
def bcc_auto(tmp_path_factory):
    out = tmp_path_factory.mktemp("bcc_auto")
    ex = break_symmetry(bulk("Cu", "bcc", a=2.87), "emt", targets="Fmmm", supercell="auto", out=str(out),
                        progress=False)
    return ex, out


def test_auto_holds_the_unstable_stars_of_the_relaxed_parent(bcc_auto):
    ex, out = bcc_auto
    found = saved_scan(ex.parent.key, str(out))
    assert found is not None and {s.name for s in found.unstable_stars} == {"Γ", "N", "Σ(0,0,1/4)"}
    assert np.allclose(found.cell, np.asarray(ex.parent.atoms.cell))  # the scan is of the relaxed parent
    P = np.array(ex.supercell)
    choice = auto_supercell(bulk("Cu", "bcc", a=2.87), found)
    assert choice.matrix.tolist() == ex.supercell and round(np.linalg.det(P)) == 16
    # every arm of N (and Γ); Σ's twelve arms would need 64 cells, too large: one arm (k, -k)
    assert choice.every_arm == ("N", "Γ") and choice.one_arm == ("Σ(0,0,1/4)",)
    assert choice.all_arm_cells == {"Σ(0,0,1/4)": 64}
    n_star = next(s for s in found.unstable_stars if s.name == "N")
    held = np.concatenate([np.array(n_star.arms), np.array(choice.kpoints)])
    assert np.allclose(P @ held.T, np.round(P @ held.T))
    assert ex.group_order == 8 * 16  # the operations keeping one arm of Σ: mmm, times 16 translations


def test_auto_explores_in_the_cell_it_chose(bcc_auto):
    ex, _ = bcc_auto
    assert any(p.spacegroup_number == 225 for p in ex.phases)  # Bain: bcc -> fcc
    assert all(p.spontaneous for p in ex.phases if p.spacegroup_number == 225)


def test_a_rerun_reuses_the_parent_and_the_scan(bcc_auto, monkeypatch):
    ex, out = bcc_auto
    import ase_sbs.explore.protocol as protocol

    def no_scan(*args, **kwargs):
        raise AssertionError("the scan ran again")

    monkeypatch.setattr(protocol, "scan_structure", no_scan)
    again = break_symmetry(bulk("Cu", "bcc", a=2.87), "emt", targets="Fmmm", supercell="auto", out=str(out),
                           progress=False)
    assert again.supercell == ex.supercell and again.reused >= 2


def test_the_python_scan_matches_the_choice_of_the_exploration(bcc_auto):
    ex, _ = bcc_auto
    result = scan(bulk("Cu", "bcc", a=2.87), "emt", path=False)
    assert auto_supercell(bulk("Cu", "bcc", a=2.87), result).matrix.tolist() == ex.supercell


def test_auto_is_refused_for_molecules_and_unknown_words():
    with pytest.raises(SBSInputError, match="crystal"):
        break_symmetry(Atoms("N2", positions=[[0, 0, 0], [0, 0, 1.1]]), "emt", supercell="auto")
    with pytest.raises(SBSInputError, match="auto"):
        break_symmetry(bulk("Cu", "bcc", a=2.87), "emt", supercell="automatic")
    with pytest.raises(SBSInputError, match="scan"):
        auto_supercell(bulk("Cu", "bcc", a=2.87), None)


def test_screen_resolves_auto_per_parent_and_records_the_matrix(tmp_path):
    parents = []
    for symbol, a in (("Cu", 2.87), ("Ni", 2.80), ("Au", 3.3)):
        atoms = bulk(symbol, "bcc", a=a)
        atoms.info["name"] = f"{symbol}_bcc"
        parents.append(atoms)
    db = str(tmp_path / "auto.db")
    summary = screen(parents, calc="emt", db=db, progress=False, supercell="auto", targets="Fmmm")
    assert summary.computed == 3 and summary.failures == 0
    rows = {row.name: row for row in connect(db).select(kind="parent")}
    for name, row in rows.items():
        P = np.array(row.data["supercell"])
        assert round(np.linalg.det(P)) == 16, name  # N and Σ(0,0,1/4) with every arm, for each metal
        n_point = full_star((0, 0, 0.5), np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1]]]))
        assert np.allclose(P @ n_point.T, np.round(P @ n_point.T))
    again = screen(parents, calc="emt", db=db, progress=False, supercell="auto", targets="Fmmm")
    assert again.computed == 0 and again.skipped == 3


def test_explore_cli_prints_the_choice(tmp_path, capsys):
    from ase.io import write

    path = tmp_path / "cu.extxyz"
    write(path, bulk("Cu", "bcc", a=2.87))
    out = tmp_path / "out"
    assert main(["explore", str(path), "--calc", "emt", "--supercell", "auto", "--targets", "Fmmm",
                 "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "unstable      N" in text and "16 cells, 16 atoms" in text and (out / "scan.json").exists()
