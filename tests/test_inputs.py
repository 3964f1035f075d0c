"""Inputs as users have them: disordered CIFs are refused with the site named; collinear
magnetic moments enter the symmetry, non-collinear ones are reported as ignored."""

import warnings

import numpy as np
import pytest
from ase.io import read

from ase_sbs import SBSInputError, detect_symmetry
from ase_sbs.cli import main
from ase_sbs.report.structures import describe_symmetry
from ase_sbs.setting import candidate_targets, distortion_channels

from .conftest import EXAMPLES

DISORDERED = str(EXAMPLES / "Sr0.5Ba0.5TiO3_disordered.cif")


def test_a_disordered_cif_exits_2_with_one_line_naming_the_site(capsys, tmp_path):
    assert main(["explore", DISORDERED, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "site Sr1/Ba1 at (0, 0, 0)" in err and "Ba 0.5, Sr 0.5" in err and "Order it first" in err
    assert not (tmp_path / "o").exists()
    for command in (["detect", DISORDERED], ["sbs", DISORDERED]):
        assert main(command) == 2 and "disordered structure" in capsys.readouterr().err
    # the Python entry points refuse the same Atoms (the site named by its position)
    with pytest.raises(SBSInputError, match=r"site 0 at \(0, 0, 0\) is occupied by Ba 0.5, Sr 0.5"):
        detect_symmetry(read(DISORDERED))


def test_collinear_moments_enter_the_symmetry():
    cu = read(EXAMPLES / "Cu_bcc.cif")
    assert detect_symmetry(cu).spacegroup_number == 229
    ferro = cu.copy()
    ferro.set_initial_magnetic_moments([1.0, 1.0])
    assert detect_symmetry(ferro).spacegroup_number == 229
    anti = cu.copy()
    anti.set_initial_magnetic_moments([1.0, -1.0])  # the body centre differs from the corner: CsCl-like
    sym = detect_symmetry(anti)
    assert sym.spacegroup_number == 221 and len(sym.centering_translations) == 1
    # the channels of the antiferromagnet include the relative displacement of the two atoms
    assert sum(c.dimension * c.multiplicity for c in distortion_channels(sym)) == 3 + 6
    assert {t.spacegroup_number for t in candidate_targets(sym)} >= {99, 123}
    text = describe_symmetry(sym, distortion_channels(sym), candidate_targets(sym))
    assert "collinear initial magnetic moments -1, +1 μB enter the symmetry" in text


def test_non_collinear_moments_are_reported_as_ignored():
    cu = read(EXAMPLES / "Cu_bcc.cif")
    cu.set_initial_magnetic_moments(np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert detect_symmetry(cu).spacegroup_number == 229
    assert any("non-collinear initial magnetic moments are ignored" in str(w.message) for w in caught)
