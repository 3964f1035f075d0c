"""NequIP extension of ase_sbs: SBS objects inside NequIP models and training configs.

Importing it registers the data fields (``sbs_object``, ``sbs_strength``,
``sbs_displacements``, ``sbs_atom_object``) with NequIP's field registry and the
AOTInductor compile targets ``ase_sbs`` and ``batch_sbs`` (NequIP's ASE / batch inputs
plus ``sbs_object`` and ``sbs_strength``). Config entry points (``_target_:``):

- ``ase_sbs.nequip.SBSBiasedModel``: any NequIP model + E_sb = −λ ⟨b, D(x)⟩ inside it;
- ``ase_sbs.nequip.SBSNequIPGNNModel``: NequIP GNN conditioned on b (paper's method);
- ``ase_sbs.nequip.AttachSBS``: data transform attaching b to frames.

Packaging: ``nequip-package`` stores NequIP and e3nn code in the package but refers to
``ase_sbs`` as an external library (it must be installed where the package is loaded).
"""

from ._keys import SBS_ATOM_OBJECT_KEY, SBS_DISPLACEMENTS_KEY, SBS_OBJECT_KEY, SBS_STRENGTH_KEY
from .calculator import SBS_COMPILE_TARGET, SBSNequIPCalculator
from .models import SBSBiasedModel, SBSNequIPGNNModel
from .transforms import AttachSBS


def _register_packaging() -> None:
    from nequip.scripts._package_utils import register_libraries_as_external_for_packaging

    register_libraries_as_external_for_packaging(extern_modules=["ase_sbs"])


_register_packaging()

__all__ = [
    "AttachSBS",
    "SBSBiasedModel",
    "SBSNequIPGNNModel",
    "SBSNequIPCalculator",
    "SBS_COMPILE_TARGET",
    "SBS_OBJECT_KEY",
    "SBS_STRENGTH_KEY",
    "SBS_DISPLACEMENTS_KEY",
    "SBS_ATOM_OBJECT_KEY",
]
