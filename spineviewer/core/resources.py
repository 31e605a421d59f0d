"""Where the shipped data folders (``models/``, ``assets/``) are, in a checkout or an install."""

from __future__ import annotations

import sys
import sysconfig
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir(name: str) -> Path:
    """The folder ``name`` ("models" or "assets") of this SpineViewer.

    Notes
    -----
    A source checkout or editable install uses ``<repo>/<name>``; a wheel install
    (``pip install .``) puts the same files under ``<prefix>/share/spineviewer/<name>``
    (``[tool.setuptools.data-files]`` in pyproject.toml). The frozen (PyInstaller) app
    bundles them as ``<bundle>/<name>``, where ``<bundle>`` is ``sys._MEIPASS``
    (``installer/spineviewer.spec``). The first that exists wins.
    """
    candidates = [_REPO_ROOT / name]
    bundle = getattr(sys, "_MEIPASS", None)
    if getattr(sys, "frozen", False) and bundle:
        candidates.insert(0, Path(bundle) / name)
    for prefix in (sysconfig.get_paths()["data"], sys.prefix, sys.base_prefix):
        candidates.append(Path(prefix) / "share" / "spineviewer" / name)
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]
