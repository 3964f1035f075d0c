"""A committee of potentials: one parent explored under each, and every potential's
ground state evaluated under every other.

Potentials p_1 … p_N explore the same parent with the same settings. Each p_i relaxes
its own parent P_i (within the parent's group) and names a structure G_i, a
:class:`Member`: its ground state when the exploration names one, else the lowest phase
it found, else its relaxed parent, with how it is known (``status``: the ground-state
status of the screen's rows, ``ground state``, ``below lowest``, ``lowest phase``,
``parent`` or ``inconclusive``). The committee relaxes every G_i under every other p_j
within G_i's own space group — forces and stress symmetrized onto the group, the cell
free, as a parent is relaxed (:func:`relax_in_group`) — and tabulates

    ΔE[i][j] = E_j(G_i relaxed under p_j) / Z(G_i) − E_j(P_j) / Z(P_j)

in eV per formula unit (Z: the formula units of the structure), against p_j's own
relaxed parent. The diagonal ΔE[j][j] is p_j's own ground-state energy, from its
exploration (not relaxed again).

Agreement. p_j ranks G_i against its own ground state by the excess
ΔE[i][j] − ΔE[j][j] (eV per formula unit): above ``tolerance``, p_j puts p_i's ground
state above its own; below −``tolerance``, p_j finds p_i's ground state lower than
anything its own exploration reached (its search missed it). The potentials agree when
every member has a structure, every G_i has the same space group, every evaluation
converged and no excess exceeds the tolerance in size; :attr:`Committee.reasons` says
where they do not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from ..core.spacegroups import group_label
from ..core.symmetrizer import Symmetrizer
from ..core.symmetry import detect_symmetry, symmetrized_atoms
from ..errors import SBSInputError
from ..relax.jobs import RelaxJob, Stage
from ..relax.runners import make_runner
from ..setting.cells import primitive_cell
from .classify import formula_units
from .results import ExploreSettings

TOLERANCE = 1e-3  # eV per formula unit: the default tolerance of the committee's comparisons


@dataclass
class Member:
    """One potential's result for the parent: the structure it compares (module
    docstring) and the energies it found, in eV per formula unit.

    Attributes:
        potential: the potential's name.
        status: how its ground state is known (module docstring).
        spacegroup_number, label: the compared structure's group (``Fm-3m (225)``; a
            molecule's point group as label, no number).
        energy_per_formula_unit_eV: the structure's energy under its own potential.
        parent_energy_per_formula_unit_eV: its own relaxed parent's energy.
        structure: the structure (None: nothing to compare, e.g. a failed exploration).
        error: why there is no result.
    """

    potential: str
    status: str | None = None
    spacegroup_number: int | None = None
    label: str | None = None
    energy_per_formula_unit_eV: float | None = None
    parent_energy_per_formula_unit_eV: float | None = None
    structure: Atoms | None = field(default=None, repr=False)
    error: str | None = None

    @property
    def delta_energy_per_formula_unit_eV(self) -> float | None:
        """Its own ground-state ΔE against its own relaxed parent (eV per formula unit)."""
        if self.energy_per_formula_unit_eV is None or self.parent_energy_per_formula_unit_eV is None:
            return None
        return self.energy_per_formula_unit_eV - self.parent_energy_per_formula_unit_eV

    def as_dict(self) -> dict:
        return {"potential": self.potential, "status": self.status, "spacegroup_number": self.spacegroup_number,
                "label": self.label, "energy_per_formula_unit_eV": self.energy_per_formula_unit_eV,
                "parent_energy_per_formula_unit_eV": self.parent_energy_per_formula_unit_eV,
                "delta_energy_per_formula_unit_eV": self.delta_energy_per_formula_unit_eV, "error": self.error,
                "natoms": None if self.structure is None else len(self.structure)}


@dataclass
class Evaluation:
    """Member ``structure_of``'s structure relaxed within its own group under the
    potential ``under``: its energy (eV per formula unit), the group it ended in (a
    structure may relax back up, e.g. to the parent's group), steps and convergence,
    or the error that stopped it."""

    structure_of: str
    under: str
    energy_per_formula_unit_eV: float | None = None
    spacegroup_number: int | None = None
    label: str | None = None
    steps: int = 0
    converged: bool = False
    error: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _group(m: Member):
    """What names a member's group: the space-group number, else (molecules) the label."""
    return m.spacegroup_number if m.spacegroup_number is not None else m.label


def relax_in_group(structures: list[Atoms], potential, settings: ExploreSettings | None = None, engine="auto",
                   engine_options: dict | None = None, device: str = "cpu") -> list[dict]:
    """Relax each structure under ``potential`` within its own group (found at
    ``settings.symprec``; forces and stress symmetrized onto it, the cell relaxed as
    ``settings.cell`` says, to ``settings.release_fmax`` eV/Å in at most
    ``settings.parent_max_steps`` steps: a parent's relaxation), each folded to its
    primitive cell first (the same energy per formula unit, fewer atoms).

    Returns one dict per structure: ``energy_per_formula_unit_eV`` (eV),
    ``spacegroup_number`` and ``label`` of the relaxed structure (at
    ``settings.classify_symprec``), ``steps``, ``converged``; all relaxations go to one
    runner call (the batched engine relaxes them together)."""
    s = settings or ExploreSettings()
    jobs = []
    for atoms in structures:
        prim, _ = primitive_cell(detect_symmetry(atoms, symprec=s.symprec))
        sym = detect_symmetry(prim, symprec=s.symprec)
        start = symmetrized_atoms(sym)
        group = Symmetrizer(sym.operations.rotations, sym.operations.permutations)
        jobs.append(RelaxJob(start, [Stage(0.0, s.release_fmax, s.parent_max_steps)], cell=s.cell,
                             symmetrizer=group))
    if not jobs:
        return []
    runner = make_runner(engine, potential, device, engine_options)
    out = []
    for res in runner.relax(jobs):
        found = detect_symmetry(res.atoms, symprec=s.classify_symprec)
        out.append({"energy_per_formula_unit_eV": float(res.energy) / formula_units(res.atoms),
                    "spacegroup_number": found.spacegroup_number,
                    "label": group_label(found.spacegroup_number, found.spacegroup_symbol, found.schoenflies),
                    "steps": int(sum(res.steps)), "converged": bool(res.converged[-1])})
    return out


def evaluate_under(members: list[Member], j: int, potential, settings: ExploreSettings | None = None,
                   engine="auto", engine_options: dict | None = None, device: str = "cpu") -> list[Evaluation]:
    """Every other member's structure relaxed within its group under member ``j``'s
    ``potential`` (:func:`relax_in_group`), as :class:`Evaluation` s."""
    others = [m for i, m in enumerate(members) if i != j and m.structure is not None]
    under = members[j].potential
    try:
        results = relax_in_group([m.structure for m in others], potential, settings, engine, engine_options, device)
    except SBSInputError as exc:
        return [Evaluation(m.potential, under, error=str(exc)) for m in others]
    return [Evaluation(m.potential, under, **r) for m, r in zip(others, results)]


@dataclass
class Committee:
    """The committee of one parent (module docstring): its members in order, every
    evaluation, the ΔE matrix (eV per formula unit; ``matrix[i][j]``: member i's
    structure under member j's potential; None where there is none) and the tolerance
    (eV per formula unit) of the agreement."""

    members: list[Member]
    evaluations: list[Evaluation]
    tolerance: float = TOLERANCE
    matrix: list[list[float | None]] = field(init=False)

    def __post_init__(self):
        n = len(self.members)
        names = [m.potential for m in self.members]
        self.matrix = [[None] * n for _ in range(n)]
        for j, m in enumerate(self.members):
            self.matrix[j][j] = m.delta_energy_per_formula_unit_eV
        for e in self.evaluations:
            i, j = names.index(e.structure_of), names.index(e.under)
            parent = self.members[j].parent_energy_per_formula_unit_eV
            if e.energy_per_formula_unit_eV is not None and parent is not None:
                self.matrix[i][j] = e.energy_per_formula_unit_eV - parent

    @property
    def potentials(self) -> list[str]:
        return [m.potential for m in self.members]

    @property
    def excess(self) -> list[list[float | None]]:
        """ΔE[i][j] − ΔE[j][j] (eV per formula unit): how far p_j puts member i's
        structure above its own ground state (0 on the diagonal)."""
        n = len(self.members)
        return [[None if self.matrix[i][j] is None or self.matrix[j][j] is None
                 else self.matrix[i][j] - self.matrix[j][j] for j in range(n)] for i in range(n)]

    @property
    def same_group(self) -> bool:
        """Every member's structure has the same group (molecules: the same label)."""
        groups = {_group(m) for m in self.members if m.structure is not None}
        return len(groups) == 1 and all(m.structure is not None for m in self.members)

    @property
    def spread(self) -> float | None:
        """The largest |excess| off the diagonal (eV per formula unit; None: no pair)."""
        values = [abs(x) for i, row in enumerate(self.excess) for j, x in enumerate(row) if i != j and x is not None]
        return max(values) if values else None

    @property
    def reasons(self) -> list[str]:
        """Where the members disagree or cannot be compared (empty: they agree)."""
        out = [f"{m.potential} has no structure to compare ({m.error or m.status})"
               for m in self.members if m.structure is None]
        compared = [m for m in self.members if m.structure is not None]
        if len({_group(m) for m in compared}) > 1:
            out.append("the ground states differ: " + ", ".join(f"{m.potential} {m.label}" for m in compared))
        for e in self.evaluations:
            if e.error is not None:
                out.append(f"{e.structure_of}'s {self._label(e.structure_of)} under {e.under}: {e.error}")
            elif not e.converged:
                out.append(f"{e.structure_of}'s {self._label(e.structure_of)} did not converge under {e.under} "
                           f"in {e.steps} steps")
        names = self.potentials
        for i, row in enumerate(self.excess):
            for j, x in enumerate(row):
                if i == j or x is None or abs(x) <= self.tolerance:
                    continue
                how = "above" if x > 0 else "below"
                missed = "" if x > 0 else " (its own exploration missed it)"
                out.append(f"{names[j]} puts {names[i]}'s {self._label(names[i])} {1000 * abs(x):.2f} meV/f.u. "
                           f"{how} its own ground state {self._label(names[j])}{missed}")
        return out

    @property
    def agree(self) -> bool:
        """The members agree (module docstring): :attr:`reasons` is empty."""
        return len(self.members) > 1 and not self.reasons

    def _label(self, potential: str) -> str:
        return str(self.members[self.potentials.index(potential)].label)

    def as_dict(self) -> dict:
        """JSON-ready: energies in eV per formula unit."""
        return {"potentials": self.potentials, "tolerance_eV_per_formula_unit": self.tolerance,
                "agree": self.agree, "same_group": self.same_group, "spread_eV_per_formula_unit": self.spread,
                "reasons": self.reasons, "members": [m.as_dict() for m in self.members],
                "delta_energy_per_formula_unit_eV": self.matrix, "excess_eV_per_formula_unit": self.excess,
                "evaluations": [e.as_dict() for e in self.evaluations]}


def member(potential: str, status: str | None, structure: Atoms | None, energy_eV: float | None,
           parent_energy_eV: float, parent_formula_units: int, spacegroup_number: int | None = None,
           label: str | None = None) -> Member:
    """A :class:`Member` from a structure with its energy (eV) under its own potential
    and the relaxed parent's energy (eV) and formula units; its group as named
    (``spacegroup_number``, ``label``: ``Fm-3m (225)``), else found at 1e-3 Å."""
    parent = float(parent_energy_eV) / parent_formula_units
    if structure is None:
        return Member(potential, status, parent_energy_per_formula_unit_eV=parent)
    if label is None:
        sym = detect_symmetry(structure)
        spacegroup_number = sym.spacegroup_number
        label = group_label(spacegroup_number, sym.spacegroup_symbol, sym.schoenflies)
    return Member(potential, status, spacegroup_number, label, float(energy_eV) / formula_units(structure), parent,
                  structure.copy())


def committee_of(members: list[Member], evaluations: list[Evaluation], tolerance: float = TOLERANCE) -> Committee:
    """The :class:`Committee` of the members and evaluations; ``tolerance`` (eV per
    formula unit) must be a non-negative number."""
    if not (isinstance(tolerance, (int, float, np.floating)) and np.isfinite(tolerance) and tolerance >= 0):
        raise SBSInputError(f"the committee tolerance is a non-negative energy in eV per formula unit, "
                            f"got {tolerance!r}")
    if len({m.potential for m in members}) != len(members):
        raise SBSInputError("a committee names each potential once: " + ", ".join(m.potential for m in members))
    return Committee(list(members), list(evaluations), float(tolerance))
