"""An exploration's JSON (:meth:`~ase_sbs.explore.results.Exploration.as_dict`) reduced to
what a screen stores and prints: the ground state and the key-value pairs of the parent
row and of each phase row (energies per formula unit in eV)."""

from __future__ import annotations

from ..core.spacegroups import group_label


def ground_state(data: dict) -> tuple[int | None, str | None, float]:
    """(space-group number, label, ΔE per formula unit in eV) of the ground state.

    With a cascade, the tree's ground state (its lowest local minimum) when the tree
    found one; otherwise the lowest phase that breaks spontaneously (ΔE below
    ``energy_tol`` per atom), and the parent itself (ΔE = 0) when none does."""
    tree = data.get("tree")
    if tree and tree.get("ground_state") is not None:
        node = tree["nodes"][tree["ground_state"]]
        return node["spacegroup_number"], node["name"], float(node["delta_energy_per_formula_unit_eV"])
    below = [p for p in data["phases"] if p["spontaneous"]]
    if not below:
        parent = data["parent"]
        return parent["spacegroup_number"], parent["spacegroup"], 0.0
    best = min(below, key=lambda p: p["delta_energy_per_formula_unit_eV"])
    return (best["spacegroup_number"], phase_label(best), float(best["delta_energy_per_formula_unit_eV"]))


def phase_label(phase: dict) -> str | None:
    """``Fm-3m (225)`` for a phase record of the JSON (its point group without a space group)."""
    return group_label(phase["spacegroup_number"], phase["spacegroup_symbol"], phase["point_group"])


def parent_keys(data: dict) -> dict:
    """Key-value pairs of a parent row: parent_sg, ground_sg, ground_dE (eV per formula
    unit, 0 when nothing lies below the parent), n_phases, stable, potential. A group
    that is not a space group (a molecule) is left out: ase.db keys cannot be None."""
    sg, _, dE = ground_state(data)
    keys = {"parent_sg": data["parent"]["spacegroup_number"], "ground_sg": sg, "ground_dE": dE,
            "n_phases": len(data["phases"]), "stable": bool(data["stable"]), "potential": data["potential"]}
    return {k: v for k, v in keys.items() if v is not None}


def phase_keys(data: dict) -> list[dict]:
    """Key-value pairs of every phase row, in the order of the phases then of the
    cascade's deeper nodes (depth ≥ 2, whose structures travel as ``nodes``): sg, dE
    (eV per formula unit against the parent), variants, name, spontaneous, depth."""
    rows = [{"sg": p["spacegroup_number"], "dE": float(p["delta_energy_per_formula_unit_eV"]),
             "variants": int(p["n_variants"]), "name": phase_label(p), "spontaneous": bool(p["spontaneous"]),
             "depth": 1} for p in data["phases"]]
    for node in deeper_nodes(data):
        rows.append({"sg": node["spacegroup_number"], "dE": float(node["delta_energy_per_formula_unit_eV"]),
                     "variants": int(node["n_variants"]), "name": node["name"], "depth": int(node["depth"]),
                     "local_minimum": node["local_minimum"]})
    return [{k: v for k, v in r.items() if v is not None} for r in rows]


def deeper_nodes(data: dict) -> list[dict]:
    """The cascade's nodes below the first level (none without a cascade)."""
    tree = data.get("tree")
    return [n for n in tree["nodes"] if n["depth"] >= 2] if tree else []
