"""bias -> ASE: the symmetry-breaking bias as an energy term of its own
(:class:`BiasCalculator`, E_sb alone), and :class:`SBSCalculator`, any ASE calculator
plus that term.

E = E_model(x) + E_sb(x; b, λ), with forces and stress summed — what ASE's
``SumCalculator([calc, BiasCalculator(...)])`` gives, periodic or not; ``strength`` (λ,
eV) may change between steps (annealing). With ``symmetrize`` the forces and stress are
projected onto a subgroup, so float32 noise in the model cannot break the symmetry
further than b does (the relaxations put the same projection on the atoms as a
constraint instead, :class:`~ase_sbs.relax.constraints.SymmetryConstraint`).

Everything is checked when the calculator is made, each with one :class:`SBSInputError`:
the model is a calculator instance; the irreps parse in e3nn (its message quoted); b is
finite and has the irreps' dimension (dim,) or (natoms, dim) for per-atom objects (the
number of atoms is checked against the structure when it is first evaluated); λ is
finite; a descriptor passed in carries b's irreps.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

from ..core.symmetrizer import Symmetrizer
from ..errors import SBSInputError
from .descriptor import BiasDescriptor, evaluate_bias


def _parsed_irreps(irreps):
    from e3nn import o3

    hint = "give e3nn irreps such as '1o', '2e' or '1o + 2e' (a SymmetryBreakingSet's .irreps)"
    try:
        parsed = o3.Irreps(irreps)
    except (ValueError, TypeError, AssertionError) as exc:
        raise SBSInputError(f"irreps {irreps!r}: e3nn cannot read it ({exc}); {hint}") from exc
    if parsed.dim == 0:
        raise SBSInputError(f"irreps {irreps!r} are empty; {hint}")
    return parsed


def _checked_calculator(calc):
    if calc is None:
        raise SBSInputError("SBSCalculator needs the model's ASE calculator (e.g. EMT()), got None")
    if isinstance(calc, type):
        raise SBSInputError(f"SBSCalculator needs a calculator instance: {calc.__name__}(), not the class")
    missing = [m for m in ("get_potential_energy", "get_forces") if not callable(getattr(calc, m, None))]
    if missing:
        raise SBSInputError(f"SBSCalculator needs an ASE calculator; {type(calc).__name__} has no "
                            f"{' or '.join(missing)}")
    return calc


def _checked_object(sbs_object, irreps: str, dim: int) -> np.ndarray:
    try:
        b = np.asarray(sbs_object, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SBSInputError(f"the SBS object is not an array of numbers ({exc})") from exc
    if b.ndim not in (1, 2) or b.shape[-1] != dim:
        raise SBSInputError(f"the SBS object has shape {b.shape}; irreps {irreps!r} have dimension {dim}: give "
                            f"({dim},) for a global object or (natoms, {dim}) for per-atom objects")
    if not np.all(np.isfinite(b)):
        raise SBSInputError("the SBS object has NaN or infinite entries; give a finite object "
                            "(a member of SymmetryBreakingSet.objects)")
    return b


def _checked_strength(value) -> float:
    try:
        strength = float(value)
    except (TypeError, ValueError) as exc:
        raise SBSInputError(f"the bias strength λ is a number in eV, got {value!r}") from exc
    if not np.isfinite(strength):
        raise SBSInputError(f"the bias strength λ must be finite (eV), got {strength}")
    return strength


class BiasCalculator(Calculator):
    """E_sb = −λ ⟨b, D(x)⟩ alone (eV, eV/Å, eV/Å³ in ASE's sign), an ASE calculator to
    compose with a model (ASE's ``SumCalculator``). Arguments and checks as
    :class:`SBSCalculator`'s, without the model."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, sbs_object, irreps: str, strength: float = 0.0, descriptor: BiasDescriptor | None = None,
                 device: str = "cpu", **kwargs):
        super().__init__(**kwargs)
        parsed = _parsed_irreps(irreps)
        self.sbs_object = _checked_object(sbs_object, irreps, parsed.dim)
        self.irreps = irreps
        carried = getattr(descriptor, "irreps_out", None)
        if carried is not None and carried != parsed.simplify():
            raise SBSInputError(f"the descriptor carries irreps {carried}, the SBS object {irreps!r}; pass a "
                                f"BiasDescriptor({irreps!r}) or none")
        self.descriptor = descriptor if descriptor is not None else BiasDescriptor(irreps)
        self.device = device
        self._strength = _checked_strength(strength)

    @property
    def strength(self) -> float:
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        value = _checked_strength(value)
        if value != self._strength:
            self._strength = value
            self.reset()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        if self.sbs_object.ndim == 2 and len(self.sbs_object) != len(self.atoms):
            raise SBSInputError(f"per-atom SBS objects for {len(self.sbs_object)} atoms on a structure of "
                                f"{len(self.atoms)}; use the objects of this structure's setting")
        n = len(self.atoms)
        if self._strength != 0.0:
            bias = evaluate_bias(self.atoms, self.sbs_object, self.irreps, self._strength, self.descriptor,
                                 device=self.device)
            energy, forces, stress = float(bias.energy), bias.forces, bias.stress
        else:
            energy, forces, stress = 0.0, np.zeros((n, 3)), np.zeros((3, 3))
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
        if self.atoms.pbc.all():
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)


