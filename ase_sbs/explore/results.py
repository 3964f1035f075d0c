"""What an exploration finds, as plain data: the settings, the parent, every relaxation,
the phases, and the setting's channels and targets; ``as_dict`` gives the JSON (fields
are only ever added, never renamed).

:class:`Relaxation`, :class:`ParentResult` and :class:`Phase` each have one record
format: ``todict()`` (every field but the structures, with the schema version
:data:`SCHEMA`) and ``fromdict(data, atoms)``, which validates what it reads, since
records come back from disk (the resume store) and a damaged one must be recomputed,
never believed: the schema version (a record without one is version 1, as written
before versions existed), every required field present, each field of its type
(floats finite, a JSON ``true`` no number), a few contents (a relaxation's status one of
those there are, its object finite numbers, counts positive) and the structure's atom
count equal to ``natoms``. Fields a record lacks that have defaults (added since it was
written) take their defaults; fields this version does not know are ignored. A record
that fails raises :class:`~ase_sbs.explore.store.RecordError`.
"""

from __future__ import annotations

import numbers
from dataclasses import MISSING, asdict, dataclass, field, fields
from enum import StrEnum

from ase import Atoms

from ..core.spacegroups import group_label
from ..core.structure import formula
from ..errors import SBSInputError
from .store import RecordError, finite_numbers, is_of_type, record_fields


@dataclass(frozen=True)
class ExploreSettings:
    """Settings of :func:`~ase_sbs.explore.protocol.break_symmetry` (forces in eV/Å,
    energies in eV, lengths in Å).

    Attributes:
        mode: ``seed`` (small bias annealed away) or ``field`` (λ ramped up by
            ``field_factors`` first, to cross barriers).
        cell: ``full``, ``fixed`` or ``volume`` relaxation of crystals.
        seed_force: largest bias force at the parent (its generalized force for strain).
        anneal: λ factors after the seed stage.
        fmax, release_fmax: force criteria of the biased stages and of the release.
        max_steps, parent_max_steps: step budgets per stage and for the parent.
        symprec, classify_symprec: tolerances of the parent's symmetry and of the
            classification of relaxed structures.
        energy_tol: eV/atom below which an energy change is no change.
        all_variants: relax every SBS member, not one per target.
        max_l: largest O(3) degree of global objects.
        curvature_step: finite-difference step of channel curvatures (Å).
        fold_cells: relax each target in the smallest cell its symmetry allows
            (exact); False relaxes in the whole setting cell.
    """

    mode: str = "seed"
    cell: str = "full"
    seed_force: float = 0.05
    field_factors: tuple[float, ...] = (3.0, 10.0)
    anneal: tuple[float, ...] = (0.3, 0.1)
    fmax: float = 0.01
    release_fmax: float = 5e-4
    max_steps: int = 400
    parent_max_steps: int = 1000
    symprec: float = 1e-3
    classify_symprec: float = 1e-3
    energy_tol: float = 1e-4
    all_variants: bool = False
    max_l: int = 4
    curvature_step: float = 0.01
    fold_cells: bool = True

    def validate(self) -> None:
        if self.mode not in ("seed", "field"):
            raise SBSInputError(f"mode must be 'seed' or 'field', got {self.mode!r}")
        if self.cell not in ("full", "fixed", "volume"):
            raise SBSInputError(f"cell must be 'full', 'fixed' or 'volume', got {self.cell!r}")
        for name in ("seed_force", "fmax", "release_fmax", "curvature_step", "symprec", "classify_symprec",
                     "energy_tol"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and 0 < value < float("inf")):
                raise SBSInputError(f"{_named(name)} must be a positive number, got {value!r}")
        for name in ("max_steps", "parent_max_steps"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Integral) or value < 1:
                raise SBSInputError(f"{_named(name)} must be a whole number of steps, at least 1, got {value!r}")

    @property
    def factors(self) -> list[float]:
        """λ / λ₀ of the biased stages, in order (the release follows)."""
        return [1.0] + (list(self.field_factors) if self.mode == "field" else []) + list(self.anneal)


# the command-line option of each setting it has one for (messages name both)
CLI_OPTIONS = {"release_fmax": "--fmax", "seed_force": "--seed-force", "max_steps": "--max-steps",
               "symprec": "--symprec", "mode": "--mode", "cell": "--cell"}


def _named(name: str) -> str:
    option = CLI_OPTIONS.get(name)
    return f"{name} ({option})" if option else name


