"""Screenshots of docs/USER_GUIDE.md, taken offscreen on the demo phantom study.

    QT_QPA_PLATFORM=offscreen python installer/guide_screenshots.py

Writes ``assets/screenshots/guide_*.png``: the preliminary centre-slice result while the full
analysis runs, the window after opening the study, a vertebra
under review (ruler on its anterior wall), a corner correction, a reader's override with type,
grade and age, the export panel, the reading layout
with the T2 and the STIR side by side (acute L1 fracture: oedema bright on STIR), and the
layout at 1024x700. The demo study carries an acute grade-2 wedge fracture of L1 and a STIR
series (``spineviewer.cli.demo_study_options``). Segmentation is the shipped ONNX model when
one is installed, else the phantom's ground-truth masks (printed).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def settle(app, win, seconds: float = 0.4) -> None:
    """Let queued events, loads and repaints finish."""
    end = time.monotonic() + seconds
    while time.monotonic() < end or any(win.is_busy(n) for n in ("load", "linked")):
        app.processEvents()
        time.sleep(0.02)
        if time.monotonic() > end + 30:
            break
    app.processEvents()


def open_demo(app, win, dicom, on_preliminary=None) -> bool:
    """Open the demo study and wait for its result; True when it arrived. ``on_preliminary``
    is called once the preliminary (centre-slice) result is on screen."""
    from PySide6 import QtCore

    loop = QtCore.QEventLoop()
    if on_preliminary is not None:
        win.preliminaryShown.connect(lambda _r: (app.processEvents(), on_preliminary()))
    win.resultsShown.connect(lambda _r: loop.quit())
    win.analysisFailed.connect(lambda m: (print(m, file=sys.stderr), loop.quit()))
    QtCore.QTimer.singleShot(180000, loop.quit)
    win.open_folder(dicom)
    loop.exec()
    settle(app, win)
    return win.session is not None


def anterior_wall_ruler(win, level: str):
    """A ruler along the anterior wall (AS -> AI) of ``level``; returns it."""
    v = win.session.result.vertebra(level)
    (r0, c0), (r1, c1) = v.corners_rc["AS"], v.corners_rc["AI"]
    tools = win.reading_tools
    tools.ruler.set_active(True)
    ruler = tools.ruler.add((c0, r0), (c1, r1))
    tools.ruler.set_active(False)
    return ruler


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "assets" / "screenshots"))
    p.add_argument("--size", default="1600x1000", help="window size WxH")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="spineviewer-settings-")
    os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="spineviewer-data-")

    from PySide6 import QtWidgets

    from spineviewer.core import review
    from spineviewer.gui import style
    from spineviewer.gui.demo import prepare_demo
    from spineviewer.gui.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    style.apply_theme(app, dark=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(widget, name: str) -> None:
        path = out / f"guide_{name}.png"
        widget.grab().save(str(path))
        written.append(path)

    with tempfile.TemporaryDirectory(prefix="spineviewer-guide-") as tmp:
        dicom, analyze, note = prepare_demo(tmp)
        print(f"demo study: {note}", file=sys.stderr)
        w, h = (int(x) for x in args.size.split("x"))
        win = MainWindow(analyze=analyze)
        win.resize(w, h)
        win.show()
        if not open_demo(app, win, dicom, lambda: save(win, "preliminary")):
            print("analysis did not finish; no screenshots", file=sys.stderr)
            return 1
        result = win.session.result
        fracture = next((v.level for v in result.vertebrae if v.final_fracture), "L1")
        save(win, "open")

        tools = win.reading_tools
        win.results.select_level(fracture)
        tools.autozoom.zoom_to_spine()
        anterior_wall_ruler(win, fracture)
        settle(app, win)
        save(win, "review")
        tools.ruler.clear()

        # a corner correction: the anterior-inferior corner of the level below the fracture
        below = next((v.level for v in result.vertebrae
                      if v.level > fracture and v.level.startswith("L")), fracture)
        win.results.select_level(below)
        tools.autozoom.zoom_to_spine()
        handle = win.canvas.corner_handle(below, "AI")
        p = handle.pos()
        handle.setPos(p.x() + 1.5, p.y() - 3.0)
        handle.sigPositionChangeFinished.emit(handle)
        settle(app, win)
        win.results.select_level(below)
        tools.autozoom.zoom_to_spine()
        settle(app, win)
        save(win, "correct")
        win.undo()
        settle(app, win)

        # the reader confirms the fracture and records its type, grade and age (STIR oedema)
        panel = win.results
        panel.select_level(fracture)
        panel.reader_type.setCurrentText("wedge")
        panel.reader_grade.setCurrentText("grade 2")
        panel.reader_age.setCurrentText("acute")
        panel.comment.setText("marrow oedema on STIR")
        panel.btn_fracture.click()
        settle(app, win)
        panel.select_level(fracture)
        tools.autozoom.zoom_to_spine()
        settle(app, win)
        save(win, "override")
        win.undo()
        settle(app, win)

        save(win.export_panel.parentWidget(), "export")

        tools.panels.reading_mode()
        tools.set_linked_visible(True)
        settle(app, win, 1.0)
        win.results.select_level(fracture)
        tools.autozoom.zoom_to_spine()
        settle(app, win)
        save(win, "t2_stir")
        tools.panels.reading_mode()

        tools.set_linked_visible(False)
        win.resize(1024, 700)
        settle(app, win)
        tools.autozoom.zoom_to_spine()
        settle(app, win)
        save(win, "1024x700")
        review.discard_autosave(dicom, result.series_uid)
        win.shutdown()
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
