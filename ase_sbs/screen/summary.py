"""An exploration's JSON (:meth:`~ase_sbs.explore.results.Exploration.as_dict`) reduced to
what a screen stores and prints: the ground state and the key-value pairs of the parent
row and of each phase row (energies per formula unit in eV)."""

from __future__ import annotations

from enum import StrEnum

from ..core.spacegroups import group_label


class GroundStatus(StrEnum):
    """How a screen's ground state is established (the parent row's ``ground_status``)."""

    GROUND_STATE = "ground state"  # a cascade's lowest phase, a checked local minimum
    BELOW_LOWEST = "below lowest"  # a cascade's lowest phase is unstable and unexplored
    LOWEST_PHASE = "lowest phase"  # no cascade: the lowest phase found (no local-minimum check)
    PARENT = "parent"  # the exploration shows the parent stable
    INCONCLUSIVE = "inconclusive"  # nothing below the parent, but the evidence does not show it stable


def ground_state(data: dict) -> tuple[int | None, str | None, float | None, GroundStatus]:
    """(space-group number, label, ΔE per formula unit in eV, status) of the ground state.

    With a cascade, the tree's ground state when the tree names one (its lowest node, a
    checked local minimum); when the lowest node is unstable and unexplored the ground
    state lies below it and none is named (None, None, None, ``below lowest``).
    Without one, the lowest phase that breaks spontaneously (ΔE below ``energy_tol`` per
    atom); the parent itself (ΔE = 0) only when the exploration shows it stable;
    nothing when it is inconclusive."""
    tree = data.get("tree")
    if tree:
        if tree.get("ground_state") is not None:
            node = tree["nodes"][tree["ground_state"]]
            return (node["spacegroup_number"], node["name"], float(node["delta_energy_per_formula_unit_eV"]),
                    GroundStatus.GROUND_STATE)
        return None, None, None, GroundStatus.BELOW_LOWEST
    below = [p for p in data["phases"] if p["spontaneous"]]
    if below:
        best = min(below, key=lambda p: p["delta_energy_per_formula_unit_eV"])
        return (best["spacegroup_number"], phase_label(best), float(best["delta_energy_per_formula_unit_eV"]),
                GroundStatus.LOWEST_PHASE)
    if data.get("verdict", "stable" if data["stable"] else "broken") == "inconclusive":
        return None, None, None, GroundStatus.INCONCLUSIVE
    parent = data["parent"]
    return parent["spacegroup_number"], parent["spacegroup"], 0.0, GroundStatus.PARENT


def lowest_phase(data: dict) -> tuple[int | None, str | None, float | None]:
    """(space-group number, label, ΔE per formula unit in eV) of the lowest structure
    found (a cascade's lowest node, else the lowest spontaneous phase; None when nothing
    lies below the parent)."""
    tree = data.get("tree")
    if tree and tree.get("lowest") is not None:
        node = tree["nodes"][tree["lowest"]]
        return node["spacegroup_number"], node["name"], float(node["delta_energy_per_formula_unit_eV"])
    below = [p for p in data["phases"] if p["spontaneous"]]
    if not below:
        return None, None, None
    best = min(below, key=lambda p: p["delta_energy_per_formula_unit_eV"])
    return best["spacegroup_number"], phase_label(best), float(best["delta_energy_per_formula_unit_eV"])


def phase_label(phase: dict) -> str | None:
    """``Fm-3m (225)`` for a phase record of the JSON (its point group without a space group)."""
    return group_label(phase["spacegroup_number"], phase["spacegroup_symbol"], phase["point_group"])


def parent_keys(data: dict) -> dict:
    """Key-value pairs of a parent row: parent_sg, ground_sg, ground_dE (eV per formula
    unit, 0 when the parent is shown stable), ground_status (:class:`GroundStatus`),
    lowest_sg and lowest_dE (the lowest structure found), n_phases, stable (the
    evidence shows the parent stable), verdict (broken, stable or inconclusive),
    potential. A value that does not exist (no ground state named, a molecule's space
    group) is left out: ase.db keys cannot be None."""
    sg, _, dE, status = ground_state(data)
    low_sg, _, low_dE = lowest_phase(data)
    keys = {"parent_sg": data["parent"]["spacegroup_number"], "ground_sg": sg, "ground_dE": dE,
            "ground_status": str(status), "lowest_sg": low_sg, "lowest_dE": low_dE,
            "n_phases": len(data["phases"]), "stable": bool(data["stable"]), "verdict": data.get("verdict"),
            "potential": data["potential"]}
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