class SBSCalculator(Calculator):
    """Wrap ``calc`` and add E_sb = −λ ⟨b, D(x)⟩.

    Args:
        calc: any ASE calculator instance (the model).
        sbs_object: b in e3nn's basis for ``irreps``, finite: a global object (dim,) or
            per-atom objects (natoms, dim) (a member of ``SymmetryBreakingSet.objects``).
        irreps: e3nn irreps string of b.
        strength: λ in eV (0 switches the bias off).
        symmetrize: optional :class:`Symmetrizer` applied to forces and stress.
        descriptor: a :class:`BiasDescriptor` to reuse (defaults to a fresh one).
        device: torch device of the bias (``cpu``, ``cuda``); the model runs where it runs.

    Raises:
        SBSInputError: at construction, for a missing or non-calculator model, irreps e3nn
            cannot read, an object of the wrong shape or with NaN/inf entries, a non-finite
            strength, or a descriptor of other irreps; at the first evaluation, per-atom
            objects for another number of atoms.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, calc, sbs_object, irreps: str, strength: float = 0.0,
                 symmetrize: Symmetrizer | None = None, descriptor: BiasDescriptor | None = None,
                 device: str = "cpu", **kwargs):
        super().__init__(**kwargs)
        self.calc = _checked_calculator(calc)
        self.bias = BiasCalculator(sbs_object, irreps, strength, descriptor, device)
        self.symmetrize = symmetrize
        self.bias_results: dict = {}

    sbs_object = property(lambda self: self.bias.sbs_object)
    irreps = property(lambda self: self.bias.irreps)
    descriptor = property(lambda self: self.bias.descriptor)
    device = property(lambda self: self.bias.device)

    @property
    def strength(self) -> float:
        return self.bias.strength

    @strength.setter
    def strength(self, value: float) -> None:
        before = self.bias.strength
        self.bias.strength = value
        if self.bias.strength != before:
            self.reset()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        periodic = bool(self.atoms.pbc.all())
        model = self.atoms.copy()
        model.calc = self.calc
        energy = model.get_potential_energy()
        forces = model.get_forces()
        stress = voigt_6_to_full_3x3_stress(model.get_stress()) if periodic else np.zeros((3, 3))
        for name, value in (("energy", energy), ("forces", forces), ("stress", stress)):
            if not np.all(np.isfinite(value)):
                raise SBSInputError(
                    f"the calculator {type(self.calc).__name__} returned a non-finite {name} "
                    "(NaN or infinity); check the structure and the potential"
                )
        free_energy = float(getattr(self.calc, "results", {}).get("free_energy", energy))
        term = self.atoms.copy()
        term.calc = self.bias
        b_energy, b_forces = term.get_potential_energy(), term.get_forces()
        b_stress = voigt_6_to_full_3x3_stress(term.get_stress()) if periodic else np.zeros((3, 3))
        self.bias_results = {"energy": b_energy, "forces": b_forces, "stress": b_stress}
        energy, free_energy = energy + b_energy, free_energy + b_energy
        forces, stress = forces + b_forces, stress + b_stress
        if self.symmetrize is not None:
            forces = self.symmetrize.forces(forces)
            stress = self.symmetrize.stress(stress)
        self.results = {"energy": float(energy), "free_energy": float(free_energy), "forces": forces}
        if periodic:
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
