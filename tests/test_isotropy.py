"""Isotropy subgroups by the walk over fixed spaces, checked against Stokes & Hatch's
tables (every channel of Pm-3m on 2×2×2) and against the subgroup lattice of small
point groups (an independent enumeration)."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from ase.io import read

from ase_sbs import SBSInputError
from ase_sbs.core.groups import bits
from ase_sbs.setting import (
    distortion_channels,
    isotropy_subgroups,
    k0_setting,
    supercell_setting,
)

from .conftest import EXAMPLES

REFERENCE = json.loads((Path(__file__).parent / "data" / "isotropy_pm3m.json").read_text())
STAR = {"Γ": "GM", "X": "X", "M": "M", "R": "R"}


@pytest.fixture(scope="module")
def pm3m_222():
    setting = supercell_setting(read(EXAMPLES / "SrTiO3_cubic.cif"), (2, 2, 2))
    return setting, distortion_channels(setting)


def _reference(k: str, dimension: int) -> dict:
    """Stokes & Hatch: every irrep at k of this dimension -> multiset of (number, index)."""
    out = {}
    for name, e in REFERENCE["irreps"].items():
        if e["k"] != k or e["dimension"] != dimension:
            continue
        rows = [(n, i) for n, _, i in e["isotropy_1d"]] + [(n, i) for _, n, _, i in e.get("isotropy_lower", [])]
        out[name] = Counter(r for r in rows if r != (221, 1))  # the parent itself (identity irrep)
    return out


def test_every_channel_of_pm3m_on_2x2x2_has_the_isotropy_subgroups_of_stokes_and_hatch(pm3m_222):
    """All 23 channels, the 6-dimensional X and M ones included: the complete list of
    isotropy subgroups (space-group type and index [G:K], every order-parameter
    dimension) equals that of an irrep of Pm-3m at the same k with the same dimension."""
    setting, channels = pm3m_222
    assert len(channels) == 23
    matched = {}
    for c in channels:
        ours = Counter((t.spacegroup_number, t.index) for t in isotropy_subgroups(setting, c, max_fixed_dim=None))
        star = c.label.split("-")[0]
        candidates = _reference(STAR[star], c.dimension)
        hits = [name for name, ref in candidates.items() if ref == ours]
        assert hits, (c.label, sorted(ours), {k: sorted(v) for k, v in candidates.items()})
        matched[c.label] = hits
        one = sorted((t.spacegroup_number, t.index) for t in isotropy_subgroups(setting, c))
        assert all(t.fixed_dimension == 1 for t in isotropy_subgroups(setting, c))
        assert one == sorted((n, i) for name in hits[:1] for n, _, i in REFERENCE["irreps"][name]["isotropy_1d"]
                             if (n, i) != (221, 1))
    # the octahedral tilts (R4+ with Ti at the origin, R5- with Sr there) and the in-phase tilts
    tilts = [label for label, names in matched.items() if "R4+" in names]
    assert len(tilts) == 1
    by_label = {c.label: c for c in channels}
    assert sorted(t.spacegroup_symbol for t in isotropy_subgroups(setting, by_label[tilts[0]])) == [
        "I4/mcm", "Imma", "R-3c"]
    assert any({"P4/mbm", "I4/mmm", "Im-3"} == {t.spacegroup_symbol for t in isotropy_subgroups(setting, c)}
               for c in channels)
    x6 = [c for c in channels if c.label.startswith("X-d6")]
    assert x6 and all({"Pmma", "Cmcm"} <= {t.spacegroup_symbol for t in isotropy_subgroups(setting, c)} for c in x6)


def _lattice_isotropy(group, rho):
    """Isotropy subgroups from the subgroup lattice: K with dim V^K > dim V^H for every
    minimal supergroup H (characters; a vector space is no finite union of proper subspaces)."""
    chi = np.trace(rho, axis1=1, axis2=2)
    dims = {m: int(round(chi[bits(m)].mean())) for m in group.subgroups}
    return {m for m in group.subgroups
            if dims[m] > 0 and all(dims[h] < dims[m] for h in group.minimal_supergroups(m))}


@pytest.mark.parametrize("name", ["batio3", "cu_bcc", "nh3", "prism"])
def test_the_walk_finds_every_isotropy_subgroup_of_the_subgroup_lattice(name, request):
    setting = k0_setting(request.getfixturevalue(name))
    group = setting.group
    for c in distortion_channels(setting):
        V = setting.distortion_basis.T @ c.copies[0]
        rho = np.einsum("ai,gab,bj->gij", V, setting.representation, V)
        expected = {min(group.conjugates(m)) for m in _lattice_isotropy(group, rho)} - {group.full}
        found = {t.mask for t in isotropy_subgroups(setting, c, max_fixed_dim=None)}
        assert found == expected, c.label
        for t in isotropy_subgroups(setting, c, max_fixed_dim=None):
            assert t.fixed_space.shape[1] == t.fixed_dimension * c.multiplicity
            moved = np.einsum("gab,bk->gak", setting.representation[list(t.elements)],
                              setting.distortion_basis.T @ t.fixed_space)
            assert np.abs(moved - (setting.distortion_basis.T @ t.fixed_space)[None]).max() < 1e-8


def test_an_enumeration_beyond_its_limit_is_refused_naming_what_works(pm3m_222):
    setting, channels = pm3m_222
    widest = next(c for c in channels if c.label.startswith("X-d6"))
    with pytest.raises(SBSInputError, match="more than 3 classes.*--kpoint"):
        isotropy_subgroups(setting, widest, max_classes=3)


def _channel_of(setting, channels, displacement):
    q = np.concatenate([displacement.ravel(), np.zeros(6)])
    hits = [c for c in channels if np.linalg.norm(c.basis.T @ q) > 0.999 * np.linalg.norm(q)]
    assert len(hits) == 1
    return hits[0]


def test_coupled_tilts_and_polar_tilt_subgroups_match_the_tables(pm3m_222):
    """ISOTROPY's COUPLED: the antiphase ⊕ in-phase tilts (R4+ ⊕ M3+, with Sr at the
    origin R5− ⊕ M3+) give exactly the 14 coupled isotropy subgroups of the tables, Pnma
    (a⁻a⁻c⁺) among them with index 24 and four parent cells; the polar mode ⊕ the
    antiphase tilt (Γ4− ⊕ R4+) gives exactly its 14, R3c among them with index 16 and
    two cells."""
    from ase_sbs.setting.isotropy import coupled_targets

    from .test_supercell import tilt_pattern

    setting, channels = pm3m_222
    tilt = _channel_of(setting, channels, tilt_pattern(setting.atoms, np.array([0.0, 0.0, 0.05])))
    in_phase = _channel_of(setting, channels, tilt_pattern(setting.atoms, np.array([0.0, 0.0, 0.05]), in_phase=True))
    polar = next(c for c in channels if c.label == "Γ-T1u")
    coupled = [t for t in isotropy_subgroups(setting, [tilt, in_phase], max_fixed_dim=None) if t.coupled]
    ours = Counter((t.spacegroup_number, t.index, t.cell_multiplication) for t in coupled)
    table = Counter((e["number"], e["index"], e["cell_multiplication"])
                    for e in REFERENCE["coupled"]["R4+ + M3+"]["entries"])
    assert ours == table
    pnma = [t for t in coupled if t.spacegroup_number == 62]
    assert len(pnma) == 1 and pnma[0].index == 24 and pnma[0].cell_multiplication == 4
    assert pnma[0].fixed_dimension == 2 and {d for _, _, d in pnma[0].components} == {1}
    polar_tilt = [t for t in isotropy_subgroups(setting, [polar, tilt], max_fixed_dim=None) if t.coupled]
    ours = Counter((t.spacegroup_number, t.index, t.cell_multiplication) for t in polar_tilt)
    table = Counter((e["number"], e["index"], e["cell_multiplication"])
                    for e in REFERENCE["coupled"]["GM4- + R4+"]["entries"])
    assert ours == table and sum(table.values()) == 14
    r3c = [t for t in polar_tilt if t.spacegroup_number == 161]
    assert len(r3c) == 1 and (r3c[0].index, r3c[0].cell_multiplication) == (16, 2)
    # the default coupled targets: one free parameter per channel, Pnma among them
    assert 62 in {t.spacegroup_number for t in coupled_targets(setting, [tilt, in_phase])}
