"""Symmetry breaking sets: target resolution and the objects (global e3nn objects, or
per-atom objects when the target breaks translations), one type for both."""

from .resolve import resolve_target
from .sets import SymmetryBreakingSet, symmetry_breaking_set, target_dict

__all__ = ["SymmetryBreakingSet", "symmetry_breaking_set", "resolve_target", "target_dict"]
