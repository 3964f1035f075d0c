"""AOTInductor compile targets ``ase_sbs`` and ``batch_sbs`` (NequIP's ASE / batch inputs
plus ``sbs_object`` and ``sbs_strength``), and packaging of ``ase_sbs`` as an external
library. Light on purpose: it runs when NequIP loads its extensions."""

import torch
from nequip.scripts._compile_utils import (
    ASE_OUTPUTS,
    BATCH_INPUTS,
    PAIR_NEQUIP_INPUTS,
    batched_data_settings,
    register_compile_targets,
    single_frame_batch_map_settings,
    single_frame_data_settings,
)
from nequip.scripts._package_utils import register_libraries_as_external_for_packaging

from ..errors import SBSInputError
from .fields import SBS_OBJECT_KEY, SBS_STRENGTH_KEY

SBS_COMPILE_TARGET = "ase_sbs"
SBS_BATCH_COMPILE_TARGET = "batch_sbs"


def _with_sbs_fields(data):
    if SBS_OBJECT_KEY not in data:
        raise SBSInputError(
            f"compiling for the {SBS_COMPILE_TARGET}/{SBS_BATCH_COMPILE_TARGET} targets needs example data with "
            f"`{SBS_OBJECT_KEY}`: train with ase_sbs.nequip.AttachSBS in the dataset transforms, or compile with "
            "--target ase (b and λ fixed)"
        )
    if SBS_STRENGTH_KEY not in data:
        b = data[SBS_OBJECT_KEY]
        data[SBS_STRENGTH_KEY] = torch.zeros((b.shape[0], 1), dtype=b.dtype, device=b.device)
    return data


def _sbs_data_settings(data):
    return _with_sbs_fields(single_frame_data_settings(data))


def _sbs_batched_data_settings(data):
    return batched_data_settings(_with_sbs_fields(data))


def _all_frames(batch_map):
    return batch_map


register_compile_targets({
    SBS_COMPILE_TARGET: {
        "input": PAIR_NEQUIP_INPUTS + [SBS_OBJECT_KEY, SBS_STRENGTH_KEY],
        "output": ASE_OUTPUTS,
        "batch_map_settings": single_frame_batch_map_settings,
        "data_settings": _sbs_data_settings,
    },
    # batched frames, each with its own b and λ (for batched relaxation engines)
    SBS_BATCH_COMPILE_TARGET: {
        "input": BATCH_INPUTS + [SBS_OBJECT_KEY, SBS_STRENGTH_KEY],
        "output": ASE_OUTPUTS,
        "batch_map_settings": _all_frames,
        "data_settings": _sbs_batched_data_settings,
    },
})

# nequip-package stores NequIP and e3nn code in the package; ase_sbs (which imports ase,
# spglib, pymatgen) is referred to as an installed library
register_libraries_as_external_for_packaging(extern_modules=["ase_sbs"])
