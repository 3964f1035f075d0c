"""spglib through one adapter (ase_sbs.core.spglib_adapter): the new error handling on every
call (no DeprecationWarning, no blanket warning filters), spglib's errors as one clear
SBSInputError that carries spglib's reason."""

import ast
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import spglib.error
from ase import Atoms
from ase.io import read

from ase_sbs import SBSInputError, detect_symmetry
from ase_sbs.core.spacegroups import spacegroup_type
from ase_sbs.core.spglib_adapter import spacegroup_type_from_symmetry
from ase_sbs.core.symmetry import crystal_point_group_matrices, symmetrized_atoms
from ase_sbs.setting import distortion_channels, supercell_setting

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ase_sbs"
EXAMPLES = ROOT / "examples"


@pytest.fixture
def old_error_path(monkeypatch):
    """Every warning spglib's error module emits, whatever the warning filters say: spglib
    warns there on each call made with the old error handling (failing or not)."""
    seen = []
    monkeypatch.setattr(spglib.error, "warnings", types.SimpleNamespace(warn=lambda *a, **k: seen.append(a)))
    return seen


def test_detection_settings_and_typing_take_spglib_s_new_error_path(old_error_path, monkeypatch):
    # spglib's default, which other packages (phonopy, at import) may have switched off
    monkeypatch.setattr(spglib.error, "OLD_ERROR_HANDLING", True)
    batio3 = read(EXAMPLES / "BaTiO3_cubic.cif")
    sym = detect_symmetry(batio3)
    symmetrized_atoms(sym)
    assert len(crystal_point_group_matrices(sym)) == 48
    setting = supercell_setting(batio3, (2, 2, 2))
    distortion_channels(setting)
    ops = sym.operations
    assert spacegroup_type(ops.rotations_frac, ops.translations_frac, sym.atoms.cell) == (221, "Pm-3m")
    assert old_error_path == []
    assert spglib.error.OLD_ERROR_HANDLING is True  # restored: other code keeps what it expects


@pytest.mark.parametrize("command", [
    "ase_sbs.detect_symmetry(read('examples/BaTiO3_cubic.cif'))",
    "ase_sbs.detect_symmetry(read('examples/Cu_bcc.cif'), symprec=0.1)",
    "from ase_sbs.setting import supercell_setting, distortion_channels; "
    "distortion_channels(supercell_setting(read('examples/SrTiO3_cubic.cif'), (2, 2, 2)))",
])
def test_deprecation_warnings_as_errors_raise_nothing(command):
    code = f"import ase_sbs; from ase.io import read; {command}"
    proc = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", code],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_kpoint_detect_under_deprecation_warnings_as_errors():
    proc = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-m", "ase_sbs", "detect",
                           "examples/SrTiO3_cubic.cif", "--kpoint", "R", "--json", "-"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("atoms, symprec, reason", [
    # spglib's own words for the two: a tolerance wider than the cell, and wider than a bond
    (Atoms("CsCl", scaled_positions=[[0, 0, 0], [0.5, 0.5, 0.5]], cell=[3, 3, 3], pbc=True), 50.0,
     "spacegroup search failed"),
    (None, 3.0, "too close distance between atoms"),
])
def test_spglib_errors_are_one_line_with_spglib_s_reason(atoms, symprec, reason):
    if atoms is None:
        atoms = read(EXAMPLES / "BaTiO3_cubic.cif")
        atoms.rattle(0.05, seed=1)
    with pytest.raises(SBSInputError) as err:
        detect_symmetry(atoms, symprec=symprec)
    message = str(err.value)
    assert "\n" not in message
    assert f"symprec={symprec} Å finds no consistent symmetry" in message
    assert f"(spglib: {reason})" in message and "use a smaller symprec" in message


def test_operations_spglib_cannot_type_are_named_by_the_caller():
    """{E, C4} is no group: the adapter reports spglib's reason; spacegroup_type gives
    (None, None) so that the caller names the point group instead."""
    W = np.array([np.eye(3, dtype=int), [[0, -1, 0], [1, 0, 0], [0, 0, 1]]])
    with pytest.raises(SBSInputError, match=r"no space-group type .*\(spglib: spacegroup search failed\)"):
        spacegroup_type_from_symmetry(W, np.zeros((2, 3)), np.eye(3) * 3, 1e-3)
    assert spacegroup_type(W, np.zeros((2, 3)), np.eye(3) * 3) == (None, None)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module or "")
    return names


def test_spglib_is_called_only_by_the_adapter():
    callers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                     if any(n == "spglib" or n.startswith("spglib.") or n == "ase.spacegroup.symmetrize"
                            for n in _imports(p)))
    assert callers == ["core/spglib_adapter.py"]


def test_no_blanket_warning_filters_in_the_symmetry_code():
    for part in ("core", "setting", "analysis"):
        for path in (PACKAGE / part).rglob("*.py"):
            assert 'simplefilter("ignore")' not in path.read_text(), path
