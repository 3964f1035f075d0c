"""Screening many parents with the default potential (EMT for the metals, SevenNet-0 for
cubic BaTiO3): one parent row per parent and one row per phase in an ASE database
(SQLite, and PostgreSQL on a throw-away server), the energies of break_symmetry run
directly, the refused parent's error row (polonium, which SevenNet-0 does not cover), a
rerun that skips every parent, `ase db` queries, a Dask worker killed mid-screen, and
the quacc-style recipe."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.db import connect
from ase.io import read, write

from ase_sbs import break_symmetry
from ase_sbs.cli import build_parser, main
from ase_sbs.core.files import json_safe
from ase_sbs.errors import SBSInputError
from ase_sbs.screen import screen
from ase_sbs.screen.database import open_database, transaction
from ase_sbs.screen.inputs import collect_parents
from ase_sbs.screen.recipes import explore_job, explore_summary
from ase_sbs.screen.screen import explore_options, settings_hash
from ase_sbs.screen.task import CACHE_ATTRIBUTE, PotentialCache

from .conftest import EXAMPLES

distributed = pytest.importorskip("distributed", reason="Dask distributed is not installed (pip install -e '.[dask]')")

PG_BIN = "/usr/lib/postgresql/15/bin"


def named(atoms, name):
    atoms.info["name"] = name
    return atoms


def four_parents():
    """bcc Cu (EMT: falls to fcc), fcc Al (EMT: stable), cubic BaTiO3 (SevenNet-0: polar
    phases) and simple-cubic α-Po (SevenNet-0 lacks Po: an error row)."""
    batio3 = read(EXAMPLES / "BaTiO3_cubic.cif")
    polonium = Atoms("Po", cell=3.345 * np.eye(3), pbc=True)
    return [named(bulk("Cu", "bcc", a=2.87), "Cu_bcc"), named(bulk("Al", "fcc", a=4.05), "Al_fcc"),
            named(batio3, "BaTiO3_cubic"), named(polonium, "Po_cubic")]


def rows_by_name(db):
    """{name: (parent row, [its phase rows in id order])}."""
    parents = {row.name: row for row in db.select(kind="parent")}
    return {name: (row, sorted(db.select(kind="phase", parent_id=row.id), key=lambda r: r.id))
            for name, row in parents.items()}


@pytest.fixture(scope="module")
def direct():
    """break_symmetry run directly on the structures the screen gets."""
    return {p.info["name"]: break_symmetry(p, progress=False) for p in four_parents()[:3]}


@pytest.fixture(scope="module")
def sqlite_screen(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("screen") / "results.db")
    t0 = time.perf_counter()
    first = screen(four_parents(), db=path, workers=2, progress=False)
    seconds = time.perf_counter() - t0
    again = screen(four_parents(), db=path, workers=2, progress=False)
    return path, first, again, seconds


# ---------------------------------------------------------------------------------
# (a) two Dask workers into SQLite


def test_one_parent_row_per_parent_and_one_row_per_phase(sqlite_screen, direct):
    path, first, _, _ = sqlite_screen
    assert (first.computed, first.failed, first.skipped) == (4, 1, 0)
    rows = rows_by_name(connect(path))
    assert sorted(rows) == ["Al_fcc", "BaTiO3_cubic", "Cu_bcc", "Po_cubic"]
    assert connect(path).count() == 4 + sum(len(ex.phases) for ex in direct.values())
    for name, ex in direct.items():
        parent, phases = rows[name]
        assert parent.n_phases == len(phases) == len(ex.phases)
        assert [r.sg for r in phases] == [p.spacegroup_number for p in ex.phases]
        assert [r.variants for r in phases] == [p.n_variants for p in ex.phases]
        assert parent.potential == ex.potential and all(r.settings_hash == parent.settings_hash for r in phases)
        assert parent.parent_sg == ex.parent.spacegroup_number


def energy_tolerance(potential: str) -> float:
    """eV: EMT is float64 and gives the same numbers in any process; SevenNet-0 evaluates
    in float32, and a Dask worker runs torch on one thread where this process may use
    several, so sums taken in another order differ in the last float32 digits (a few
    μeV per formula unit after a relaxation)."""
    return 1e-6 if potential == "emt" else 1e-4


def test_energies_equal_break_symmetry_run_directly(sqlite_screen, direct):
    rows = rows_by_name(connect(sqlite_screen[0]))
    for name, ex in direct.items():
        parent, phases = rows[name]
        tol = energy_tolerance(ex.potential)
        assert parent.energy / parent.natoms == pytest.approx(ex.parent.energy_per_atom, abs=tol)
        for row, phase in zip(phases, ex.phases):
            assert row.energy / row.natoms == pytest.approx(phase.energy_per_atom_eV, abs=tol)
            assert row.dE == pytest.approx(phase.delta_energy_per_formula_unit_eV, abs=tol)
        stored, direct_json = parent.data["phases"], json_safe(ex.as_dict())["phases"]
        if ex.potential == "emt":
            assert stored == direct_json
        else:
            key = ("target", "spacegroup_number", "spacegroup_symbol", "n_variants", "spontaneous")
            assert [[p[k] for k in key] for p in stored] == [[p[k] for k in key] for p in direct_json]


def test_ground_state_and_stability(sqlite_screen, direct):
    rows = rows_by_name(connect(sqlite_screen[0]))
    cu, _ = rows["Cu_bcc"]
    assert (cu.parent_sg, cu.ground_sg, cu.stable) == (229, 225, False)
    fcc = direct["Cu_bcc"].phases[0]
    assert fcc.spacegroup_number == 225 and cu.ground_dE == pytest.approx(fcc.delta_energy_per_formula_unit_eV)
    al, _ = rows["Al_fcc"]
    assert (al.parent_sg, al.ground_sg, al.ground_dE, al.stable, al.n_phases) == (225, 225, 0.0, True, 0)
    bto, _ = rows_by_name(connect(sqlite_screen[0]))["BaTiO3_cubic"]
    lowest = min(direct["BaTiO3_cubic"].phases, key=lambda p: p.energy_per_atom_eV)
    assert (bto.potential, bto.parent_sg, bto.stable) == ("7net-0", 221, False)
    assert bto.ground_sg == lowest.spacegroup_number and bto.ground_sg in (99, 38, 160)
    assert bto.ground_dE == pytest.approx(lowest.delta_energy_per_formula_unit_eV, abs=energy_tolerance("7net-0"))
    assert bto.ground_dE < 0


def test_a_refused_parent_gets_an_error_row_and_the_screen_goes_on(sqlite_screen):
    po, phases = rows_by_name(connect(sqlite_screen[0]))["Po_cubic"]
    assert "7net-0 does not cover Po" in po.error and not phases
    assert "stable" not in po.key_value_pairs and po.formula == "Po"


def test_a_rerun_skips_every_parent(sqlite_screen):
    path, _, again, _ = sqlite_screen
    assert (again.computed, again.skipped) == (0, 4)
    assert connect(path).count(kind="parent") == 4


def test_ase_db_selects_by_ground_state(sqlite_screen):
    path = sqlite_screen[0]
    assert sorted(r.name for r in connect(path).select("ground_sg=225")) == ["Al_fcc", "Cu_bcc"]
    proc = subprocess.run([sys.executable, "-m", "ase", "db", path, "ground_sg=225", "-c", "id,name,ground_sg"],
                          capture_output=True, text=True, check=True)
    assert "Cu_bcc" in proc.stdout and "Al_fcc" in proc.stdout and "Rows: 2" in proc.stdout


def test_the_command_line_skips_what_the_python_screen_wrote(sqlite_screen, tmp_path, capsys):
    for atoms in four_parents():
        write(tmp_path / f"{atoms.info['name']}.extxyz", atoms)
    (tmp_path / "notes.txt").write_text("not a structure\n")
    assert main(["screen", str(tmp_path), "--db", sqlite_screen[0]]) == 1  # polonium's error row
    out = capsys.readouterr().out
    assert "0 computed (0 failed), 4 skipped" in out
    assert "1 of 4 parents failed (1 of them in an earlier run); see the error column" in out


def test_explore_and_screen_read_the_same_options():
    from ase_sbs.cli import _explore_kwargs  # the helper both commands use

    options = ["--calc", "emt", "--targets", "I4/mmm", "--supercell", "2", "2", "2", "--kpoint", "R", "--cascade",
               "--max-depth", "2", "--fmax", "0.001", "--mode", "field", "--engine", "ase"]
    explore = build_parser().parse_args(["explore", "x.cif", *options])
    screened = build_parser().parse_args(["screen", "x.cif", "y.cif", *options, "--workers", "2"])
    assert _explore_kwargs(explore) == _explore_kwargs(screened)
    assert _explore_kwargs(screened)["supercell"] == (2, 2, 2) and screened.workers == 2


def test_bad_screen_input_is_one_line(tmp_path, capsys):
    write(tmp_path / "cu.extxyz", bulk("Cu", "bcc", a=2.87))
    assert main(["screen", str(tmp_path / "cu.extxyz"), "--select", "natoms<3", "--db", str(tmp_path / "r.db")]) == 2
    assert main(["screen", str(tmp_path / "missing.cif"), "--db", str(tmp_path / "r.db")]) == 2
    assert main(["screen", str(tmp_path / "cu.extxyz"), "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("ase-sbs: error: ") for line in err)
    assert "select" in err[0] and "no such file" in err[1] and "r.sqlite" in err[2]


def test_parents_from_a_database_and_a_directory(tmp_path):
    db = connect(str(tmp_path / "in.db"))
    db.write(bulk("Cu", "bcc", a=2.87), name="cu")
    db.write(bulk("Al", "fcc", a=4.05))
    found = collect_parents(str(tmp_path / "in.db"), select="Al")
    assert [p.name for p in found.parents] == ["in:2"]
    write(tmp_path / "frames.extxyz", [bulk("Cu", "fcc", a=3.6), bulk("Ni", "fcc", a=3.5)])
    (tmp_path / "README.md").write_text("notes\n")
    found = collect_parents([str(tmp_path)], index=":")
    assert [p.name for p in found.parents] == ["frames@0", "frames@1"]
    assert any("README.md" in u for u in found.unreadable) and any("in.db" in u for u in found.unreadable)


def test_the_settings_hash_covers_what_changes_the_result():
    cu = bulk("Cu", "bcc", a=2.87)
    base = settings_hash("emt", cu, explore_options({})[1])
    assert base == settings_hash("auto", cu, explore_options({"max_depth": 5, "engine": "ase"})[1])
    for change in ({"mode": "field"}, {"supercell": (2, 2, 2)}, {"cascade": True}, {"fmax": 0.02},
                   {"targets": "I4/mmm"}):
        assert settings_hash("emt", cu, explore_options(change)[1]) != base, change
    assert settings_hash("7net-0", cu, explore_options({})[1]) != base
    assert settings_hash("emt", bulk("Cu", "bcc", a=2.88), explore_options({})[1]) != base
    with pytest.raises(SBSInputError, match="unknown explore option"):
        explore_options({"no_such_setting": 1})


def test_a_potential_is_loaded_once_per_name():
    cache = PotentialCache()
    pot = cache.get("emt", ["Cu"])
    assert cache.get("auto", ["Al"]) is pot and len(cache.loaded) == 1
    with pytest.raises(SBSInputError, match="does not cover Si"):
        cache.get("emt", ["Si"])


# ---------------------------------------------------------------------------------
# (b) PostgreSQL on a throw-away server


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    for tool in ("initdb", "pg_ctl"):
        if not os.path.exists(os.path.join(PG_BIN, tool)):
            pytest.skip(f"PostgreSQL server binaries not found ({PG_BIN}/{tool})")
    if shutil.which("runuser") is None:
        pytest.skip("runuser not found (the server must not run as root)")
    pytest.importorskip("ase_db_backends.postgresql", reason="ase-db-backends with psycopg2 is not installed")
    if os.geteuid() != 0:
        pytest.skip("the throw-away server is started as the postgres user from root")
    root = tempfile.mkdtemp(prefix="ase_sbs_pg_")
    shutil.chown(root, "postgres")
    data, port = os.path.join(root, "data"), _free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(as_postgres + [f"{PG_BIN}/initdb", "-D", data, "-A", "trust"], check=True, capture_output=True)
    subprocess.run(as_postgres + [f"{PG_BIN}/pg_ctl", "-D", data, "-o", f"-p {port} -k {root} -h 127.0.0.1",
                                  "-l", os.path.join(root, "log"), "-w", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(as_postgres + [f"{PG_BIN}/pg_ctl", "-D", data, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_postgresql_gets_the_rows_sqlite_gets(postgres_url, sqlite_screen):
    first = screen(four_parents(), db=postgres_url, workers=2, progress=False)
    assert (first.computed, first.failed) == (4, 1)
    pg, lite = rows_by_name(connect(postgres_url)), rows_by_name(connect(sqlite_screen[0]))
    assert sorted(pg) == sorted(lite)
    ignore = {"parent_id"}
    for name in lite:
        (p1, ph1), (p2, ph2) = pg[name], lite[name]
        assert p1.key_value_pairs == p2.key_value_pairs
        assert [{k: v for k, v in r.key_value_pairs.items() if k not in ignore} for r in ph1] == \
               [{k: v for k, v in r.key_value_pairs.items() if k not in ignore} for r in ph2]
        assert all(r.parent_id == p1.id for r in ph1)
        if p2.get("energy") is not None:
            assert p1.energy == pytest.approx(p2.energy, abs=1e-9)
            assert p1.data["phases"] == p2.data["phases"]
    assert sorted(r.name for r in connect(postgres_url).select("ground_sg=225")) == ["Al_fcc", "Cu_bcc"]
    again = screen(four_parents(), db=postgres_url, progress=False)
    assert (again.computed, again.skipped) == (0, 4)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_an_interrupted_transaction_writes_nothing(backend, tmp_path, request):
    url = str(tmp_path / "t.db") if backend == "sqlite" else request.getfixturevalue("postgres_url")
    db = open_database(url)
    before = db.count()
    with pytest.raises(KeyboardInterrupt), transaction(db):
        db.write(bulk("Cu"), kind="parent", name="half")
        raise KeyboardInterrupt
    assert db.count() == before and db.connection is None
    with transaction(db):
        db.write(bulk("Cu"), kind="scratch")
    assert db.count(kind="scratch") >= 1


# ---------------------------------------------------------------------------------
# (c) a worker killed mid-screen


def test_a_worker_killed_mid_screen_leaves_one_row_per_parent(tmp_path):
    metals = [("Cu", 2.87), ("Ni", 2.80), ("Au", 3.30), ("Ag", 3.30), ("Pt", 3.15), ("Pd", 3.12)]
    parents = [named(bulk(s, "bcc", a=a), f"{s}_bcc") for s, a in metals]
    path = str(tmp_path / "killed.db")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        result = {}
        thread = threading.Thread(target=lambda: result.update(summary=screen(
            parents, calc="emt", db=path, scheduler=cluster.scheduler_address, progress=False, targets="I4/mmm")))
        thread.start()
        deadline = time.time() + 120
        busy = []
        while not busy and time.time() < deadline:
            busy = [w for w, keys in client.processing().items() if any("ase-sbs-explore" in str(k) for k in keys)]
            time.sleep(0.2)
        assert busy, "no task started"
        time.sleep(1.0)  # the task is inside its exploration
        pids = client.run(os.getpid)
        os.kill(pids[busy[0]], signal.SIGKILL)
        written_at_kill = connect(path).count(kind="parent")
        thread.join(timeout=300)
        assert not thread.is_alive()
        caches = client.run(lambda dask_worker: len(getattr(dask_worker, CACHE_ATTRIBUTE, None).loaded)
                            if hasattr(dask_worker, CACHE_ATTRIBUTE) else 0)
    assert written_at_kill < len(parents), "the screen had finished before the kill"
    summary = result["summary"]
    assert (summary.computed, summary.failed) == (6, 0)
    db = connect(path)
    names = [r.name for r in db.select(kind="parent")]
    assert sorted(names) == sorted(p.info["name"] for p in parents)
    assert all(r.ground_sg == 225 for r in db.select(kind="parent"))
    assert max(caches.values()) == 1  # one EMT per worker, however many parents it explored


# ---------------------------------------------------------------------------------
# the quacc-style recipe


def test_the_recipe_returns_a_json_summary(direct):
    import json

    al = four_parents()[1]
    summary = explore_summary(al, calc="emt")
    json.dumps(summary)
    ex = direct["Al_fcc"]
    assert (summary["parent_sg"], summary["ground_sg"], summary["ground_dE"], summary["stable"]) == (225, 225, 0.0,
                                                                                                     True)
    assert summary["exploration"]["parent"]["energy_per_atom_eV"] == pytest.approx(ex.parent.energy_per_atom,
                                                                                   abs=1e-6)
    try:
        from quacc import get_settings
    except ImportError:
        pytest.skip("quacc is not installed: the plain function was checked")
    if get_settings().WORKFLOW_ENGINE is not None:
        pytest.skip("quacc is set to a workflow engine: its jobs return futures, not results")
    assert explore_job is not explore_summary
    through_quacc = explore_job(al, calc="emt")
    assert through_quacc["exploration"] == summary["exploration"]


def test_the_perovskite_parents_are_the_thirteen_cubic_abo3_of_the_readme_table():
    from ase.formula import Formula

    from ase_sbs.core.symmetry import detect_symmetry

    found = collect_parents(str(EXAMPLES / "perovskites")).parents
    names = sorted(p.name for p in found)
    assert names == sorted(["BaTiO3", "KNbO3", "PbTiO3", "SrTiO3", "LaAlO3", "SrZrO3", "CaZrO3", "NaTaO3", "CaSnO3",
                            "BiFeO3", "LiNbO3", "KTaO3", "BaZrO3"])
    for p in found:
        assert len(p.atoms) == 5 and p.atoms.symbols.formula.count() == Formula(p.name).count()
        assert detect_symmetry(p.atoms).spacegroup_number == 221
