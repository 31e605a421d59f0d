"""Start the desktop viewer: ``spineviewer gui [PATH]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Arguments of ``spineviewer gui``."""
    p = argparse.ArgumentParser(prog="spineviewer gui", description="SpineViewer desktop viewer")
    p.add_argument("path", nargs="?", help="study folder (or DICOM file) to open")
    p.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads")
    theme = p.add_mutually_exclusive_group()
    theme.add_argument("--dark", dest="dark", action="store_true", default=None)
    theme.add_argument("--light", dest="dark", action="store_false")
    return p.parse_args(list(argv) if argv is not None else None)


#: PySide6 releases that drop references to None/True/False on Python < 3.12 (every call of a
#: void Qt method), which ends in "Fatal Python error: none_dealloc" after some minutes of use.
BROKEN_PYSIDE = ("6.12.0",)


def qt_binding_problem() -> str:
    """A one-line warning when the installed PySide6 is known to crash here, else ""."""
    import PySide6

    if PySide6.__version__ in BROKEN_PYSIDE and sys.version_info < (3, 12):
        return (f"PySide6 {PySide6.__version__} has a reference-counting bug on Python "
                f"{sys.version_info.major}.{sys.version_info.minor} that crashes the viewer; "
                "install PySide6-Essentials 6.11.3 (pip install 'PySide6-Essentials==6.11.3')")
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Open the main window (and ``PATH`` when given); returns the exit status."""
    args = parse_args(argv)
    problem = qt_binding_problem()
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
    from PySide6 import QtWidgets

    from spineviewer.gui import style
    from spineviewer.gui.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("SpineViewer")
    app.setOrganizationName("SpineViewer")
    window = MainWindow(provider=args.provider, threads=args.threads)
    dark = args.dark
    if dark is None:
        dark = str(window.settings.value("dark", "true")).lower() in ("true", "1")
    style.apply_theme(app, dark)
    window.act_dark.blockSignals(True)
    window.act_dark.setChecked(dark)
    window.act_dark.blockSignals(False)
    window.show()
    if args.path:
        window.open_folder(args.path)
    return int(app.exec())


if __name__ == "__main__":
    sys.exit(main())
