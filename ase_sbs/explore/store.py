"""Finished work on disk, so a long exploration never loses it and a rerun resumes.

Under ``out/relaxations``: one JSON and one extxyz per finished relaxation (and the
parent); under ``out/channels``: JSON records of other finished computations (channel
curvatures) and numpy arrays (the Hessians they come from). Each is written atomically
(temporary file, then rename) the moment it is done. A key holds a
digest of everything the result depends on (potential, settings, structure, setting),
so a rerun with the same inputs reuses it and a changed input recomputes.

**Every record is validated when read**, because a file can be damaged after it was
written whole (a machine that dies while the disk flushes, a file cut short by a copy,
edited by hand, or written by another version): a damaged record must cost a
recomputation, never a traceback and never a wrong answer. What is checked:

- a structured record (``relaxations/<key>.json`` + ``.extxyz``, read by
  :meth:`Store.load`): the JSON parses to an object; the structure file is there,
  whole (it ends with the end of a line, as ASE writes it: an extxyz cut inside its last
  number would still read, as another structure), readable by ASE, one frame, with
  finite positions and cell; then the result type's own ``fromdict`` checks its schema
  version, required fields, their types, and the atom count against ``natoms`` (a
  structure whose last digits changed, cut nowhere, is accepted: it is the same
  structure to the precision the keys use);
- a plain record (``channels/<key>.json``, :meth:`Store.load_data`): the JSON parses,
  then the caller's ``fromdict`` checks its content;
- an array (``channels/<key>.npy``, :meth:`Store.load_array`): a numpy file without
  pickles, floating point, of the shape the caller expects, every entry finite.

A record that fails is reported in one line (a :class:`CorruptRecordWarning` naming the
file and what is wrong), its files are moved into ``out/corrupt/`` with a timestamp
suffix (never deleted: they can be inspected), and it is treated as missing, so the
caller recomputes and saves it anew. The checks of a type's content raise
:class:`RecordError`.

**One run at a time per directory.** A :class:`Store` holds an advisory lock
(``fcntl.flock``) on ``out/.lock`` for as long as it lives; the file names the holder
(PID, host, start). A second run into the same directory — another process — is
refused at once with one line naming the directory and the holder, instead of silently
redoing the same work beside it; once the first is finished the same command reuses all
of it. The kernel releases the lock when its process ends, however it ends, so the lock
of a dead process is taken over without anyone deleting a file. Within one process the
lock is shared: its explorations run one after the other, so a second :class:`Store` on
the same directory (an earlier one still referenced) takes part in the same lock. Where
the file system cannot lock (some network file systems), a warning says so and the run
goes on unlocked.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import math
import numbers
import os
import socket
import time
import types
import typing
import warnings
import weakref
from dataclasses import MISSING, fields

import numpy as np
from ase import Atoms

from ..core.files import storage_errors, write_array, write_json, write_structure
from ..errors import SBSInputError

LOCK_NAME = ".lock"  # in the output directory
CORRUPT_DIR = "corrupt"  # in the output directory: records that failed validation, moved aside


class RecordError(ValueError):
    """A stored record that does not validate (what is wrong, for its one line); ``path``
    names the bad file when it is not the record's JSON; ``structure``: the record and
    its structure disagree (both files are named)."""

    def __init__(self, message: str, path: str | None = None, structure: bool = False):
        super().__init__(message)
        self.path = path
        self.structure = structure


class CorruptRecordWarning(UserWarning):
    """A stored record failed validation: moved aside into ``out/corrupt/`` and recomputed."""


def digest(*parts) -> str:
    """A short stable hash of JSON-able parts."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:10]


def structure_digest(atoms: Atoms) -> list:
    """What identifies a structure for a key: species, positions and cell (rounded)."""
    return [atoms.get_chemical_symbols(), np.round(atoms.positions, 6).tolist(),
            np.round(np.asarray(atoms.cell), 6).tolist()]


def safe_name(name: str) -> str:
    """A name reduced to letters, digits and underscores (for file names)."""
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


