"""What ``ase-sbs potentials`` lists: every registered name, built-in and plugin, whether
it is installed here, the elements it covers, whether it batches and its source.

Nothing heavy is loaded to fill the table: installation is an import check (chgnet and
the ``nvidia_smi`` module it needs, a plugin's entry point), SevenNet's elements come
from its checkpoint's config (a small file in the wheel, read once per process), CHGNet's
from its embedding's range (H to Pu). Only a plugin that declares neither its elements
nor whether it batches is loaded (once, on the CPU) to find out.
"""

from __future__ import annotations

import warnings

from ase.data import atomic_numbers

from .registry import Potential, builtin_specs, plugin_specs

SHOWN_ELEMENTS = 6  # symbols printed before the ellipsis


def _row(spec, option, shadowed: bool = False) -> dict:
    row = {"name": spec.full_name(option), "kind": "plugin" if spec.plugin else "built-in",
           "package": spec.package, "entry_point": spec.plugin, "installed": False, "why_not": None,
           "elements": None, "batches": spec.batches, "source": spec.source(option)}
    if shadowed:
        row["why_not"] = "shadowed: a built-in potential has this name"
        return row
    why = spec.missing()
    if why:
        row["why_not"] = why
        return row
    row["installed"] = True
    try:
        elements = spec.elements(option) if spec.elements is not None else None
        if spec.factory is not None:
            from .plugins import declared

            declared_batches = declared(spec.factory(), "batches")
            row["batches"] = None if declared_batches is None else bool(declared_batches)
        if elements is None and spec.plugin is not None or row["batches"] is None:
            elements, row["batches"] = _loaded(spec, option, elements)
    except Exception as exc:  # listing goes on; the row says what failed
        row["installed"] = False
        row["why_not"] = f"{type(exc).__name__}: {exc}"
        return row
    row["elements"] = None if elements is None else sorted(elements, key=lambda s: atomic_numbers.get(s, 999))
    return row


def _loaded(spec, option, elements):
    """(elements, batches) of a plugin, learned by loading it on the CPU."""
    from .batched import batched_potential

    pot = spec.build("cpu", option)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = bool(batched_potential(pot).batched)
    if elements is None and isinstance(pot, Potential):
        elements = pot.elements
    return elements, batches


def potential_rows() -> list[dict]:
    """One row per name ``--calc`` takes (a multi-fidelity potential once per fidelity):
    name, kind (built-in or plugin), package, entry_point, installed, why_not, elements
    (symbols by atomic number; None: unknown), batches (None: unknown), source."""
    rows = []
    for spec in builtin_specs().values():
        options = spec.options if spec.options and spec.needs_option else (None,)
        rows += [_row(spec, o) for o in options]
    shadowed: dict = {}
    for spec in plugin_specs(shadowed).values():
        options = _plugin_options(spec)
        rows += [_row(spec, o) for o in options]
    from .plugins import GROUP

    for name, plugin in shadowed.items():
        rows.append({"name": name, "kind": "plugin", "package": plugin.distribution, "entry_point": plugin.value,
                     "installed": False, "why_not": f"shadowed: a built-in potential is named {name} ({GROUP})",
                     "elements": None, "batches": None, "source": f"{plugin.distribution} {plugin.version}"})
    return rows


def _plugin_options(spec) -> tuple:
    from .plugins import declared

    try:
        options = declared(spec.factory(), "options")
    except Exception:
        return (None,)
    return tuple(options) if options else (None,)


def describe_potentials(rows: list[dict]) -> str:
    """The table of :func:`potential_rows` as text."""

    def yes(value):
        return "?" if value is None else ("yes" if value else "no")

    def covers(row):
        el = row["elements"]
        if el is None:
            return "?" if row["installed"] else "-"
        more = " …" if len(el) > SHOWN_ELEMENTS else ""
        return f"{len(el)}: {' '.join(el[:SHOWN_ELEMENTS])}{more}"

    table = [("name", "installed", "elements", "batches", "source")]
    for r in rows:
        table.append((r["name"] + (" (plugin)" if r["kind"] == "plugin" else ""), yes(r["installed"]), covers(r),
                      yes(r["batches"]) if r["installed"] else "-", r["source"]))
    widths = [max(len(t[i]) for t in table) for i in range(len(table[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(t, widths)).rstrip() for t in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"  {r['name']}: {r['why_not']}" for r in rows if r["why_not"]]
    if notes:
        lines += ["", "not available:", *notes]
    lines += ["", "also: auto (EMT for its metals, else 7net-0), a NequIP model file (.nequip.zip, .nequip.pt2, "
              ".ckpt); plugins register through the 'ase_sbs.potentials' entry-point group"]
    return "\n".join(lines)
