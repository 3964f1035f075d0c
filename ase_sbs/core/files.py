"""Files written so an interrupted run never leaves a half-written one: a temporary
file in the same directory, then an atomic rename."""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np


def write_json(data, path: str) -> None:
    """Write JSON atomically (temporary file + rename); ``-`` writes to stdout."""
    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    if path == "-":
        print(text, end="")
        return
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_array(array: np.ndarray, path: str) -> None:
    """Write a numpy array (``.npy``) atomically."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".npy")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def json_safe(data):
    """``data`` as plain JSON types (dicts, lists, str, float, int, bool, None): numpy
    arrays and scalars converted, tuples made lists, exactly as :func:`write_json`
    writes them."""
    return json.loads(json.dumps(data, default=_json_default))


def write_structure(atoms, path: str) -> None:
    """Write an extxyz file atomically, without the calculator's results."""
    from ase.io import write

    clean = atoms.copy()
    clean.calc = None
    tmp = path + ".tmp"
    write(tmp, clean, format="extxyz")
    os.replace(tmp, path)


def _json_default(x):
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    raise TypeError(f"cannot serialise {type(x).__name__}")


def save_figure(fig, path: str, dpi: int = 120) -> None:
    """Save a matplotlib figure atomically (the format from ``path``'s suffix)."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp{ext}"
    try:
        fig.savefig(tmp, dpi=dpi)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
