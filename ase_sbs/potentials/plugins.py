"""Potentials from other packages, found through the ``ase_sbs.potentials`` entry-point group.

A package registers a potential by naming a *factory* in its ``pyproject.toml``::

    [project.entry-points."ase_sbs.potentials"]
    my-model = "my_package.sbs:make_calculator"

and ``--calc my-model`` (or ``--calc my-model:OPTION``) then loads it, without a change in
ase_sbs. The factory is called as ``factory(device, option)``: ``device`` is ``"cpu"`` or
``"cuda[:N]"`` (already resolved), ``option`` the text after the first colon of the name
(None without one). It returns an ASE calculator (energy in eV, forces in eV/Å, stress
in eV/Å³ with ASE's sign, as every ASE calculator) or a
:class:`~ase_sbs.potentials.registry.Potential` (a calculator with the elements it
covers and, optionally, its own batched form in ``batched_form``, a
:class:`~ase_sbs.potentials.batched.BatchedPotential`).

Optional attributes of the factory describe it to ``ase-sbs potentials`` without loading
any weights: ``elements`` (chemical symbols, or a callable ``option -> symbols``),
``batches`` (bool), ``weights`` (text naming the weights) and ``options`` (the options
it takes, e.g. ``("PBE", "R2SCAN")``). Without ``elements`` (or ``batches``) the listing
calls the factory once on the CPU to find out.

Names are case-insensitive; a plugin may not take a built-in name (the built-in wins and
the listing marks the plugin as shadowed).
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "ase_sbs.potentials"


@dataclass(frozen=True)
class Plugin:
    """One entry point of the group: its name (lower case), its target ``module:attr``
    and the distribution (name, version) that provides it."""

    name: str
    value: str
    distribution: str
    version: str
    entry_point: object

    def factory(self):
        """The loaded factory (imports the plugin's module)."""
        return self.entry_point.load()


def discover() -> dict[str, Plugin]:
    """Every potential registered in the group by the installed distributions, by name
    (the first one found wins when two distributions register the same name)."""
    from importlib.metadata import entry_points

    found: dict[str, Plugin] = {}
    for ep in entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        name = ep.name.strip().lower()
        if name and name not in found:
            found[name] = Plugin(name, ep.value, getattr(dist, "name", None) or ep.value.split(":")[0].split(".")[0],
                                 getattr(dist, "version", None) or "?", ep)
    return found


def declared(factory, attribute: str, option: str | None = None):
    """The factory's optional ``attribute`` (``elements`` called with ``option`` when
    it is callable); None when the factory does not declare it."""
    value = getattr(factory, attribute, None)
    if attribute == "elements" and callable(value):
        value = value(option)
    return value
