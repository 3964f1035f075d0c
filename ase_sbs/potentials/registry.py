"""Named potentials: a registry of built-in names, extended by plugins, plus NequIP model
files and any ASE calculator object.

Built-in names (``ase-sbs potentials`` lists them with what is installed here), each with
the package that provides it and the weights, which ship inside that package's wheel:

- ``emt``: ase, ASE's EMT (Al, Cu, Ag, Au, Ni, Pd, Pt); not batched (the ASE runner);
- ``7net-0``: sevenn, SevenNet-0 (11Jul2024); batched;
- ``7net-l3i5``: sevenn, SevenNet-l3i5; batched;
- ``7net-mf-0:PBE``, ``7net-mf-0:R2SCAN``: sevenn, SevenNet-MF-0 at either fidelity (the
  option is required); batched, the fidelity passed to the batched model;
- ``chgnet``: chgnet (``pip install 'ase-sbs[chgnet]'``), CHGNet 0.3.0; batched;
- ``chgnet-r2scan``: chgnet, CHGNet's r2SCAN transfer-learned weights; batched.

``auto`` picks EMT when it covers every element as a metal, otherwise SevenNet-0. A name
takes an option after its first colon (``7net-mf-0:R2SCAN``; case-insensitive, as the
names). NequIP models: a package (``*.nequip.zip``), an AOTInductor-compiled model
(``*.nequip.pt2``) or a training checkpoint (``*.ckpt``). Nothing is ever downloaded:
weights come from the installed wheels.

Plugins. Any installed distribution adds names through the ``ase_sbs.potentials``
entry-point group; the entry point names a factory ``(device: str, option: str | None)
-> ASE calculator or Potential`` (:mod:`ase_sbs.potentials.plugins` documents it; the
test suite's ``tests/data/sbs_plugin_demo`` is a complete example package). That is how
ORB, MatterSim, fairchem, MACE or a lab's own model plug in by name.

MACE: ``mace-torch`` pins ``e3nn==0.4.4``, while ase_sbs itself (its symmetry-breaking
objects are e3nn irreps), NequIP ≥ 0.19 and SevenNet need e3nn ≥ 0.5, so MACE cannot be
installed in ase_sbs's environment. A MACE user keeps MACE in an environment of its own
and reaches it as an ASE calculator across processes, for example ASE's socket
calculator (``ase.calculators.socketio.SocketIOCalculator`` on the ase_sbs side, a
``SocketClient`` driving ``MACECalculator`` on the other), passed as a calculator object
through the Python API or given a name by a small plugin of their own whose factory
returns it; it then runs through the ASE runner (no batching). A MACE release that
accepts a current e3nn registers directly through the entry point.

A :class:`Potential` carries its calculator, name, the elements it covers (chemical
symbols; None: unknown), its source (package, version, weights) and optionally the
batched form it comes with. Units are ASE's throughout: eV, eV/Å, eV/Å³ (stress with
ASE's sign, σ = (1/V) ∂E/∂ε).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Callable

from ase.data import atomic_numbers

from ..core.devices import resolve_device
from ..errors import SBSInputError

EMT_METALS = ("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt")
MODEL_SUFFIXES = (".nequip.zip", ".zip", ".pt2", ".pth", ".ckpt")


@dataclass
class Potential:
    """An ASE calculator with a printable name, the elements it covers (None: unknown),
    its source (package version, weights) and, optionally, the batched form
    (:class:`~ase_sbs.potentials.batched.BatchedPotential`) that goes with it."""

    calc: object
    name: str
    elements: frozenset | None = None
    source: str = ""
    batched_form: object | None = None

    def check_covers(self, symbols) -> None:
        if self.elements is None:
            return
        missing = sorted(set(symbols) - set(self.elements))
        if missing:
            # suggest only other potentials: EMT when it covers what is missing, SevenNet-0
            # (most of the periodic table, though not every element) unless a SevenNet
            # checkpoint just failed (they share one element set), CHGNet up to Pu (Z = 94)
            others = ["emt"] if self.name != "emt" and set(missing) <= set(EMT_METALS) else []
            others += ["7net-0"] if not self.name.startswith("7net") else []
            up_to_pu = all(atomic_numbers.get(s, 999) <= 94 for s in missing)
            others += ["chgnet"] if up_to_pu and not self.name.startswith("chgnet") else []
            others.append("a NequIP model file trained on " + ("it" if len(missing) == 1 else "them"))
            choices = " or ".join([", ".join(others[:-1]), others[-1]] if len(others) > 1 else others)
            raise SBSInputError(
                f"the potential {self.name} does not cover {', '.join(missing)}; choose another with --calc: {choices}"
            )


@dataclass(frozen=True)
class PotentialSpec:
    """A name the registry resolves. ``load(device, option)`` returns an ASE calculator or
    a :class:`Potential`; ``options`` are the options it takes (empty: none; None: any
    text, a plugin's own); ``elements(option)`` the symbols it covers, found without
    loading weights (None: only known once loaded); ``batches`` whether the engine
    evaluates it in batches (None: known once loaded); ``missing()`` why it cannot load
    here (None: installed); ``weights(option)`` the weights' name; ``package`` the
    distribution providing it (its version read from the installed metadata). A plugin's
    spec loads nothing until it is used: its declared ``elements``, ``batches``,
    ``weights`` and ``options`` are read from the factory then (:mod:`.plugins`)."""

    name: str
    package: str
    load: Callable
    weights: Callable = field(default=lambda option: "")
    options: tuple | None = ()
    elements: Callable | None = None
    batches: bool | None = None
    missing: Callable = field(default=lambda: None)
    aliases: tuple = ()
    plugin: str | None = None  # the entry point's target (module:attr) of a plugin
    needs_option: bool = False
    factory: Callable | None = None  # a plugin's factory, loaded (its module imported) when called

    def option(self, option: str | None) -> str | None:
        """``option`` in the spelling the potential uses; refused when it takes none or
        not this one."""
        if self.options is None:
            return option
        if not option:
            if self.needs_option:
                raise SBSInputError(f"{self.name} needs an option: " + " or ".join(f"{self.name}:{o}"
                                                                                   for o in self.options))
            return None
        if not self.options:
            raise SBSInputError(f"{self.name} takes no option (got {self.name}:{option})")
        match = [o for o in self.options if o.lower() == option.lower()]
        if not match:
            raise SBSInputError(f"{self.name}: unknown option {option!r}; use "
                                + " or ".join(f"{self.name}:{o}" for o in self.options))
        return match[0]

    def full_name(self, option: str | None) -> str:
        return f"{self.name}:{option}" if option else self.name

    def source(self, option: str | None = None) -> str:
        """``package version, weights``."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            text = f"{self.package} {version(self.package)}"
        except PackageNotFoundError:
            text = f"{self.package} (not installed)"
        w = self.weights(option)
        return f"{text}, {w}" if w else text

    def build(self, device: str, option: str | None) -> Potential:
        """Load it on ``device`` (resolved) as a :class:`Potential` named by its full name."""
        option = self.option(option)
        why = self.missing()
        if why:
            raise SBSInputError(f"{self.full_name(option)} cannot be loaded here: {why}")
        try:
            made = self.load(device, option)
        except SBSInputError:
            raise
        except Exception as exc:
            if self.plugin is None:
                raise
            raise SBSInputError(f"the plugin potential {self.name} ({self.plugin}, from {self.package}) failed to "
                                f"load: {type(exc).__name__}: {exc}") from exc
        name, source = self.full_name(option), self.source(option)
        elements = self.elements(option) if self.elements is not None else None
        elements = frozenset(elements) if elements is not None else None
        if isinstance(made, Potential):  # named as --calc names it (results are tagged with that name)
            made.name = name
            made.source = made.source or source
            made.elements = made.elements if made.elements is not None else elements
            return made
        if not (hasattr(made, "get_potential_energy") or hasattr(made, "calculate")):
            raise SBSInputError(f"the potential {self.name} ({self.plugin or self.package}) returned "
                                f"{type(made).__name__}, neither an ASE calculator nor a Potential")
        return Potential(made, name, elements, source)


def _emt(device: str, option: str | None):
    from ase.calculators.emt import EMT

    return EMT()


def _sevennet_spec(name: str, aliases: tuple) -> PotentialSpec:
    from . import sevennet

    fidelities = sevennet.CHECKPOINTS[name][2]
    return PotentialSpec(
        name, "sevenn", lambda device, option: sevennet.load(name, device, option),
        weights=lambda option: sevennet.weights(name, option), options=fidelities,
        elements=lambda option: sevennet.elements(name, option), batches=True, aliases=aliases,
        missing=lambda: _missing_checkpoint(name), needs_option=bool(fidelities))


def _missing_checkpoint(name: str) -> str | None:
    from . import sevennet

    try:
        sevennet.checkpoint_path(name)
    except SBSInputError as exc:
        return str(exc)
    return None


def _chgnet_spec(name: str) -> PotentialSpec:
    from . import chgnet

    def missing():
        why = chgnet.missing()
        return None if why is None else f"chgnet is not installed (missing: {why}); {chgnet.EXTRA}"

    return PotentialSpec(name, "chgnet", lambda device, option: chgnet.load(name, device, option),
                         weights=lambda option: chgnet.weights(name), elements=lambda option: chgnet.elements(),
                         batches=True, missing=missing)


def builtin_specs() -> dict[str, PotentialSpec]:
    """The built-in names (see the module docstring), by name."""
    specs = [
        PotentialSpec("emt", "ase", _emt, weights=lambda option: "EMT (Jacobsen et al.)",
                      elements=lambda option: frozenset(EMT_METALS), batches=False),
        _sevennet_spec("7net-0", ("sevennet-0", "7net-0_11jul2024", "sevennet-0_11jul2024")),
        _sevennet_spec("7net-l3i5", ("sevennet-l3i5",)),
        _sevennet_spec("7net-mf-0", ("sevennet-mf-0",)),
        _chgnet_spec("chgnet"),
        _chgnet_spec("chgnet-r2scan"),
    ]
    return {s.name: s for s in specs}


def plugin_specs(shadowed: dict | None = None) -> dict[str, PotentialSpec]:
    """The potentials the installed plugins register (:mod:`.plugins`), by name; names
    a built-in already takes are left out (put in ``shadowed`` when given)."""
    from .plugins import declared, discover

    builtin = builtin_specs()
    taken = set(builtin) | {a for s in builtin.values() for a in s.aliases} | {"auto"}
    out = {}
    for name, plugin in discover().items():
        if name in taken:
            if shadowed is not None:
                shadowed[name] = plugin
            continue

        def load(device, option, plugin=plugin):
            return plugin.factory()(device, option)

        def elements(option, plugin=plugin):
            value = declared(plugin.factory(), "elements", option)
            return None if value is None else frozenset(value)

        def weights(option, plugin=plugin):
            try:
                return str(declared(plugin.factory(), "weights") or "")
            except Exception:  # a plugin that does not load says so through missing()
                return ""

        def missing(plugin=plugin):
            try:
                plugin.factory()
            except Exception as exc:  # a plugin whose module does not import
                return f"the entry point {plugin.value} does not load ({type(exc).__name__}: {exc})"
            return None

        out[name] = PotentialSpec(name, plugin.distribution, load, weights=weights, options=None,
                                  elements=elements, missing=missing, plugin=plugin.value, factory=plugin.factory)
    return out


def lookup(name: str) -> tuple[PotentialSpec | None, str | None]:
    """The spec a registered ``name`` (``NAME`` or ``NAME:OPTION``, any case) resolves to
    and its option; (None, None) when no built-in or plugin has that name."""
    key = name.strip().lower()
    base, sep, option = name.strip().partition(":")
    option = option.strip() or None if sep else None
    for specs in (builtin_specs, plugin_specs):
        table = specs()
        by_name = {**{a: s for s in table.values() for a in s.aliases}, **table}
        if key in by_name:
            return by_name[key], None
        if sep and base.strip().lower() in by_name:
            return by_name[base.strip().lower()], option
    return None, None


def potential_name(name="auto", symbols=()) -> str:
    """The name the :class:`Potential` :func:`get_potential` returns for ``name`` and
    ``symbols`` will carry, without loading it: ``auto`` resolved by the elements, a
    registered name in its canonical spelling (``7net-mf-0:R2SCAN``), a model file's base
    name, or a calculator's class name."""
    if not isinstance(name, str):
        return type(name).__name__
    if name.strip().lower() == "auto":
        return "emt" if set(symbols) and set(symbols) <= set(EMT_METALS) else "7net-0"
    spec, option = lookup(name)
    if spec is not None:
        return spec.full_name(spec.option(option))
    return os.path.basename(name)


def registered_names() -> list[str]:
    """Every name ``--calc`` takes (options spelled out), built-ins first."""
    names = ["auto"]
    for spec in [*builtin_specs().values(), *plugin_specs().values()]:
        names += [spec.full_name(o) for o in spec.options] if spec.options and spec.needs_option else [spec.name]
    return names


def get_potential(name="auto", symbols=(), device: str = "cpu") -> Potential:
    """Resolve ``name`` to a :class:`Potential` and check it covers ``symbols``.

    ``name`` is ``auto``, a registered name (built-in or plugin, with an option after a
    colon), a NequIP model path, or an ASE calculator object (used as is).
    """
    if not isinstance(name, str):
        if isinstance(name, Potential):
            name.check_covers(set(symbols))
            return name
        if not hasattr(name, "get_potential_energy") and not hasattr(name, "calculate"):
            raise SBSInputError(f"{name!r} is neither a calculator name nor an ASE calculator")
        return Potential(name, type(name).__name__, None)
    device = resolve_device(device)
    key = potential_name(name, symbols) if name.strip().lower() == "auto" else name
    spec, option = lookup(key)
    if spec is not None:
        pot = spec.build(device, option)
    elif key.lower().endswith(MODEL_SUFFIXES):
        pot = _nequip(key, device)
    else:
        raise SBSInputError(
            f"unknown calculator {name!r}: use one of {', '.join(registered_names())} (ase-sbs potentials lists "
            "them), or a NequIP model file (.nequip.zip, .nequip.pt2, .ckpt)"
        )
    pot.check_covers(set(symbols))
    return pot


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
    return Potential(calc, os.path.basename(path), None, f"NequIP model file {os.path.abspath(path)}")


def torch_energy(calc):
    """The torch potential E(positions, cell, numbers) -> eV behind an ASE calculator, for
    exact (autograd) Hessian-vector products: eager NequIP models; None otherwise (the
    curvature then uses finite differences of forces)."""
    if not any(c.__name__ == "NequIPCalculator" for c in type(calc).__mro__):
        return None
    from ..nequip.energy import energy_function

    return energy_function(calc)
