"""The exploration: settings, targets and plans, the protocol (parent, seed, anneal,
release, classify), the store that makes it resumable, phases and their variants."""

from .protocol import break_symmetry
from .results import Exploration, ExploreSettings, ParentResult, Phase, Relaxation

__all__ = ["break_symmetry", "Exploration", "ExploreSettings", "ParentResult", "Phase", "Relaxation"]