class Store:
    """Finished results under ``out`` (nothing is kept when ``out`` is None), validated
    when read and locked against a second run (module docstring).

    ``reused`` counts the records (relaxations and the parent) loaded instead of
    recomputed."""

    def __init__(self, out: str | None):
        self.dir = self.data_dir = self.corrupt_dir = None
        self.reused = 0
        self._lock = None
        if out is None:
            return
        self.dir = os.path.join(out, "relaxations")
        self.data_dir = os.path.join(out, "channels")
        self.corrupt_dir = os.path.join(out, CORRUPT_DIR)
        try:
            os.makedirs(self.dir, exist_ok=True)
            os.makedirs(self.data_dir, exist_ok=True)
            probe = os.path.join(self.dir, ".write-test")
            with open(probe, "w") as fh:
                fh.write("ok")
            os.unlink(probe)
        except OSError as exc:
            raise SBSInputError(f"output directory {out!r} is not writable ({exc.strerror})") from exc
        self._lock = directory_lock(out)

    def close(self) -> None:
        """Let go of the directory's lock (it is also let go when the store is collected)."""
        self._lock = None

    def load(self, key: str, fromdict):
        """The result saved under ``key``, ``fromdict(record, atoms)`` (a result type's
        :meth:`fromdict`, which raises :class:`RecordError` on a bad record), or None
        when there is none or it does not validate (module docstring; then moved aside)."""
        if self.dir is None:
            return None
        path = os.path.join(self.dir, key + ".json")
        structure = os.path.join(self.dir, key + ".extxyz")
        if not os.path.exists(path):  # not finished (a structure alone: a save cut short, rewritten on save)
            return None
        try:
            data = _read_json(path)
            if not isinstance(data, dict):
                raise RecordError(f"a JSON {type(data).__name__}, not a record (an object)")
            atoms = _read_structure(structure)
            result = fromdict(data, atoms)
        except RecordError as exc:
            bad = f"{path} with {structure}" if exc.structure else exc.path or path
            self._set_aside(bad, str(exc), [path, structure])
            return None
        self.reused += 1
        return result

    def save(self, key: str, data: dict, atoms: Atoms) -> None:
        """Save a record and its structure (the structure first: a record is complete
        only when its JSON exists)."""
        if self.dir is None:
            return
        write_structure(atoms, os.path.join(self.dir, key + ".extxyz"))
        write_json(data, os.path.join(self.dir, key + ".json"))

    def load_data(self, key: str, fromdict):
        """A JSON record without a structure, ``fromdict(record)`` (which raises
        :class:`RecordError` on a bad one), or None when there is none or it does not
        validate (then moved aside)."""
        if self.data_dir is None:
            return None
        path = os.path.join(self.data_dir, key + ".json")
        if not os.path.exists(path):
            return None
        try:
            return fromdict(_read_json(path))
        except RecordError as exc:
            self._set_aside(exc.path or path, str(exc), [path])
            return None

    def save_data(self, key: str, data) -> None:
        if self.data_dir is not None:
            write_json(data, os.path.join(self.data_dir, key + ".json"))

    def load_array(self, key: str, shape: tuple) -> np.ndarray | None:
        """The numpy array saved under ``key`` (``channels/<key>.npy``), or None when
        there is none or it is not a finite floating-point array of ``shape`` (then
        moved aside)."""
        if self.data_dir is None:
            return None
        path = os.path.join(self.data_dir, key + ".npy")
        if not os.path.exists(path):
            return None
        try:
            try:
                array = np.load(path, allow_pickle=False)
            except (ValueError, EOFError) as exc:  # numpy's words for a file that is not a whole array
                raise RecordError(f"not a numpy array file ({_one_line(exc)})") from exc
            if not isinstance(array, np.ndarray) or not np.issubdtype(array.dtype, np.floating):
                raise RecordError(f"an array of {getattr(array, 'dtype', type(array).__name__)}, not of floats")
            if array.shape != tuple(shape):
                raise RecordError(f"an array of shape {array.shape}, expected {tuple(shape)}")
            if not np.isfinite(array).all():
                raise RecordError("an array with entries that are not finite")
        except RecordError as exc:
            self._set_aside(path, str(exc), [path])
            return None
        return array

    def save_array(self, key: str, array: np.ndarray) -> None:
        if self.data_dir is not None:
            write_array(np.asarray(array), os.path.join(self.data_dir, key + ".npy"))

    def _set_aside(self, bad: str, reason: str, paths: list[str]) -> None:
        """Move a record's files into ``out/corrupt/`` (a timestamp before the suffix) and
        say so in one line naming the bad file and what is wrong."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        with storage_errors(self.corrupt_dir, "a corrupt record moved aside"):
            os.makedirs(self.corrupt_dir, exist_ok=True)
            for p in paths:
                if not os.path.exists(p):
                    continue
                stem, ext = os.path.splitext(os.path.basename(p))
                dest, n = os.path.join(self.corrupt_dir, f"{stem}.{stamp}{ext}"), 1
                while os.path.exists(dest):
                    dest, n = os.path.join(self.corrupt_dir, f"{stem}.{stamp}-{n}{ext}"), n + 1
                os.replace(p, dest)
        # located at the bad file itself (line 0: no source line is shown), so it prints as one line
        warnings.warn_explicit(f"corrupt record {bad}: {reason}; moved to {self.corrupt_dir}{os.sep} and recomputed",
                               CorruptRecordWarning, bad, 0)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] or type(exc).__name__


def _read_json(path: str):
    """The JSON in ``path``; :class:`RecordError` when it is not JSON (empty, cut short,
    garbage, not UTF-8)."""
    with open(path, "rb") as fh:
        raw = fh.read()
    if not raw.strip():
        raise RecordError("an empty file")
    try:
        return json.loads(raw.decode("utf-8"))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise RecordError(f"not valid JSON ({_one_line(exc)})") from exc


def _read_structure(path: str) -> Atoms:
    """The one structure in ``path``, checked as the module docstring says;
    :class:`RecordError` (naming ``path``) otherwise."""
    from ase.io import read

    if not os.path.exists(path):
        raise RecordError(f"its structure file {path} is missing")
    with open(path, "rb") as fh:
        raw = fh.read()
    if not raw.strip():
        raise RecordError("an empty file", path)
    if not raw.endswith(b"\n"):
        raise RecordError("cut short (its last line is not whole)", path)
    try:
        frames = read(path, index=":", format="extxyz")
    except Exception as exc:  # ase.io raises many kinds (XYZError, ValueError, IndexError, ...) on a bad file
        raise RecordError(f"not a readable extxyz structure ({type(exc).__name__}: {_one_line(exc)})", path) from exc
    if len(frames) != 1:
        raise RecordError(f"{len(frames)} structures, expected one", path)
    atoms = frames[0]
    if not (np.isfinite(atoms.positions).all() and np.isfinite(atoms.cell.array).all()):
        raise RecordError("a structure whose positions or cell are not finite", path)
    return atoms


# ----------------------------------------------------------------------------------
# the fields of a record


def record_fields(cls, data, schema: int, checks: dict, skip: tuple = ()) -> dict:
    """The values of the dataclass ``cls``'s fields (but ``skip``) in the record ``data``,
    validated: an object; its ``schema`` version (none: 1) from 1 to ``schema``; every
    field without a default present; each present field of its annotated type
    (:func:`is_of_type`) and passing ``checks[name] = (what it must be, test)``. Fields
    ``cls`` lacks are ignored (written by a later version). :class:`RecordError` says
    what is wrong."""
    name = cls.__name__
    if not isinstance(data, dict):
        raise RecordError(f"a JSON {type(data).__name__}, not a {name} record (an object)")
    version = data.get("schema", 1)
    if not is_of_type(version, int) or not 1 <= version <= schema:
        raise RecordError(f"schema version {version!r:.40}; this version reads {name} records of version "
                          + (f"1 to {schema}" if schema > 1 else "1"))
    hints = _hints(cls)
    values = {}
    for f in fields(cls):
        if f.name in skip:
            continue
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise RecordError(f"required field {f.name!r} of a {name} record is missing")
            continue
        value = data[f.name]
        if not is_of_type(value, hints[f.name]):
            raise RecordError(f"field {f.name!r} is {value!r:.40}, not {_type_name(hints[f.name])}")
        if f.name in checks and not checks[f.name][1](value):
            raise RecordError(f"field {f.name!r} is {value!r:.40}, not {checks[f.name][0]}")
        values[f.name] = value
    return values


@functools.cache
def _hints(cls) -> dict:
    return typing.get_type_hints(cls)


def is_of_type(value, hint) -> bool:
    """Whether a JSON value is of an annotated type: ``float`` a finite number, ``int`` a
    whole number, neither a boolean (JSON ``true`` is no number); ``X | None``, ``str``,
    ``list``, ``dict`` as they read."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return any(is_of_type(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, (bool, np.bool_))
    if isinstance(value, (bool, np.bool_)):
        return False
    if hint is float:
        return isinstance(value, numbers.Real) and math.isfinite(value)
    if hint is int:
        return isinstance(value, numbers.Integral)
    return isinstance(value, typing.get_origin(hint) or hint)


