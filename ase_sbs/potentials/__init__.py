"""Potentials: the registry of named potentials (EMT, SevenNet-0, -l3i5, -MF-0, CHGNet and its
r2SCAN weights, plugins registered through the ``ase_sbs.potentials`` entry-point group,
NequIP model files, any ASE calculator) and their batched forms for the engine."""

from .registry import Potential, get_potential, potential_name, registered_names, torch_energy

__all__ = ["Potential", "get_potential", "potential_name", "registered_names", "torch_energy"]
