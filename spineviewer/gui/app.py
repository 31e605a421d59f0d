"""Start the desktop viewer: ``spineviewer gui [PATH]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Arguments of ``spineviewer gui``."""
    p = argparse.ArgumentParser(prog="spineviewer gui", description="SpineViewer desktop viewer")
    p.add_argument("path", nargs="?", help="study folder (or DICOM file) to open")
    p.add_argument("--provider", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads for the network (slices run side by side, one per "
                        "thread; default: the cores)")
    theme = p.add_mutually_exclusive_group()
    theme.add_argument("--dark", dest="dark", action="store_true", default=None)
    theme.add_argument("--light", dest="dark", action="store_false")
    p.add_argument("--demo", action="store_true",
                   help="write the demo phantom study to a temporary folder and analyse it")
    p.add_argument("--exit-after-analysis", action="store_true",
                   help="print the result table and quit when the first analysis ends (exit "
                        "status 0 on success, 1 on failure): a smoke test of the installed app")
    args = p.parse_args(list(argv) if argv is not None else None)
    if args.demo and args.path:
        p.error("give a study folder or --demo, not both")
    return args


#: --exit-after-analysis gives up (exit status 1) after this many seconds.
EXIT_AFTER_ANALYSIS_TIMEOUT_S = 600


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
    """Open the main window (and ``PATH`` or the demo study when given); the exit status."""
    args = parse_args(argv)
    if args.exit_after_analysis and not (args.path or args.demo):
        print("spineviewer gui: error: --exit-after-analysis needs a study folder or --demo",
              file=sys.stderr)
        return 2
    if args.demo:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="spineviewer-demo-") as tmp:
            return _run(args, tmp)
    return _run(args, None)


def _run(args: argparse.Namespace, demo_dir: str | None) -> int:
    problem = qt_binding_problem()
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
    from PySide6 import QtWidgets

    from spineviewer.gui import style
    from spineviewer.gui.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    app.setApplicationName("SpineViewer")
    app.setOrganizationName("SpineViewer")
    path, analyze = args.path, None
    if demo_dir is not None:
        from spineviewer.gui.demo import prepare_demo

        path, analyze, note = prepare_demo(demo_dir)
        print(f"demo study: {note}", file=sys.stderr)
    window = MainWindow(analyze=analyze, provider=args.provider, threads=args.threads)
    dark = args.dark
    if dark is None:
        dark = str(window.settings.value("dark", "true")).lower() in ("true", "1")
    style.apply_theme(app, dark)
    window.act_dark.blockSignals(True)
    window.act_dark.setChecked(dark)
    window.act_dark.blockSignals(False)
    window.show()
    outcome: list[int] = []
    if args.exit_after_analysis:
        _exit_after_analysis(app, window, outcome)
    if path:
        window.open_folder(path)
    status = int(app.exec())
    if args.exit_after_analysis:
        window.shutdown()
        return outcome[0] if outcome else 1
    return status


def _exit_after_analysis(app: Any, window: Any, outcome: list[int]) -> None:
    """Quit ``app`` when the window's first analysis ends; ``outcome`` gets the exit status."""
    from PySide6 import QtCore

    from spineviewer.cli import format_summary

    def done(code: int, message: str) -> None:
        if outcome:
            return
        outcome.append(code)
        print(message, file=sys.stdout if code == 0 else sys.stderr, flush=True)
        app.quit()

    window.resultsShown.connect(lambda result: done(0, format_summary(result)))
    window.analysisFailed.connect(lambda message: done(1, f"analysis failed: {message}"))
    window.analysisCancelled.connect(lambda: done(1, "analysis cancelled"))

    def check_stalled() -> None:  # indexing failed, or no series to analyse: no signal comes
        if window.last_error and not window.is_busy("index") and not window.is_busy("analysis"):
            done(1, f"no analysis: {window.last_error}")

    poll = QtCore.QTimer(window)
    poll.timeout.connect(check_stalled)
    poll.start(250)
    QtCore.QTimer.singleShot(EXIT_AFTER_ANALYSIS_TIMEOUT_S * 1000, lambda: done(
        1, f"no analysis result within {EXIT_AFTER_ANALYSIS_TIMEOUT_S} s"))


if __name__ == "__main__":
    sys.exit(main())
