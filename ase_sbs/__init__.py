"""ase_sbs: Symmetry Breaking Sets for atomistic simulations.

Pipeline: Atoms -> Symmetry (``detect_symmetry``) -> Setting (``k0_setting``,
``supercell_setting``) -> channels and targets (``distortion_channels``,
``candidate_targets``, ``isotropy_subgroups``) -> SBS (``symmetry_breaking_set``) ->
bias (``SBSCalculator``) -> relaxations (``break_symmetry``) -> Exploration; several
potentials on one parent: ``explore_committee`` -> Committee; many parents:
``ase_sbs.screen.screen``.

Names are imported on first use, so ``import ase_sbs`` stays light.
"""

from importlib import import_module

_EXPORTS = {
    "SBSInputError": "ase_sbs.errors",
    "Symmetry": "ase_sbs.core.symmetry",
    "detect_symmetry": "ase_sbs.core.symmetry",
    "Setting": "ase_sbs.setting.setting",
    "k0_setting": "ase_sbs.setting.setting",
    "supercell_setting": "ase_sbs.setting.setting",
    "DistortionChannel": "ase_sbs.setting.channels",
    "distortion_channels": "ase_sbs.setting.channels",
    "Target": "ase_sbs.setting.isotropy",
    "candidate_targets": "ase_sbs.setting.isotropy",
    "isotropy_subgroups": "ase_sbs.setting.isotropy",
    "channel_curvature": "ase_sbs.setting.curvature",
    "SymmetryBreakingSet": "ase_sbs.sbs.sets",
    "symmetry_breaking_set": "ase_sbs.sbs.sets",
    "resolve_target": "ase_sbs.sbs.resolve",
    "SBSCalculator": "ase_sbs.bias.calculator",
    "Engine": "ase_sbs.relax.engine",
    "RelaxJob": "ase_sbs.relax.jobs",
    "Stage": "ase_sbs.relax.jobs",
    "break_symmetry": "ase_sbs.explore.protocol",
    "scan": "ase_sbs.analysis.scan",
    "ScanResult": "ase_sbs.setting.scan",
    "Exploration": "ase_sbs.explore.results",
    "Phase": "ase_sbs.explore.results",
    "Committee": "ase_sbs.explore.committee",
    "explore_committee": "ase_sbs.screen.committee",
}

__all__ = sorted(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ase_sbs' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
