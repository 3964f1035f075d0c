"""bias -> ASE: SBSCalculator, any ASE calculator plus the symmetry-breaking bias.

E = E_model(x) + E_sb(x; b, λ), with forces and stress summed; ``strength`` (λ, eV)
may change between steps (annealing). With ``symmetrize`` the forces and stress are
projected onto a subgroup, so float32 noise in the model cannot break the symmetry
further than b does.
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator, all_changes
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

from ..core.symmetrizer import Symmetrizer
from ..errors import SBSInputError
from .descriptor import BiasDescriptor, evaluate_bias


class SBSCalculator(Calculator):
    """Wrap ``calc`` and add E_sb = −λ ⟨b, D(x)⟩.

    Args:
        calc: any ASE calculator (the model).
        sbs_object: b in e3nn's basis for ``irreps``: a global object (dim,) or per-atom
            objects (natoms, dim) (a member of ``SymmetryBreakingSet.objects``).
        irreps: e3nn irreps string of b.
        strength: λ in eV (0 switches the bias off).
        symmetrize: optional :class:`Symmetrizer` applied to forces and stress.
        descriptor: a :class:`BiasDescriptor` to reuse (defaults to a fresh one).
        device: torch device of the bias (``cpu``, ``cuda``); the model runs where it runs.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, calc, sbs_object, irreps: str, strength: float = 0.0,
                 symmetrize: Symmetrizer | None = None, descriptor: BiasDescriptor | None = None,
                 device: str = "cpu", **kwargs):
        super().__init__(**kwargs)
        self.calc = calc
        self.sbs_object = np.asarray(sbs_object, dtype=np.float64)
        self.irreps = irreps
        self.descriptor = descriptor if descriptor is not None else BiasDescriptor(irreps)
        self.symmetrize = symmetrize
        self.device = device
        self._strength = float(strength)
        self.bias_results: dict = {}

    @property
    def strength(self) -> float:
        return self._strength

    @strength.setter
    def strength(self, value: float) -> None:
        if float(value) != self._strength:
            self._strength = float(value)
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
        if self._strength != 0.0:
            bias = evaluate_bias(self.atoms, self.sbs_object, self.irreps, self._strength, self.descriptor,
                                 device=self.device)
            energy, free_energy = energy + bias.energy, free_energy + bias.energy
            forces = forces + bias.forces
            stress = stress + bias.stress
            self.bias_results = {"energy": bias.energy, "forces": bias.forces, "stress": bias.stress}
        else:
            self.bias_results = {"energy": 0.0, "forces": np.zeros_like(forces), "stress": np.zeros((3, 3))}
        if self.symmetrize is not None:
            forces = self.symmetrize.forces(forces)
            stress = self.symmetrize.stress(stress)
        self.results = {"energy": float(energy), "free_energy": float(free_energy), "forces": forces}
        if periodic:
            self.results["stress"] = full_3x3_to_voigt_6_stress(stress)
