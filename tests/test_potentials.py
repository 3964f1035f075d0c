"""The potential registry: built-in names (EMT, SevenNet-0, -l3i5, -MF-0 with a fidelity,
CHGNet and its r2SCAN weights), plugins by entry point, ``ase-sbs potentials``, and each
potential's batched form against its own ASE calculator.

Tolerances of the batched-vs-ASE comparison: EMT is float64 (1e-9 eV: the batched form
calls the same calculator). SevenNet and CHGNet are float32 models: an energy of 40-80 eV
carries a float32 rounding of 4-8 μeV (one unit in the last place is 2⁻²³·|E|), and the
batched form sums the same terms in another order (its own neighbour list, several
structures per batch), so energies agree to 2e-5 eV (≈ 3 ulps), forces to 1e-5 eV/Å and
stresses to 1e-6 eV/Å³.
"""

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.io import read
from ase.stress import voigt_6_to_full_3x3_stress

from ase_sbs.cli import main
from ase_sbs.errors import SBSInputError
from ase_sbs.potentials import get_potential
from ase_sbs.potentials import chgnet as chgnet_module
from ase_sbs.potentials.batched import batched_potential, evaluate_structures
from ase_sbs.potentials.registry import builtin_specs, potential_name, registered_names
from ase_sbs.relax.runners import can_batch

from .conftest import EXAMPLES

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_SOURCE = Path(__file__).resolve().parent / "data" / "sbs_plugin_demo"
BTO = str(EXAMPLES / "BaTiO3_cubic.cif")
FLOAT32 = {"energy": 2e-5, "forces": 1e-5, "stress": 1e-6}
# CHGNet's float32 forces are gradients through its bond and three-body angle graphs: a
# batch sums the same terms in another order, 1.2e-5 eV/Å apart on forces of 0.6 eV/Å seen.
TOLERANCES = {"emt": {"energy": 1e-9, "forces": 1e-9, "stress": 1e-9},
              **{n: {**FLOAT32, "forces": 5e-5} for n in ("chgnet", "chgnet-r2scan")}}
NAMES = ["7net-0", "7net-l3i5", "7net-mf-0:PBE", "7net-mf-0:R2SCAN", "chgnet", "chgnet-r2scan"]
needs_chgnet = pytest.mark.skipif(chgnet_module.missing() is not None, reason="chgnet is not installed")
LOADABLE = [pytest.param(n, marks=needs_chgnet) if n.startswith("chgnet") else n for n in NAMES]


def distorted_batio3():
    """The fixed distorted 5-atom BaTiO3 of the comparisons (displacements up to ~0.1 Å
    and a 1-2 % general strain, from a fixed seed)."""
    atoms = read(BTO)
    rng = np.random.default_rng(21)
    atoms.positions += rng.normal(scale=0.05, size=atoms.positions.shape)
    atoms.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + 0.01 * rng.normal(size=(3, 3))), scale_atoms=True)
    return atoms


def ase_result(calc, atoms):
    a = atoms.copy()
    a.calc = calc
    return a.get_potential_energy(), a.get_forces(), voigt_6_to_full_3x3_stress(a.get_stress())


# -- names ----------------------------------------------------------------------------------
def test_every_builtin_name_is_registered_with_its_options_spelled_out():
    assert registered_names()[:8] == ["auto", "emt", *NAMES]
    assert set(builtin_specs()) == {"emt", "7net-0", "7net-l3i5", "7net-mf-0", "chgnet", "chgnet-r2scan"}


@pytest.mark.parametrize("given, canonical", [
    ("7net-mf-0:r2scan", "7net-mf-0:R2SCAN"), ("SevenNet-MF-0:pbe", "7net-mf-0:PBE"), ("sevennet-0", "7net-0"),
    ("CHGNet", "chgnet"), ("chgnet-R2SCAN", "chgnet-r2scan"), ("7NET-L3I5", "7net-l3i5"),
    ("runs/model.nequip.zip", "model.nequip.zip"),
])
def test_names_resolve_to_one_spelling_without_loading(given, canonical):
    assert potential_name(given, ["Ba", "Ti", "O"]) == canonical


