"""Cascades: from the phases found, on down the subgroup tree, in the same setting, the
most promising phase first.

A phase whose group K ⊂ G was found in a setting is itself a parent there: K acts on
the same distortion space at the phase (:meth:`~ase_sbs.setting.setting.Setting.restricted`),
its channels are K's isotypic components of that space, and their curvatures at the
phase (one symmetry-reduced Hessian, :mod:`ase_sbs.setting.curvature`) say whether it is
a local minimum in the setting (no channel unstable) or which channels lead further
down. Expanding a node explores its unstable channels as at the root — their maximal
isotropy subgroups, and the coupled order parameters of their pairs — each relaxation
starting from the node's Hessian; every phase found below it becomes a node in turn.

Order (best first). Nodes are checked lowest energy first, up to and including the
lowest local minimum (``check='all'``: every node). The unstable, unexpanded node of
lowest energy is expanded next — with ``expand='below'`` (the default) only while it lies
below the lowest local minimum found, since relaxations go downhill and the ground state
is the lowest local minimum; ``expand='all'`` expands every unstable node. A budget —
``max_depth`` levels, a number of relaxations, a wall time — stops the search early and
the tree says what it left unexplored and why.

Nodes are the root and every distinct phase: a phase reached by several routes is one
node, with every route recorded (:func:`~ase_sbs.explore.classify.one_phase`, the rule
explorations use too; the node takes the name of the more symmetric). Energies (per
formula unit) and domain variants count against the root.

Verdict. The ground state in this setting is the lowest node when its check says it is
a local minimum, or when its unstable channels were explored and found nothing below it
(a barely unstable parent whose relaxations end within ``energy_tol`` of it). When the
lowest node is unstable and unexplored (depth limit, budget), the ground state lies below
it: the tree says so, with its unstable channels, and names no ground state. What a
larger supercell or another k-point would allow is beyond the setting.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import numpy as np
from ase import Atoms

from ..core.symmetry import crystal_point_group_matrices, detect_symmetry
from ..errors import SBSInputError
from ..setting.channels import distortion_channels
from ..setting.isotropy import coupled_targets, isotropy_subgroups
from ..setting.setting import Setting
from .classify import one_phase, stabilizer
from .levels import (
    Level,
    Reference,
    Run,
    channel_curvatures,
    channel_weights,
    plan_level,
    run_levels,
)


class Check(StrEnum):
    """A node's curvature check."""

    LOCAL_MINIMUM = "local minimum"
    UNSTABLE = "unstable"
    NOT_CHECKED = "not checked"


class Expansion(StrEnum):
    """What became of a node's unstable channels."""

    EXPLORED = "explored"
    DEPTH_LIMIT = "depth limit"
    BUDGET = "budget"
    ABOVE_MINIMUM = "above the lowest local minimum"
    NONE_NEEDED = "nothing to explore"


class TreeVerdict(StrEnum):
    """What the tree says of the ground state in the setting."""

    GROUND_STATE = "ground state"  # the lowest node, a checked local minimum
    BELOW_LOWEST = "below the lowest phase"  # the lowest node is unstable and unexplored