def _type_name(hint) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_type_name(h) for h in typing.get_args(hint))
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def finite_numbers(value) -> bool:
    """Whether ``value`` is a list (of lists) of finite numbers."""
    return isinstance(value, list) and all(finite_numbers(x) if isinstance(x, list) else is_of_type(x, float)
                                           for x in value)


# ----------------------------------------------------------------------------------
# the directory's lock: per process, shared by its stores (module docstring)

_HELD: weakref.WeakValueDictionary = weakref.WeakValueDictionary()  # lock file -> its DirectoryLock


class DirectoryLock:
    """An ``fcntl.flock`` held on ``path`` until this object is collected."""

    def __init__(self, path: str, fd: int):
        self.path = path
        self._finalizer = weakref.finalize(self, os.close, fd)


def directory_lock(out: str) -> DirectoryLock | None:
    """The lock of the output directory ``out``: this process's when it holds it, else
    taken now (a dead holder's lock is free: the kernel let it go); a live holder in
    another process: :class:`~ase_sbs.errors.SBSInputError` naming the directory and the
    holder. None (with a warning) where the file system cannot lock."""
    path = os.path.join(os.path.realpath(out), LOCK_NAME)
    held = _HELD.get(path)
    if held is not None:
        return held
    with storage_errors(path, "the lock of the output directory"):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").split()
        os.close(fd)
        pid = f"PID {holder[0]} on {holder[1]}, since {holder[2]}" if len(holder) >= 3 else "a process"
        raise SBSInputError(f"output directory {out!r} is in use by another run ({pid}); wait for it to finish "
                            "(this command then reuses its results) or choose another output directory") from None
    except OSError as exc:
        os.close(fd)
        warnings.warn(f"cannot lock the output directory {out!r} ({exc.strerror}): a second run into it at the "
                      "same time would redo the same work", stacklevel=3)
        return None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%dT%H:%M:%S')}\n".encode(), 0)
    lock = _HELD[path] = DirectoryLock(path, fd)
    return lock
