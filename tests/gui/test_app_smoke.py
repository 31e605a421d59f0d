"""``spineviewer gui --demo --exit-after-analysis``: the start-up check the frozen app runs too
(installer/smoke.sh), here from the source tree in a fresh process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spineviewer.gui.app import main, parse_args

ROOT = Path(__file__).resolve().parents[2]


def _gui(args, tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT),
           "HOME": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    return subprocess.run([sys.executable, "-m", "spineviewer.cli", "gui", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, check=False, env=env)


@pytest.mark.slow
def test_demo_is_analysed_and_the_app_exits_0(tmp_path):
    proc = _gui(["--demo", "--exit-after-analysis", "--threads", "1"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0] for line in proc.stdout.splitlines() if line.strip()}
    assert {"L1", "L2", "L3", "L4", "L5"} <= rows, proc.stdout
    assert "demo study:" in proc.stderr
    # the temporary demo study is removed; nothing lands in the working folder
    assert not any(p.name.startswith("spineviewer-demo-") for p in tmp_path.iterdir())


def test_a_folder_without_a_study_exits_1_instead_of_waiting(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = _gui([str(tmp_path / "empty"), "--exit-after-analysis"], tmp_path)
    assert proc.returncode == 1
    assert "no analysis:" in proc.stderr and "Traceback" not in proc.stderr


def test_exit_after_analysis_needs_something_to_analyse(capsys):
    assert main(["--exit-after-analysis"]) == 2
    assert "needs a study folder or --demo" in capsys.readouterr().err


def test_demo_and_a_path_are_exclusive():
    with pytest.raises(SystemExit):
        parse_args(["--demo", "/data/study"])
