"""The symmetry-breaking coupling E_sb = −λ ⟨b, D(x)⟩: the equivariant descriptor, the one
energy function every consumer calls, and the ASE calculator wrapper."""

from .calculator import BiasCalculator, SBSCalculator
from .descriptor import BiasDescriptor, BiasResult, evaluate_bias, neighbour_list

__all__ = ["BiasCalculator", "BiasDescriptor", "BiasResult", "SBSCalculator", "evaluate_bias", "neighbour_list"]
