"""Target resolution: the subgroup of a setting's group G that a name, a number, a
Target or explicit operations denote.

Names: Schoenflies (``C4v``) or Hermann–Mauguin (``4mm``) point groups, and for crystals
space-group symbols (``P4mm``, full or short, any spacing) or numbers (``99``). A name is
matched against the candidate subgroups, one per conjugacy class: at k = 0 every
subgroup of the point group; in a supercell setting the isotropy subgroups of its
channels (with one-dimensional order parameter) and the subgroups that keep every
translation. A name that matches several inequivalent subgroups is refused with the list.
"""

from __future__ import annotations

import re

import numpy as np

from ..core.groups import mask_of
from ..core.pointgroups import (
    SCHOENFLIES_OF_HM,
    describe_operation,
    normalize_schoenflies,
)
from ..core.spacegroups import spacegroup_number
from ..errors import SBSInputError
from ..setting.isotropy import Target, isotropy_subgroups, make_target
from ..setting.setting import Setting

_SCHOENFLIES_RE = re.compile(r"^(C\d+[hvi]?|D\d+[hd]?|S\d+|T[dh]?|O[h]?|I[h]?|C[si])$")


def generators_text(setting: Setting, mask: int) -> str:
    """The generators of a subgroup as operation names, proper rotations first."""
    mats = setting.rotations
    improper = np.linalg.det(mats) < 0
    gens = setting.group.generators(mask, improper)
    return ", ".join(describe_operation(mats[g]) + _translation_text(setting, g) for g in gens) or "E"


def _translation_text(setting: Setting, g: int) -> str:
    if setting.supercell is None or setting.translations_frac is None:
        return ""
    t = setting.translations_frac[g]
    if np.abs(t).max() < 1e-9:
        return ""
    from ..setting.kpoints import fraction

    return " + (" + ",".join(fraction(x) for x in t) + ")"


def default_candidates(setting: Setting, channels=None) -> list[Target]:
    """The subgroups names are matched against (module docstring)."""
    group = setting.group
    if setting.supercell is None:
        return [make_target(setting, min(cls)) for cls in group.conjugacy_classes_of_subgroups()]
    from ..setting.channels import distortion_channels

    channels = distortion_channels(setting) if channels is None else channels
    point_group = setting.point_group
    out = [make_target(setting, setting.lift(min(cls))) for cls in point_group.conjugacy_classes_of_subgroups()]
    seen = {t.mask for t in out}
    for c in channels:
        for t in isotropy_subgroups(setting, c, max_fixed_dim=1):
            if t.mask not in seen:
                seen.add(t.mask)
                out.append(t)
    return out


def matches(target: Target, name) -> bool:
    """True when ``name`` (a number, space-group or point-group name) names ``target``."""
    if isinstance(name, (int, np.integer)) or (isinstance(name, str) and name.strip().isdigit()):
        return target.spacegroup_number == int(name)
    text = str(name).strip()
    schoen = _schoenflies(text)
    if schoen is not None:
        return normalize_schoenflies(target.schoenflies) == schoen
    number = spacegroup_number(text)
    return number is not None and target.spacegroup_number == number


def _schoenflies(name: str) -> str | None:
    if _SCHOENFLIES_RE.match(name):
        return normalize_schoenflies(name)
    return SCHOENFLIES_OF_HM.get(name.replace(" ", ""))