@pytest.mark.parametrize("name, words", [
    ("7net-mf-0", ["7net-mf-0:PBE", "7net-mf-0:R2SCAN"]),
    ("7net-mf-0:HSE", ["unknown option", "7net-mf-0:R2SCAN"]),
    ("chgnet:0.2.0", ["takes no option"]),
    ("orb-v3", ["unknown calculator", "7net-l3i5", "chgnet-r2scan", "ase-sbs potentials"]),
])
def test_bad_names_are_refused_in_one_line_that_says_what_to_use(name, words):
    with pytest.raises(SBSInputError) as err:
        get_potential(name, ["Ba", "Ti", "O"])
    assert all(w in str(err.value) for w in words) and "\n" not in str(err.value)


def test_the_registry_imports_no_potential_package():
    code = ("import sys, ase_sbs.cli, ase_sbs.potentials.registry as r; r.potential_name('chgnet'); "
            "r.potential_name('7net-mf-0:PBE'); print(sorted(m for m in ('chgnet', 'sevenn', 'pymatgen') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_chgnet_missing_is_one_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "chgnet", None)  # import chgnet raises ImportError
    with pytest.raises(SBSInputError, match=r"pip install 'ase-sbs\[chgnet\]'"):
        get_potential("chgnet", ["Ba", "Ti", "O"])
    from ase_sbs.potentials.catalog import potential_rows

    rows = {r["name"]: r for r in potential_rows()}
    assert not rows["chgnet-r2scan"]["installed"] and "ase-sbs[chgnet]" in rows["chgnet-r2scan"]["why_not"]
    assert rows["7net-0"]["installed"]


def test_pyproject_declares_the_chgnet_extra():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras["chgnet"] == ["chgnet>=0.3", "nvidia-ml-py3"]


# -- ase-sbs potentials ---------------------------------------------------------------------
@needs_chgnet
def test_potentials_lists_every_name_with_elements_batching_and_source(capsys):
    assert main(["potentials", "--json", "-"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)["potentials"]}
    assert set(["emt", *NAMES]) <= set(rows)
    assert rows["emt"]["elements"] == ["Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au"] and rows["emt"]["batches"] is False
    for name in NAMES:
        r = rows[name]
        assert r["installed"] and r["batches"] is True and r["kind"] == "built-in"
        assert len(r["elements"]) == (94 if name.startswith("chgnet") else 89) and r["elements"][0] == "H"
    assert rows["7net-mf-0:R2SCAN"]["source"].startswith("sevenn 0.") and "SevenNet-MF-0 (R2SCAN)" in \
        rows["7net-mf-0:R2SCAN"]["source"]
    assert "CHGNet r2SCAN" in rows["chgnet-r2scan"]["source"] and rows["chgnet"]["source"].startswith("chgnet ")
    assert main(["potentials"]) == 0
    text = capsys.readouterr().out
    assert "7net-mf-0:R2SCAN" in text and "89: H He Li Be B C …" in text and "ase_sbs.potentials" in text


# -- plugins --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """The demo plugin package of tests/data, pip-installed into a private directory
    (no dependencies, no build isolation: offline), as a user installs any plugin."""
    tmp = tmp_path_factory.mktemp("plugin")
    src = tmp / "src"
    shutil.copytree(PLUGIN_SOURCE, src)  # the build writes next to its sources; keep the repository clean
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-compile", "--target", str(site), str(src)], check=True, capture_output=True)
    return site


@pytest.fixture
def on_path(plugin_site, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_site))
    importlib.invalidate_caches()
    return plugin_site


def test_a_plugin_registers_by_entry_point_and_loads_with_its_option(on_path):
    from ase.build import bulk
    from ase.calculators.emt import EMT

    assert "demo-emt" in registered_names()
    pot = get_potential("demo-emt:2", ["Cu"])
    assert pot.name == "demo-emt:2" and pot.elements == frozenset(("Al", "Cu", "Ag", "Au", "Ni", "Pd", "Pt"))
    assert pot.source == "sbs-plugin-demo 0.1.0, EMT x scale (demo)"
    cu = bulk("Cu", "fcc", a=3.7)
    e_emt, _, _ = ase_result(EMT(), cu)
    assert abs(ase_result(pot.calc, cu)[0] - 2 * e_emt) < 1e-12
    assert not can_batch(pot)
    with pytest.raises(SBSInputError, match="does not cover Ba"):
        get_potential("demo-emt", ["Ba", "Ti", "O"])


def test_potentials_lists_the_plugin_without_loading_it(on_path, capsys, monkeypatch):
    import sbs_plugin_demo

    def no_loading(*args, **kwargs):
        raise AssertionError("the listing built the plugin's calculator")

    monkeypatch.setattr(sbs_plugin_demo.ScaledEMT, "__init__", no_loading)
    assert main(["potentials", "--json", "-"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out)["potentials"] if r["name"] == "demo-emt")
    assert row["kind"] == "plugin" and row["installed"] and row["batches"] is False
    assert row["entry_point"] == "sbs_plugin_demo:demo_emt" and row["package"] == "sbs-plugin-demo"
    assert len(row["elements"]) == 7 and row["source"] == "sbs-plugin-demo 0.1.0, EMT x scale (demo)"


def write_entry_point(site: Path, dist: str, name: str, value: str) -> None:
    """A distribution's metadata by hand: what pip writes, reduced to the entry point."""
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[ase_sbs.potentials]\n{name} = {value}\n")


def test_a_broken_or_shadowing_plugin_is_listed_with_the_reason(tmp_path, monkeypatch, capsys):
    write_entry_point(tmp_path, "broken_plugin", "broken-model", "no_such_module_xyz:factory")
    write_entry_point(tmp_path, "shadow_plugin", "CHGNet", "math:sqrt")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    with pytest.raises(SBSInputError, match="broken-model cannot be loaded here.*no_such_module_xyz"):
        get_potential("broken-model", ["Cu"])
    assert main(["potentials", "--json", "-"]) == 0
    rows = json.loads(capsys.readouterr().out)["potentials"]
    broken = next(r for r in rows if r["name"] == "broken-model")
    assert not broken["installed"] and "no_such_module_xyz" in broken["why_not"]
    shadow = [r for r in rows if r["name"] == "chgnet"]
    assert [r["kind"] for r in shadow] == ["built-in", "plugin"] and "shadowed" in shadow[1]["why_not"]


def test_a_plugin_may_return_a_potential_with_its_own_batched_form(tmp_path, monkeypatch):
    (tmp_path / "batched_plugin.py").write_text(
        "from ase.calculators.emt import EMT\n"
        "from ase_sbs.potentials import Potential\n"
        "from ase_sbs.potentials.batched import ASEBatched\n"
        "class Batched(ASEBatched):\n"
        "    batched = True\n"
        "def factory(device, option):\n"
        "    calc = EMT()\n"
        "    return Potential(calc, 'mine', frozenset({'Cu'}), batched_form=Batched(calc, 'mine', warn=False))\n")
    write_entry_point(tmp_path, "batched_plugin", "mine", "batched_plugin:factory")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    pot = get_potential("mine", ["Cu"])
    assert pot.elements == {"Cu"} and pot.source.startswith("batched_plugin 0.1")
    assert batched_potential(pot) is pot.batched_form and can_batch(pot)
    from ase_sbs.potentials.catalog import potential_rows

    row = next(r for r in potential_rows() if r["name"] == "mine")  # loaded once to learn what it did not declare
    assert row["installed"] and row["batches"] is True and row["elements"] == ["Cu"]


def test_explore_runs_a_plugin_potential_by_name(plugin_site, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_site), str(ROOT)]), "OMP_NUM_THREADS": "1"}
    out = tmp_path / "cu"
    proc = subprocess.run([sys.executable, "-m", "ase_sbs", "explore", str(EXAMPLES / "Cu_bcc.cif"), "--calc",
                           "demo-emt", "--targets", "I4/mmm", "--out", str(out), "--no-progress", "--json", "-"],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert data["potential"] == "demo-emt" and data["runner"] == "ase"  # it does not batch
    fcc = [p for p in data["phases"] if p["spacegroup_number"] == 225]
    assert fcc and fcc[0]["delta_energy_per_atom_eV"] < -0.02 and fcc[0]["spontaneous"]


# -- each potential: batched form = its ASE calculator, check-potential ------------------------
@pytest.fixture(scope="module")
def loaded():
    cache = {}

    def get(name):
        if name not in cache:
            cache[name] = get_potential(name, ["Ba", "Ti", "O"])
        return cache[name]
    return get


@pytest.mark.filterwarnings("ignore:the potential emt cannot evaluate batches")
@pytest.mark.parametrize("name", ["emt", *LOADABLE])
def test_batched_form_equals_the_ase_calculator(name, loaded):
    atoms = distorted_batio3() if name != "emt" else read(EXAMPLES / "Cu_bcc.cif") * (2, 1, 1)
    if name == "emt":
        atoms.rattle(0.05, seed=3)
    pot = loaded(name) if name != "emt" else get_potential("emt", ["Cu"])
    tol = TOLERANCES.get(name, FLOAT32)
    e, f, s = ase_result(pot.calc, atoms)
    bp = batched_potential(pot)
    assert bp.batched is builtin_specs()[name.split(":")[0]].batches is can_batch(pot)
    other = atoms * (2, 1, 1)
    other.rattle(0.03, seed=5)
    (e1, f1, s1), (e2, f2, s2) = evaluate_structures(bp, [atoms, other], max_atoms=1000)  # one batch of two
    ((e0, f0, s0),) = evaluate_structures(bp, [atoms])
    for eb, fb, sb in ((e0, f0, s0), (e1, f1, s1)):
        assert abs(eb - e) < tol["energy"], (eb, e)
        assert np.abs(fb - f).max() < tol["forces"]
        assert np.abs(sb - s).max() < tol["stress"]
    eo, fo, so = ase_result(pot.calc, other)
    assert abs(e2 - eo) < 2 * tol["energy"] and np.abs(f2 - fo).max() < tol["forces"]
    assert np.abs(s2 - so).max() < tol["stress"]


def test_the_fidelity_reaches_the_batched_model(loaded):
    atoms = distorted_batio3()
    pbe, r2scan = (evaluate_structures(batched_potential(loaded(n)), [atoms])[0][0]
                   for n in ("7net-mf-0:PBE", "7net-mf-0:R2SCAN"))
    assert abs(pbe - ase_result(loaded("7net-mf-0:PBE").calc, atoms)[0]) < FLOAT32["energy"]
    assert abs(r2scan - pbe) > 1.0  # the two fidelities' reference energies differ by tens of eV


@needs_chgnet
@pytest.mark.parametrize("mirror", [False, True])
def test_chgnet_stress_is_the_strain_derivative_with_ase_sign(loaded, mirror):
    """σ = (1/V) ∂E/∂ε in eV/Å³ by central differences of the energy, on a right-handed
    cell and on its mirror image (chgnet's own calculator flips the sign there)."""
    atoms = distorted_batio3()
    if mirror:
        m = np.diag([-1.0, 1.0, 1.0])
        atoms.positions = atoms.positions @ m
        atoms.set_cell(np.asarray(atoms.cell) @ m, scale_atoms=False)
        assert np.linalg.det(atoms.cell) < 0
    bp = batched_potential(loaded("chgnet"))
    ((_, _, s),) = evaluate_structures(bp, [atoms])
    assert np.abs(s - ase_result(loaded("chgnet").calc, atoms)[2]).max() < FLOAT32["stress"]
    d, volume = 2e-3, abs(atoms.get_volume())
    for i, j in ((0, 0), (1, 2)):
        energies = []
        for sign in (1, -1):
            eps = np.zeros((3, 3))
            eps[i, j] = eps[j, i] = sign * d / (1 if i == j else 2)
            strained = atoms.copy()
            strained.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
            energies.append(evaluate_structures(bp, [strained])[0][0])
        numeric = (energies[0] - energies[1]) / (2 * d) / volume
        assert abs(numeric - s[i, j]) < 2e-4, (i, j, numeric, s[i, j])


@needs_chgnet
def test_chgnet_refuses_a_molecule_in_one_line(loaded):
    from ase.build import molecule

    with pytest.raises(SBSInputError, match="needs a periodic crystal"):
        ase_result(loaded("chgnet").calc, molecule("NH3"))


@pytest.mark.parametrize("name", LOADABLE)
def test_check_potential_works_for_each(name, tmp_path, capsys):
    out = tmp_path / "check.json"
    assert main(["check-potential", BTO, "--calc", name, "--trials", "1", "--tolerance", "1e-4",
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["potential"] == name and data["flagged"] == []  # float32 noise is below 1e-4 eV, eV/Å
    assert max(r["stress_eV_A3"] for r in data["rows"]) < 1e-5  # incl. improper operations (left-handed cells)


# -- the main job ---------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", LOADABLE)
def test_explore_batio3_runs_for_each_potential(name, tmp_path):
    out = tmp_path / "bto"
    assert main(["explore", BTO, "--calc", name, "--out", str(out), "--no-progress", "--json",
                 str(tmp_path / "e.json")]) == 0
    data = json.loads((tmp_path / "e.json").read_text())
    assert data["phases"], name  # cubic BaTiO3 is unstable under every one of these potentials
