"""The main window: browser (left), canvas (centre), results and export (right), status bar.

It wires the widgets to the background jobs (indexing, series loading, analysis) and to
``core.review`` for corrections; all measurement and classification logic stays in ``core``.
The window's features live in mixins: ``window_study`` (folders, series), ``window_analysis``
(the analysis and its result), ``window_corrections`` (reader corrections) and
``window_jobs`` (background jobs).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from spineviewer.core import review
from spineviewer.core.results import StudyResult
from spineviewer.gui import menus, style
from spineviewer.gui.binding import ResultBinding
from spineviewer.gui.browser import DicomBrowser, IndexedFolder
from spineviewer.gui.canvas import SliceCanvas
from spineviewer.gui.export_panel import ExportPanel
from spineviewer.gui.reading_tools import attach_reading_tools
from spineviewer.gui.results_panel import ResultsPanel
from spineviewer.gui.shortcuts import shortcuts_html
from spineviewer.gui.window_analysis import AnalysisMixin
from spineviewer.gui.window_corrections import CorrectionsMixin
from spineviewer.gui.window_jobs import JobsMixin
from spineviewer.gui.window_study import StudyMixin

logger = logging.getLogger(__name__)
#: The canvas keeps at least this width while the results dock can give way (issue 15).
MIN_CANVAS_PX = 440
MIN_RESULTS_PX = 330
__all__ = ["MainWindow"]


class MainWindow(StudyMixin, AnalysisMixin, CorrectionsMixin, JobsMixin,
                 QtWidgets.QMainWindow):
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
    #: the early centre-slice result shown while the full analysis runs (issue 15)
    preliminaryShown = QtCore.Signal(object)
    folderIndexed = QtCore.Signal(object)
    volumeShown = QtCore.Signal(str)
    analysisFailed = QtCore.Signal(str)
    analysisCancelled = QtCore.Signal()
    #: calls changed by a correction, undo or redo (``core.calls.change_text`` lines)
    callsChanged = QtCore.Signal(list)

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
        self.last_announcement = ""  # the last "Call changed: ..." line
        self._jobs: dict[str, tuple[QtCore.QObject, QtCore.QThread]] = {}
        self._loading_uid = ""
        self.binding = ResultBinding(self)
        self._toolbars_wrapped = False
        self._build_widgets()
        menus.build_actions(self)
        menus.build_status_bar(self)
        self._update_actions()
        attach_reading_tools(self)

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
        self.study_dock = self._dock("Study", self.browser,
                                     QtCore.Qt.DockWidgetArea.LeftDockWidgetArea, 290)

        self.results = ResultsPanel()
        self.export_panel = ExportPanel()
        export_box = QtWidgets.QGroupBox("Export")
        QtWidgets.QVBoxLayout(export_box).addWidget(self.export_panel)
        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        right.addWidget(self.results)
        right.addWidget(export_box)
        right.setStretchFactor(0, 1)
        self.results_dock = self._dock("Results", right,
                                       QtCore.Qt.DockWidgetArea.RightDockWidgetArea, 640)

        self.results.levelSelected.connect(self.canvas.select_level)
        self.results.overrideRequested.connect(
            lambda level, code, comment: self.override_call(
                level, None if code < 0 else bool(code), comment,
                **self.results.pending_details))
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

    def _apply_binding(self) -> bool:
        """Apply the one rule (``gui.binding``): results only for the series on the canvas."""
        return self.binding.apply()

    def wrap_toolbars(self) -> None:
        """Put the overlay toolbar on a second row when both toolbars do not fit in one."""
        main, overlays = getattr(self, "main_toolbar", None), getattr(self, "overlay_toolbar",
                                                                      None)
        if main is None or overlays is None:
            return
        wrap = main.sizeHint().width() + overlays.sizeHint().width() + 8 > self.width()
        if wrap != self._toolbars_wrapped:
            self._toolbars_wrapped = wrap
            if wrap:
                self.insertToolBarBreak(overlays)
            else:
                self.removeToolBarBreak(overlays)

    def resizeEvent(self, ev: QtGui.QResizeEvent) -> None:
        super().resizeEvent(ev)
        self.wrap_toolbars()
        QtCore.QTimer.singleShot(0, self.keep_canvas_wide)

    def keep_canvas_wide(self) -> None:
        """Narrow the results dock (not below ``MIN_RESULTS_PX``) while the canvas is narrower
        than ``MIN_CANVAS_PX`` (1024 x 700 screens)."""
        dock = self.results_dock
        short = MIN_CANVAS_PX - self.canvas.width()
        if short > 0 and dock.isVisible() and not dock.isFloating():
            width = max(MIN_RESULTS_PX, dock.width() - short)
            if width < dock.width():
                self.resizeDocks([dock], [width], QtCore.Qt.Orientation.Horizontal)

    def apply_wl_preset(self, name: str) -> None:
        """A window/level preset from the menu or Ctrl+1..4; the W/L box follows."""
        self.canvas.apply_preset(name)
        self.wl_combo.setCurrentText(name)

    def _update_actions(self) -> None:
        has = self.session is not None
        self.act_undo.setEnabled(has and self.session.can_undo)
        self.act_redo.setEnabled(has and self.session.can_redo)
        busy = self.is_busy("analysis")
        self.act_cancel.setEnabled(busy or self.is_busy("index"))
        self.act_analyse.setEnabled(self.folder is not None and not busy)
        self.act_reanalyse.setEnabled(self.folder is not None and not busy)
        # never act on a result that is not on the canvas, nor on a preliminary one
        bound = has and self.binding.final
        for a in (self.act_export, self.act_fracture, self.act_no_fracture, self.act_up,
                  self.act_down):
            a.setEnabled(bound)

    # ---- misc -----------------------------------------------------------------------------
    def _error(self, message: str) -> None:
        self.last_error = message
        self.banner.setText(f"\u26a0 {message}")
        self.banner.show()
        self.statusBar().showMessage(message, 10000)

    def set_dark(self, dark: bool) -> None:
        """Switch between the dark and the light theme (remembered)."""
        style.apply_theme(QtWidgets.QApplication.instance(), dark)
        self.settings.setValue("dark", dark)

    def show_shortcuts(self) -> None:
        """List the keyboard shortcuts."""
        QtWidgets.QMessageBox.information(self, "Keyboard shortcuts", shortcuts_html())

    def closeEvent(self, ev: QtGui.QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(ev)