@dataclass
class Relaxation:
    """One relaxation of one SBS member (seed, anneal, release; then classified).

    ``status``: ``broken`` (left the parent's symmetry), ``merged`` (stopped where an
    earlier relaxation of its level had ended: that phase, ``merged_into``), ``returned`` (back to the
    parent: stable in this channel), ``unconverged`` or ``bias_inactive`` (the object
    cannot push along any distortion here). ``atoms`` is the relaxed structure in the
    cell the relaxation ran in (the setting's cell folded by the target's translations).
    """

    target: str
    member: int
    sign: int  # +1: b_member; -1: −b_member (the opposite domain when −b is not in B)
    irreps: str
    sbs_object: list
    status: str
    energy_eV: float
    natoms: int
    spacegroup_number: int | None
    spacegroup_symbol: str | None
    point_group: str
    point_group_order: int
    ladder: dict
    strength_eV: float
    steps: dict
    converged: bool
    max_displacement_A: float
    max_strain: float = 0.0
    field_spacegroup: str | None = None
    channels: list = field(default_factory=list)
    cell_multiplication: int = 1
    key: str | None = None  # its record in the output directory: relaxations/<key>.json
    stages_converged: list = field(default_factory=list)  # per stage, in order (empty in older records)
    merged_into: str | None = None  # status merged: the key of the relaxation whose phase it reached
    atoms: Atoms | None = field(default=None, repr=False)

    @property
    def energy_per_atom(self) -> float:
        return self.energy_eV / self.natoms

    def todict(self) -> dict:
        """Its record: every field but ``atoms``, with the schema version (module docstring)."""
        return _todict(self)

    @classmethod
    def fromdict(cls, data: dict, atoms: Atoms | None = None) -> Relaxation:
        """The relaxation of a record and its structure, validated (module docstring)."""
        return _fromdict(cls, data, atoms)


@dataclass
class Phase:
    """A distinct relaxed structure below (or at) the parent: one per symmetry and energy.

    ``atoms`` and ``variants`` are in the setting's cell (the input cell at k = 0, the
    supercell otherwise); ``n_variants`` = [G : G ∩ Stab(phase)] counts domain variants
    against the parent (translational ones included in a supercell)."""

    target: str
    targets: list
    spacegroup_number: int | None
    spacegroup_symbol: str | None
    point_group: str
    energy_per_atom_eV: float
    delta_energy_per_atom_eV: float
    delta_energy_per_formula_unit_eV: float
    n_variants: int
    spontaneous: bool
    irreps: str
    lattice: list | None
    max_displacement_A: float
    steps: int
    atoms: Atoms = field(repr=False)
    variants: list = field(default_factory=list, repr=False)
    structure_file: str | None = None
    modes: dict | None = None  # symmetry-mode decomposition against the parent (ase_sbs.analysis.modes)
    cell_multiplication: int = 1
    channels: list = field(default_factory=list)
    status: str = "broken"
    relaxation_key: str | None = None  # the relaxation it was taken from (relaxations/<key>.json)
    ladder: dict = field(default_factory=dict)  # {symprec: group} of that relaxation

    @property
    def energy_per_atom(self) -> float:
        return self.energy_per_atom_eV

    @property
    def name(self) -> str:
        return group_label(self.spacegroup_number, self.spacegroup_symbol, self.point_group)

    def todict(self) -> dict:
        """Its record: every field but ``atoms`` and ``variants`` (structures, kept as
        files), with the schema version (module docstring)."""
        return _todict(self)

    @classmethod
    def fromdict(cls, data: dict, atoms: Atoms) -> Phase:
        """The phase of a record and its structure (no variants), validated (module docstring)."""
        return _fromdict(cls, data, atoms)


@dataclass
class ParentResult:
    """The parent relaxed within its own group."""

    spacegroup_number: int | None
    spacegroup_symbol: str | None
    point_group: str
    energy_eV: float
    natoms: int
    formula_units: int
    atoms: Atoms = field(repr=False)
    steps: int = 0
    force_noise_eV_A: float = 0.0  # the potential's symmetry noise at the parent (diagnostics)
    key: str | None = None  # its record in the output directory: relaxations/<key>.json

    @property
    def energy_per_atom(self) -> float:
        return self.energy_eV / self.natoms

    @property
    def name(self) -> str:
        return group_label(self.spacegroup_number, self.spacegroup_symbol, self.point_group)

    def todict(self) -> dict:
        """Its record: every field but ``atoms``, with the schema version (module docstring)."""
        return _todict(self)

    @classmethod
    def fromdict(cls, data: dict, atoms: Atoms) -> ParentResult:
        """The parent of a record and its structure, validated (module docstring)."""
        return _fromdict(cls, data, atoms)