def resolve_target(structure, target, candidates: list[Target] | None = None) -> int:
    """The subgroup of G that ``target`` names, as a bitmask.

    Args:
        structure: a :class:`~ase_sbs.setting.Setting`, or an ``ase.Atoms`` / Symmetry
            (its k = 0 setting: G is the point group S).
        target: a :class:`Target`, a point-group name (Schoenflies or Hermann–Mauguin),
            a space-group symbol or number (crystals), or explicit operations (an array
            of 3x3 Cartesian matrices, or indices into G).
        candidates: the subgroups a name is matched against (default: module docstring).
    """
    from ..setting.setting import k0_setting

    setting = structure if isinstance(structure, Setting) else k0_setting(structure)
    group = setting.group
    if isinstance(target, Target):
        mask = target.mask
        if mask >= 1 << group.order or not group.is_subgroup(target.elements):
            raise SBSInputError("this Target belongs to another structure; recompute candidate_targets")
        return mask
    if isinstance(target, str) and target.strip().isdigit():
        target = int(target.strip())
    if isinstance(target, (int, np.integer)):
        if not setting.periodic:
            raise SBSInputError(f"a space-group number ({target}) needs a crystal; this is a molecule")
        if not 1 <= int(target) <= 230:
            raise SBSInputError(f"space-group numbers run from 1 to 230, got {target}")
        return _unique_match(setting, target, f"space group {target}", candidates)
    if isinstance(target, str):
        name = target.strip()
        if _schoenflies(name) is not None:
            return _unique_match(setting, name, name, candidates)
        if setting.periodic:
            number = spacegroup_number(name)
            if number is not None:
                return _unique_match(setting, name, f"{name} (space group {number})", candidates)
        raise SBSInputError(
            f"unknown group name {target!r}: give a Schoenflies symbol (C4v), a Hermann–Mauguin "
            "point group (4mm)" + (", a space-group symbol (P4mm) or number (99)" if setting.periodic else "")
        )
    return _explicit_subgroup(setting, target)


def _unique_match(setting: Setting, name, what: str, candidates) -> int:
    candidates = default_candidates(setting) if candidates is None else candidates
    found = [t for t in candidates if matches(t, name)]
    if not found:
        raise SBSInputError(f"{what} is not a subgroup of the structure's symmetry {setting.parent.name()}"
                            + ("" if setting.supercell is None else " reached by a channel of this supercell"))
    if len(found) > 1:
        opts = "; ".join(f"{t.name} [{t.schoenflies}] of index {t.index}, e.g. generated by "
                         f"{generators_text(setting, t.mask)}" for t in found)
        raise SBSInputError(
            f"{what} matches {len(found)} inequivalent subgroups of {setting.parent.schoenflies}: {opts}. "
            "Pass a more specific name, a candidate_targets() entry or explicit operations instead."
        )
    return found[0].mask


def _explicit_subgroup(setting: Setting, target) -> int:
    arr = np.asarray(target)
    mats = setting.point_group_matrices
    if arr.ndim == 1 and np.issubdtype(arr.dtype, np.integer):
        idx = [int(i) for i in arr]
        if any(i < 0 or i >= setting.order for i in idx):
            raise SBSInputError(f"operation indices must lie in 0..{setting.order - 1}")
        idx = sorted(set(idx) | {0})
    else:
        try:
            arr = np.asarray(target, dtype=np.float64).reshape(-1, 3, 3)
        except (TypeError, ValueError) as exc:
            raise SBSInputError(
                "a target must be a group name, a space-group number, a Target, or an array of 3x3 matrices"
            ) from exc
        points = []
        for R in arr:
            d = np.abs(mats - R[None]).max(axis=(1, 2))
            if d.min() > 1e-4:
                raise SBSInputError(
                    f"operation {np.round(R, 4).tolist()} is not a symmetry of the structure ({setting.parent.name()})"
                )
            points.append(int(d.argmin()))
        points = sorted(set(points) | {0})
        if not setting.point_group.is_subgroup(points):
            raise SBSInputError(
                "the given operations are not closed under multiplication: they do not form a subgroup of "
                f"{setting.parent.schoenflies}; add the missing products or give a group name"
            )
        return setting.lift(mask_of(points))
    if not setting.group.is_subgroup(idx):
        raise SBSInputError(
            "the given operations are not closed under multiplication: they do not form a subgroup of "
            f"{setting.parent.schoenflies}; add the missing products or give a group name"
        )
    return mask_of(idx)
