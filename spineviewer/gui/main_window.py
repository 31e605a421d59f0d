"""The main window: browser (left), canvas (centre), results and export (right), status bar.

It wires the widgets to the background jobs (indexing, series loading, analysis) and to
``core.review`` for corrections; all measurement and classification logic stays in ``core``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from PySide6 import QtCore, QtGui, QtWidgets

import spineviewer
from spineviewer.core import review
from spineviewer.core.results import StudyResult
from spineviewer.gui import style
from spineviewer.gui import worker as workers
from spineviewer.gui.about import show_about
from spineviewer.gui.browser import DicomBrowser, IndexedFolder, index_folder
from spineviewer.gui.canvas import WL_PRESETS, SliceCanvas
from spineviewer.gui.export_panel import ExportPanel
from spineviewer.gui.overlays import OVERLAYS
from spineviewer.gui.results_panel import ResultsPanel
from spineviewer.gui.shortcuts import SHORTCUTS, shortcuts_html

logger = logging.getLogger(__name__)
MAX_RECENT = 8


def _load_volume(info: Any) -> Any:
    from spineviewer.core.dicom.volume import load_series

    return load_series(info)


def _dicom_window(volume: Any) -> tuple[float, float] | None:
    """(centre, width) from the centre slice's WindowCenter/WindowWidth, if present."""
    try:
        ds = volume.datasets[len(volume.datasets) // 2]
        c, w = ds.get("WindowCenter"), ds.get("WindowWidth")
        if c is None or w is None:
            return None
        c = c[0] if hasattr(c, "__len__") and not isinstance(c, str) else c
        w = w[0] if hasattr(w, "__len__") and not isinstance(w, str) else w
        return float(c), float(w)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


class MainWindow(QtWidgets.QMainWindow):
    """SpineViewer's main window.

    Parameters
    ----------
    analyze : callable, optional
        Replacement for ``core.pipeline.analyze_study`` (tests, ground-truth masks).
    remeasure : callable
        ``remeasure(result)`` used after corrections.
    provider, threads : ONNX Runtime settings passed to the analysis.
    analyse_on_open : bool
        Start the analysis as soon as a folder is indexed (unless an autosave is restored).
    """

    resultsShown = QtCore.Signal(object)
    folderIndexed = QtCore.Signal(object)
    volumeShown = QtCore.Signal(str)
    analysisFailed = QtCore.Signal(str)
    analysisCancelled = QtCore.Signal()

    def __init__(self, *, analyze: Callable[..., StudyResult] | None = None,
                 remeasure: review.Remeasure = review.default_remeasure,
                 provider: str = "auto", threads: int | None = None,
                 analyse_on_open: bool = True) -> None:
        super().__init__()
        self.setWindowTitle("SpineViewer")
        self.resize(1500, 920)
        self.setAcceptDrops(True)
        self._analyze, self._remeasure = analyze, remeasure
        self.provider, self.threads = provider, threads
        self.analyse_on_open = analyse_on_open
        self.settings = QtCore.QSettings("SpineViewer", "SpineViewer")
        self.folder: IndexedFolder | None = None
        self.volume: Any = None
        self.session: review.ReviewSession | None = None
        self.last_error = ""
        self._jobs: dict[str, tuple[QtCore.QObject, QtCore.QThread]] = {}
        self._build_widgets()
        self._build_actions()
        self._build_status_bar()
        self._update_actions()

    # ---- construction ---------------------------------------------------------------------
    def _build_widgets(self) -> None:
        self.canvas = SliceCanvas()
        self.banner = QtWidgets.QLabel()
        self.banner.setWordWrap(True)
        self.banner.setStyleSheet("QLabel{background:#7a2a12;color:#fff;padding:6px;}")
        self.banner.hide()
        centre = QtWidgets.QWidget()
        lay = QtWidgets.QVBoxLayout(centre)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.banner)
        lay.addWidget(self.canvas, 1)
        self.setCentralWidget(centre)

        self.browser = DicomBrowser()
        self.browser.openRequested.connect(self.choose_folder)
        self.browser.cancelRequested.connect(lambda: self._cancel_job("index"))
        self.browser.seriesActivated.connect(self.show_series)
        self._dock("Study", self.browser, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, 330)

        self.results = ResultsPanel()
        self.export_panel = ExportPanel()
        export_box = QtWidgets.QGroupBox("Export")
        QtWidgets.QVBoxLayout(export_box).addWidget(self.export_panel)
        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        right.addWidget(self.results)
        right.addWidget(export_box)
        right.setStretchFactor(0, 1)
        self._dock("Results", right, QtCore.Qt.DockWidgetArea.RightDockWidgetArea, 560)

        self.results.levelSelected.connect(self.canvas.select_level)
        self.results.overrideRequested.connect(self.override_call)
        self.results.shiftRequested.connect(self.shift_levels)
        self.canvas.vertebraClicked.connect(self.results.select_level)
        self.canvas.cornerMoved.connect(self._on_corner_moved)
        self.export_panel.exportFinished.connect(
            lambda paths: self.statusBar().showMessage(f"Exported {len(paths)} file(s)", 8000))

    def _dock(self, title: str, widget: QtWidgets.QWidget, area: QtCore.Qt.DockWidgetArea,
              width: int) -> QtWidgets.QDockWidget:
        dock = QtWidgets.QDockWidget(title, self)
        dock.setObjectName(title)
        dock.setWidget(widget)
        dock.setFeatures(QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetMovable
                         | QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetFloatable)
        self.addDockWidget(area, dock)
        self.resizeDocks([dock], [width], QtCore.Qt.Orientation.Horizontal)
        return dock

    def _action(self, text: str, slot: Callable, key: str = "", tip: str = "",
                checkable: bool = False) -> QtGui.QAction:
        act = QtGui.QAction(text, self)
        if key:
            act.setShortcut(QtGui.QKeySequence(key))
        act.setToolTip(f"{tip or text} ({key})" if key else (tip or text))
        act.setCheckable(checkable)
        (act.toggled if checkable else act.triggered).connect(slot)
        self.addAction(act)
        return act

    def _build_actions(self) -> None:
        k = SHORTCUTS
        self.act_open = self._action("&Open folder\u2026", self.choose_folder, k["open"])
        self.act_analyse = self._action("&Analyse", lambda: self.start_analysis(), k["analyse"],
                                        "Analyse the chosen series")
        self.act_cancel = self._action("&Cancel", self.cancel_analysis, k["cancel"],
                                       "Cancel the running analysis")
        self.act_reanalyse = self._action("Discard corrections and re-analyse",
                                          self.discard_and_reanalyse)
        self.act_export = self._action("&Export", self.export_panel.export, k["export"])
        self.act_quit = self._action("&Quit", self.close, k["quit"])
        self.act_undo = self._action("&Undo", self.undo, k["undo"])
        self.act_redo = self._action("&Redo", self.redo, k["redo"])
        self.act_fracture = self._action("Mark &fracture", lambda: self.results._override(True),
                                         k["fracture"])
        self.act_no_fracture = self._action("Mark &no fracture",
                                            lambda: self.results._override(False),
                                            k["no_fracture"])
        self.act_up = self._action("Shift levels up", lambda: self.shift_levels(-1), k["shift_up"])
        self.act_down = self._action("Shift levels down", lambda: self.shift_levels(+1),
                                     k["shift_down"])
        self.act_next = self._action("Next vertebra", lambda: self._step_vertebra(1), k["next"])
        self.act_prev = self._action("Previous vertebra", lambda: self._step_vertebra(-1),
                                     k["previous"])
        self.act_fit = self._action("&Fit to window", self.canvas.fit, k["fit"])
        self.act_dark = self._action("Dark theme", self._set_dark, checkable=True)
        self.act_about = self._action("&About SpineViewer", lambda: show_about(
            self, self.session.result.model if self.session else None))
        self.act_keys = self._action("Keyboard shortcuts", self._show_shortcuts)

        bar = self.menuBar()
        m = bar.addMenu("&File")
        m.addAction(self.act_open)
        self.recent_menu = m.addMenu("Open &recent")
        self._rebuild_recent()
        m.addAction(self.act_export)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = bar.addMenu("&Edit")
        for a in (self.act_undo, self.act_redo, None, self.act_fracture, self.act_no_fracture,
                  self.act_up, self.act_down):
            m.addSeparator() if a is None else m.addAction(a)
        m = bar.addMenu("&View")
        m.addAction(self.act_fit)
        wl = m.addMenu("Window / level")
        for i, name in enumerate(["DICOM", *WL_PRESETS]):
            wl.addAction(self._action(name, lambda _=False, n=name: self.canvas.apply_preset(n),
                                      f"Ctrl+{i + 1}"))
        ov = m.addMenu("Overlays")
        self.overlay_actions = {}
        for name, text in OVERLAYS.items():
            act = self._action(text, lambda on, n=name: self.canvas.set_overlay_visible(n, on),
                               checkable=True)
            act.setChecked(True)
            ov.addAction(act)
            self.overlay_actions[name] = act
        self.overlay_actions["corners"].setShortcut(QtGui.QKeySequence(k["toggle_overlays"]))
        m.addAction(self.act_next)
        m.addAction(self.act_prev)
        m.addSeparator()
        m.addAction(self.act_dark)
        m = bar.addMenu("&Analysis")
        for a in (self.act_analyse, self.act_cancel, self.act_reanalyse):
            m.addAction(a)
        m = bar.addMenu("&Help")
        m.addAction(self.act_keys)
        m.addAction(self.act_about)

        tb = self.addToolBar("Main")
        tb.setObjectName("main toolbar")
        tb.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextOnly)
        for a in (self.act_open, self.act_analyse, self.act_cancel, None, self.act_undo,
                  self.act_redo, None, self.act_fit):
            tb.addSeparator() if a is None else tb.addAction(a)
        self.wl_combo = QtWidgets.QComboBox()
        self.wl_combo.addItems(["DICOM", *WL_PRESETS])
        self.wl_combo.setToolTip("Window/level preset (drag with the left mouse button to adjust)")
        self.wl_combo.textActivated.connect(self.canvas.apply_preset)
        tb.addWidget(QtWidgets.QLabel(" W/L "))
        tb.addWidget(self.wl_combo)
        tb.addSeparator()
        for name in ("masks", "corners", "heights", "depths", "endplates", "labels"):
            tb.addAction(self.overlay_actions[name])

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        self.model_label = QtWidgets.QLabel("Model: -")
        self.timing_label = QtWidgets.QLabel("")
        self.disclaimer = QtWidgets.QLabel(f"\u26a0 {spineviewer.DISCLAIMER}")
        self.disclaimer.setStyleSheet(f"QLabel{{color:{style.DISCLAIMER_COLOUR};"
                                      "font-weight:bold;}")
        self.disclaimer.setToolTip(spineviewer.DISCLAIMER)
        for w in (self.progress, self.model_label, self.timing_label, self.disclaimer):
            sb.addPermanentWidget(w)
        self.canvas.cursorInfoChanged.connect(lambda t: sb.showMessage(t.strip(), 4000))

    # ---- jobs -----------------------------------------------------------------------------
    def _start_job(self, name: str, job: QtCore.QObject) -> None:
        self._cancel_job(name)
        thread = workers.start(job, self)
        self._jobs[name] = (job, thread)
        thread.finished.connect(lambda n=name, j=job: self._job_ended(n, j))
        self._update_actions()

    def _job_ended(self, name: str, job: QtCore.QObject) -> None:
        current = self._jobs.get(name)
        if current is not None and current[0] is job:
            del self._jobs[name]
        self._update_actions()

    def _cancel_job(self, name: str) -> None:
        current = self._jobs.get(name)
        if current is not None:
            current[0].cancel()

    def _is_current(self, name: str) -> bool:
        """True when the emitting worker is the live job ``name`` (stale results are dropped)."""
        current = self._jobs.get(name)
        return current is not None and self.sender() is current[0]

    def is_busy(self, name: str = "analysis") -> bool:
        return name in self._jobs

    # ---- folder ---------------------------------------------------------------------------
    def choose_folder(self) -> None:
        start = self.settings.value("last_folder", str(Path.home()))
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open study folder", start)
        if path:
            self.open_folder(path)

    def open_folder(self, path: str | Path) -> None:
        """Index ``path`` in the background; then show and analyse (or restore) its series."""
        path = str(path)
        for name in list(self._jobs):
            self._cancel_job(name)
        self._set_result(None)
        self.folder = None
        self.banner.hide()
        self.browser.set_busy(True, f"Indexing {Path(path).name}\u2026")
        job = workers.TaskWorker(index_folder, path, what="Indexing")
        job.progressChanged.connect(self.browser.set_progress)
        job.succeeded.connect(self._on_indexed)
        job.failed.connect(self._on_index_failed)
        job.cancelled.connect(self._on_index_cancelled)
        self._start_job("index", job)
        self.setWindowTitle(f"SpineViewer - {path}")

    @QtCore.Slot(object)
    def _on_indexed(self, folder: IndexedFolder) -> None:
        if not self._is_current("index"):
            return
        self.browser.set_busy(False)
        self.folder = folder
        self.browser.set_folder(folder)
        self._remember_folder(folder.path)
        self.folderIndexed.emit(folder)
        if folder.choice is None:
            self._error(folder.choice_error)
            if folder.index.series:
                self.show_series(folder.index.series[0].series_uid)
            return
        uid = folder.choice.series.series_uid
        self.show_series(uid)
        restored = review.restore(folder.path, uid)
        if restored is not None:
            self._set_result(restored)
            self.statusBar().showMessage(
                f"Restored the autosaved result with {len(restored.edits)} correction(s)", 10000)
        elif self.analyse_on_open:
            self.start_analysis(uid)

    @QtCore.Slot(str)
    def _on_index_failed(self, message: str) -> None:
        if self._is_current("index"):
            self.browser.set_busy(False)
            self._error(message)

    @QtCore.Slot()
    def _on_index_cancelled(self) -> None:
        if self._is_current("index"):
            self.browser.set_busy(False)
            self.statusBar().showMessage("Indexing cancelled", 5000)

    # ---- series ---------------------------------------------------------------------------
    def show_series(self, series_uid: str) -> None:
        """Load and show any series of the indexed folder."""
        info = self.folder.index.get(series_uid) if self.folder else None
        if info is None:
            return
        job = workers.TaskWorker(_load_volume, info, what="Loading the series",
                                 with_progress=False)
        job.succeeded.connect(self._on_volume)
        job.failed.connect(self._on_volume_failed)
        self._start_job("load", job)

    @QtCore.Slot(object)
    def _on_volume(self, volume: Any) -> None:
        if not self._is_current("load"):
            return
        self.volume = volume
        uid = volume.series.series_uid
        r = self.session.result if self.session else None
        index = r.slice_index if r is not None and r.series_uid == uid else None
        self.canvas.set_volume(volume.pixels, volume.pixel_spacing_mm, uid, index=index,
                               dicom_window=_dicom_window(volume))
        self.wl_combo.setCurrentText("DICOM" if _dicom_window(volume) else "Auto")
        self.canvas.set_result(r)
        self.browser.mark_current(uid)
        self.volumeShown.emit(uid)

    @QtCore.Slot(str)
    def _on_volume_failed(self, message: str) -> None:
        if self._is_current("load"):
            self._error(message)

    # ---- analysis -------------------------------------------------------------------------
    def start_analysis(self, series_uid: str | None = None) -> None:
        """Analyse ``series_uid`` (default: the auto-chosen one) in the background."""
        if self.folder is None:
            return
        uid = series_uid or self.browser.chosen_uid or None
        job = workers.AnalysisWorker(self.folder.path, series_uid=uid, provider=self.provider,
                                     threads=self.threads, analyze=self._analyze)
        job.progressChanged.connect(self._on_progress)
        job.analysisFinished.connect(self._on_analysis_finished)
        job.analysisFailed.connect(self._on_analysis_failed)
        job.analysisCancelled.connect(self._on_analysis_cancelled)
        self.progress.setValue(0)
        self.progress.setFormat("analysis\u2026")
        self.progress.show()
        self.banner.hide()
        self._start_job("analysis", job)

    def cancel_analysis(self) -> None:
        self._cancel_job("analysis")
        self._cancel_job("index")

    @QtCore.Slot(str, float)
    def _on_progress(self, stage: str, fraction: float) -> None:
        if self._is_current("analysis"):
            self.progress.setValue(int(1000 * fraction))
            self.progress.setFormat(f"{stage} %p%")

    @QtCore.Slot(object)
    def _on_analysis_finished(self, result: StudyResult) -> None:
        if not self._is_current("analysis"):
            return
        self.progress.hide()
        self._set_result(result)

    @QtCore.Slot(str)
    def _on_analysis_failed(self, message: str) -> None:
        if self._is_current("analysis"):
            self.progress.hide()
            self._error(message)
            self.analysisFailed.emit(message)

    @QtCore.Slot()
    def _on_analysis_cancelled(self) -> None:
        if self._is_current("analysis"):
            self.progress.hide()
            self.statusBar().showMessage("Analysis cancelled", 5000)
            self.analysisCancelled.emit()

    def discard_and_reanalyse(self) -> None:
        if self.folder is None:
            return
        uid = self.session.result.series_uid if self.session else self.browser.chosen_uid
        if self.session and self.session.result.edits:
            answer = QtWidgets.QMessageBox.question(
                self, "Discard corrections?",
                f"Discard {len(self.session.result.edits)} correction(s) and analyse again?")
            if answer != QtWidgets.QMessageBox.StandardButton.Yes:
                return
        review.discard_autosave(self.folder.path, uid)
        self.start_analysis(uid)

    # ---- result and corrections ----------------------------------------------------------
    def _set_result(self, result: StudyResult | None) -> None:
        self.session = None if result is None else review.ReviewSession(result, self._remeasure)
        default_out = ""
        if result is not None:
            default_out = str(review.study_folder(result).parent / "spineviewer-export")
        self.export_panel.set_result(result, default_out)
        self._refresh()
        if result is None:
            return
        if self.canvas.series_uid == result.series_uid:
            self.canvas.set_slice(result.slice_index)
        elif self.folder is not None:
            self.show_series(result.series_uid)
        self._show_model(result)
        self.resultsShown.emit(result)

    def _refresh(self) -> None:
        r = self.session.result if self.session else None
        self.canvas.set_result(r)
        self.results.set_result(r)
        self._update_actions()

    def _show_model(self, r: StudyResult) -> None:
        m = r.model or {}
        provider = str(m.get("provider", "")).replace("ExecutionProvider", "") or "-"
        self.model_label.setText(f"Model: {m.get('name') or '-'} | {provider}")
        self.model_label.setToolTip(f"sha256 {m.get('sha256', '')}")
        t = r.timings_s or {}
        if t:
            total = sum(t.values())
            main = ", ".join(f"{k} {v:.2f}" for k, v in t.items() if v >= 0.05)
            self.timing_label.setText(f"{total:.1f} s")
            self.timing_label.setToolTip(f"Stage times (s): {main}")

    def _on_corner_moved(self, level: str, corner: str, row: float, col: float) -> None:
        # Deferred: the handle that emitted this is replaced when the overlays are redrawn.
        QtCore.QTimer.singleShot(0, lambda: self.move_corner(level, corner, (row, col)))

    def move_corner(self, level: str, corner: str, rc: tuple[float, float]) -> None:
        self._edit(lambda s: s.move_corner(level, corner, rc))

    def override_call(self, level: str, fracture: bool | None, comment: str = "") -> None:
        self._edit(lambda s: s.override_call(level, fracture, comment))

    def shift_levels(self, steps: int) -> None:
        self._edit(lambda s: s.shift_levels(steps))

    def _edit(self, fn: Callable[[review.ReviewSession], Any]) -> None:
        if self.session is None:
            return
        try:
            fn(self.session)
        except Exception as exc:  # noqa: BLE001 - show, keep the previous state
            logger.exception("edit failed")
            self._error(f"Correction not applied: {exc}")
        else:
            where = self.session.last_autosave_path
            self.statusBar().showMessage(f"Saved corrections to {where}" if where else "", 6000)
        self._refresh()

    def undo(self) -> None:
        if self.session and self.session.undo():
            self._refresh()

    def redo(self) -> None:
        if self.session and self.session.redo():
            self._refresh()

    def _step_vertebra(self, step: int) -> None:
        levels = self.results.levels()
        if not levels:
            return
        cur = self.results.selected_level()
        i = (levels.index(cur) + step) % len(levels) if cur in levels else 0
        self.results.select_level(levels[i])

    def _update_actions(self) -> None:
        has = self.session is not None
        self.act_undo.setEnabled(has and self.session.can_undo)
        self.act_redo.setEnabled(has and self.session.can_redo)
        busy = self.is_busy("analysis")
        self.act_cancel.setEnabled(busy or self.is_busy("index"))
        self.act_analyse.setEnabled(self.folder is not None and not busy)
        self.act_reanalyse.setEnabled(self.folder is not None and not busy)
        for a in (self.act_export, self.act_fracture, self.act_no_fracture, self.act_up,
                  self.act_down):
            a.setEnabled(has)

    # ---- misc -----------------------------------------------------------------------------
    def _error(self, message: str) -> None:
        self.last_error = message
        self.banner.setText(f"\u26a0 {message}")
        self.banner.show()
        self.statusBar().showMessage(message, 10000)

    def _remember_folder(self, path: str) -> None:
        recent = [p for p in self.recent_folders() if p != path]
        self.settings.setValue("recent_folders", [path, *recent][:MAX_RECENT])
        self.settings.setValue("last_folder", path)
        self._rebuild_recent()

    def recent_folders(self) -> list[str]:
        value = self.settings.value("recent_folders", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        for p in self.recent_folders():
            self.recent_menu.addAction(p, lambda p=p: self.open_folder(p))
        self.recent_menu.setEnabled(bool(self.recent_folders()))

    def _set_dark(self, dark: bool) -> None:
        style.apply_theme(QtWidgets.QApplication.instance(), dark)
        self.settings.setValue("dark", dark)

    def _show_shortcuts(self) -> None:
        QtWidgets.QMessageBox.information(self, "Keyboard shortcuts", shortcuts_html())

    def dragEnterEvent(self, ev: QtGui.QDragEnterEvent) -> None:  # noqa: N802
        if ev.mimeData().hasUrls() and any(u.isLocalFile() for u in ev.mimeData().urls()):
            ev.acceptProposedAction()

    def dropEvent(self, ev: QtGui.QDropEvent) -> None:  # noqa: N802
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_folder(paths[0])

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:  # noqa: N802
        self.shutdown()
        super().closeEvent(ev)

    def shutdown(self, timeout_ms: int = 15000) -> None:
        """Cancel every background job and wait for its thread."""
        self.export_panel.shutdown()
        for job, thread in list(self._jobs.values()):
            workers.stop(job, thread, timeout_ms)
        self._jobs.clear()
