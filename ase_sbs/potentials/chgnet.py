"""CHGNet (``pip install 'ase-sbs[chgnet]'``): ``chgnet`` (CHGNet 0.3.0, trained on MPtrj)
and ``chgnet-r2scan`` (its r²SCAN transfer-learned weights), both shipped in the
``chgnet`` wheel (``chgnet/pretrained/``; nothing is downloaded).

Everything here imports chgnet lazily: ``import ase_sbs`` never needs it, and a missing
package is one :class:`SBSInputError` naming the extra. chgnet itself needs
``nvidia-ml-py3`` at import (its device helper imports ``nvidia_smi``).

Units and conventions. CHGNet is an *intensive* float32 model: ``model.forward`` returns
``e`` in eV per atom, ``f`` in eV/Å and ``s`` = (1/V) ∂E/∂ε in GPa (the factor
160.21766208 eV/Å³ → GPa applied inside the model). That is ASE's sign (tensile positive,
the same as :mod:`ase.stress`), so the stress in eV/Å³ is ``s · ase.units.GPa``, as
chgnet's own ``CHGNetCalculator`` does, and the total energy is ``e · n_atoms``.

Two corrections to chgnet's own calculator, made by :class:`CHGNetASECalculator` (which
wraps it) and by the batched form alike: chgnet divides by the *signed* cell volume
a·(b×c), so on a left-handed cell (det < 0, e.g. the mirror image of a crystal) its
stress has the wrong sign; here it is multiplied by sign(det) (so the stress is
equivariant under improper operations too, as ``check-potential`` verifies). And a
structure without a periodic cell (a molecule, which chgnet cannot take) is refused in one
line instead of failing inside pymatgen with a singular lattice.

Batches: :class:`CHGNetBatched` builds one ``CrystalGraph`` per structure with the
model's own graph converter (atom graph 6 Å, bond graph 3 Å; the same graphs its ASE
calculator builds) and runs ``model.forward`` once on the list (chgnet's
``BatchedGraph``): the energies of the whole batch from one forward pass, forces and
stresses from autograd through it. CHGNet needs a periodic cell: a molecule is refused.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from ..errors import SBSInputError
from .batched import BatchedPotential, Graphs

MODELS = {"chgnet": ("0.3.0", "CHGNet 0.3.0 (MPtrj)"), "chgnet-r2scan": ("r2scan", "CHGNet r2SCAN transfer-learned")}
EXTRA = "pip install 'ase-sbs[chgnet]'"
ELEMENTS_Z = range(1, 95)  # CHGNet's atom embedding: H (1) to Pu (94)


def missing() -> str | None:
    """Why chgnet cannot be imported here (None when it can)."""
    try:
        import chgnet  # noqa: F401
        import nvidia_smi  # noqa: F401
    except ImportError as exc:
        return f"{exc.name or exc}"
    import importlib.util

    return None if importlib.util.find_spec("pymatgen") is not None else "pymatgen"


def require() -> None:
    """Refuse, in one line naming the extra, when chgnet cannot be imported."""
    why = missing()
    if why is not None:
        raise SBSInputError(f"CHGNet needs the chgnet package (missing: {why}): {EXTRA}")


def elements(name: str = "chgnet", option: str | None = None) -> frozenset:
    """The elements CHGNet's embedding covers (every Z from 1 to 94; no weights loaded)."""
    from ase.data import chemical_symbols

    return frozenset(chemical_symbols[z] for z in ELEMENTS_Z)


def weights(name: str, option: str | None = None) -> str:
    return MODELS[name][1]


