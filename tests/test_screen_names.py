"""A screen's names and rows (EMT, one process, no Dask): files named like numbers
(``1e3.extxyz``, ``225.cif``, ``nan.extxyz``, ``inf.cif``, ``True.xyz``) are stored and
found by ``ase db``; a settings hash made only of digits is stored and skipped on a
rerun; a parent that fails gets an error row while the screen goes on; the exit status
and the closing line count the failures, now and on a rerun; a ``--select`` that names
no key of the database, or that ase.db cannot parse, is refused."""

import contextlib
import io
import subprocess
import sys

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.db import connect
from ase.db.core import check, parse_selection
from ase.io import write

from ase_sbs.cli import main
from ase_sbs.report.screen import describe_summary
from ase_sbs.screen import screen
from ase_sbs.screen.database import stored_text, write_parent
from ase_sbs.screen.inputs import Parent
from ase_sbs.screen.screen import explore_options, settings_hash

NUMBER_NAMES = {"1e3.extxyz": bulk("Cu", "fcc", a=3.6), "225.cif": bulk("Al", "fcc", a=4.05),
                "inf.cif": bulk("Ni", "fcc", a=3.52), "True.xyz": bulk("Au", "fcc", a=4.08),
                "nan.extxyz": Atoms("Po", cell=3.345 * np.eye(3), pbc=True)}  # EMT lacks Po: an error row


def ase_db(path, *args) -> str:
    """The output of the ``ase db`` command line."""
    proc = subprocess.run([sys.executable, "-m", "ase", "db", str(path), *args], capture_output=True, text=True,
                          check=True)
    return proc.stdout


def run_main(argv) -> tuple[int, str]:
    """``main(argv)``'s exit status and what it printed on stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(argv)
    return status, out.getvalue()


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    """``ase-sbs screen`` of a directory of files named like numbers: the database, the
    command, and the first run's exit status and output."""
    root = tmp_path_factory.mktemp("numbers")
    (root / "in").mkdir()
    for name, atoms in NUMBER_NAMES.items():
        write(root / "in" / name, atoms)
    db = root / "results.db"
    argv = ["screen", str(root / "in"), "--calc", "emt", "--db", str(db)]
    return db, argv, run_main(argv)


def test_the_stems_are_what_ase_db_refuses_as_text():
    """The premise, from ase.db itself: each stem, as a string value, is refused."""
    for name in NUMBER_NAMES:
        stem = name.rsplit(".", 1)[0]
        with pytest.raises(ValueError, match="can be interpreted as"):
            check({"name": stem})
        check({"name": stored_text(stem)})  # what the screen stores instead passes


def test_a_directory_of_number_named_files_is_screened_and_queryable(numbered):
    db, _, (status, out) = numbered
    assert status == 1  # the polonium parent failed
    assert "1 of 5 parents failed; see the error column" in out
    rows = {row.name: row for row in connect(str(db)).select(kind="parent")}
    assert sorted(rows) == sorted("_" + name.rsplit(".", 1)[0] for name in NUMBER_NAMES)
    assert "does not cover Po" in rows["_nan"].error
    for stem, element in (("1e3", "Cu"), ("225", "Al"), ("inf", "Ni"), ("True", "Au")):
        row = rows["_" + stem]
        assert row.formula == element and "error" not in row and row.parent_sg == 225
        # ase db's own query language finds each row by the name it was stored under
        text = ase_db(db, f"name=_{stem}", "-c", "id,name,formula")
        assert "Rows: 1" in text and f"_{stem}" in text and element in text
    assert "_nan" in ase_db(db, "error", "-c", "name,error")


def test_a_rerun_skips_every_parent_and_still_counts_the_failure(numbered):
    db, argv, _ = numbered
    before = connect(str(db)).count()
    status, out = run_main(argv)
    assert status == 1
    assert "0 computed (0 failed), 5 skipped" in out
    assert "1 of 5 parents failed (1 of them in an earlier run)" in out
    assert connect(str(db)).count() == before


def numeric_hash_parent():
    """fcc Al with a lattice constant whose settings hash Python reads as a number
    (about 1 in 60 hashes: ten hex digits that are all digits, or digits around one e)."""
    hashed = explore_options({})[1]
    for i in range(20000):
        atoms = bulk("Al", "fcc", a=4.05 + 1e-5 * i)
        h = settings_hash("emt", atoms, hashed)
        try:
            float(h)
        except ValueError:
            continue
        return atoms, h
    raise AssertionError("no numeric settings hash among 20000 lattice constants")


