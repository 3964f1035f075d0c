"""The ase-sbs command line: tables by default, the same content as JSON on request."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ase_sbs.cli import main

from .conftest import EXAMPLES

BTO = str(EXAMPLES / "BaTiO3_cubic.cif")


def test_sbs_p4mm_prints_six_objects_and_json_has_the_same(tmp_path, capsys):
    out_json = tmp_path / "p4mm.json"
    assert main(["sbs", BTO, "--target", "P4mm", "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    rows = [line for line in text.splitlines() if line[:1].isdigit()]
    assert len(rows) == 6
    assert "P4mm (99)" in text and "1o" in text
    data = json.loads(out_json.read_text())
    assert data["size"] == 6 and len(data["members"]) == 6 and data["irreps"] == "1o"
    assert data["target"]["spacegroup_number"] == 99
    printed = [[float(x) for x in row.split("[")[1].split("]")[0].split()] for row in rows]
    assert [[round(x, 4) + 0.0 for x in m["object"]] for m in data["members"]] == printed


def test_json_to_stdout_is_pure_json(capsys):
    assert main(["sbs", BTO, "-t", "R3m", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["size"] == 8


def test_detect_lists_channels_and_targets(capsys, tmp_path):
    assert main(["detect", BTO, "--json", str(tmp_path / "d.json")]) == 0
    text = capsys.readouterr().out
    assert "Pm-3m (221)" in text and "T1u" in text and "P4mm (99)" in text
    data = json.loads((tmp_path / "d.json").read_text())
    assert data["spacegroup_number"] == 221 and len(data["operations"]) == 48
    assert {t["spacegroup_number"] for t in data["candidate_targets"]} >= {99, 38, 160, 123}


def test_sbs_without_target_lists_every_candidate(capsys):
    assert main(["sbs", str(EXAMPLES / "NH3_planar.xyz")]) == 0
    text = capsys.readouterr().out
    assert "C3v" in text and "SBS size" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sbs", "missing.cif"], "no such file"),
        (["sbs", BTO, "--target", "D6h"], "not a subgroup"),
        (["sbs", BTO, "--target", "Nope"], "unknown group name"),
        (["detect", BTO, "--symprec", "-1"], "symprec must be a positive"),
    ],
)
def test_errors_are_one_line_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.startswith("ase-sbs: error:")


def test_unreadable_file_is_reported(tmp_path, capsys):
    bad = tmp_path / "garbage.cif"
    bad.write_text("this is not a cif\n")
    assert main(["detect", str(bad)]) == 2
    assert "cannot read it as a structure" in capsys.readouterr().err


def test_console_script_runs():
    exe = Path(sys.executable).with_name("ase-sbs")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ase_sbs.cli"]
    res = subprocess.run(cmd + ["sbs", BTO, "--target", "P4/mmm"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "2e" in res.stdout and "SBS size      3" in res.stdout


def test_explore_writes_json_structures_and_plot(tmp_path, capsys):
    out = tmp_path / "cu"
    argv = ["explore", str(EXAMPLES / "Cu_bcc.cif"), "--calc", "emt", "--targets", "I4/mmm",
            "--out", str(out), "--json", str(tmp_path / "cu.json")]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "Fm-3m (225)" in text and "spontaneous" in text
    data = json.loads((tmp_path / "cu.json").read_text())
    assert set(data["parent"]) >= {"spacegroup_number", "spacegroup_symbol", "energy_per_atom_eV", "natoms"}
    phase = next(p for p in data["phases"] if p["spacegroup_number"] == 225)
    assert set(phase) >= {"target", "spacegroup_number", "spacegroup_symbol", "delta_energy_per_atom_eV",
                          "delta_energy_per_formula_unit_eV", "n_variants", "spontaneous", "irreps",
                          "structure_file"}
    assert phase["n_variants"] == 3 and phase["spontaneous"]
    from ase.io import read

    assert read(out / phase["structure_file"]).get_chemical_formula() == "Cu2"
    assert len(list((out / "phases").glob("*.extxyz"))) >= 3
    assert (out / "energies.png").stat().st_size > 1000
    assert json.loads((out / "explore.json").read_text())["phases"] == data["phases"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["explore", BTO, "--calc", "nonsense"], "unknown calculator"),
        (["explore", BTO, "--calc", "emt"], "does not cover"),
        (["explore", BTO, "--device", "cuda:7"], "CUDA is not available"),
    ],
)
def test_explore_errors(argv, message, capsys, tmp_path):
    if "cuda" in " ".join(argv):
        import torch

        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    assert main(argv + ["--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err


def test_explore_field_mode_on_a_stable_parent(tmp_path, capsys):
    from ase.build import bulk
    from ase.io import write

    path = tmp_path / "cu_fcc.cif"
    write(path, bulk("Cu", "fcc", a=3.6))
    argv = ["explore", str(path), "--calc", "emt", "--mode", "field", "--targets", "I4/mmm",
            "--out", str(tmp_path / "o"), "--json", "-"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["stable"] and data["phases"] == []
    assert {r["field_spacegroup"] for r in data["relaxations"]} == {"I4/mmm"}
    assert {r["status"] for r in data["relaxations"]} == {"returned"}


def test_detect_lists_the_isotropy_subgroups_of_a_supercells_channels(capsys):
    argv = ["detect", str(EXAMPLES / "SrTiO3_cubic.cif"), "--supercell", "2", "2", "2", "--kpoint", "R"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "|G| = 384" in text and "I4/mcm (140) [6] x2; R-3c (167) [8] x2; Imma (74) [12] x2" in text
    assert main(argv + ["--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["group_order"] == 384 and {c["kstar"][0][0] for c in data["channels"]} == {"1/2"}
    tilts = [c for c in data["channels"]
             if {t["spacegroup_symbol"] for t in c["isotropy_subgroups"]} == {"I4/mcm", "R-3c", "Imma"}]
    assert len(tilts) == 1 and all(t["cell_multiplication"] == 2 for t in tilts[0]["isotropy_subgroups"])