@dataclass(frozen=True)
class CascadeBudget:
    """How far a cascade goes (module docstring).

    Attributes:
        max_depth: levels below the root.
        max_relaxations: relaxations of the whole exploration, the root level's included
            (None: no limit): no node is expanded once they are reached (one being
            expanded finishes).
        max_seconds: wall time (None: no limit), checked before each expansion.
        expand: ``below`` (nodes below the lowest local minimum) or ``all``.
        check: ``needed`` (nodes up to the lowest local minimum) or ``all``.
        width: nodes expanded together (their relaxations in one batch: a GPU fills).
    """

    max_depth: int = 3
    max_relaxations: int | None = None
    max_seconds: float | None = None
    expand: str = "below"
    check: str = "needed"
    width: int = 1

    def validate(self) -> None:
        if not isinstance(self.max_depth, (int, np.integer)) or self.max_depth < 1:
            raise SBSInputError(f"max_depth must be a positive number of levels, got {self.max_depth!r}")
        if self.expand not in ("below", "all"):
            raise SBSInputError(f"expand must be 'below' or 'all', got {self.expand!r}")
        if self.check not in ("needed", "all"):
            raise SBSInputError(f"check must be 'needed' or 'all', got {self.check!r}")
        for name in ("max_relaxations", "max_seconds"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise SBSInputError(f"{name} must be positive, got {v!r}")
        if self.width < 1:
            raise SBSInputError(f"width must be at least 1, got {self.width!r}")


@dataclass
class Node:
    """One phase of the tree (node 0 is the root parent).

    Attributes:
        id, parent: this node's index and the node it was first reached from (None for
            the root); ``routes`` lists every (node, target, channels) that reached it.
        name, spacegroup_number, spacegroup_symbol, point_group: its symmetry.
        cell_multiplication: primitive root cells in its primitive cell.
        energy_per_atom_eV, delta_energy_per_formula_unit_eV: its energy, and against
            the root.
        n_variants: domain variants against the root's group.
        depth: levels below the root.
        curvatures: {channel of its own group: eigenvalues (eV/Å²)} at the phase.
        unstable: the channels with a negative curvature.
        local_minimum: no channel unstable (None: not checked).
        explored: its unstable channels were relaxed.
        check: :class:`Check`; expansion: :class:`Expansion` (None: nothing decided).
        modes: the symmetry-mode decomposition against the root parent.
    """

    id: int
    parent: int | None
    name: str
    spacegroup_number: int | None
    spacegroup_symbol: str | None
    point_group: str
    cell_multiplication: int
    energy_per_atom_eV: float
    delta_energy_per_formula_unit_eV: float
    n_variants: int
    depth: int
    routes: list = field(default_factory=list)
    curvatures: dict = field(default_factory=dict)
    unstable: list = field(default_factory=list)
    local_minimum: bool | None = None
    explored: bool = False
    modes: dict | None = None
    check: Check = Check.NOT_CHECKED
    expansion: Expansion | None = None
    point_group_order: int = 0
    relaxation_key: str | None = None
    ladder: dict = field(default_factory=dict)
    atoms: Atoms | None = field(default=None, repr=False)

    @property
    def energy_per_atom(self) -> float:
        return self.energy_per_atom_eV

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "atoms"}
        out["check"] = str(self.check)
        out["expansion"] = None if self.expansion is None else str(self.expansion)
        return out


@dataclass
class Tree:
    """The phases of a cascade: ``nodes[0]`` is the root.

    Attributes:
        ground_state: the lowest node when it is a checked local minimum, else None.
        lowest: the lowest node found.
        lowest_local_minimum: the lowest checked local minimum (may lie above ``lowest``).
        verdict: :class:`TreeVerdict`.
        unexplored: nodes with unstable channels left unexplored, with the reason.
        relaxations: relaxations of the exploration, the root level's included (run, or
            taken from the store).
    """

    nodes: list[Node]
    ground_state: int | None
    max_depth: int
    lowest: int = 0
    lowest_local_minimum: int | None = None
    verdict: TreeVerdict = TreeVerdict.GROUND_STATE
    unexplored: list = field(default_factory=list)
    budget: CascadeBudget = field(default_factory=CascadeBudget)
    relaxations: int = 0

    def children(self, node_id: int) -> list[Node]:
        return [n for n in self.nodes if n.parent == node_id]

    def as_dict(self) -> dict:
        return {"max_depth": self.max_depth, "ground_state": self.ground_state, "lowest": self.lowest,
                "lowest_local_minimum": self.lowest_local_minimum, "verdict": str(self.verdict),
                "unexplored": self.unexplored, "budget": asdict(self.budget), "relaxations": self.relaxations,
                "nodes": [n.as_dict() for n in self.nodes]}


