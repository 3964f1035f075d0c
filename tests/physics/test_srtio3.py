"""SrTiO3 beyond k = 0 with SevenNet-0: octahedral tilts on a 2x2x2 supercell.

The explorer runs at the R point (``kpoint="R"`` picks the 2x2x2 supercell) and is
checked against an independent plain-ASE computation: the octahedra tilted by hand,
the primitive cell of the tilted structure relaxed under FixSymmetry with a
FrechetCellFilter and BFGS, and the cubic parent relaxed the same way.
"""

import numpy as np
import pytest
from ase.build import make_supercell
from ase.io import read

from ase_sbs import break_symmetry

from ..conftest import EXAMPLES
from ..test_supercell import tilt_pattern
from .plain_ase import primitive, relax_keeping_symmetry, spacegroup_number

@pytest.fixture(scope="module")
def srtio3():
    return read(EXAMPLES / "SrTiO3_cubic.cif")


@pytest.fixture(scope="module")
def exploration(srtio3, sevennet):
    return break_symmetry(srtio3, sevennet, kpoint="R", progress=False)


@pytest.fixture(scope="module")
def reference(srtio3, sevennet):
    """ΔE per formula unit (eV) of the hand-tilted phases, plain ASE."""
    cubic = relax_keeping_symmetry(srtio3, sevennet, steps=1000)
    e_cubic = cubic.get_potential_energy() / len(cubic) * 5
    big = make_supercell(cubic, 2 * np.eye(3))
    out = {}
    for omega, number in (([0, 0, 1], 140), ([1, 1, 0], 74), ([1, 1, 1], 167)):
        atoms = big.copy()
        atoms.positions += tilt_pattern(atoms, 0.06 * np.array(omega) / np.linalg.norm(omega))
        prim = primitive(atoms)
        assert spacegroup_number(prim, 1e-4) == number
        relaxed = relax_keeping_symmetry(prim, sevennet, steps=1000)
        assert spacegroup_number(relaxed) == number
        out[number] = relaxed.get_potential_energy() / len(relaxed) * 5 - e_cubic
    return out


def test_every_channel_has_a_curvature_and_the_tilt_is_unstable(exploration):
    assert exploration.group_order == 384
    assert all(c.curvature is not None and len(c.curvature) == c.multiplicity for c in exploration.channels)
    # the tilt channel is the one whose isotropy subgroups are the three tilt systems
    tilt = {t.channel for t in exploration.targets if t.spacegroup_number in (140, 74, 167)}
    assert len(tilt) == 1
    channel = next(c for c in exploration.channels if c.label in tilt)
    assert channel.min_curvature < 0
    # channels at R other than the tilt are stable under 7net-0
    assert all(c.min_curvature > 0 for c in exploration.channels
               if c.kstar == channel.kstar and c.label != channel.label)


def test_explorer_finds_the_tilt_phases_below_cubic(exploration, reference):
    phases = {p.spacegroup_number: p for p in exploration.phases}
    assert sorted(t.spacegroup_number for t in exploration.targets) == [74, 140, 167]
    assert set(phases) == {140, 74, 167}
    for number, p in phases.items():
        assert p.spontaneous and p.status == "broken"
        assert p.cell_multiplication == 2
        assert p.delta_energy_per_formula_unit_eV < -1e-3
        assert p.delta_energy_per_formula_unit_eV == pytest.approx(reference[number], abs=5e-4)
    assert phases[140].n_variants == 6 and phases[167].n_variants == 8 and phases[74].n_variants == 12
    # the three tilt systems lie within a few tenths of a meV of each other
    spread = max(reference.values()) - min(reference.values())
    assert spread < 1e-3
