"""Settings: a parent (crystal or molecule) in one cell, the group G acting there, its
distortion channels, their isotropy subgroups, the cells folded by kept translations,
wave vectors, and channel curvatures given a potential."""

from .cells import (
    FoldedCell,
    fold,
    fold_setting,
    folded_symmetrizer,
    primitive_cell,
    unfold,
)
from .channels import (
    DistortionChannel,
    channel_matches_kpoint,
    distortion_channels,
    distortion_representation,
)
from .curvature import channel_curvature
from .isotropy import Target, candidate_targets, isotropy_subgroups, make_target
from .kpoints import parse_kpoint, supercell_for_kpoint
from .setting import (
    STRAIN_BASIS,
    Setting,
    as_supercell_matrix,
    check_size,
    k0_setting,
    setting_for,
    supercell_setting,
)

__all__ = [
    "Setting", "k0_setting", "supercell_setting", "setting_for", "as_supercell_matrix", "check_size", "STRAIN_BASIS",
    "DistortionChannel", "distortion_channels", "distortion_representation", "channel_matches_kpoint",
    "Target", "make_target", "isotropy_subgroups", "candidate_targets",
    "FoldedCell", "fold", "fold_setting", "folded_symmetrizer", "unfold", "primitive_cell",
    "parse_kpoint", "supercell_for_kpoint", "channel_curvature",
]