# ----------------------------------------------------------------------------------
# records (module docstring)

SCHEMA = 1  # the version of the records todict writes; a record without one is version 1
NOT_RECORDED = ("atoms", "variants")  # structures: files of their own
RELAXATION_STATUSES = ("broken", "returned", "unconverged", "bias_inactive", "merged")


def _todict(result) -> dict:
    """A result's fields without its structures, and the schema version (JSON-ready).
    Shallow: unlike ``dataclasses.asdict`` it does not deep-copy the Atoms and the
    calculator on them."""
    return {"schema": SCHEMA, **{f.name: getattr(result, f.name) for f in fields(result)
                                 if f.name not in NOT_RECORDED}}


def _fromdict(cls, data, atoms):
    """An instance of the result type ``cls`` from its record and structure, validated
    (module docstring); :class:`~ase_sbs.explore.store.RecordError` says what is wrong."""
    name = cls.__name__
    values = record_fields(cls, data, SCHEMA, _CHECKS.get(name, {}), skip=NOT_RECORDED)
    if atoms is None:
        if next(f for f in fields(cls) if f.name == "atoms").default is MISSING:
            raise RecordError(f"a {name} record needs its structure")
    elif not isinstance(atoms, Atoms):
        raise RecordError(f"its structure is a {type(atoms).__name__}, not an ase.Atoms", structure=True)
    elif "natoms" in values and len(atoms) != values["natoms"]:
        raise RecordError(f"its structure has {len(atoms)} atoms, the record says natoms = {values['natoms']}",
                          structure=True)
    try:
        return cls(**values, atoms=atoms)
    except (TypeError, ValueError) as exc:
        raise RecordError(f"not a {name} record ({exc})") from exc


def _names(value) -> bool:
    return all(isinstance(x, str) for x in value)


def _positive(value) -> bool:
    return value >= 1


def _counted(value) -> bool:
    return value >= 0


_COMMON_CHECKS = {  # counts: positive where they divide (natoms, formula_units), else not negative
    "channels": ("a list of channel labels", _names),
    "ladder": ("{tolerance: group or null}", lambda v: all(isinstance(g, (str, type(None))) for g in v.values())),
    "natoms": ("a positive number of atoms", _positive),
    "point_group_order": ("an order (0 or more)", _counted),
    "cell_multiplication": ("a multiple (0 or more)", _counted),
}
_CHECKS = {  # contents beyond the type, by result type and field: (what it must be, test)
    "Relaxation": {
        **_COMMON_CHECKS,
        "status": ("one of " + ", ".join(RELAXATION_STATUSES), lambda v: v in RELAXATION_STATUSES),
        "sign": ("+1 or -1", lambda v: v in (1, -1)),
        "member": ("a member's index (0 or more)", _counted),
        "sbs_object": ("a list of finite numbers", finite_numbers),
        "steps": ("{stage: steps}", lambda v: all(is_of_type(n, int) and n >= 0 for n in v.values())),
        "stages_converged": ("a list of true/false", lambda v: all(is_of_type(x, bool) for x in v)),
    },
    "ParentResult": {**_COMMON_CHECKS, "formula_units": ("a positive number of formula units", _positive)},
    "Phase": {
        **_COMMON_CHECKS,
        "targets": ("a list of target names", _names),
        "lattice": ("six finite numbers", lambda v: v is None or (finite_numbers(v) and len(v) == 6)),
        "n_variants": ("a number of variants (0 or more)", _counted),
    },
}


class Verdict(StrEnum):
    """What an exploration establishes about its parent."""

    BROKEN = "broken"  # at least one phase lies below the parent
    STABLE = "stable"  # every unstable-looking channel was relaxed to convergence and none broke
    INCONCLUSIVE = "inconclusive"  # the evidence does not decide (the reasons say why)


