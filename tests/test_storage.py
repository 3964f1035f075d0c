"""Storage that refuses a write mid-run (a full disk, a quota, a file-size limit): one
line naming the directory and what is kept, exit status 74, no traceback, no half file;
the same command run again resumes and ends with the result of a clean run.

The faults are real where they can be: a child process whose file-size limit
(``RLIMIT_FSIZE``, with ``SIGXFSZ`` ignored so that the write fails with ``EFBIG``)
stops the writes past a size, which is what a disk that fills up does to them. A full
disk itself (``ENOSPC``) is simulated in-process on the rename that ends each write."""

import errno
import json
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest
from ase.build import bulk
from ase.db import connect
from ase.io import read, write

from ase_sbs.cli import main
from ase_sbs.core import files
from ase_sbs.errors import SBSError, SBSInputError, SBSStorageError


def file_size_limit(limit: int):
    """A ``preexec_fn``: no file of the child grows past ``limit`` bytes."""
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return apply


def ase_sbs(args, cwd, limit: int | None = None) -> subprocess.CompletedProcess:
    """The command line in a child process (EMT on one thread), optionally under a file-size limit."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "ase_sbs", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, preexec_fn=file_size_limit(limit) if limit else None, timeout=600)


def leftovers(root) -> list[str]:
    """Temporary files a failed write could leave behind."""
    return [os.path.join(d, f) for d, _, names in os.walk(root) for f in names
            if f.startswith(".tmp-") or f.endswith(".tmp") or ".tmp." in f]


# ---------------------------------------------------------------------------------
# each writer of ase_sbs.core.files, on a full disk (ENOSPC at the rename)


def _fig():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    return fig


WRITERS = {
    "json": (lambda path: files.write_json({"a": 1}, path), "x.json"),
    "structure": (lambda path: files.write_structure(bulk("Cu"), path), "x.extxyz"),
    "array": (lambda path: files.write_array(np.eye(3), path), "x.npy"),
    "figure": (lambda path: files.save_figure(_fig(), path), "x.png"),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_full_disk_raises_a_storage_error_and_keeps_the_previous_file(kind, tmp_path, monkeypatch):
    write_it, name = WRITERS[kind]
    path = str(tmp_path / name)
    write_it(path)
    before = (tmp_path / name).read_bytes()

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "replace", full)
    with pytest.raises(SBSStorageError) as caught:
        write_it(path)
    exc = caught.value
    assert isinstance(exc, OSError) and isinstance(exc, SBSError) and not isinstance(exc, SBSInputError)
    assert exc.errno == errno.ENOSPC and exc.directory == str(tmp_path) and exc.path == path
    assert str(tmp_path) in str(exc) and name in str(exc) and "ENOSPC" in str(exc)
    assert (tmp_path / name).read_bytes() == before  # the finished file is untouched
    assert os.listdir(tmp_path) == [name]  # no temporary file left


WRITE_UNDER_LIMIT = """
import sys, numpy as np
from ase_sbs.core import files
from ase_sbs.errors import SBSStorageError
kind, path = sys.argv[1], sys.argv[2]
try:
    if kind == "array":
        files.write_array(np.arange(400.0).reshape(20, 20), path)
    else:
        files.write_json({"values": list(range(2000))}, path)
except SBSStorageError as exc:
    print("refused", exc.errno, exc)
else:
    print("written")
"""


@pytest.mark.parametrize("kind", ["array", "json"])
def test_a_file_size_limit_is_reported_and_leaves_no_truncated_file(kind, tmp_path):
    """A real EFBIG: the limit (1000 bytes) is below the file's size (3.3 kB as .npy,
    ~13 kB as JSON). numpy writing to a real file through C stdio loses the failed
    write; the file must still not appear, truncated, as if finished."""
    path = tmp_path / ("h.npy" if kind == "array" else "h.json")
    proc = subprocess.run([sys.executable, "-c", WRITE_UNDER_LIMIT, kind, str(path)], capture_output=True,
                          text=True, preexec_fn=file_size_limit(1000), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"refused {errno.EFBIG} "), proc.stdout
    assert str(tmp_path) in proc.stdout
    assert not path.exists() and not leftovers(tmp_path)


def test_the_command_line_turns_a_refused_write_into_one_line(tmp_path, monkeypatch, capsys):
    cu = tmp_path / "cu.extxyz"
    write(cu, bulk("Cu", "bcc", a=2.87))

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(files.os, "replace", full)
    assert main(["detect", str(cu), "--json", str(tmp_path / "d.json")]) == 74
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ase-sbs: error: cannot write d.json in ")
    assert str(tmp_path) in err[0] and "No space left on device" in err[0]


def test_a_refused_write_outside_the_helpers_is_one_line_too(tmp_path, monkeypatch, capsys):
    """A library's own write (not through ase_sbs.core.files) that the storage refuses."""
    cu = tmp_path / "cu.extxyz"
    write(cu, bulk("Cu", "bcc", a=2.87))

    def read_only(data, path, what=""):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), path)

    monkeypatch.setattr(files, "write_json", read_only)
    assert main(["detect", str(cu), "--json", str(tmp_path / "d.json")]) == 74
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "d.json" in err[0] and "Read-only file system [EROFS]" in err[0]


