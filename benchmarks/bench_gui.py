"""Time from "open folder" to "results shown" in the desktop viewer, for the demo study.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_gui.py [--repeat 3] [--threads N]
        [--slice-mode per-vertebra|centre]

Prints the time to the indexed browser tree, to the first image on the canvas, to the
preliminary results (the centre slice's, shown while the per-vertebra analysis runs) and to
the full results table with overlays, for a cold first run (model session created) and warm
repeats, and the CPU time the process used meanwhile (all threads): on a shared machine the
wall time follows the other users' load, the CPU time much less. Note the machine's load
(``uptime``, printed at the start and the end) with the figures.
Without a model in ``models/`` the analysis uses the phantom's ground-truth masks (printed).
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cpu_s() -> float:
    """User + system CPU seconds of this process so far (every thread)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def one_run(app, dicom: Path, analyze, threads: int | None) -> dict[str, float]:
    from PySide6 import QtCore

    from spineviewer.gui.main_window import MainWindow

    win = MainWindow(analyze=analyze, threads=threads)
    win.resize(1600, 1000)
    win.show()
    marks: dict[str, float] = {}
    loop = QtCore.QEventLoop()
    t0 = time.perf_counter()
    win.folderIndexed.connect(lambda _f: marks.setdefault("indexed", time.perf_counter() - t0))
    win.volumeShown.connect(lambda _u: marks.setdefault("image", time.perf_counter() - t0))

    def early(_r) -> None:
        app.processEvents()  # let the table and overlays paint
        marks.setdefault("preliminary", time.perf_counter() - t0)

    win.preliminaryShown.connect(early)

    def shown(_r) -> None:
        app.processEvents()  # let the table and overlays paint
        marks["results"] = time.perf_counter() - t0
        loop.quit()

    win.resultsShown.connect(shown)
    win.analysisFailed.connect(lambda m: (print(m, file=sys.stderr), loop.quit()))
    ticks: list[float] = []  # a 10 ms timer: the largest gap is the longest GUI freeze
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: ticks.append(time.perf_counter()))
    timer.start(10)
    cpu0 = _cpu_s()
    win.open_folder(dicom)
    loop.exec()
    marks["cpu"] = _cpu_s() - cpu0
    timer.stop()
    if len(ticks) > 1:
        marks["max_stall"] = max(b - a for a, b in itertools.pairwise(ticks))
    win.shutdown()
    win.close()
    return marks


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--slice-mode", choices=("per-vertebra", "centre"), default="per-vertebra",
                   help="the viewer's default is per-vertebra (every slice segmented)")
    args = p.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    sys.path.insert(0, str(ROOT))
    # keep the user's recent-folder list free of this run's temporary study
    os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="spineviewer-settings-")
    from PySide6 import QtWidgets

    from spineviewer.gui.demo import prepare_demo

    app = QtWidgets.QApplication.instance() or QtWidgets.QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory(prefix="spineviewer-bench-") as tmp:
        dicom, analyze, note = prepare_demo(tmp)
        if args.slice_mode != "per-vertebra":
            from spineviewer.core.pipeline import analyze_study

            base = analyze or analyze_study

            def analyze(path, _base=base, **kw):
                return _base(path, slice_mode=args.slice_mode, **kw)
        print(f"demo study: {note}; {os.cpu_count()} CPUs, threads={args.threads or 'auto'}, "
              f"slice mode {args.slice_mode}; load average {_load()}")
        runs = [one_run(app, dicom, analyze, args.threads) for _ in range(max(1, args.repeat))]
    if any("results" not in r for r in runs):
        print("analysis failed", file=sys.stderr)
        return 1
    cols = ("indexed", "image", "preliminary", "results")
    print(f"{'':12s} " + " ".join(f"{k:>11s}" for k in cols))
    print(f"{'cold (1st)':12s} " + " ".join(f"{runs[0].get(k, float('nan')):10.2f}s"
                                            for k in cols))
    if len(runs) > 1:
        warm = runs[1:]
        print(f"{'warm median':12s} " + " ".join(
            f"{statistics.median(r.get(k, float('nan')) for r in warm):10.2f}s" for k in cols))
    early = [r["preliminary"] for r in runs if "preliminary" in r]
    if early:
        print(f"open folder -> preliminary results (centre slice) shown: "
              f"{statistics.median(early):.2f} s (median of {len(early)})")
    else:
        print("no preliminary result (centre mode, or no model: ground-truth masks)")
    print(f"open folder -> full results shown: {statistics.median(r['results'] for r in runs):.2f}"
          f" s (median of {len(runs)}), CPU {statistics.median(r['cpu'] for r in runs):.2f} s")
    stalls = [r["max_stall"] for r in runs if "max_stall" in r]
    if stalls:
        print(f"longest event-loop stall while indexing/analysing: {1000 * max(stalls):.0f} ms "
              "(10 ms timer)")
    print(f"load average at the end: {_load()}")
    return 0


def _load() -> str:
    """The 1, 5 and 15 minute load averages (other users of a shared machine)."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
