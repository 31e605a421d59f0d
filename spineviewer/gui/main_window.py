"""The main window: browser (left), canvas (centre), results and export (right), status bar.

It wires the widgets to the background jobs (indexing, series loading, analysis) and to
``core.review`` for corrections; all measurement and classification logic stays in ``core``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from spineviewer.core import review
from spineviewer.core.results import StudyResult
from spineviewer.gui import menus, style
from spineviewer.gui import worker as workers
from spineviewer.gui.browser import DicomBrowser, IndexedFolder, index_folder
from spineviewer.gui.canvas import SliceCanvas
from spineviewer.gui.export_panel import ExportPanel
from spineviewer.gui.results_panel import ResultsPanel
from spineviewer.gui.shortcuts import shortcuts_html

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


def _annotation(series: Any) -> str:
    """Corner text of the canvas: patient, study date, series and its TE/TR."""
    from spineviewer.gui.browser import format_date, series_details

    name = str(series.patient_name or "").replace("^", " ").strip()
    lines = [f"{name}  [{series.patient_id}]" if name else series.patient_id,
             f"{format_date(series.study_date)}  {series.study_description}".strip(),
             series.label, series_details(series)]
    return "\n".join(line for line in lines if line)


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
        self._loading_uid = ""
        self._build_widgets()
        menus.build_actions(self)
        menus.build_status_bar(self)
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
        self._dock("Study", self.browser, QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, 290)

        self.results = ResultsPanel()
        self.export_panel = ExportPanel()
        export_box = QtWidgets.QGroupBox("Export")
        QtWidgets.QVBoxLayout(export_box).addWidget(self.export_panel)
        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        right.addWidget(self.results)
        right.addWidget(export_box)
        right.setStretchFactor(0, 1)
        self._dock("Results", right, QtCore.Qt.DockWidgetArea.RightDockWidgetArea, 640)

        self.results.levelSelected.connect(self.canvas.select_level)
        self.results.overrideRequested.connect(
            lambda level, code, comment: self.override_call(
                level, None if code < 0 else bool(code), comment))
        self.results.shiftRequested.connect(self.shift_levels)
        self.canvas.vertebraClicked.connect(self.results.select_level)
        self.canvas.cornerMoved.connect(self._on_corner_moved)
        self.canvas.cornerDragging.connect(self._on_corner_dragging)
        self._preview_timer = QtCore.QTimer(self, singleShot=True, interval=40)
        self._preview_timer.timeout.connect(self._show_preview)
        self._pending_preview: tuple[str, str, tuple[float, float]] | None = None
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
        """True while the job ``name`` (index, load, analysis) runs."""
        return name in self._jobs

    # ---- folder ---------------------------------------------------------------------------
    def choose_folder(self) -> None:
        """Ask for a folder and open it."""
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
        if info is None or (self.is_busy("load") and self._loading_uid == series_uid):
            return
        self._loading_uid = series_uid
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
        self.canvas.set_annotation(_annotation(volume.series))
        self.canvas.set_result(r)
        self.browser.mark_current(uid)
        self.volumeShown.emit(uid)

    @QtCore.Slot(str)
    def _on_volume_failed(self, message: str) -> None:
        if self._is_current("load"):
            self._error(message)

    # ---- analysis -------------------------------------------------------------------------
    def start_analysis(self, series_uid: str | None = None) -> None:
        """Analyse ``series_uid`` (default: the series on the canvas, else the auto-chosen one)
        in the background."""
        if self.folder is None:
            return
        uid = series_uid or self.canvas.series_uid or self.browser.chosen_uid or None
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
        """Cancel the running analysis (and indexing)."""
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

    def analyse_shown_series(self) -> None:
        """The Analyse action: the series on the canvas; asks first when it has corrections."""
        uid = self.canvas.series_uid or self.browser.chosen_uid
        if self.session and self.session.result.edits and self.session.result.series_uid == uid:
            self.discard_and_reanalyse()
        else:
            self.start_analysis(uid)

    def discard_and_reanalyse(self) -> None:
        """Drop the corrections (after asking) and analyse again."""
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
        provider = str(m.get("provider", "")).replace("ExecutionProvider", "")
        text = f"Model: {m.get('name') or '-'}"
        self.model_label.setText(f"{text} on {provider}" if provider else text)
        self.model_label.setToolTip(f"sha256 {m.get('sha256', '')}")
        t = r.timings_s or {}
        if t:
            total = sum(t.values())
            main = ", ".join(f"{k} {v:.2f}" for k, v in t.items() if v >= 0.05)
            self.timing_label.setText(f"{total:.1f} s")
            self.timing_label.setToolTip(f"Stage times (s): {main}")

    def _on_corner_dragging(self, level: str, corner: str, row: float, col: float) -> None:
        # Live table values while dragging, at most every 40 ms (remeasure takes ~10 ms).
        self._pending_preview = (level, corner, (row, col))
        if not self._preview_timer.isActive():
            self._preview_timer.start()

    def _show_preview(self) -> None:
        if self.session is None or self._pending_preview is None:
            return
        level, corner, rc = self._pending_preview
        try:
            preview = review.preview_move_corner(self.session.result, level, corner, rc,
                                                 self._remeasure)
        except Exception:
            logger.debug("preview failed", exc_info=True)
            return
        self.results.set_result(preview)

    def _on_corner_moved(self, level: str, corner: str, row: float, col: float) -> None:
        # Deferred: the handle that emitted this is replaced when the overlays are redrawn.
        self._preview_timer.stop()
        self._pending_preview = None
        QtCore.QTimer.singleShot(0, lambda: self.move_corner(level, corner, (row, col)))

    def move_corner(self, level: str, corner: str, rc: tuple[float, float]) -> None:
        """Move a corner of ``level`` (undoable, autosaved)."""
        self._edit(lambda s: s.move_corner(level, corner, rc))

    def override_call(self, level: str, fracture: bool | None, comment: str = "") -> None:
        """Override the fracture call of ``level`` (None removes the override)."""
        self._edit(lambda s: s.override_call(level, fracture, comment))

    def shift_levels(self, steps: int) -> None:
        """Rename all levels ``steps`` down (+) or up (-)."""
        self._edit(lambda s: s.shift_levels(steps))

    def _edit(self, fn: Callable[[review.ReviewSession], Any]) -> None:
        if self.session is None:
            return
        try:
            fn(self.session)
        except Exception as exc:
            logger.exception("edit failed")
            self._error(f"Correction not applied: {exc}")
        else:
            self.statusBar().showMessage(self._autosave_message(), 8000)
        self._refresh()

    def _autosave_message(self) -> str:
        where = self.session.last_autosave_path if self.session else None
        if where is None:
            return ""
        n = len(self.session.result.edits)
        beside = review.study_folder(self.session.result) in where.parents
        place = "beside the study" if beside else f"in {where.parent} (study folder read-only)"
        return f"{n} correction(s) autosaved {place}"

    def undo(self) -> None:
        """Undo the last correction."""
        if self.session and self.session.undo():
            self._refresh()

    def redo(self) -> None:
        """Redo the last undone correction."""
        if self.session and self.session.redo():
            self._refresh()

    def step_vertebra(self, step: int) -> None:
        """Select the next (+1) or previous (-1) vertebra."""
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
        self.rebuild_recent()

    def recent_folders(self) -> list[str]:
        """Recently opened folders, newest first."""
        value = self.settings.value("recent_folders", [])
        return [value] if isinstance(value, str) else list(value or [])

    def rebuild_recent(self) -> None:
        """Refill the File > Open recent menu."""
        self.recent_menu.clear()
        for p in self.recent_folders():
            self.recent_menu.addAction(p, lambda p=p: self.open_folder(p))
        self.recent_menu.setEnabled(bool(self.recent_folders()))

    def set_dark(self, dark: bool) -> None:
        """Switch between the dark and the light theme (remembered)."""
        style.apply_theme(QtWidgets.QApplication.instance(), dark)
        self.settings.setValue("dark", dark)

    def show_shortcuts(self) -> None:
        """List the keyboard shortcuts."""
        QtWidgets.QMessageBox.information(self, "Keyboard shortcuts", shortcuts_html())

    def dragEnterEvent(self, ev: QtGui.QDragEnterEvent) -> None:
        if ev.mimeData().hasUrls() and any(u.isLocalFile() for u in ev.mimeData().urls()):
            ev.acceptProposedAction()

    def dropEvent(self, ev: QtGui.QDropEvent) -> None:
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_folder(paths[0])

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(ev)

    def shutdown(self, timeout_ms: int = 15000) -> None:
        """Cancel every background job and wait for its thread."""
        self.export_panel.shutdown()
        for job, thread in list(self._jobs.values()):
            workers.stop(job, thread, timeout_ms)
        self._jobs.clear()
