"""What a structure must be before its symmetry is detected, and the labels a symmetry
operation must preserve (species, and collinear magnetic moments)."""

from __future__ import annotations

import warnings

import numpy as np
from ase import Atoms

from ..errors import SBSInputError

MIN_DISTANCE = 0.1  # Å: closer atoms are "on top of each other"


def check_structure(atoms) -> None:
    """Refuse what has no well-defined finite symmetry group here, with one line saying
    what is wrong and what to do: not an Atoms, no atoms, partial periodicity, a
    degenerate cell, non-finite positions, atoms on top of each other, or a
    disordered structure (partially occupied sites, as ASE reads them from a CIF)."""
    if not isinstance(atoms, Atoms):
        raise SBSInputError(f"expected an ase.Atoms, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise SBSInputError("the structure has no atoms")
    pbc = np.asarray(atoms.pbc, dtype=bool)
    if pbc.any() and not pbc.all():
        raise SBSInputError(
            f"partial periodicity (pbc={pbc.tolist()}) is not supported: layer and rod groups "
            "are not implemented. Set pbc=True (with vacuum) to treat it as a 3D crystal, "
            "or pbc=False for an isolated molecule."
        )
    if pbc.all():
        cell = np.asarray(atoms.cell, dtype=float)
        if abs(np.linalg.det(cell)) < 1e-6:
            raise SBSInputError(
                "the structure is periodic but its cell is missing or degenerate "
                f"(volume {abs(np.linalg.det(cell)):.3g} Å³); set a cell or pbc=False for a molecule"
            )
    if not np.isfinite(atoms.positions).all():
        raise SBSInputError("atomic positions contain NaN or infinity")
    _check_ordered(atoms)
    if len(atoms) > 1:
        d = atoms.get_all_distances(mic=bool(pbc.all()))
        np.fill_diagonal(d, np.inf)
        i, j = np.unravel_index(np.argmin(d), d.shape)
        if d[i, j] < MIN_DISTANCE:
            raise SBSInputError(
                f"atoms {i} and {j} are {d[i, j]:.3g} Å apart (on top of each other); "
                "remove the duplicate atom"
            )


def _check_ordered(atoms: Atoms) -> None:
    """A site whose occupancies (``atoms.info['occupancy']``, written by ASE's CIF
    reader per site kind) are not one species at occupancy 1 is refused: ASE keeps one
    species of a mixed site, so the structure read is not the material described. The
    CIF's site labels, when the reader kept them (``atoms.info['site_labels']``, set by
    the command line), name the site."""
    occupancy = atoms.info.get("occupancy")
    if not occupancy:
        return
    kinds = atoms.arrays.get("spacegroup_kinds")
    for kind, species in sorted(occupancy.items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else 0):
        values = {str(el): float(x) for el, x in species.items()}
        if len(values) == 1 and abs(next(iter(values.values())) - 1.0) < 1e-6:
            continue
        name, read_as = f"{kind}", "one of them"
        if kinds is not None and str(kind).isdigit():
            hits = np.flatnonzero(np.asarray(kinds) == int(kind))
            if len(hits):
                pos = atoms.get_scaled_positions(wrap=False)[hits[0]] if atoms.pbc.all() else atoms.positions[hits[0]]
                labels = atoms.info.get("site_labels", {}).get(tuple(np.round(np.mod(pos, 1.0), 4)))
                name = ("/".join(labels) if labels else name) + " at (" + ", ".join(f"{x:.4g}" for x in pos) + ")"
                read_as = atoms.get_chemical_symbols()[hits[0]] + " only"
        text = ", ".join(f"{el} {x:g}" for el, x in sorted(values.items()))
        raise SBSInputError(
            f"disordered structure: site {name} is occupied by {text}; ase read it as {read_as}. Order it first "
            "(e.g. pymatgen's OrderDisorderedStructureTransformation on a supercell) and explore the ordered cell"
        )


def read_atoms(path: str, index: str = "-1"):
    """The structure ``index`` selects in ``path`` (an ase.io index: ``-1`` the last
    frame, ``:`` a list of every frame), read by ase.io in any format it knows;
    refused with one line when the file is missing or cannot be read. Not checked:
    :func:`check_structure` is the next step."""
    import os

    from ase.io import read

    if not os.path.exists(path):
        raise SBSInputError(f"{path}: no such file")
    try:
        return read(path, index=index)
    except Exception as exc:  # ase raises many types for unreadable files
        raise SBSInputError(f"{path}: cannot read it as a structure ({unreadable_reason(path, index, exc)})") from exc


def unreadable_reason(path: str, index: str, exc: Exception) -> str:
    """What is wrong with a file ase.io failed to read: the reader's own message, or,
    where it gives none (a bare assertion of its parser, an iteration that found no
    frame), what is wrong found here: a CIF's missing ``data_`` header or atom sites
    (:func:`cif_problem`), an index past the last frame, or no structure at all."""
    text = str(exc).strip()
    if text and not isinstance(exc, StopIteration):
        return f"{type(exc).__name__}: {text}"
    problem = cif_problem(path) if _format(path) == "cif" else None
    if problem:
        return problem
    if isinstance(exc, StopIteration):
        from ase.io import read

        try:
            frames = len(read(path, index=":"))
        except Exception:  # the file itself is the problem
            frames = 0
        if frames:
            return f"no frame at index {index}: it holds {frames} (an ase.io index: -1 is the last, ':' every one)"
        return "ase.io found no structure in it"
    fmt = _format(path) or "structure"
    return f"ase.io's {fmt} reader stopped at something it does not accept ({type(exc).__name__}, no message)"


def _format(path: str) -> str | None:
    """The format ase.io takes ``path`` for (None when it cannot tell)."""
    from ase.io.formats import filetype

    try:
        return filetype(path)
    except Exception:  # unknown or empty files
        return None


def cif_problem(path: str) -> str | None:
    """What keeps ase.io from reading a CIF, in words, or None when none of these: no
    ``data_`` block header before the first item (what a CIF starts with), no data
    block, or no block with atom sites (``_atom_site_fract_x/y/z`` or
    ``_atom_site_Cartn_x/y/z``)."""
    from ase.io.cif import parse_cif

    with open(path, "rb") as fh:
        text = fh.read().decode("latin1")
    for number, line in enumerate(text.split("\n"), 1):  # lines as the ase reader counts them
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.lower().startswith("data_"):
            return (f"not a CIF: line {number}, {line[:40]!r}, comes before any data_ block header, "
                    "and a CIF starts with one (data_<name>)")
        break
    else:
        return "not a CIF: it has no data_ block (only blank lines or comments)"
    try:
        blocks = list(parse_cif(path))
    except Exception:  # a syntax error the reader's own message describes better
        return None
    sites = ("_atom_site_fract_x", "_atom_site_cartn_x")
    if not any(any(key in block for key in sites) for block in blocks):
        return (f"no atom sites: none of its {len(blocks)} data block(s) has an _atom_site_ loop with "
                "_atom_site_fract_x/y/z or _atom_site_Cartn_x/y/z")
    return None


def cif_site_labels(path: str) -> dict:
    """{rounded fractional position: [site labels]} of the first block of a CIF file
    ({} when it has none), to name partially occupied sites in messages."""
    from ase.io.cif import parse_cif

    try:
        block = next(iter(parse_cif(path)))
        labels = block.get("_atom_site_label")
        xyz = [block.get(f"_atom_site_fract_{a}") for a in "xyz"]
    except Exception:  # an unusual CIF: the message falls back to positions
        return {}
    if labels is None or any(c is None for c in xyz):
        return {}
    out: dict = {}
    for label, *frac in zip(labels, *xyz):
        out.setdefault(tuple(np.round(np.mod(np.array(frac, dtype=float), 1.0), 4)), []).append(str(label))
    return out


def species_labels(atoms: Atoms) -> np.ndarray:
    """Per-atom labels that a symmetry operation must preserve: the atomic number, and
    with collinear initial magnetic moments also the moment (atoms with different
    moments are different species to the symmetry: operations that would reverse a
    moment are not symmetries, time reversal is not used). Non-collinear moments are
    not supported in the symmetry and are ignored with a warning."""
    numbers = np.asarray(atoms.numbers)
    if not atoms.has("initial_magmoms"):
        return numbers
    moments = np.asarray(atoms.get_initial_magnetic_moments(), dtype=float)
    if moments.ndim == 2:
        if np.abs(moments).max() > 1e-8:
            warnings.warn("non-collinear initial magnetic moments are ignored by the symmetry detection "
                          "(only collinear moments enter it)", stacklevel=3)
        return numbers
    if np.abs(moments).max() < 1e-8:
        return numbers
    keys = list(zip(numbers.tolist(), np.round(moments, 3).tolist()))
    index = {k: i for i, k in enumerate(sorted(set(keys)))}
    return np.array([1000 * (index[k] + 1) + z for k, z in zip(keys, numbers.tolist())])


def magnetic_note(atoms: Atoms) -> str | None:
    """A one-line note when collinear magnetic moments enter the symmetry (else None)."""
    if not atoms.has("initial_magmoms"):
        return None
    moments = np.asarray(atoms.get_initial_magnetic_moments(), dtype=float)
    if moments.ndim != 1 or np.abs(moments).max() < 1e-8:
        return None
    values = sorted(set(np.round(moments, 3).tolist()))
    return ("collinear initial magnetic moments " + ", ".join(f"{m:+g}" for m in values)
            + " μB enter the symmetry (atoms with different moments are different species)")


def formula(atoms: Atoms) -> str:
    """The formula as chemists write it: metals first, then the rest (ASE's ``metal``
    order: SrZrO3, not O3SrZr)."""
    return atoms.get_chemical_formula("metal")
