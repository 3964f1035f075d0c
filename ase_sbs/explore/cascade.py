"""Cascades: from every phase found, on down the subgroup tree, in the same setting.

A phase whose group K ⊂ G was found in a setting is itself a parent there: K acts on
the same distortion space at the phase (:meth:`~ase_sbs.setting.setting.Setting.restricted`),
its channels are K's isotypic components of that space, and their curvatures at the
phase say whether it is a local minimum in the setting (no channel unstable) or which
channels lead further down. The unstable ones are explored as at the root — their
maximal isotropy subgroups, and the coupled order parameters of their pairs — and every
phase found below the phase is explored in turn, to ``max_depth`` levels.

Nodes are the root and every distinct phase: a phase reached by several routes is one
node, with every route recorded — same energy within ``energy_tol`` and either the same
space group and cell multiplication or the same distortion up to G within
``MERGE_TOL`` Å (a relaxation inside a subgroup that ends a little off a higher-symmetry
phase is that phase; the node keeps the name of the higher symmetry).
Energies (per formula unit) and domain variants count against the
root. The lowest local minimum is the ground state in this setting: what a larger
supercell or another k-point would allow is beyond it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ase import Atoms

from ..core.symmetry import crystal_point_group_matrices, detect_symmetry
from ..setting.channels import distortion_channels
from ..setting.isotropy import coupled_targets, isotropy_subgroups
from .classify import same_phase, stabilizer
from .levels import (
    Level,
    Reference,
    Run,
    channel_curvatures,
    channel_weights,
    explore_level,
)

MERGE_TOL = 0.03  # Å


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
        explored: its unstable channels were relaxed (False at the depth limit).
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
    atoms: Atoms | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "atoms"}


@dataclass
class Tree:
    """The phases of a cascade: ``nodes[0]`` is the root; ``ground_state`` the lowest
    local minimum (None when the depth limit left every low phase unchecked)."""

    nodes: list[Node]
    ground_state: int | None
    max_depth: int

    def children(self, node_id: int) -> list[Node]:
        return [n for n in self.nodes if n.parent == node_id]

    def as_dict(self) -> dict:
        return {"max_depth": self.max_depth, "ground_state": self.ground_state,
                "nodes": [n.as_dict() for n in self.nodes]}


def _curvatures(channels) -> tuple[dict, list]:
    return ({c.label: list(c.curvature) for c in channels}, [c.label for c in channels if c.unstable])


def cascade_tree(root: Level, run: Run, max_depth: int = 3) -> Tree:
    """Grow the tree from the root level's phases (module docstring)."""
    s = run.settings
    parent = run.root
    ref = root.reference
    curv, unstable = _curvatures(root.channels)
    nodes = [Node(id=0, parent=None, name=ref.name, spacegroup_number=ref.spacegroup_number,
                  spacegroup_symbol=parent.parent.spacegroup_symbol, point_group=ref.point_group,
                  cell_multiplication=1, energy_per_atom_eV=ref.energy_per_atom, delta_energy_per_formula_unit_eV=0.0,
                  n_variants=1, depth=0, curvatures=curv, unstable=unstable, local_minimum=not unstable,
                  explored=True, atoms=parent.atoms)]
    queue = [(ph, 0, 1) for ph in root.phases if ph.spontaneous]
    while queue:
        phase, from_id, depth = queue.pop(0)
        route = {"from": from_id, "target": phase.target, "targets": phase.targets, "channels": phase.channels}
        same = next((n for n in nodes if abs(n.energy_per_atom_eV - phase.energy_per_atom_eV) < s.energy_tol
                     and ((n.spacegroup_number, n.cell_multiplication) == (phase.spacegroup_number,
                                                                           phase.cell_multiplication)
                          or same_phase(parent, n.atoms, phase.atoms, MERGE_TOL))), None)
        if same is not None:
            if all(r["from"] != from_id for r in same.routes):
                same.routes.append(route)
            continue
        node = Node(id=len(nodes), parent=from_id, name=phase.name, spacegroup_number=phase.spacegroup_number,
                    spacegroup_symbol=phase.spacegroup_symbol, point_group=phase.point_group,
                    cell_multiplication=phase.cell_multiplication, energy_per_atom_eV=phase.energy_per_atom_eV,
                    delta_energy_per_formula_unit_eV=(phase.energy_per_atom_eV - ref.energy_per_atom)
                    * run.formula_unit_atoms,
                    n_variants=phase.n_variants, depth=depth, routes=[route], modes=phase.modes, atoms=phase.atoms)
        nodes.append(node)
        K = stabilizer(parent, phase.atoms, s.classify_symprec)
        sub = parent.restricted(K, phase.atoms)
        channels, hessian = channel_curvatures(sub, distortion_channels(sub), phase.relaxation_key, run.potential, s,
                                               run.store, run.progress, run.runner)
        node.curvatures, node.unstable = _curvatures(channels)
        node.local_minimum = not node.unstable
        if not node.unstable or depth >= max_depth:
            continue
        unstable = sorted((c for c in channels if c.unstable), key=lambda c: c.min_curvature)
        targets, seen = [], set()
        for c in unstable:
            for t in isotropy_subgroups(sub, c, max_fixed_dim=None):
                if t.maximal and t.mask not in seen:
                    seen.add(t.mask)
                    targets.append(t)
        targets += [t for t in coupled_targets(sub, unstable) if t.mask not in seen]
        found = detect_symmetry(phase.atoms, symprec=s.classify_symprec)
        reference = Reference(phase.name, phase.spacegroup_number, phase.point_group,
                              len(crystal_point_group_matrices(found)), phase.energy_per_atom_eV,
                              phase.relaxation_key)
        level = explore_level(sub, channels, targets, reference, run, channel_weights(channels))
        node.explored = True
        queue += [(ph, node.id, depth + 1) for ph in level.phases if ph.spontaneous]
    minima = [n for n in nodes if n.local_minimum]
    ground = min(minima, key=lambda n: n.energy_per_atom_eV).id if minima else None
    return Tree(nodes, ground, max_depth)
