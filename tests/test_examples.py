"""The example scripts run (at a small size) and print what they promise."""

import runpy
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run_example(name, argv, capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", [name] + argv)
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    return capsys.readouterr().out


def test_bain_path_example(capsys, monkeypatch):
    out = run_example("bain_path_emt.py", ["--quick"], capsys, monkeypatch)
    assert "Fm-3m (225)" in out and "Cu" in out


def test_batio3_example(capsys, monkeypatch, tmp_path):
    out = run_example("batio3_7net.py", ["--quick", "--out", str(tmp_path)], capsys, monkeypatch)
    assert "P4mm (99)" in out and (tmp_path / "explore.json").exists() and (tmp_path / "energies.png").exists()


def test_nh3_example(capsys, monkeypatch, tmp_path):
    out = run_example("nh3_7net.py", ["--quick", "--out", str(tmp_path)], capsys, monkeypatch)
    assert "C3v: HNH =" in out
