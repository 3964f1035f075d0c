"""NequIP extension of ase_sbs: SBS objects inside NequIP models and training configs.

Importing it registers the data fields (``sbs_object``, ``sbs_strength``,
``sbs_displacements``, ``sbs_atom_object``) with NequIP's field registry and the
AOTInductor compile targets ``ase_sbs`` and ``batch_sbs`` (NequIP's ASE / batch inputs
plus ``sbs_object`` and ``sbs_strength``); with ase_sbs installed, NequIP's
``nequip.extension`` entry point does it whenever NequIP is imported. Config entry
points (``_target_:``):

- ``ase_sbs.nequip.SBSBiasedModel``: any NequIP model + E_sb = −λ ⟨b, D(x)⟩ inside it;
- ``ase_sbs.nequip.SBSNequIPGNNModel``: NequIP GNN conditioned on b (paper's method);
- ``ase_sbs.nequip.AttachSBS``: data transform attaching b to frames.

Packaging: ``nequip-package`` stores NequIP and e3nn code in the package but refers to
``ase_sbs`` as an external library (it must be installed where the package is loaded).
The builders, transform and calculator are imported on first use (this module is also
NequIP's extension entry point, run while NequIP itself is being imported).
"""

from . import compile_targets  # noqa: F401  (registers the compile targets and packaging)
from .compile_targets import SBS_BATCH_COMPILE_TARGET, SBS_COMPILE_TARGET
from .fields import (
    SBS_ATOM_OBJECT_KEY,
    SBS_DISPLACEMENTS_KEY,
    SBS_OBJECT_KEY,
    SBS_STRENGTH_KEY,
)

_LAZY = {
    "SBSBiasedModel": "models",
    "SBSNequIPGNNModel": "models",
    "AttachSBS": "transforms",
    "SBSNequIPCalculator": "calculator",
    "SBSBatchNequIPCalculator": "calculator",
    "BatchNequIPCalculator": "calculator",
    "load_calculator": "calculator",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AttachSBS",
    "SBSBiasedModel",
    "SBSNequIPGNNModel",
    "SBSNequIPCalculator",
    "SBSBatchNequIPCalculator",
    "BatchNequIPCalculator",
    "load_calculator",
    "SBS_COMPILE_TARGET",
    "SBS_BATCH_COMPILE_TARGET",
    "SBS_OBJECT_KEY",
    "SBS_STRENGTH_KEY",
    "SBS_DISPLACEMENTS_KEY",
    "SBS_ATOM_OBJECT_KEY",
]
