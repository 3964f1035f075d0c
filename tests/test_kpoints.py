"""k-point names by the parent's Bravais lattice (ASE's special points, Setyawan &
Curtarolo), in the parent's primitive reciprocal basis; channel labels with the same names;
a molecule or an empty --kpoint refused in one line.

The expected points are ASE's own (``Cell.bandpath`` on ASE's standard cells, or
``ase.lattice``), compared in Cartesian coordinates modulo the reciprocal lattice and
through the star under the cubic group (the 48 signed permutation matrices)."""

import itertools
import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.io import read, write
from ase.lattice import BCC, CUB, FCC

from ase_sbs import SBSInputError, detect_symmetry
from ase_sbs.cli import main
from ase_sbs.setting import distortion_channels, supercell_setting
from ase_sbs.setting.channels import channel_matches_kpoint
from ase_sbs.setting.kpoints import parse_kpoint, special_kpoints, supercell_for_kpoint

from .conftest import EXAMPLES

CUBIC_GROUP = np.array([np.diag(s)[list(p)] for p in itertools.permutations(range(3))
                        for s in itertools.product((1, -1), repeat=3)], dtype=float)


def ase_point(lattice, name):
    """ASE's special point ``name`` of a Bravais lattice object, Cartesian (1/Å, no 2π), in
    ASE's standard orientation (cube axes along x, y, z for the cubic lattices)."""
    return lattice.get_special_points()[name] @ lattice.tocell().reciprocal()


def in_star(k_frac, cell, k_cart, group=CUBIC_GROUP):
    """Whether fractions ``k_frac`` of ``cell``'s reciprocal basis are an arm of the star of
    the Cartesian ``k_cart`` under ``group``, modulo the reciprocal lattice."""
    for g in group:
        d = np.asarray(k_frac, dtype=float) - np.asarray(cell) @ (g @ k_cart)  # fractions k·a_i
        if np.abs(d - np.round(d)).max() < 1e-6:
            return True
    return False


def fractions(values):
    return [float(eval(x)) for x in values]  # "1/2" -> 0.5


@pytest.fixture
def files(tmp_path):
    paths = {}
    for name, atoms in [("fcc", bulk("Cu", "fcc", a=3.6)), ("bcc", bulk("Cu", "bcc", a=2.87)),
                        ("fcc_cubic", bulk("Cu", "fcc", a=3.6, cubic=True))]:
        paths[name] = str(tmp_path / f"{name}.extxyz")
        write(paths[name], atoms)
    return paths


