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
    by their ``name`` key, else ``<database>:<id>``."""
    from ase.db import connect

    if url.endswith(".db") and not os.path.exists(url):
        raise SBSInputError(f"{url}: no such database")
    try:
        rows = list(connect(url).select(select or ""))
    except Exception as exc:  # bad query syntax, unreachable server, not a database
        raise SBSInputError(f"{url}: cannot select {select!r} ({type(exc).__name__}: {exc})") from exc
    stem = os.path.splitext(os.path.basename(url))[0] if url.endswith(".db") else "db"
    return [Parent(row.get("name") or f"{stem}:{row.id}", row.toatoms()) for row in rows]