def _curvatures(channels) -> tuple[dict, list]:
    return ({c.label: list(c.curvature) for c in channels}, [c.label for c in channels if c.unstable])


@dataclass
class _Work:
    """A checked node's setting, channels and Hessian, kept for its expansion."""

    setting: Setting
    channels: list
    hessian: np.ndarray
    reference: Reference


def cascade_tree(root: Level, run: Run, budget: CascadeBudget | int = 3) -> Tree:
    """Grow the tree from the root level's phases (module docstring); ``budget`` is a
    :class:`CascadeBudget` or a maximum depth."""
    budget = budget if isinstance(budget, CascadeBudget) else CascadeBudget(max_depth=budget)
    budget.validate()
    t0 = time.perf_counter()
    s = run.settings
    parent = run.root
    ref = root.reference
    curv, unstable = _curvatures(root.channels)
    nodes = [Node(id=0, parent=None, name=ref.name, spacegroup_number=ref.spacegroup_number,
                  spacegroup_symbol=parent.parent.spacegroup_symbol, point_group=ref.point_group,
                  cell_multiplication=1, energy_per_atom_eV=ref.energy_per_atom, delta_energy_per_formula_unit_eV=0.0,
                  n_variants=1, depth=0, curvatures=curv, unstable=unstable, local_minimum=not unstable,
                  explored=True, check=Check.UNSTABLE if unstable else Check.LOCAL_MINIMUM,
                  expansion=Expansion.EXPLORED if unstable else Expansion.NONE_NEEDED,
                  point_group_order=ref.point_group_order, relaxation_key=ref.key, atoms=parent.atoms)]
    work: dict[int, _Work] = {}
    relaxations = len(root.relaxations)

    def add_phases(level: Level, from_id: int, depth: int) -> None:
        for phase in level.phases:
            if not phase.spontaneous:
                continue
            route = {"from": from_id, "target": phase.target, "targets": phase.targets, "channels": phase.channels}
            order = len(crystal_point_group_matrices(detect_symmetry(phase.atoms, symprec=s.classify_symprec)))
            same = next((n for n in nodes if one_phase(parent, n.atoms, n, phase.atoms, phase, s.energy_tol)), None)
            if same is not None:
                if all(r["from"] != from_id for r in same.routes):
                    same.routes.append(route)
                if same.id and order > same.point_group_order and same.check == Check.NOT_CHECKED:
                    _take_symmetry(same, phase, order)  # the more symmetric end names the phase
                continue
            nodes.append(Node(
                id=len(nodes), parent=from_id, name=phase.name, spacegroup_number=phase.spacegroup_number,
                spacegroup_symbol=phase.spacegroup_symbol, point_group=phase.point_group,
                cell_multiplication=phase.cell_multiplication, energy_per_atom_eV=phase.energy_per_atom_eV,
                delta_energy_per_formula_unit_eV=(phase.energy_per_atom_eV - ref.energy_per_atom)
                * run.formula_unit_atoms,
                n_variants=phase.n_variants, depth=depth, routes=[route], modes=phase.modes,
                point_group_order=order, relaxation_key=phase.relaxation_key, ladder=dict(phase.ladder),
                atoms=phase.atoms))

    def check(node: Node) -> None:
        K = stabilizer(parent, node.atoms, s.classify_symprec)
        sub = parent.restricted(K, node.atoms)
        channels, hessian = channel_curvatures(sub, distortion_channels(sub), node.relaxation_key, run.potential, s,
                                               run.store, run.progress, run.runner)
        node.curvatures, node.unstable = _curvatures(channels)
        node.local_minimum = not node.unstable
        node.check = Check.UNSTABLE if node.unstable else Check.LOCAL_MINIMUM
        if not node.unstable:
            node.expansion = Expansion.NONE_NEEDED
        work[node.id] = _Work(sub, channels, hessian, Reference(
            node.name, node.spacegroup_number, node.point_group, node.point_group_order, node.energy_per_atom_eV,
            node.relaxation_key))

    def lowest_minimum() -> Node | None:
        minima = [n for n in nodes if n.check == Check.LOCAL_MINIMUM]
        return min(minima, key=lambda n: n.energy_per_atom_eV) if minima else None

    add_phases(root, 0, 1)
    while True:
        for node in sorted(nodes, key=lambda n: n.energy_per_atom_eV):  # checks, lowest first
            if node.check == Check.NOT_CHECKED:
                check(node)
            if budget.check == "needed" and node.check == Check.LOCAL_MINIMUM:
                break
        best = lowest_minimum()
        candidates = []
        for n in sorted(nodes, key=lambda n: n.energy_per_atom_eV):
            if n.check != Check.UNSTABLE or n.expansion is not None:
                continue
            if n.depth >= budget.max_depth:
                n.expansion = Expansion.DEPTH_LIMIT
            elif budget.expand == "below" and best is not None and n.energy_per_atom_eV >= best.energy_per_atom_eV:
                continue  # decided at the end: a lower minimum may still turn up
            else:
                candidates.append(n)
        if not candidates:
            break
        over_time = budget.max_seconds is not None and time.perf_counter() - t0 > budget.max_seconds
        over_count = budget.max_relaxations is not None and relaxations >= budget.max_relaxations
        if over_time or over_count:
            for n in candidates:
                n.expansion = Expansion.BUDGET
            break
        chosen = candidates[: budget.width]
        planned = []
        for node in chosen:
            w = work[node.id]
            unstable_channels = sorted((c for c in w.channels if c.unstable), key=lambda c: c.min_curvature)
            targets, seen = [], set()
            for c in unstable_channels:
                for t in isotropy_subgroups(w.setting, c, max_fixed_dim=None):
                    if t.maximal and t.mask not in seen:
                        seen.add(t.mask)
                        targets.append(t)
            targets += [t for t in coupled_targets(w.setting, unstable_channels) if t.mask not in seen]
            planned.append(plan_level(w.setting, w.channels, targets, w.reference, run, channel_weights(w.channels),
                                      w.hessian))
        relaxations += sum(len(p.plans) for p in planned)
        for node, level in zip(chosen, run_levels(planned, run)):
            node.explored = True
            node.expansion = Expansion.EXPLORED
            add_phases(level, node.id, node.depth + 1)
    best = lowest_minimum()
    for n in nodes:
        if n.check == Check.UNSTABLE and n.expansion is None:
            n.expansion = Expansion.ABOVE_MINIMUM
    lowest = min(nodes, key=lambda n: n.energy_per_atom_eV)
    # the lowest node is the ground state when it is a checked local minimum, or when its
    # unstable channels were explored and led nowhere below it (nothing is lower)
    if lowest.check == Check.LOCAL_MINIMUM or lowest.expansion == Expansion.EXPLORED:
        verdict, ground = TreeVerdict.GROUND_STATE, lowest.id
    else:
        verdict, ground = TreeVerdict.BELOW_LOWEST, None
    unexplored = [{"node": n.id, "name": n.name, "reason": str(n.expansion), "unstable": list(n.unstable)}
                  for n in nodes if n.check == Check.UNSTABLE and n.expansion != Expansion.EXPLORED]
    return Tree(nodes, ground, budget.max_depth, lowest=lowest.id,
                lowest_local_minimum=None if best is None else best.id, verdict=verdict, unexplored=unexplored,
                budget=budget, relaxations=relaxations)


def _take_symmetry(node: Node, phase, order: int) -> None:
    node.name, node.spacegroup_number, node.spacegroup_symbol = phase.name, phase.spacegroup_number, \
        phase.spacegroup_symbol
    node.point_group, node.cell_multiplication, node.n_variants = phase.point_group, phase.cell_multiplication, \
        phase.n_variants
    node.point_group_order, node.relaxation_key, node.atoms, node.modes = order, phase.relaxation_key, phase.atoms, \
        phase.modes
    node.ladder = dict(phase.ladder)