def test_detect_fcc_at_x_lists_x_channels_not_l(files, capsys):
    assert main(["detect", files["fcc"], "--kpoint", "X", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    cell = bulk("Cu", "fcc", a=3.6).cell  # primitive already: the parent's cell
    x, l_point = ase_point(FCC(3.6), "X"), ase_point(FCC(3.6), "L")
    assert data["channels"]
    for c in data["channels"]:
        assert c["label"].startswith("X-")
        assert all(in_star(fractions(k), cell, x) for k in c["kstar"])
        assert not any(in_star(fractions(k), cell, l_point) for k in c["kstar"])


def test_a_conventional_fcc_cell_names_the_points_of_its_primitive_parent():
    """The cubic 4-atom cell of fcc Cu: L is fcc's L (a metric reading would call the cube
    simple cubic), in the reciprocal basis of the primitive parent the settings use."""
    conventional = bulk("Cu", "fcc", a=3.6, cubic=True)
    parent = supercell_setting(conventional, (1, 1, 1)).parent
    assert len(parent.atoms) == 1
    for name in ("X", "L", "W"):
        assert in_star(parse_kpoint(name, conventional), parent.atoms.cell, ase_point(FCC(3.6), name))
    setting = supercell_setting(parent.atoms, supercell_for_kpoint(parent, "L"))
    at_l = [c for c in distortion_channels(setting) if channel_matches_kpoint(c, "L", setting)]
    assert at_l and all(c.label.startswith("L-") for c in at_l)
    assert all(in_star(fractions(k), parent.atoms.cell, ase_point(FCC(3.6), "L")) for c in at_l for k in c.kstar)


def test_r_on_bcc_is_refused_naming_the_bcc_points(files, capsys):
    assert main(["detect", files["bcc"], "--kpoint", "R"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ase-sbs: error: ")
    names = ["Γ" if n == "G" else n for n in bulk("Cu", "bcc", a=2.87).cell.bandpath(npoints=0).special_points]
    assert set(names) == {"Γ", "H", "N", "P"}
    assert all(n in err.split("special points are")[1] for n in names) and "'R'" in err


def test_bcc_h_and_fractions_are_the_same_channels(files, capsys):
    assert main(["detect", files["bcc"], "--kpoint", "H", "--json", "-"]) == 0
    by_name = json.loads(capsys.readouterr().out)
    h = ase_point(BCC(2.87), "H")
    cell = bulk("Cu", "bcc", a=2.87).cell
    assert by_name["channels"] and all(c["label"].startswith("H-") for c in by_name["channels"])
    assert all(in_star(fractions(k), cell, h) for c in by_name["channels"] for k in c["kstar"])
    frac = " ".join(str(x) for x in np.round(np.asarray(cell) @ h, 12))  # H in the cell's reciprocal basis
    assert main(["detect", files["bcc"], "--kpoint", frac, "--json", "-"]) == 0
    by_fraction = json.loads(capsys.readouterr().out)
    assert [c["label"] for c in by_fraction["channels"]] == [c["label"] for c in by_name["channels"]]


@pytest.mark.parametrize("command", ["detect", "explore"])
def test_an_empty_kpoint_is_refused(files, capsys, tmp_path, command):
    extra = ["--calc", "emt", "--out", str(tmp_path / "out")] if command == "explore" else []
    assert main([command, files["fcc"], "--kpoint", "", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "empty k-point" in err
    assert not (tmp_path / "out").exists()


def test_unknown_names_list_the_lattice_s_points_and_fractions_always_work():
    srtio3 = detect_symmetry(read(EXAMPLES / "SrTiO3_cubic.cif"))
    with pytest.raises(SBSInputError) as err:
        parse_kpoint("Q", srtio3)
    listed = str(err.value).split("special points are")[1]
    assert all(("Γ" if n == "G" else n) in listed for n in CUB(3.9).get_special_points())
    assert np.allclose(parse_kpoint("1/2 0 1/2", srtio3), [0.5, 0, 0.5])
    assert np.allclose(parse_kpoint("0.5, 0.5, 0.5"), [0.5, 0.5, 0.5])
    assert np.allclose(parse_kpoint("Γ", srtio3), 0) and np.allclose(parse_kpoint("gamma"), 0)
    with pytest.raises(SBSInputError, match="three components"):
        parse_kpoint("1/2 0", srtio3)
    with pytest.warns(UserWarning, match="without a parent"):
        assert np.allclose(parse_kpoint("R"), [0.5, 0.5, 0.5])


def test_tetragonal_channel_labels_use_the_tetragonal_names():
    """P4/mmm, 2×2×2: every channel label names the ASE special point (TET: Γ, X, M, Z, R,
    A) whose star its k-vectors form, where the old labels fell back to k(…)."""
    atoms = Atoms("Cu", cell=[2.9, 2.9, 3.6], pbc=True)
    points = {("Γ" if n == "G" else n): v for n, v in atoms.cell.bandpath(npoints=0).special_points.items()}
    assert set(points) == {"Γ", "X", "M", "Z", "R", "A"}
    setting = supercell_setting(atoms, (2, 2, 2))
    W = setting.parent.operations.rotations_frac
    labels = set()
    for c in distortion_channels(setting):
        star = c.label.split("-")[0] if "-" in c.label else "Γ"
        labels.add(star)
        assert star in points, c.label
        arms = np.mod(points[star] @ np.linalg.inv(W), 1.0)  # the star of ASE's point under the crystal's rotations
        for k in c.kstar:
            assert (np.abs(np.mod(np.array(fractions(k)) - arms + 1e-9, 1.0) - 1e-9).max(axis=1) < 1e-6).any()
    assert {"Z", "A", "M", "X", "R"} <= labels


@pytest.mark.parametrize("command", ["detect", "explore"])
def test_a_molecule_with_a_kpoint_is_one_line(capsys, tmp_path, command):
    extra = ["--calc", "emt", "--out", str(tmp_path / "out")] if command == "explore" else []
    assert main([command, str(EXAMPLES / "NH3_planar.xyz"), "--kpoint", "R", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "molecule" in err and "Symmetry" not in err
    assert not (tmp_path / "out").exists()


def test_a_molecule_has_no_kpoints_in_the_python_api(nh3):
    sym = detect_symmetry(nh3)
    for call in (lambda: supercell_for_kpoint(sym, [0.5, 0.5, 0.5]), lambda: parse_kpoint("1/2 0 0", nh3),
                 lambda: special_kpoints(sym)):
        with pytest.raises(SBSInputError, match="molecule has only its k = 0 setting"):
            call()
