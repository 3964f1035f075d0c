"""Named potentials: ``emt``, ``7net-0``, NequIP model files, or any ASE calculator.

``auto`` picks ASE's EMT when it covers every element as a metal (Al, Cu, Ag, Au, Ni,
Pd, Pt), otherwise SevenNet-0, whose weights ship inside the ``sevenn`` wheel (no
download). NequIP models: a package (``*.nequip.zip``), an AOTInductor-compiled model
(``*.nequip.pt2``) or a training checkpoint (``*.ckpt``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

from ase.data import chemical_symbols

from ..core.devices import resolve_device
from ..errors import SBSInputError

EMT_METALS = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")
NAMES = ("auto", "emt", "7net-0", "sevennet-0")


@dataclass
class Potential:
    """An ASE calculator with a printable name and the elements it covers (None: unknown)."""

    calc: object
    name: str
    elements: frozenset | None = None

    def check_covers(self, symbols) -> None:
        if self.elements is None:
            return
        missing = sorted(set(symbols) - set(self.elements))
        if missing:
            # suggest only other potentials: EMT when it covers what is missing, SevenNet-0
            # (most of the periodic table, though not every element) unless it just failed
            others = ["emt"] if self.name != "emt" and set(missing) <= set(EMT_METALS) else []
            others += ["7net-0"] if self.name != "7net-0" else []
            others.append("a NequIP model file trained on " + ("it" if len(missing) == 1 else "them"))
            choices = " or ".join([", ".join(others[:-1]), others[-1]] if len(others) > 1 else others)
            raise SBSInputError(
                f"the potential {self.name} does not cover {', '.join(missing)}; choose another with --calc: {choices}"
            )


def _emt() -> Potential:
    from ase.calculators.emt import EMT

    return Potential(EMT(), "emt", frozenset(EMT_METALS))


def _sevennet(device: str) -> Potential:
    import torch

    from ..core.irreps import default_dtype

    # SevenNet-0 is a float32 model; NequIP's set_global_state() makes float64 the
    # process-wide default, and SevenNet's loader then fails comparing its constants
    with warnings.catch_warnings(), default_dtype(torch.float32):
        warnings.simplefilter("ignore")
        from sevenn.calculator import SevenNetCalculator

        calc = SevenNetCalculator("7net-0", device=device)
    species = frozenset(chemical_symbols[int(z)] for z in calc.type_map)
    return Potential(calc, "7net-0", species)


def _nequip(path: str, device: str) -> Potential:
    if not os.path.exists(path):
        raise SBSInputError(f"{path}: no such model file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from ..nequip.calculator import Float64NequIPCalculator, load_calculator

    try:
        if path.endswith(".pth"):
            calc = Float64NequIPCalculator.from_compiled_model(path, device=device)
        else:  # NequIPCalculator, or for models that take SBS inputs SBSNequIPCalculator with λ = 0
            calc = load_calculator(path, device=device)
    except Exception as exc:
        raise SBSInputError(f"{path}: cannot load it as a NequIP model ({type(exc).__name__}: {exc})") from exc
    return Potential(calc, os.path.basename(path), None)


def potential_name(name="auto", symbols=()) -> str:
    """The name the :class:`Potential` :func:`get_potential` returns for ``name`` and
    ``symbols`` will carry (``auto`` resolved by the elements), without loading it:
    ``emt``, ``7net-0``, a model file's base name, or a calculator's class name."""
    if not isinstance(name, str):
        return type(name).__name__
    key = name.lower()
    if key == "auto":
        return "emt" if set(symbols) and set(symbols) <= set(EMT_METALS) else "7net-0"
    if key in ("7net-0", "sevennet-0"):
        return "7net-0"
    if key == "emt":
        return "emt"
    return os.path.basename(name)


def get_potential(name="auto", symbols=(), device: str = "cpu") -> Potential:
    """Resolve ``name`` to a :class:`Potential` and check it covers ``symbols``.

    ``name`` is ``auto``, ``emt``, ``7net-0``, a NequIP model path, or an ASE
    calculator object (used as is).
    """
    if not isinstance(name, str):
        if not hasattr(name, "get_potential_energy") and not hasattr(name, "calculate"):
            raise SBSInputError(f"{name!r} is neither a calculator name nor an ASE calculator")
        return Potential(name, type(name).__name__, None)
    device = resolve_device(device)
    key = potential_name(name, symbols) if name.lower() == "auto" else name.lower()
    symbols = set(symbols)
    if key == "emt":
        pot = _emt()
    elif key in ("7net-0", "sevennet-0"):
        pot = _sevennet(device)
    elif key.endswith((".nequip.zip", ".zip", ".pt2", ".pth", ".ckpt")):
        pot = _nequip(name, device)
    else:
        raise SBSInputError(
            f"unknown calculator {name!r}: use one of {', '.join(NAMES)}, or a NequIP model file "
            "(.nequip.zip, .nequip.pt2, .ckpt)"
        )
    pot.check_covers(symbols)
    return pot


def torch_energy(calc):
    """The torch potential E(positions, cell, numbers) -> eV behind an ASE calculator, for
    exact (autograd) Hessian-vector products: eager NequIP models; None otherwise (the
    curvature then uses finite differences of forces)."""
    if not any(c.__name__ == "NequIPCalculator" for c in type(calc).__mro__):
        return None
    from ..nequip.energy import energy_function

    return energy_function(calc)
