"""Messages that tell a user what to do, and only what they can do: a potential that
lacks an element suggests other potentials, never itself; ``modes`` advises raising
the strain limit and has the option to do it; a file ase.io cannot read is described
(a CIF without its ``data_`` header or atom sites, an index past the last frame),
never as an empty ``(AssertionError: )``."""

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import read, write

from ase_sbs.cli import main
from ase_sbs.errors import SBSInputError
from ase_sbs.potentials.registry import Potential


def suggestion(message: str) -> str:
    """What a covers-error offers instead, after 'choose another with --calc:'."""
    head, sep, rest = message.partition("choose another with --calc")
    assert sep, message
    return rest


@pytest.mark.parametrize("name, covers, symbols", [
    ("7net-0", {"Ba", "Ti", "O"}, ["Po"]),  # SevenNet-0 lacking an element must not suggest 7net-0
    ("emt", set("Al Cu Ag Au Ni Pd Pt".split()), ["Fe"]),
    ("model.nequip.zip", {"O", "Ti"}, ["Cu", "Sr"]),
])
def test_a_potential_lacking_an_element_suggests_others_not_itself(name, covers, symbols):
    with pytest.raises(SBSInputError) as caught:
        Potential(None, name, frozenset(covers)).check_covers(symbols)
    message = str(caught.value)
    assert f"the potential {name} does not cover {', '.join(sorted(symbols))}" in message
    offered = suggestion(message)
    assert name not in offered and "NequIP model file" in offered


def test_emt_is_offered_only_for_the_metals_it_covers():
    with pytest.raises(SBSInputError) as caught:
        Potential(None, "7net-0", frozenset({"O"})).check_covers(["Cu"])
    assert "emt" in suggestion(str(caught.value))
    with pytest.raises(SBSInputError) as caught:
        Potential(None, "7net-0", frozenset({"O"})).check_covers(["Cu", "Po"])
    assert "emt" not in suggestion(str(caught.value))


def test_sevennet_on_polonium_suggests_something_else(tmp_path, capsys):
    """The report's case end to end: SevenNet-0 itself lacks Po."""
    pytest.importorskip("sevenn")
    po = tmp_path / "po.extxyz"
    write(po, Atoms("Po", cell=3.345 * np.eye(3), pbc=True))
    assert main(["check-potential", str(po), "--calc", "7net-0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "7net-0 does not cover Po" in err[0]
    assert "7net-0" not in suggestion(err[0])


# ---------------------------------------------------------------------------------
# modes: the strain limit


@pytest.fixture
def stretched(tmp_path):
    """fcc Cu (conventional cell) and copies stretched along x by 40 % and 25 %."""
    parent = bulk("Cu", "fcc", a=3.6, cubic=True)
    write(tmp_path / "parent.cif", parent)
    for name, factor in (("c40", 1.4), ("c25", 1.25)):
        child = parent.copy()
        child.set_cell(child.cell * [factor, 1, 1], scale_atoms=True)
        write(tmp_path / f"{name}.cif", child)
    return tmp_path


def test_modes_advises_raising_the_strain_limit_and_has_the_option(stretched, capsys):
    parent = str(stretched / "parent.cif")
    assert main(["modes", str(stretched / "c40.cif"), "--parent", parent]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "raise max_strain" in err[0] and "--max-strain" in err[0]
    out = stretched / "m.json"
    assert main(["modes", str(stretched / "c40.cif"), "--parent", parent, "--max-strain", "0.5",
                 "--json", str(out)]) == 0
    strain = np.array(json.loads(out.read_text())["strain"])
    assert strain == pytest.approx(np.diag([0.4, 0.0, 0.0]), abs=1e-9)  # the stretch put in


def test_the_strain_option_reaches_the_match(stretched, capsys):
    """A 25 % stretch matches under the default limit (30 %) and is refused under 20 %."""
    parent = str(stretched / "parent.cif")
    assert main(["modes", str(stretched / "c25.cif"), "--parent", parent]) == 0
    capsys.readouterr()
    assert main(["modes", str(stretched / "c25.cif"), "--parent", parent, "--max-strain", "0.2"]) == 2
    assert "within 20% strain" in capsys.readouterr().err
    assert main(["modes", str(stretched / "c25.cif"), "--parent", parent, "--max-strain", "1.5"]) == 2
    assert "--max-strain takes a stretch between 0 and 1" in capsys.readouterr().err


# ---------------------------------------------------------------------------------
# files ase.io cannot read


def reason(capsys, path) -> str:
    """The one line ``detect`` prints for ``path``."""
    assert main(["detect", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ase-sbs: error: ")
    assert "()" not in err[0] and ": )" not in err[0]  # no empty exception message
    return err[0]


def ase_message(path) -> str:
    """What ase.io's own exception says about the file (the premise: nothing)."""
    try:
        read(path)
    except Exception as exc:  # whatever ase raises
        return str(exc)
    raise AssertionError(f"ase read {path}")


def test_a_garbage_cif_is_said_not_to_be_a_cif(tmp_path, capsys):
    garbage = tmp_path / "garbage.cif"
    garbage.write_text("this is not a cif\nfoo bar\n")
    assert ase_message(garbage) == ""
    line = reason(capsys, garbage)
    assert "not a CIF" in line and "line 1" in line and "'this is not a cif'" in line and "data_" in line


def test_random_bytes_named_cif_are_said_not_to_be_a_cif(tmp_path, capsys):
    noise = tmp_path / "noise.cif"
    noise.write_bytes(np.random.default_rng(0).integers(1, 256, 300, dtype=np.uint8).tobytes())
    assert ase_message(noise) == ""
    assert "not a CIF" in reason(capsys, noise)


def test_a_cif_without_atom_sites_says_so(tmp_path, capsys):
    empty_block = tmp_path / "cell_only.cif"
    empty_block.write_text("data_x\n_cell_length_a 3.0\n_cell_length_b 3.0\n_cell_length_c 3.0\n")
    assert ase_message(empty_block) == ""
    assert "no atom sites" in reason(capsys, empty_block)


def test_an_index_past_the_last_frame_says_how_many_there_are(tmp_path, capsys):
    two = tmp_path / "two.extxyz"
    write(two, [bulk("Cu", "fcc", a=3.6), bulk("Al", "fcc", a=4.05)])
    assert main(["detect", str(two), "--index", "5"]) == 2
    err = capsys.readouterr().err
    assert "no frame at index 5: it holds 2" in err
