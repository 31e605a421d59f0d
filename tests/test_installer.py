"""The frozen-app recipe (installer/): what goes in, what stays out, and the scripts' sanity.

Building the app takes minutes, so the full build + smoke test runs only when asked:
``SPINEVIEWER_BUILD_TEST=1 python -m pytest tests/test_installer.py`` (or run
``installer/build.sh`` and ``installer/smoke.sh`` directly).
"""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "installer"))
import bundle


def test_excludes_cover_torch_tests_and_unused_qt_modules():
    ex = bundle.excludes()
    assert "torch" in ex and "tests" in ex and "spineviewer.train" in ex
    for family in ("QtWebEngine", "Qt3D", "QtMultimedia"):
        assert any(m.startswith(f"PySide6.{family}") for m in ex), family
    assert bundle.excludes(lean=False) == ["torch"]


def test_nothing_the_app_imports_is_excluded():
    imported, excluded = bundle.runtime_imports(full=True), bundle.excludes()
    clash = sorted(m for m in imported for x in excluded
                   if m == x or m.startswith(x + "."))
    assert not clash, f"excluded from the frozen app but imported at run time: {clash}"


def test_optional_excludes_follow_the_code(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "batch.py").write_text("import dask.bag\nfrom distributed import Client\n")
    (tmp_path / "pkg" / "train").mkdir()
    (pkg / "train" / "loop.py").write_text("import torch\n")
    assert bundle.runtime_imports(pkg) == {"dask", "distributed"}
    used = bundle.runtime_imports()
    for name in bundle.EXCLUDE_UNLESS_USED:
        assert (name in bundle.excludes()) == (name not in used)


def test_bundled_data_lands_where_resources_looks():
    from spineviewer.core import resources

    dests = {dest for _, dest in bundle.DATA_GLOBS}
    assert dests == {"models", "assets"}
    for pattern, _ in bundle.DATA_GLOBS:
        if pattern.startswith("models/") and not any((ROOT / "models").glob("*.onnx")):
            continue
        assert any(ROOT.glob(pattern)), pattern
    assert "_MEIPASS" in Path(resources.__file__).read_text()


def test_spec_uses_the_bundle_lists_and_entry_point():
    spec = (ROOT / "installer" / "spineviewer.spec").read_text()
    for needle in ("import bundle", "spineviewer_main.py", "bundle.data_files",
                   "bundle.hidden_imports()", "bundle.excludes", "exclude_binaries=True"):
        assert needle in spec, needle
    main = (ROOT / "installer" / "spineviewer_main.py").read_text()
    assert "from spineviewer.cli import main" in main and "freeze_support" in main


def test_required_and_forbidden_lists_agree_with_the_excludes():
    forbidden = " ".join(bundle.FORBIDDEN_IN_BUILD)
    for family in ("torch", "WebEngine", "3D", "Multimedia", "/tests/"):
        assert family in forbidden, family
    required = " ".join(bundle.REQUIRED_IN_BUILD)
    for need in ("models/*.onnx", "models/*.json", "reference_ratios.json", "highdicom",
                 "libqoffscreen", "libqxcb", "onnxruntime"):
        assert need in required, need


def test_check_excludes_flags_a_stray_module(tmp_path):
    import check_excludes

    app = tmp_path / "spineviewer"
    internal = app / "_internal"
    (internal / "torch" / "lib").mkdir(parents=True)
    (internal / "torch" / "lib" / "libtorch_cpu.so").write_bytes(b"x")
    (app / "spineviewer").write_bytes(b"x")
    found = check_excludes.problems(app)
    assert any("torch" in f and f.startswith("excluded but present") for f in found)
    assert any("libqoffscreen" in f and f.startswith("required but missing") for f in found)
    assert check_excludes.main([str(app)]) == 1


@pytest.mark.parametrize("script", ["build.sh", "smoke.sh", "linux/install.sh"])
def test_shell_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", str(ROOT / "installer" / script)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_desktop_entry_and_icons():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(ROOT / "assets" / "spineviewer.desktop")
    d = entry["Desktop Entry"]
    assert d["Type"] == "Application" and d["Exec"].startswith("spineviewer")
    assert d["Icon"] == "spineviewer"
    for name in ("icon.svg", "icon.png", "icon.ico", "icon.icns"):
        assert (ROOT / "assets" / name).stat().st_size > 0, name
    import make_icon

    assert (ROOT / "assets" / "icon.svg").read_text() == make_icon.svg()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("SPINEVIEWER_BUILD_TEST") != "1",
                    reason="builds the frozen app (minutes): set SPINEVIEWER_BUILD_TEST=1")
def test_build_and_smoke():
    build = subprocess.run(["bash", "installer/build.sh", "--no-tarball"], cwd=ROOT,
                           capture_output=True, text=True, check=False, timeout=3600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    smoke = subprocess.run(["bash", "installer/smoke.sh"], cwd=ROOT, capture_output=True,
                           text=True, check=False, timeout=1800)
    assert smoke.returncode == 0, smoke.stdout
