"""The screen's results in an ASE database (:func:`ase.db.connect`: SQLite by default,
PostgreSQL given a ``postgresql://`` URL through the ``ase-db-backends`` package).

One row per parent (``kind=parent``): its relaxed structure (energy in eV), the
key-value pairs of :func:`~ase_sbs.screen.summary.parent_keys`, ``name`` and
``settings_hash``, and the exploration's JSON as ``data``; or, when its exploration
was refused, its input structure with ``error`` (the message). One row per phase
(``kind=phase``): its relaxed structure, :func:`~ase_sbs.screen.summary.phase_keys`,
``parent_id`` (the parent's row id), ``potential`` and ``settings_hash``. A parent's
rows are written in one transaction: an interrupted screen never leaves half a parent.
A screen under several potentials writes these rows for each (parent, potential), and
one committee row per parent (``kind=committee``, :mod:`ase_sbs.screen.committee`).

Text that ase.db would read as something else is stored with a leading underscore
(:func:`stored_text`): ase.db refuses a string value that Python's ``int`` or ``float``
reads, or that is ``True``/``False`` (``ase.db.core.check``), and a query
(``ase db results.db name=225``) turns such a value into a number. So the parent of
``225.cif`` is stored as ``name=_225`` (``1e3.extxyz``: ``_1e3``, ``nan.xyz``:
``_nan``, ``True.xyz``: ``_True``), and ``ase db results.db name=_225`` finds it; every
other text (names, labels, potentials, messages, settings hashes) is stored as it is.

A write the database refuses because of the storage (a full disk, a read-only file, a
lost server) raises :class:`~ase_sbs.errors.SBSStorageError`: the parents written
before are complete, and the same screen run again skips them."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from ase import Atoms

from ..core.structure import formula
from ..errors import SBSInputError, SBSStorageError
from .inputs import DATABASE_URLS, Parent
from .summary import ground_state, lowest_phase, parent_keys, phase_keys


@dataclass
class ParentOutcome:
    """What a screen wrote for one parent (ΔE in eV per formula unit; ``name`` as
    stored, :func:`stored_text`)."""

    id: int
    name: str
    formula: str
    settings_hash: str
    parent_group: str | None = None  # labels: Im-3m (229)
    ground_group: str | None = None
    ground_dE: float | None = None
    ground_status: str | None = None  # summary.GroundStatus
    lowest_group: str | None = None
    lowest_dE: float | None = None
    n_phases: int = 0
    stable: bool | None = None
    error: str | None = None
    potential: str | None = None
    verdict: str | None = None  # the root exploration's: broken, stable, inconclusive


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


STORED_PREFIX = "_"  # put before text that ase.db would read as a number or a boolean


def stored_text(value):
    """``value`` as the database keeps it: text that ase.db would read as an int, a
    float or a boolean (``225``, ``1e3``, ``nan``, ``inf``, ``1_000``, ``True``: the
    test ``ase.db.core.check`` applies before it refuses the write) gets
    :data:`STORED_PREFIX` in front, which no number has; any other value is returned
    as it is."""
    from ase.db.core import convert_str_to_int_float_bool_or_str

    if isinstance(value, str) and not isinstance(convert_str_to_int_float_bool_or_str(value), str):
        return STORED_PREFIX + value
    return value


def stored_keys(pairs: dict) -> dict:
    """Key-value pairs with every text value as :func:`stored_text` keeps it."""
    return {k: stored_text(v) for k, v in pairs.items()}


def previous_row(db, settings_hash: str):
    """The parent row with this settings hash (a finished or refused parent), or None."""
    return next(iter(db.select(kind="parent", settings_hash=stored_text(settings_hash), limit=1)), None)


def already_done(db, settings_hash: str) -> bool:
    """A parent row with this settings hash exists (a finished or refused parent)."""
    return previous_row(db, settings_hash) is not None


def is_storage_failure(exc: BaseException) -> bool:
    """An error of the storage under the database, not of the rows: ``OSError``, or
    an error of the SQLite or PostgreSQL driver (disk full, read-only, lost server)."""
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in ("sqlite3", "psycopg2", "psycopg")


def write_parent(db, parent: Parent, settings_hash: str, potential: str, result: dict) -> ParentOutcome:
    """Write one parent's rows (module docstring) from an
    :func:`~ase_sbs.screen.task.explore_parent` result, in one transaction.

    Results the database refuses (a value ase.db does not take) give the parent an
    error row saying so; a storage failure raises
    :class:`~ase_sbs.errors.SBSStorageError` naming the database."""
    common = {"name": parent.name, "settings_hash": settings_hash}
    try:
        if "error" not in result:
            try:
                return write_results(db, common, result)
            except ValueError as exc:  # ase.db.core.check refused a key or a value
                result = {"error": f"its results cannot be stored in the database ({exc})"}
        atoms = parent.atoms.copy()
        atoms.calc = None
        pairs = stored_keys({**common, "kind": "parent", "potential": potential, "error": result["error"]})
        with transaction(db):
            row_id = db.write(atoms, key_value_pairs=pairs)
    except Exception as exc:
        if not is_storage_failure(exc):
            raise
        raise storage_error(db, exc, f"the rows of parent {pairs_name(common)}") from exc
    return ParentOutcome(row_id, pairs["name"], formula(atoms), settings_hash, error=pairs["error"],
                         potential=pairs["potential"])


def storage_error(db, exc: Exception, what: str) -> SBSStorageError:
    """The database refused a write (a full disk, a read-only file, a server that went
    away): one :class:`SBSStorageError` naming the database and what was being written."""
    where = str(getattr(db, "filename", "") or "the database")
    return SBSStorageError(where, f"{exc} [{type(exc).__name__}]", what, getattr(exc, "errno", None))


def pairs_name(common: dict) -> str:
    """A parent's name as stored."""
    return stored_text(common["name"])


def write_results(db, common: dict, result: dict) -> ParentOutcome:
    """The parent row and one row per phase of an exploration, in one transaction."""
    data = result["exploration"]
    keys = parent_keys(data)
    structures: list[Atoms] = result["phases"] + result["nodes"]
    with transaction(db):
        row_id = db.write(result["parent"], key_value_pairs=stored_keys({**common, "kind": "parent", **keys}),
                          data=data)
        for atoms, phase in zip(structures, phase_keys(data)):
            db.write(atoms, key_value_pairs=stored_keys({**common, "kind": "phase", "parent_id": row_id,
                                                         "potential": data["potential"], **phase}))
    _, ground, dE, status = ground_state(data)
    _, lowest, low_dE = lowest_phase(data)
    return ParentOutcome(row_id, pairs_name(common), data["parent"]["formula"], common["settings_hash"],
                         parent_group=data["parent"]["spacegroup"], ground_group=ground, ground_dE=dE,
                         ground_status=str(status), lowest_group=lowest, lowest_dE=low_dE,
                         n_phases=keys["n_phases"], stable=keys["stable"], potential=keys["potential"],
                         verdict=data.get("verdict"))