# ---------------------------------------------------------------------------------
# explore and screen end to end, the fault mid-run, then the rerun


def comparable(path) -> dict:
    """explore.json without what differs between a clean and a resumed run."""
    data = json.loads(path.read_text())
    data.pop("reused")
    return data


@pytest.fixture(scope="module")
def bcc_cu(tmp_path_factory):
    """bcc Cu (EMT: falls to fcc) and a clean explore of it."""
    root = tmp_path_factory.mktemp("storage")
    write(root / "cu.extxyz", bulk("Cu", "bcc", a=2.87))
    proc = ase_sbs(["explore", "cu.extxyz", "--calc", "emt", "--out", "clean"], root)
    assert proc.returncode == 0, proc.stderr
    return root


# 4000 bytes: every relaxation record fits, explore.json (~18 kB) does not: the fault
# comes at the end. 500 bytes: the parent's record fits, the first curvature's Hessian
# or relaxation record does not: the fault comes early, mid-run.
@pytest.mark.parametrize("limit", [4000, 500])
def test_explore_on_full_storage_says_what_is_kept_and_the_rerun_ends_as_a_clean_run(bcc_cu, limit):
    out = f"out{limit}"
    proc = ase_sbs(["explore", "cu.extxyz", "--calc", "emt", "--out", out], bcc_cu, limit)
    assert proc.returncode == 74, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert err[0].startswith("ase-sbs: error: cannot write ") and "File too large [EFBIG]" in err[0]
    assert str(bcc_cu / out) in err[0]  # the directory
    assert f"finished relaxations are saved in {out}/ and the same command resumes" in err[0]
    assert not leftovers(bcc_cu / out)
    kept = sorted(os.listdir(bcc_cu / out / "relaxations"))
    for name in kept:  # every record kept is whole
        if name.endswith(".json"):
            json.loads((bcc_cu / out / "relaxations" / name).read_text())
        else:
            read(bcc_cu / out / "relaxations" / name)
    again = ase_sbs(["explore", "cu.extxyz", "--calc", "emt", "--out", out], bcc_cu)
    assert again.returncode == 0, again.stderr
    reused = sum(name.endswith(".json") for name in kept)
    if reused:
        assert f"resumed       {reused} finished relaxation(s)" in again.stdout
    assert comparable(bcc_cu / out / "explore.json") == comparable(bcc_cu / "clean" / "explore.json")


def test_a_screen_whose_database_fills_up_keeps_its_rows_and_the_rerun_completes(tmp_path):
    (tmp_path / "in").mkdir()
    write(tmp_path / "in" / "a_Al.extxyz", bulk("Al", "fcc", a=4.05))
    write(tmp_path / "in" / "b_Cu.extxyz", bulk("Cu", "bcc", a=2.87))
    assert ase_sbs(["screen", "in", "--calc", "emt", "--db", "clean.db"], tmp_path).returncode == 0
    first = ase_sbs(["screen", "in/a_Al.extxyz", "--calc", "emt", "--db", "r.db"], tmp_path)
    assert first.returncode == 0, first.stderr
    # the database may not grow past its size with one parent: the second parent's rows fail
    proc = ase_sbs(["screen", "in", "--calc", "emt", "--db", "r.db"], tmp_path, os.path.getsize(tmp_path / "r.db"))
    assert proc.returncode == 74, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "cannot write r.db in " + str(tmp_path) in err[0] and "the rows of parent b_Cu" in err[0]
    assert "finished parents are in r.db and the same command skips them" in err[0]
    assert [r.name for r in connect(str(tmp_path / "r.db")).select(kind="parent")] == ["a_Al"]
    again = ase_sbs(["screen", "in", "--calc", "emt", "--db", "r.db"], tmp_path)
    assert again.returncode == 0 and "1 computed (0 failed), 1 skipped" in again.stdout, again.stdout

    def rows(db):
        return sorted((r.name, r.kind, r.get("sg"), r.get("ground_sg"), round(r.energy, 9), r.settings_hash)
                      for r in connect(str(tmp_path / db)).select())

    assert rows("r.db") == rows("clean.db")
