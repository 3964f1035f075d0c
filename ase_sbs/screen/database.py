"""The screen's results in an ASE database (:func:`ase.db.connect`: SQLite by default,
PostgreSQL given a ``postgresql://`` URL through the ``ase-db-backends`` package).

One row per parent (``kind=parent``): its relaxed structure (energy in eV), the
key-value pairs of :func:`~ase_sbs.screen.summary.parent_keys`, ``name`` and
``settings_hash``, and the exploration's JSON as ``data``; or, when its exploration
was refused, its input structure with ``error`` (the message). One row per phase
(``kind=phase``): its relaxed structure, :func:`~ase_sbs.screen.summary.phase_keys`,
``parent_id`` (the parent's row id) and ``settings_hash``. A parent's rows are written
in one transaction: an interrupted screen never leaves half a parent."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from ase import Atoms

from ..core.structure import formula
from ..errors import SBSInputError
from .inputs import DATABASE_URLS, Parent
from .summary import ground_state, parent_keys, phase_keys


@dataclass
class ParentOutcome:
    """What a screen wrote for one parent (ΔE in eV per formula unit)."""

    id: int
    name: str
    formula: str
    settings_hash: str
    parent_group: str | None = None  # labels: Im-3m (229)
    ground_group: str | None = None
    ground_dE: float | None = None
    n_phases: int = 0
    stable: bool | None = None
    error: str | None = None


def open_database(url: str):
    """``ase.db.connect(url)``, checked by counting its parent rows: a name ase.db does
    not know, a PostgreSQL URL without the backend installed or a server that does not
    answer are refused with one line."""
    from ase.db import connect

    if url.startswith(DATABASE_URLS[:2]):
        try:
            import ase_db_backends.postgresql  # noqa: F401  (what ase.db loads for the URL)
        except ImportError as exc:
            raise SBSInputError("a PostgreSQL database needs ase-db-backends and psycopg2: "
                                "pip install 'ase-sbs[db]'") from exc
    try:
        db = connect(url)
        db.count(kind="parent")
    except Exception as exc:  # ase.db raises ValueError, OSError or the driver's own errors
        raise SBSInputError(f"{url}: cannot open it as an ASE database ({type(exc).__name__}: {exc})") from exc
    return db


@contextmanager
def transaction(db):
    """ase.db's ``with db:`` — every write inside committed together when the block
    ends — with a rollback that also works on ase-db-backends' PostgreSQL connection
    (which has no ``rollback``: closing it uncommitted drops the writes) and lets the
    block's own exception (an interrupt) through."""
    db.__enter__()
    try:
        yield db
    except BaseException:
        connection, db.connection = db.connection, None
        if hasattr(connection, "rollback"):
            connection.rollback()
        connection.close()
        raise
    db.__exit__(None, None, None)


def already_done(db, settings_hash: str) -> bool:
    """A parent row with this settings hash exists (a finished or refused parent)."""
    return db.count(kind="parent", settings_hash=settings_hash) > 0


def write_parent(db, parent: Parent, settings_hash: str, potential: str, result: dict) -> ParentOutcome:
    """Write one parent's rows (module docstring) from an
    :func:`~ase_sbs.screen.task.explore_parent` result, in one transaction."""
    common = {"name": parent.name, "settings_hash": settings_hash}
    if "error" in result:
        atoms = parent.atoms.copy()
        atoms.calc = None
        with transaction(db):
            row_id = db.write(atoms, key_value_pairs={**common, "kind": "parent", "potential": potential,
                                                      "error": result["error"]})
        return ParentOutcome(row_id, parent.name, formula(atoms), settings_hash,
                             error=result["error"])
    data = result["exploration"]
    keys = parent_keys(data)
    structures: list[Atoms] = result["phases"] + result["nodes"]
    with transaction(db):
        row_id = db.write(result["parent"], key_value_pairs={**common, "kind": "parent", **keys}, data=data)
        for atoms, phase in zip(structures, phase_keys(data)):
            db.write(atoms, key_value_pairs={**common, "kind": "phase", "parent_id": row_id, **phase})
    _, ground, dE = ground_state(data)
    return ParentOutcome(row_id, parent.name, data["parent"]["formula"], settings_hash,
                         parent_group=data["parent"]["spacegroup"], ground_group=ground, ground_dE=dE,
                         n_phases=keys["n_phases"], stable=keys["stable"])
