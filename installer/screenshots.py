"""Screenshot of the main window after analysing the demo study.

Run under a virtual screen::

    xvfb-run -s "-screen 0 1600x1000x24" python installer/screenshots.py

(``QT_QPA_PLATFORM=offscreen`` works too). Writes ``assets/screenshots/main_window.png``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(ROOT / "assets" / "screenshots" / "main_window.png"))
    p.add_argument("--size", default="1600x1000", help="window size WxH")
    p.add_argument("--light", action="store_true", help="light theme instead of dark")
    p.add_argument("--select", default="", help="level to select (default: first fracture)")
    p.add_argument("--correct", default="", metavar="LEVEL",
                   help="also write correction.png after overriding the call of LEVEL")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    # keep the user's recent-folder list free of this run's temporary study
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="spineviewer-settings-")

    # the guide's helpers (installer/ is this script's folder, first on sys.path)
    from guide_screenshots import open_demo
    from guide_screenshots import settle as _settle
    from PySide6 import QtWidgets

    from spineviewer.gui import style
    from spineviewer.gui.demo import prepare_demo
    from spineviewer.gui.main_window import MainWindow

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    style.apply_theme(app, dark=not args.light)
    with tempfile.TemporaryDirectory(prefix="spineviewer-shot-") as tmp:
        dicom, analyze, note = prepare_demo(tmp)
        print(f"demo study: {note}", file=sys.stderr)
        w, h = (int(x) for x in args.size.split("x"))
        win = MainWindow(analyze=analyze)
        win.resize(w, h)
        win.show()
        if not open_demo(app, win, dicom):
            print("analysis did not finish; no screenshot", file=sys.stderr)
            return 1
        result = win.session.result
        level = args.select or next((v.level for v in result.vertebrae if v.final_fracture),
                                    result.vertebrae[0].level if result.vertebrae else "")
        if level:
            win.results.select_level(level)
        win.canvas.fit()
        _settle(app, win)
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        win.grab().save(str(out))
        print(f"wrote {out}", file=sys.stderr)
        if args.correct and result.vertebra(args.correct) is not None:
            v = result.vertebra(args.correct)
            win.results.select_level(args.correct)
            win.override_call(args.correct, not v.final_fracture,
                              "reader: call reversed after review (demo of the audit trail)")
            win.results.select_level(args.correct)
            _settle(app, win)
            shot = out.with_name("correction.png")
            win.grab().save(str(shot))
            print(f"wrote {shot}", file=sys.stderr)
            from spineviewer.core import review

            review.discard_autosave(dicom, result.series_uid)
        win.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
