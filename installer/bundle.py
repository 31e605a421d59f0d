"""What goes into the frozen app (read by ``installer/spineviewer.spec``, checked by
``installer/check_excludes.py`` and ``tests/test_installer.py``).

Plain lists first (importable without PyInstaller); the functions that ask PyInstaller's hook
utilities for package data and submodules import them lazily.
"""

from __future__ import annotations

import ast
import importlib.util
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
APP_NAME = "spineviewer"

#: (source glob relative to the checkout, destination folder in the bundle). The destinations
#: are the folder names ``spineviewer.core.resources.data_dir`` looks up under sys._MEIPASS.
DATA_GLOBS = (
    ("models/*.onnx", "models"),
    ("models/*.json", "models"),  # model card: input spec, classes, sha256, version
    ("models/*.md", "models"),
    ("assets/reference_ratios.json", "assets"),
    ("assets/REFERENCE_RATIOS.md", "assets"),
)

#: Packages whose data files the app reads at run time (highdicom: its SR/SEG code tables;
#: pydicom: character sets and palettes) - minus their test files.
DATA_PACKAGES = ("highdicom", "pydicom")
DATA_EXCLUDES = ("**/test_files/**", "**/tests/**", "**/testing/**")

#: Imported lazily, by name or by plug-in lookup, so PyInstaller's analysis cannot see them.
EXTRA_HIDDEN_PACKAGES = ("pynetdicom",)
#: pydicom uses these pixel-data handlers only when installed: bundle them when they are.
OPTIONAL_HIDDEN = ("gdcm", "pylibjpeg", "openjpeg", "libjpeg", "jpeg_ls")

#: Never in the app: PyTorch (training only: the app runs the ONNX model), tests, Tk,
#: and the Qt modules the viewer does not use.
EXCLUDES = (
    "torch", "torchvision", "onnx", "onnxscript", "tensorboard",
    "tkinter", "_tkinter", "IPython", "pytest", "_pytest",
    "spineviewer.train", "tests",
    "numpy.tests", "scipy.tests", "skimage.tests", "matplotlib.tests", "pydicom.tests",
    "PySide6.QtWebEngineCore", "PySide6.QtWebEngineWidgets", "PySide6.QtWebEngineQuick",
    "PySide6.QtWebChannel", "PySide6.QtWebView", "PySide6.QtWebSockets",
    "PySide6.Qt3DCore", "PySide6.Qt3DRender", "PySide6.Qt3DInput", "PySide6.Qt3DLogic",
    "PySide6.Qt3DExtras", "PySide6.Qt3DAnimation", "PySide6.QtQuick3D",
    "PySide6.QtMultimedia", "PySide6.QtMultimediaWidgets", "PySide6.QtSpatialAudio",
    "PySide6.QtTextToSpeech",
    "PySide6.QtQml", "PySide6.QtQuick", "PySide6.QtQuickWidgets", "PySide6.QtQuickControls2",
    "PySide6.QtQuickTest", "PySide6.QtDesigner", "PySide6.QtHelp", "PySide6.QtUiTools",
    "PySide6.QtSql", "PySide6.QtTest",
)
#: Excluded only while no SpineViewer module imports them (a ``batch`` command may use dask's
#: local scheduler; then they must stay). See ``runtime_imports``.
EXCLUDE_UNLESS_USED = ("dask", "distributed")

#: Shared libraries or folders (relative to the app folder) that must not appear in the build:
#: ``check_excludes.py`` fails when one does. Matched as substrings of the relative paths.
FORBIDDEN_IN_BUILD = (
    "torch/", "libtorch", "Qt6WebEngine", "QtWebEngine", "Qt63D", "Qt3D", "Qt6Multimedia",
    "QtMultimedia", "Qt6Quick", "Qt6Qml", "/tests/", "test_files/", "spineviewer/train",
    "tkinter",
)
#: Files the frozen app needs (relative to its ``_internal`` folder), checked after a build.
REQUIRED_IN_BUILD = (
    "models/*.onnx", "models/*.json", "assets/reference_ratios.json",
    "highdicom/*", "PySide6/Qt/plugins/platforms/libqoffscreen.so",
    "PySide6/Qt/plugins/platforms/libqxcb.so", "onnxruntime/capi/*onnxruntime*",
)


def runtime_imports(package_dir: Path = ROOT / APP_NAME, full: bool = False) -> set[str]:
    """Modules imported anywhere in the app's own code (``train`` aside): top-level names, or
    with ``full`` the dotted names as written (``from a.b import c`` gives ``a.b`` and
    ``a.b.c``)."""
    names: set[str] = set()
    for path in package_dir.rglob("*.py"):
        if "train" in path.relative_to(package_dir).parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
    return names if full else {n.split(".")[0] for n in names}


def excludes(lean: bool = True) -> list[str]:
    """Module excludes for the Analysis; ``lean=False`` (SPINEVIEWER_NO_EXCLUDES=1) keeps
    everything but PyTorch, to measure what the excludes save."""
    if not lean:
        return ["torch"]
    used = runtime_imports()
    return list(EXCLUDES) + [m for m in EXCLUDE_UNLESS_USED if m not in used]


def lean_build() -> bool:
    return os.environ.get("SPINEVIEWER_NO_EXCLUDES", "") not in ("1", "true", "yes")


def data_files(lean: bool = True) -> list[tuple[str, str]]:
    """(source, destination folder) pairs for the Analysis ``datas``."""
    from PyInstaller.utils.hooks import collect_data_files

    out: list[tuple[str, str]] = []
    for pattern, dest in DATA_GLOBS:
        matches = sorted(ROOT.glob(pattern))
        if pattern.endswith(".onnx") and not matches:
            raise SystemExit(f"no model matches {pattern}: the app would have no network")
        out += [(str(p), dest) for p in matches]
    for pkg in DATA_PACKAGES:
        out += collect_data_files(pkg, excludes=list(DATA_EXCLUDES) if lean else [])
    return out


def hidden_imports() -> list[str]:
    """Every SpineViewer module (``train`` aside: it needs PyTorch), so modules added later
    (a new command, a new exporter) are frozen without editing this list, plus lazily
    imported packages."""
    from PyInstaller.utils.hooks import collect_submodules

    hidden = collect_submodules(APP_NAME, filter=lambda n: not n.startswith(f"{APP_NAME}.train"))
    for pkg in EXTRA_HIDDEN_PACKAGES:
        hidden += collect_submodules(pkg, filter=lambda n: ".tests" not in n)
    hidden += [m for m in OPTIONAL_HIDDEN if importable(m)]
    return hidden


def importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def icon_file(platform: str) -> str | None:
    """The app icon for the executable (Windows .ico, macOS .icns; Linux uses the .desktop)."""
    name = {"win32": "icon.ico", "darwin": "icon.icns"}.get(platform)
    path = ROOT / "assets" / name if name else None
    return str(path) if path is not None and path.is_file() else None