def verdict_of(phases: list, relaxations: list, channels: list) -> tuple[Verdict, list[str]]:
    """(verdict, reasons) from the evidence: ``broken`` when a phase lies
    below the parent; otherwise ``stable`` only when every relaxation converged (a
    relaxation that ran out of steps proves nothing) and no channel has a negative
    curvature that is left unexplained: one not relaxed, one whose relaxations all returned
    (the curvature says it should not), or one whose relaxations end off the parent but
    within the energy tolerance of it (a shallow well, not resolved); else
    ``inconclusive``."""
    reasons = []
    unconverged = [r for r in relaxations if r.status == "unconverged"]
    if unconverged:
        targets = ", ".join(sorted({r.target for r in unconverged}))
        reasons.append(f"{len(unconverged)} relaxation{'s' if len(unconverged) != 1 else ''} ran out of steps "
                       f"({targets}); raise --max-steps")
    if any(p.spontaneous for p in phases):
        return Verdict.BROKEN, reasons
    for c in channels:
        if not c.unstable:
            continue
        mine = [r for r in relaxations if c.label in r.channels]
        kappa = f"{c.min_curvature:+.3f} eV/Å²"
        if not mine:
            reasons.append(f"channel {c.label} has a negative curvature ({kappa}) and was not explored")
        elif all(r.status == "returned" for r in mine):
            reasons.append(f"channel {c.label} has a negative curvature ({kappa}) but its relaxations returned to "
                           "the parent")
        elif any(r.status in ("broken", "merged") for r in mine):
            reached = {r.target for r in mine}
            gain = min((p.delta_energy_per_atom_eV for p in phases if reached & set(p.targets)), default=0.0)
            reasons.append(f"channel {c.label} has a negative curvature ({kappa}) and its relaxations end off the "
                           f"parent only {-1000 * gain:.3f} meV/atom below it, within the energy tolerance: a "
                           "shallow instability this run does not resolve")
    return (Verdict.INCONCLUSIVE if reasons else Verdict.STABLE), reasons


@dataclass
class Exploration:
    """Everything :func:`~ase_sbs.explore.protocol.break_symmetry` found.

    Attributes:
        parent: the relaxed parent.
        phases: distinct phases, lowest first.
        relaxations: every relaxation, in the order of the targets.
        potential: the potential's name.
        settings: the :class:`ExploreSettings`.
        supercell: the setting's matrix on the primitive parent (None at k = 0).
        kpoint: the k-point the channels were restricted to (None: all).
        group_order: |G|.
        channels: the setting's channels with their curvature at the parent.
        targets: the targets relaxed.
        runner: ``ase`` or ``batched``.
        reused: relaxations (and the parent) taken from the output directory.
        tree: with a cascade, the :class:`~ase_sbs.explore.cascade.Tree` of phases.
    """

    parent: ParentResult
    phases: list[Phase]
    relaxations: list[Relaxation]
    potential: str
    settings: ExploreSettings
    supercell: list | None = None
    kpoint: list | None = None
    group_order: int = 0
    channels: list = field(default_factory=list)
    targets: list = field(default_factory=list)
    runner: str = "ase"
    reused: int = 0
    tree: object = None

    @property
    def verdict(self) -> Verdict:
        """:class:`Verdict` of the parent (:func:`verdict_of`)."""
        return verdict_of(self.phases, self.relaxations, self.channels)[0]

    @property
    def verdict_reasons(self) -> list[str]:
        """Why the verdict is what it is, when it is not plain (unconverged relaxations,
        unstable channels that led nowhere)."""
        return verdict_of(self.phases, self.relaxations, self.channels)[1]

    @property
    def stable(self) -> bool:
        """True when the evidence shows the parent stable in every channel explored
        (``verdict == 'stable'``; an inconclusive run is not stable)."""
        return self.verdict == Verdict.STABLE

    @property
    def unconverged(self) -> list[Relaxation]:
        return [r for r in self.relaxations if r.status == "unconverged"]

    def as_dict(self) -> dict:
        p = self.parent
        return {
            "parent": {
                "formula": formula(p.atoms),
                "spacegroup_number": p.spacegroup_number,
                "spacegroup_symbol": p.spacegroup_symbol,
                "spacegroup": p.name,
                "point_group": p.point_group,
                "energy_per_atom_eV": p.energy_per_atom,
                "natoms": p.natoms,
                "formula_units": p.formula_units,
                "force_noise_eV_A": p.force_noise_eV_A,
                "lattice": [float(x) for x in p.atoms.cell.cellpar()] if p.atoms.pbc.all() else None,
            },
            "potential": self.potential,
            "runner": self.runner,
            "settings": asdict(self.settings),
            "supercell": self.supercell,
            "kpoint": self.kpoint,
            "group_order": self.group_order,
            "stable": self.stable,
            "verdict": str(self.verdict),
            "verdict_reasons": self.verdict_reasons,
            "channels": [c.as_dict() for c in self.channels],
            "targets": [t.as_dict() for t in self.targets],
            "phases": [{**ph.todict(), "channel": "+".join(ph.channels)} for ph in self.phases],
            "relaxations": [r.todict() for r in self.relaxations],
            "reused": self.reused,
            "tree": None if self.tree is None else self.tree.as_dict(),
        }
