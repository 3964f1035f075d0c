"""Finished work on disk, so a long exploration never loses it and a rerun resumes.

Under ``out/relaxations``: one JSON and one extxyz per finished relaxation (and the
parent); under ``out/channels``: JSON records of other finished computations (channel
curvatures) and numpy arrays (the Hessians they come from). Each is written atomically
(temporary file, then rename) the moment it is done. A key holds a
digest of everything the result depends on (potential, settings, structure, setting),
so a rerun with the same inputs reuses it and a changed input recomputes.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
from ase import Atoms

from ..core.files import write_array, write_json, write_structure
from ..errors import SBSInputError


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
    """Finished results under ``out`` (nothing is kept when ``out`` is None).

    ``reused`` counts the relaxations loaded instead of recomputed."""

    def __init__(self, out: str | None):
        self.dir = self.data_dir = None
        self.reused = 0
        if out is None:
            return
        self.dir = os.path.join(out, "relaxations")
        self.data_dir = os.path.join(out, "channels")
        try:
            os.makedirs(self.dir, exist_ok=True)
            os.makedirs(self.data_dir, exist_ok=True)
            probe = os.path.join(self.dir, ".write-test")
            with open(probe, "w") as fh:
                fh.write("ok")
            os.unlink(probe)
        except OSError as exc:
            raise SBSInputError(f"output directory {out!r} is not writable ({exc.strerror})") from exc

    def load(self, key: str) -> dict | None:
        """The record saved under ``key`` with its structure as ``atoms``, or None."""
        if self.dir is None:
            return None
        path = os.path.join(self.dir, key + ".json")
        if not os.path.exists(path) or not os.path.exists(os.path.join(self.dir, key + ".extxyz")):
            return None
        from ase.io import read

        with open(path) as fh:
            data = json.load(fh)
        data["atoms"] = read(os.path.join(self.dir, key + ".extxyz"))
        self.reused += 1
        return data

    def save(self, key: str, data: dict, atoms: Atoms) -> None:
        """Save a record and its structure (the structure first: a record is complete
        only when its JSON exists)."""
        if self.dir is None:
            return
        write_structure(atoms, os.path.join(self.dir, key + ".extxyz"))
        write_json(data, os.path.join(self.dir, key + ".json"))

    def load_data(self, key: str):
        """A JSON record without a structure, or None."""
        if self.data_dir is None:
            return None
        path = os.path.join(self.data_dir, key + ".json")
        if not os.path.exists(path):
            return None
        with open(path) as fh:
            return json.load(fh)

    def save_data(self, key: str, data) -> None:
        if self.data_dir is not None:
            write_json(data, os.path.join(self.data_dir, key + ".json"))

    def load_array(self, key: str) -> np.ndarray | None:
        """A numpy array saved under ``key`` (``channels/<key>.npy``), or None."""
        if self.data_dir is None:
            return None
        path = os.path.join(self.data_dir, key + ".npy")
        if not os.path.exists(path):
            return None
        return np.load(path, allow_pickle=False)

    def save_array(self, key: str, array: np.ndarray) -> None:
        if self.data_dir is not None:
            write_array(np.asarray(array), os.path.join(self.data_dir, key + ".npy"))
