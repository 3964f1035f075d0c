"""ase_sbs: Symmetry Breaking Sets for atomistic simulations.

Pipeline: Atoms -> Symmetry (``detect_symmetry``) -> targets (``candidate_targets``)
-> SBS (``symmetry_breaking_set``) -> bias (``SBSCalculator``) -> relaxations
(``break_symmetry``).
"""

from .calculator import SBSCalculator
from .errors import SBSInputError
from .relax import Exploration, Phase, break_symmetry
from .symmetry import Symmetry, detect_symmetry
from .sbs import SymmetryBreakingSet, resolve_target, symmetry_breaking_set
from .targets import DistortionChannel, Target, candidate_targets, distortion_channels

__all__ = [
    "SBSCalculator",
    "break_symmetry",
    "Exploration",
    "Phase",
    "SBSInputError",
    "Symmetry",
    "detect_symmetry",
    "DistortionChannel",
    "Target",
    "candidate_targets",
    "distortion_channels",
    "SymmetryBreakingSet",
    "resolve_target",
    "symmetry_breaking_set",
]
__version__ = "0.1.0"