def test_a_settings_hash_made_of_digits_is_stored_and_skipped_on_a_rerun(tmp_path):
    atoms, h = numeric_hash_parent()
    atoms.info["name"] = "Al_fcc"
    db = str(tmp_path / "r.db")
    first = screen([atoms], calc="emt", db=db, progress=False)
    assert (first.computed, first.failed) == (1, 0)
    row = connect(db).get(kind="parent")
    assert row.settings_hash.lstrip("_") == h and isinstance(row.settings_hash, str)
    again = screen([atoms], calc="emt", db=db, progress=False)
    assert (again.computed, again.skipped) == (0, 1) and connect(db).count(kind="parent") == 1


class FailsOnNickel(EMT):
    """EMT that raises on any structure with nickel: an exploration that fails."""

    def calculate(self, atoms=None, *args, **kwargs):
        if "Ni" in atoms.get_chemical_symbols():
            raise RuntimeError("the potential crashed on nickel")
        super().calculate(atoms, *args, **kwargs)


def test_a_parent_whose_exploration_fails_gets_an_error_row_and_the_screen_goes_on(tmp_path):
    parents = [bulk("Al", "fcc", a=4.05), bulk("Ni", "fcc", a=3.52), bulk("Cu", "fcc", a=3.6)]
    db = str(tmp_path / "r.db")
    summary = screen(parents, calc=FailsOnNickel(), db=db, progress=False)
    rows = {row.name: row for row in connect(db).select(kind="parent")}
    assert sorted(rows) == ["Al", "Cu", "Ni"]
    assert "RuntimeError: the potential crashed on nickel" in rows["Ni"].error
    assert "error" not in rows["Cu"] and rows["Cu"].ground_sg == 225  # the parent after it was explored
    assert (summary.computed, summary.failed, summary.failures, summary.parents) == (3, 1, 1, 3)
    assert "1 of 3 parents failed; see the error column" in describe_summary(summary)


def test_results_the_database_refuses_give_an_error_row(tmp_path):
    """An exploration whose keys ase.db will not store (here a space group that is a
    list) is written as an error row saying so, not raised."""
    db = connect(str(tmp_path / "r.db"))
    cu = bulk("Cu", "fcc", a=3.6)
    data = {"parent": {"spacegroup_number": [225], "spacegroup": "Fm-3m (225)", "formula": "Cu"},
            "phases": [], "stable": True, "potential": "emt"}
    outcome = write_parent(db, Parent("225", cu), "0123456789", "emt",
                           {"exploration": data, "parent": cu, "phases": [], "nodes": []})
    row = db.get(id=outcome.id)
    assert "cannot be stored in the database" in row.error and row.name == "_225"
    assert db.count() == 1


@pytest.fixture
def input_db(tmp_path):
    path = tmp_path / "in.db"
    db = connect(str(path))
    db.write(bulk("Cu", "bcc", a=2.87), name="cu_bcc", source="hand")
    db.write(bulk("Al", "fcc", a=4.05), name="al_fcc")
    return path


@pytest.mark.parametrize("query, unknown", [("nosuchkey=1", "nosuchkey"), ("sourse=hand", "sourse"),
                                            ("stable", "stable")])
def test_a_select_naming_no_key_of_the_database_is_refused(input_db, tmp_path, capsys, query, unknown):
    # ase.db itself selects nothing, without a word
    assert connect(str(input_db)).count(query) == 0
    out = tmp_path / "r.db"
    assert main(["screen", str(input_db), "--select", query, "--calc", "emt", "--db", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ase-sbs: error: ")
    assert unknown in err[0] and "name, source" in err[0]  # the keys the database has
    assert not out.exists()  # refused before any exploration


@pytest.mark.parametrize("query", ["natoms<<3", "a=b=c", "natoms==1", "natoms>x", "=3", "formula=Zz"])
def test_a_malformed_select_is_refused_with_the_syntax(input_db, tmp_path, capsys, query):
    try:  # what ase.db makes of it: an exception, or a comparison on an empty or odd key
        keys, comparisons = parse_selection(query)
        assert any(not str(k).isidentifier() for k, _, _ in comparisons)
    except (ValueError, KeyError):
        pass
    assert main(["screen", str(input_db), "--select", query, "--calc", "emt", "--db", str(tmp_path / "r.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not an ase db query" in err[0] and "key=value" in err[0]


def test_a_valid_select_still_picks_its_rows(input_db, tmp_path, capsys):
    assert main(["screen", str(input_db), "--select", "source=hand", "--calc", "emt", "--db",
                 str(tmp_path / "r.db")]) == 0
    assert [r.name for r in connect(str(tmp_path / "r.db")).select(kind="parent")] == ["cu_bcc"]
    assert main(["screen", str(input_db), "--select", "Al,natoms<2", "--calc", "emt", "--db",
                 str(tmp_path / "r.db")]) == 0
    assert sorted(r.name for r in connect(str(tmp_path / "r.db")).select(kind="parent")) == ["al_fcc", "cu_bcc"]
