"""The instability scan on toy potentials (ASE's EMT): the grid's stars under the point
group, the folded cell of each star, every channel's curvatures and frequencies against a
brute-force Hessian of the whole N×N×N supercell (its force-constant matrix Fourier
transformed at each star's k), the supercell chosen from unstable stars, and the command
line."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, make_supercell
from ase.calculators.emt import EMT
from ase.io import read, write

from ase_sbs import SBSInputError
from ase_sbs.cli import main
from ase_sbs.setting.choice import choose_supercell
from ase_sbs.setting.kpoints import full_star, kpoint_lattice
from ase_sbs.setting.scan import THZ, ScanResult, instability_scan, scan_parent

from .conftest import EXAMPLES


@pytest.fixture(scope="module")
def simple_cubic():
    return Atoms("Cu", cell=[2.4] * 3, pbc=True)


@pytest.fixture(scope="module")
def sc_scan(simple_cubic):
    return instability_scan(simple_cubic, EMT(), grid=4, path_divisions=2)


def brute_force_hessian(atoms, n, h=0.01):
    """(H of the n×n×n supercell by central differences of the forces, the supercell)."""
    sup = make_supercell(atoms, n * np.eye(3))
    sup.calc = EMT()
    x0 = sup.positions.copy()
    H = np.zeros((3 * len(sup), 3 * len(sup)))
    for i in range(len(sup)):
        for c in range(3):
            grads = []
            for sign in (1, -1):
                sup.positions = x0
                sup.positions[i, c] += sign * h
                grads.append(-sup.get_forces().ravel())
            H[:, 3 * i + c] = (grads[0] - grads[1]) / (2 * h)
    sup.positions = x0
    return (H + H.T) / 2, sup


def force_constants_at(H, sup, prim, n, k):
    """C(k)_{(s a),(t b)} = Σ_cells Φ(s 0, t n) e^{2πik·n} (cell-index phases), (3m × 3m)."""
    frac = sup.get_scaled_positions() * n  # supercell fractions -> primitive fractions
    m, basis = len(prim), prim.get_scaled_positions()
    site = np.array([np.argmin(np.linalg.norm(f - basis - np.round(f - basis), axis=1)) for f in frac])
    cells = np.round(frac - basis[site]).astype(int)
    C = np.zeros((3 * m, 3 * m), complex)
    home = [int(np.flatnonzero((site == s) & (np.abs(cells).sum(axis=1) == 0))[0]) for s in range(m)]
    for s in range(m):
        i = home[s]
        for j in range(len(sup)):
            C[3 * s:3 * s + 3, 3 * site[j]:3 * site[j] + 3] += H[3 * i:3 * i + 3, 3 * j:3 * j + 3] * np.exp(
                2j * np.pi * cells[j] @ k)
    return (C + C.conj().T) / 2


def test_the_grid_is_reduced_to_stars_under_the_point_group(sc_scan):
    grid = [s for s in sc_scan.stars if s.on_grid]
    assert sum(len(s.arms) for s in grid) == 64  # every k = m/4 once
    sizes = {s.name: len(s.arms) for s in grid}
    assert sizes == {"Γ": 1, "Δ(0,1/4,0)": 6, "X": 3, "Σ(1/4,1/4,0)": 12, "Z(1/4,1/2,0)": 12, "M": 3,
                     "Λ(1/4,1/4,1/4)": 8, "S(1/4,1/2,1/4)": 12, "T(1/2,1/2,1/4)": 6, "R": 1}
    assert {s.name for s in sc_scan.stars if s.special} == {"Γ", "X", "M", "R"}
    assert len(sc_scan.stars) == 10  # the path at N/2 steps per line holds no point off the grid


def test_each_star_is_computed_in_the_smallest_cell_holding_one_arm(sc_scan):
    for s in sc_scan.stars:
        P = np.array(s.supercell)
        k = np.array(s.kpoint)
        order = np.lcm.reduce([round(1 / x) if x else 1 for x in np.abs(k)])
        assert round(np.linalg.det(P)) == s.natoms == order  # one atom per cell; index of Λ_k = order of k
        assert np.allclose(P @ k, np.round(P @ k))
    sigma = next(s for s in sc_scan.stars if s.name.startswith("Σ"))
    assert sigma.natoms == 4 and not np.allclose(sigma.supercell, np.diag(np.diag(sigma.supercell)))
    assert kpoint_lattice([[0.25, 0.25, 0], [0.5, 0.5, 0.5]]).tolist() != np.diag([4, 4, 2]).tolist()
    assert round(np.linalg.det(kpoint_lattice([[0.25, 0.25, 0], [0.5, 0.5, 0.5]]))) == 8


def test_curvatures_equal_the_force_constants_of_the_whole_supercell(simple_cubic, sc_scan):
    H, sup = brute_force_hessian(simple_cubic, 4)
    for s in sc_scan.stars:
        ev = np.linalg.eigvalsh(force_constants_at(H, sup, simple_cubic, 4, np.array(s.kpoint)))
        values = sorted(x for c in s.channels if "strain" not in c.sources for x in c.curvatures)
        if s.name == "Γ":  # one atom: only strain at Γ; the acoustic modes are no distortion
            assert values == [] and np.allclose(ev, 0, atol=1e-3)
            continue
        assert min(values) == pytest.approx(ev.min(), abs=1e-3), s.name
        for v in values:  # every channel curvature is a C(k) eigenvalue, and every eigenvalue a curvature
            assert np.abs(ev - v).min() < 1e-3, s.name
        for e in ev:
            assert np.abs(np.array(values) - e).min() < 1e-3, s.name
    unstable = {s.name for s in sc_scan.unstable_stars}
    assert unstable == {"Γ", "Δ(0,1/4,0)", "X", "Σ(1/4,1/4,0)", "Z(1/4,1/2,0)", "M"}  # Γ: the T2g strain


def test_frequencies_of_a_two_species_crystal_equal_the_dynamical_matrix():
    nial = bulk("NiAl", "cesiumchloride", a=2.88)
    result = instability_scan(nial, EMT(), grid=2, path=False)
    H, sup = brute_force_hessian(nial, 2)
    masses = np.repeat(nial.get_masses() ** -0.5, 3)
    for s in result.stars:
        C = force_constants_at(H, sup, nial, 2, np.array(s.kpoint))
        nu = np.linalg.eigvalsh(C * masses[:, None] * masses[None, :])
        nu = THZ * np.sign(nu) * np.sqrt(np.abs(nu))
        if s.name == "Γ":
            nu = np.sort(nu)[np.argsort(np.abs(np.sort(nu)))[3:]]  # drop the three acoustic modes
        for c in s.channels:
            if c.frequencies_THz is None:
                assert "strain" in c.sources
                continue
            assert c.species in ("Ni", "Al", "mixed")
            for f in c.frequencies_THz:
                assert np.abs(nu - f).min() < 0.02, (s.name, c.label)
    assert {s.name for s in result.unstable_stars} >= {"M"}


def test_the_result_reads_back_from_its_json(sc_scan):
    again = ScanResult.fromdict(json.loads(json.dumps(sc_scan.as_dict())))
    assert again.as_dict() == sc_scan.as_dict()
    assert [s.name for s in again.unstable_stars] == [s.name for s in sc_scan.unstable_stars]


def perovskite_stars(*names):
    parent = scan_parent(read(EXAMPLES / "SrTiO3_cubic.cif"))
    points = {"Γ": (0, 0, 0), "X": (0, 0.5, 0), "M": (0.5, 0.5, 0), "R": (0.5, 0.5, 0.5), "Σ": (0.25, 0.25, 0)}
    W = parent.operations.rotations_frac
    stars = [SimpleNamespace(name=n, arms=full_star(points[n], W), lowest=-1.0 - i) for i, n in enumerate(names)]
    return parent, stars


@pytest.mark.parametrize("names, cells, natoms", [(("Γ", "R"), 2, 10), (("Γ", "X", "M", "R"), 8, 40),
                                                   (("Σ", "R"), 8, 40)])
def test_the_supercell_holds_the_unstable_stars(names, cells, natoms):
    parent, stars = perovskite_stars(*names)
    choice = choose_supercell(parent, stars)
    assert choice.cells == cells and choice.natoms == natoms
    P = choice.matrix
    held = np.concatenate([s.arms for s in stars if s.name in choice.every_arm] + [np.array(choice.kpoints)])
    assert np.allclose(P @ held.T, np.round(P @ held.T))
    if names == ("Γ", "X", "M", "R"):
        assert P.tolist() == np.diag([2, 2, 2]).tolist()
    if names == ("Σ", "R"):  # the Pbam cell: √2 × 2√2 × 2
        lengths = sorted(np.linalg.norm(P, axis=1))
        assert lengths == pytest.approx([np.sqrt(2), 2, 2 * np.sqrt(2)])
        assert choice.one_arm == ("Σ",) and choice.all_arm_cells["Σ"] == 32


def test_a_choice_too_large_is_refused_naming_the_stars_and_what_fits():
    parent, stars = perovskite_stars("Σ", "R", "X", "M")
    stars.append(SimpleNamespace(name="Δ(1/4)", arms=full_star((0.25, 0, 0), parent.operations.rotations_frac),
                                 lowest=-0.5))
    stars.append(SimpleNamespace(name="Λ", arms=full_star((0.25, 0.25, 0.25), parent.operations.rotations_frac),
                                 lowest=-0.4))
    with pytest.raises(SBSInputError) as err:
        choose_supercell(parent, stars, max_work=2e9)
    text = str(err.value)
    assert "M, X, R, Σ, Δ(1/4), Λ" in text and "--supercell 2 2 0 -1 1 0 0 0 2" in text
    assert "subset that fits is M, X, R, Σ: supercell [[2, 2, 0], [-1, 1, 0], [0, 0, 2]] of the primitive" in text
    assert "\n" not in text


def test_scan_command_prints_the_unstable_stars_writes_json_and_the_picture(tmp_path, capsys, monkeypatch):
    path = tmp_path / "sc.extxyz"
    write(path, Atoms("Cu", cell=[2.4] * 3, pbc=True))
    monkeypatch.chdir(tmp_path)
    assert main(["scan", str(path), "--calc", "emt", "--grid", "2", "--no-relax", "--json", "s.json"]) == 0
    text = capsys.readouterr().out
    assert "unstable stars" in text and "X-d6-" in text and "M-d3-" in text and "sc_scan.png" in text
    assert (tmp_path / "sc_scan.png").stat().st_size > 1000
    data = json.loads((tmp_path / "s.json").read_text())
    assert set(data["unstable"]) == {"Γ", "X", "M"} and data["supercell_auto"]["cells"] == 8
    assert main(["scan", str(path), "--calc", "emt", "--grid", "0"]) == 2
    assert "--grid" in capsys.readouterr().err


def test_detect_auto_names_the_setting_and_why(tmp_path, capsys):
    path = tmp_path / "bcc.extxyz"
    write(path, bulk("Cu", "bcc", a=2.87))
    assert main(["detect", str(path), "--supercell", "auto", "--calc", "emt"]) == 0
    text = capsys.readouterr().out
    assert "supercell     [[" in text and "16 cells, 16 atoms" in text and "every arm of N" in text
    assert main(["detect", str(path), "--supercell", "auto"]) == 2
    assert "--calc" in capsys.readouterr().err
    assert main(["detect", str(path), "--supercell", "2", "x", "2"]) == 2
