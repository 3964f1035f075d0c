"""Potentials: the registry of named potentials (EMT, SevenNet-0, NequIP model files, any
ASE calculator) and their batched forms for the engine."""

from .registry import Potential, get_potential, torch_energy

__all__ = ["Potential", "get_potential", "torch_energy"]