@contextlib.contextmanager
def _quiet():
    """chgnet prints to stdout when it builds a model or calculator; keep stdout for
    ase-sbs's own output (a JSON on ``-``)."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def check_periodic(atoms, name: str = "CHGNet") -> None:
    """Refuse a structure without a full periodic cell (CHGNet takes crystals only)."""
    if not atoms.pbc.all() or abs(np.linalg.det(np.asarray(atoms.cell))) < 1e-9:
        raise SBSInputError(f"{name} needs a periodic crystal (a cell of three lattice vectors); "
                            f"{atoms.get_chemical_formula()} has none: use another potential (e.g. --calc 7net-0)")


class CHGNetASECalculator(Calculator):
    """chgnet's ``CHGNetCalculator`` (``chgnet``) with the stress sign right on left-handed
    cells and molecules refused (see the module docstring); energy eV, forces eV/Å,
    stress eV/Å³ (ASE's sign). ``model`` is the CHGNet model (shared with the batched form)."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "magmoms"]

    def __init__(self, chgnet, name: str = "chgnet", **kwargs):
        super().__init__(**kwargs)
        self.chgnet = chgnet
        self.model = chgnet.model
        self.label = name

    def calculate(self, atoms=None, properties=None, system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        check_periodic(self.atoms, self.label)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.chgnet.calculate(self.atoms.copy(), list(self.implemented_properties), all_changes)
        results = {k: np.array(v, dtype=float) for k, v in self.chgnet.results.items()
                   if k in self.implemented_properties}
        results["energy"] = results["free_energy"] = float(results["energy"])
        if np.linalg.det(np.asarray(self.atoms.cell)) < 0:
            results["stress"] = -results["stress"]
        self.results = results


def load(name: str, device: str, option: str | None = None):
    """A :class:`CHGNetASECalculator` (around chgnet's ``CHGNetCalculator``) for ``name``
    on ``device`` (stress in eV/Å³)."""
    if option:
        raise SBSInputError(f"{name} takes no option (got {name}:{option})")
    require()
    from ..core.irreps import default_dtype

    # the model is float32: built under float64 as the default dtype (NequIP's process
    # default) its parameters would not match chgnet's float32 graphs
    with _quiet(), default_dtype(torch.float32):
        from chgnet.model import CHGNet, CHGNetCalculator

        model = CHGNet.load(model_name=MODELS[name][0], use_device=device, verbose=False)
        return CHGNetASECalculator(CHGNetCalculator(model, use_device=device), name)


def is_chgnet(calc) -> bool:
    """True for chgnet's ASE calculator (or a subclass) and :class:`CHGNetASECalculator`."""
    chgnet_class = any((c.__module__ or "").startswith("chgnet.") for c in type(calc).__mro__)
    return (chgnet_class or isinstance(calc, CHGNetASECalculator)) \
        and hasattr(getattr(calc, "model", None), "graph_converter")


class CHGNetBatched(BatchedPotential):
    """A CHGNet model run on whole batches: one ``model.forward`` over the list of the
    batch's ``CrystalGraph`` s (built from a ``CHGNetCalculator``, whose model is shared,
    or from a model). Energies are converted from eV/atom to eV and stresses from GPa to
    eV/Å³ (same sign as ASE)."""

    cutoff = None  # the model builds its own graphs (6 Å atom graph, 3 Å bond graph)
    bytes_per_edge = 8192.0  # atom and bond graphs, angles, float32 with autograd

    def __init__(self, calc, name: str = "chgnet"):
        model = calc if hasattr(calc, "graph_converter") else getattr(calc, "model", None)
        if not hasattr(model, "graph_converter"):
            raise SBSInputError(f"{type(calc).__name__} is not a CHGNet model or calculator")
        self.model = model
        self.name = name
        self.device = next(model.parameters()).device

    def elements(self):
        return elements()

    def evaluate(self, graphs: Graphs):
        from ase import units
        from pymatgen.io.ase import AseAtomsAdaptor

        G = graphs.n_graphs
        structures = [graphs.atoms(g) for g in range(G)]
        for atoms in structures:
            check_periodic(atoms, self.name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            crystal_graphs = [self.model.graph_converter(AseAtomsAdaptor.get_structure(a)).to(self.device)
                              for a in structures]
            self.model.eval()
            out = self.model(crystal_graphs, task="efs")
        energy = out["e"].detach().to("cpu").reshape(G)
        if self.model.is_intensive:  # eV/atom -> eV, in the model's float32 as chgnet's calculator does
            energy = energy * torch.as_tensor(graphs.sizes(), dtype=energy.dtype)
        energy = energy.to(torch.float64)
        forces = torch.cat([f.detach().to("cpu", torch.float64) for f in out["f"]])
        stress = torch.stack([s.detach().to("cpu", torch.float64) for s in out["s"]]) * units.GPa
        handed = torch.sign(torch.linalg.det(graphs.cells.detach().to("cpu")))  # chgnet divides by the signed volume
        stress = stress * handed[:, None, None]
        dev = graphs.positions.device
        return energy.to(dev), forces.to(dev), stress.to(dev)
