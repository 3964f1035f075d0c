"""Files written so an interrupted run never leaves a half-written one: a temporary
file in the same directory, then an atomic rename.

A write the storage refuses (a full disk, a quota, a read-only directory, a file-size
limit: any ``OSError``) leaves no temporary file behind and raises
:class:`~ase_sbs.errors.SBSStorageError` naming the file, its directory and the
system's reason; the files written before it are complete."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager

import numpy as np

from ..errors import SBSStorageError


@contextmanager
def storage_errors(path: str, what: str = ""):
    """Turn an ``OSError`` raised in the block, while writing ``path``, into an
    :class:`~ase_sbs.errors.SBSStorageError` (``what``: what was being saved)."""
    try:
        yield
    except SBSStorageError:
        raise
    except OSError as exc:
        raise SBSStorageError.from_oserror(path, exc, what) from exc


def write_json(data, path: str, what: str = "") -> None:
    """Write JSON atomically (temporary file + rename); ``-`` writes to stdout. A
    storage failure raises :class:`~ase_sbs.errors.SBSStorageError` (``what``: what the
    file holds, for its message)."""
    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    if path == "-":
        print(text, end="")
        return
    directory = os.path.dirname(os.path.abspath(path))
    with storage_errors(path, what):
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp)
            raise


def write_array(array: np.ndarray, path: str, what: str = "") -> None:
    """Write a numpy array (``.npy``) atomically (a storage failure: as :func:`write_json`).

    The array is serialised in memory and written through Python's file object: handed
    a real file, ``np.save`` writes with C stdio, which can lose a failed write (a full
    disk, a file-size limit) without an error and leave a truncated file in place."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    directory = os.path.dirname(os.path.abspath(path))
    with storage_errors(path, what):
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npy")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(buffer.getbuffer())
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp)
            raise


def json_safe(data):
    """``data`` as plain JSON types (dicts, lists, str, float, int, bool, None): numpy
    arrays and scalars converted, tuples made lists, exactly as :func:`write_json`
    writes them."""
    return json.loads(json.dumps(data, default=_json_default))


def write_structure(atoms, path: str, what: str = "") -> None:
    """Write an extxyz file atomically, without the calculator's results (a storage
    failure: as :func:`write_json`)."""
    from ase.io import write

    clean = atoms.copy()
    clean.calc = None
    tmp = path + ".tmp"
    with storage_errors(path, what):
        try:
            write(tmp, clean, format="extxyz")
            os.replace(tmp, path)
        except BaseException:
            _remove(tmp)
            raise


def _remove(tmp: str) -> None:
    """Remove a temporary file if it is there (a failed write's, never a finished file)."""
    try:
        os.unlink(tmp)
    except OSError:  # not there, or the storage refuses even this: the first error is the one to report
        pass


def _json_default(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"cannot serialise {type(x).__name__}")


def save_figure(fig, path: str, dpi: int = 120, what: str = "") -> None:
    """Save a matplotlib figure atomically (the format from ``path``'s suffix; a storage
    failure: as :func:`write_json`)."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{ext}"
    with storage_errors(path, what):
        try:
            fig.savefig(tmp, dpi=dpi)
            os.replace(tmp, path)
        finally:
            _remove(tmp)
