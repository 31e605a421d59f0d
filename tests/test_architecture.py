"""House rules enforced in CI: the core never imports Qt or the layers above it."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold():
    # Through this interpreter (never a `lint-imports` found or not found on PATH), so the
    # check runs wherever the [test] extra is installed and fails where it is not.
    code = ("import sys; from importlinter.cli import lint_imports_command; "
            "sys.argv = ['lint-imports', '--config', sys.argv[1]]; lint_imports_command()")
    proc = subprocess.run([sys.executable, "-c", code, str(ROOT / "pyproject.toml")], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Contracts: " in proc.stdout and " broken" in proc.stdout, proc.stdout


def test_core_imports_headless():
    code = ("import sys, spineviewer.core.pipeline, spineviewer.core.results; "
            "bad=[m for m in sys.modules if m.startswith(('PySide6','pyqtgraph','torch'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_spider_data_tracked():
    proc = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("not a git checkout")
    assert not [f for f in proc.stdout.splitlines() if Path(f).name.startswith("spider")
                and f.endswith(".png")]
