"""The package's shape, checked: the layering contract (import-linter, pyproject.toml),
ruff's checks (pyproject.toml), modules of a readable size, no private name imported from another module, and
docstrings that refer only to what is in the repository."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ase_sbs"
MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_layers_import_only_downwards():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.fail("lint-imports (import-linter) is not installed: pip install -e '.[test]'")
    proc = subprocess.run([exe], capture_output=True, text=True, cwd=PACKAGE.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 kept, 0 broken" in proc.stdout


def test_ruff_finds_nothing():
    root = PACKAGE.parent
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "ase_sbs", "tests", "benchmarks", "examples"],
                          capture_output=True, text=True, cwd=root)
    if "No module named ruff" in proc.stderr:
        pytest.fail("ruff is not installed: pip install -e '.[test]'")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_modules_stay_readable():
    sizes = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in MODULES}
    assert max(sizes.values()) <= 520, sorted(sizes.items(), key=lambda kv: -kv[1])[:3]


def test_no_private_name_is_imported_from_another_module_of_the_package():
    offenders = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level > 0 or (node.module or "").startswith("ase_sbs")):
                offenders += [f"{path.relative_to(PACKAGE)}: {a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert not offenders


def test_docstrings_cite_only_the_repository():
    text = "\n".join(p.read_text() for p in MODULES)
    assert "DESIGN" not in text and "shared/" not in text
