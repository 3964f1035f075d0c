"""An ase_sbs potential plugin: ASE's EMT with energy, forces and stress multiplied by a
factor (the option: ``--calc demo-emt:2``; 1.5 without one). Scaling changes no
stationary point, so bcc Cu still relaxes to fcc under it.

The entry point (pyproject.toml) names :func:`demo_emt`; its attributes tell
``ase-sbs potentials`` what it covers and whether it batches without loading it.
"""

from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT


class ScaledEMT(Calculator):
    """EMT times ``scale`` (eV, eV/Å, eV/Å³ like every ASE calculator)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, scale: float = 1.5, **kwargs):
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.emt = EMT()

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        a = self.atoms.copy()
        a.calc = self.emt
        self.results = {"energy": self.scale * a.get_potential_energy(), "forces": self.scale * a.get_forces()}
        self.results["free_energy"] = self.results["energy"]
        if a.pbc.all():
            self.results["stress"] = self.scale * a.get_stress()


def demo_emt(device: str, option: str | None = None) -> ScaledEMT:
    """The factory ase_sbs calls: ``device`` is ignored (EMT runs in numpy), ``option``
    the scale factor."""
    return ScaledEMT(float(option) if option else 1.5)


demo_emt.elements = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")
demo_emt.batches = False
demo_emt.weights = "EMT x scale (demo)"
