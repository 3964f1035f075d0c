"""The parents of a screen, from what a caller has: ``Atoms``, structure files, a
directory of them, or the rows of an ASE database (a ``select`` query in ``ase db``
syntax), each with a name for its row."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ase import Atoms

from ..core.structure import read_atoms
from ..errors import SBSInputError

DATABASE_URLS = ("postgresql://", "postgres://", "mysql://", "mariadb://")


@dataclass
class Parent:
    """One structure to screen and the name its row carries (file stem, frame, row)."""

    name: str
    atoms: Atoms = field(repr=False)


@dataclass
class Parents:
    """The parents found, and the files of a directory that ase.io could not read
    (skipped, with the reason)."""

    parents: list[Parent]
    unreadable: list[str] = field(default_factory=list)


def is_database(source) -> bool:
    """An ASE database: a ``.db`` file or a server URL."""
    return isinstance(source, str) and (source.endswith(".db") or source.startswith(DATABASE_URLS))


def collect_parents(sources, select: str | None = None, index: str = "-1") -> Parents:
    """Parents from ``sources``: one or a list of ``Atoms``, ase.db rows, structure
    files (``index`` picks frames, an ase.io index: ``:`` for every frame), directories
    (every file in them that ase.io can read; the others are listed as unreadable) and
    ASE databases (the rows ``select`` picks; every row without it).

    A named file that does not exist or cannot be read is refused at once, before any
    exploration; ``select`` without a database among the sources is refused too."""
    if isinstance(sources, (Atoms, str, os.PathLike)) or hasattr(sources, "toatoms"):
        sources = [sources]
    sources = list(sources)
    found = Parents([])
    for source in sources:
        if isinstance(source, Atoms):
            found.parents.append(Parent(source.info.get("name") or source.get_chemical_formula(), source))
        elif hasattr(source, "toatoms"):  # an ase.db row
            found.parents.append(Parent(source.get("name") or f"row {source.id}", source.toatoms()))
        elif is_database(str(source)):
            found.parents += database_parents(str(source), select)
        elif os.path.isdir(source):
            directory_parents(str(source), index, found)
        else:
            found.parents += file_parents(str(source), index)
    if select is not None and not any(is_database(str(s)) for s in sources if isinstance(s, (str, os.PathLike))):
        raise SBSInputError("select picks rows of an ASE database: give a .db file or a database URL as input")
    return found


def file_parents(path: str, index: str = "-1") -> list[Parent]:
    """The frames ``index`` selects in a structure file, named by the file's stem (and
    the frame's position when there are several)."""
    read = read_atoms(path, index)
    stem = os.path.splitext(os.path.basename(path))[0]
    if isinstance(read, Atoms):
        return [Parent(stem, read)]
    if not read:
        raise SBSInputError(f"{path}: no structure in it (index {index})")
    return [Parent(f"{stem}@{i}", a) for i, a in enumerate(read)]


def directory_parents(path: str, index: str, found: Parents) -> None:
    """Every file in ``path`` (not hidden, sorted by name) that ase.io reads; the others
    and ASE databases go to ``found.unreadable``."""
    from ase.io.formats import filetype, ioformats

    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if name.startswith(".") or not os.path.isfile(full):
            continue
        if is_database(full):  # e.g. the results of an earlier screen: never read as parents unasked
            found.unreadable.append(f"{full}: an ASE database; give it as an input of its own (with select)")
            continue
        try:
            fmt = filetype(full)
            if not ioformats[fmt].can_read:
                raise SBSInputError(f"{full}: ase.io cannot read the {fmt} format")
            found.parents += file_parents(full, index)
        except Exception as exc:  # ase raises many types for files it cannot identify
            found.unreadable.append(str(exc) if isinstance(exc, SBSInputError) else f"{full}: {exc}")


def database_parents(url: str, select: str | None = None) -> list[Parent]:
    """The rows ``select`` picks (``ase db`` syntax) in the ASE database ``url``, named
    by their ``name`` key, else ``<database>:<id>``. A query ase.db cannot parse, or
    one naming a key no row of the database has, is refused (:func:`check_select`):
    ase.db would select nothing without a word."""
    from ase.db import connect

    if url.endswith(".db") and not os.path.exists(url):
        raise SBSInputError(f"{url}: no such database")
    try:
        db = connect(url)
        if select:
            check_select(db, url, select)
        rows = list(db.select(select or ""))
    except SBSInputError:
        raise
    except Exception as exc:  # bad query syntax, unreachable server, not a database
        raise SBSInputError(f"{url}: cannot select {select!r} ({type(exc).__name__}: {exc})") from exc
    stem = os.path.splitext(os.path.basename(url))[0] if url.endswith(".db") else "db"
    return [Parent(row.get("name") or f"{stem}:{row.id}", row.toatoms()) for row in rows]


SELECT_SYNTAX = ("conditions separated by commas: key=value, key<number, 1<natoms<10, a key alone (rows that "
                 "have it), -key (rows that lack it), an element (Ti), a formula (TiO2) or formula=TiO2")
ROW_KEYS = ("id", "natoms", "energy", "magmom", "charge", "mass", "volume", "pbc", "fmax", "smax", "forces",
            "strain", "constraints", "calculator", "user", "unique_id", "ctime", "age", "formula")  # every row's


def check_select(db, url: str, select: str) -> None:
    """Refuse, with one line, a ``select`` query that ase.db cannot parse (with the
    syntax) or that names a key neither the rows of ``db`` nor ase.db itself has (with
    the keys there are), instead of selecting nothing."""
    from ase.db.core import parse_selection, word

    try:
        keys, comparisons = parse_selection(select)
    except Exception as exc:  # ase.db raises ValueError, KeyError, IndexError for malformed queries
        raise SBSInputError(f"select {select!r} is not an ase db query ({type(exc).__name__}: {exc}); "
                            f"write {SELECT_SYNTAX}") from exc
    names = [k[1:] if k.startswith("-") else k for k in keys]
    names += [k for k, _, _ in comparisons if isinstance(k, str)]  # element symbols come back as numbers
    malformed = [n for n in names if not word.match(n)]
    if malformed:
        raise SBSInputError(f"select {select!r} is not an ase db query ({malformed[0]!r} is not a key); "
                            f"write {SELECT_SYNTAX}")
    if any(k == "pbc" and op not in ("=", "!=") for k, op, _ in comparisons):
        raise SBSInputError(f"select {select!r}: pbc is compared with = or != only (pbc=TTT, pbc!=FFF)")
    own = database_keys(db)
    unknown = sorted({n for n in names if n not in own and n not in ROW_KEYS})
    if unknown:
        listed = ", ".join(sorted(own)) if own else "none"
        raise SBSInputError(f"{url}: select {select!r} names {', '.join(unknown)}, a key no row has; its rows' "
                            f"keys: {listed}; every row's: {', '.join(ROW_KEYS)} and the element symbols")


def database_keys(db) -> set[str]:
    """The key-value-pair keys of an ASE database's rows."""
    try:
        return set(db.get_all_key_names())
    except Exception:  # a backend without the method: read them off the rows
        return {k for row in db.select(include_data=False) for k in row.key_value_pairs}
