"""The polar phases of BaTiO3 found by `explore` with SevenNet-0, decomposed into the
cubic parent's symmetry modes, and their approximate symmetry levels."""

import numpy as np
import pytest

from ase_sbs.analysis.approx import symmetry_levels
from ase_sbs.analysis.matching import parent_symmetry
from ase_sbs.analysis.modes import BEYOND_K0, decompose
from ase_sbs.setting import distortion_channels

DIRECTIONS = {"P4mm": (0, 0, 1), "Amm2": (0, 1, 1), "R3m": (1, 1, 1)}


def phase(ex, symbol):
    return next(ph for ph in ex.phases if ph.spacegroup_symbol == symbol)


@pytest.mark.parametrize("symbol", sorted(DIRECTIONS))
def test_polar_phase_is_the_polar_channel_plus_allowed_secondary_channels(batio3_exploration, symbol):
    ex = batio3_exploration
    ph = phase(ex, symbol)
    # what explore recorded (explore.json's "modes" field)
    recorded = {m["label"]: m for m in ph.modes["modes"]}
    polar = recorded["T1u"]
    d = np.array(DIRECTIONS[symbol], dtype=float)
    d /= np.linalg.norm(d)
    assert polar["amplitude_A"] > 0.02
    # (a,0,0), (a,a,0), (a,a,a) up to the parent's symmetry (permutations and signs of axes)
    assert np.allclose(np.sort(np.abs(polar["direction"])), np.sort(d), atol=2e-3), polar["direction"]
    assert polar["direction_rank"] == 1
    assert polar["isotropy_subgroup"].startswith(symbol + " ")
    assert ph.modes["isotropy_subgroup"].startswith(symbol + " ")
    assert recorded[BEYOND_K0]["amplitude_A"] < 1e-6
    # every channel present is fixed by the phase's isotropy subgroup K (allowed by it)
    psym = parent_symmetry(ex.parent.atoms)
    dec = decompose(ph.atoms, psym, channels=distortion_channels(psym))
    K = set(dec.mode("T1u").isotropy)
    assert len(K) == {"P4mm": 8, "Amm2": 4, "R3m": 6}[symbol]
    present = [m for m in dec.modes if m.amplitude_A > 1e-4 and m.label != BEYOND_K0]
    assert "T1u" in [m.label for m in present]
    for m in present:
        assert K <= set(m.isotropy), (m.label, m.isotropy_name)
    # the polar channel carries the displacement; the others are mostly strain
    assert max(present, key=lambda m: m.displacement_A).label == "T1u"
    assert dec.total_A == pytest.approx(np.sqrt(sum(m.amplitude_A**2 for m in dec.modes)), abs=1e-12)


def test_explore_json_carries_each_phase_decomposition(batio3_exploration, tmp_path):
    import json

    from ase_sbs.core.files import write_json

    write_json(batio3_exploration.as_dict(), str(tmp_path / "explore.json"))
    data = json.loads((tmp_path / "explore.json").read_text())
    for ph in data["phases"]:
        labels = [m["label"] for m in ph["modes"]["modes"]]
        assert "T1u" in labels and ph["modes"]["isotropy_subgroup"].startswith(ph["spacegroup_symbol"] + " ")
        assert ph["modes"]["breaking_A"] <= ph["modes"]["total_A"]


def test_tetragonal_phase_symmetry_levels(batio3_exploration):
    ex = batio3_exploration
    ph = phase(ex, "P4mm")
    res = symmetry_levels(ph.atoms, ex.parent.atoms)
    dec = decompose(ph.atoms, ex.parent.atoms)
    assert res.distance("P4mm") < 1e-8
    assert res.distance("Pm-3m") == pytest.approx(dec.breaking_A, abs=1e-10)
    assert res.distance("Pm-3m") > 0.02
    for small in res.levels:
        for big in res.levels:
            if set(small.elements) < set(big.elements):
                assert small.distance_A <= big.distance_A + 1e-12, (small.name, big.name)
    chain = [res.distance(name) for name in ("P4mm", "P4/mmm", "Pm-3m")]
    assert chain == sorted(chain)
