"""Reading tools of the main window, attached once by ``attach_reading_tools(window)``:

- orientation letters and a scale bar (``view_markers``);
- a distance ruler, key D (``ruler``);
- auto-zoom to the spine when a result is shown, key Z (``autozoom``);
- the measurement slice of each vertebra marked above the slider (``slice_marks``);
- a second viewport linked in patient space showing the study's STIR or T1, key V
  (``linked_view``);
- collapsible side panels F9 / F10 / F11 (``panels``);
- the shortcut list, F1 or Ctrl+/ (``shortcut_dialog``).

Keys come from ``shortcuts.READING_SHORTCUTS``.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from spineviewer.gui.autozoom import AutoZoom
from spineviewer.gui.linked_view import LinkedView
from spineviewer.gui.panels import Panels
from spineviewer.gui.ruler import RulerTool
from spineviewer.gui.shortcut_dialog import show_shortcuts
from spineviewer.gui.shortcuts import READING_SHORTCUTS
from spineviewer.gui.slice_marks import SliceMarks
from spineviewer.gui.view_markers import ViewMarkers


def _action(window: QtWidgets.QMainWindow, text: str, name: str, slot: Any,
            checkable: bool = False) -> QtGui.QAction:
    act = QtGui.QAction(text, window)
    keys = READING_SHORTCUTS[name]
    act.setShortcuts([QtGui.QKeySequence(k) for k in keys])
    act.setToolTip(f"{text} ({' or '.join(keys)})")
    act.setCheckable(checkable)
    (act.toggled if checkable else act.triggered).connect(slot)
    window.addAction(act)
    return act


def _menu(window: QtWidgets.QMainWindow, title: str) -> QtWidgets.QMenu | None:
    for act in window.menuBar().actions():
        if act.menu() is not None and act.text().replace("&", "") == title:
            return act.menu()
    return None


class ReadingTools(QtCore.QObject):
    """The reading tools of one main window (see the module docstring)."""

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        canvas = window.canvas
        self.markers = ViewMarkers(canvas)
        self.ruler = RulerTool(canvas)
        self.autozoom = AutoZoom(canvas)
        self.slice_marks = SliceMarks(canvas)
        self.panels = Panels(window)
        self.linked = LinkedView(canvas, start_job=getattr(window, "_start_job", None))
        self.linked_markers = ViewMarkers(self.linked.canvas)
        self.linked.hide()
        self._put_beside_canvas()

        self.act_ruler = _action(window, "Distance ruler", "ruler", self.ruler.set_active, True)
        self.act_clear_rulers = _action(window, "Remove rulers", "clear_rulers", self.ruler.clear)
        self.act_zoom = _action(window, "Zoom to spine / whole slice", "autozoom",
                                self.autozoom.toggle)
        self.act_linked = _action(window, "Linked view (STIR / T1)", "linked_view",
                                  self.set_linked_visible, True)
        self.act_study = _action(window, "Study panel", "study_panel",
                                 lambda: self.panels.toggle("Study"))
        self.act_results = _action(window, "Results panel", "results_panel",
                                   lambda: self.panels.toggle("Results"))
        self.act_reading = _action(window, "Hide / show side panels", "reading_mode",
                                   self.panels.reading_mode)
        self._shortcut_list()
        self._menus()

        self.ruler.activeChanged.connect(self.act_ruler.setChecked)
        self.ruler.measured.connect(
            lambda mm: window.statusBar().showMessage(f"Distance {mm:.1f} mm", 8000))
        window.volumeShown.connect(self._on_volume_shown)
        window.resultsShown.connect(self._on_results_shown)
        window.preliminaryShown.connect(self._on_results_shown)  # zoomed from the first result
        self.linked.loaded.connect(self._on_linked_loaded)
        canvas.cleared.connect(lambda: self.markers.set_orientation(None))
        canvas.resultChanged.connect(lambda: self.linked.set_result(canvas.result))

    # ---- layout ---------------------------------------------------------------------------
    def _put_beside_canvas(self) -> None:
        """The canvas and the linked view share a horizontal splitter in the central widget."""
        canvas = self.window.canvas
        lay = canvas.parentWidget().layout()
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        lay.replaceWidget(canvas, self.splitter)
        self.splitter.addWidget(canvas)
        self.splitter.addWidget(self.linked)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)

    def _shortcut_list(self) -> None:
        act = getattr(self.window, "act_keys", None)
        if act is None:
            act = QtGui.QAction("Keyboard shortcuts", self.window)
            self.window.addAction(act)
        else:
            act.triggered.disconnect()
        act.setShortcuts([QtGui.QKeySequence(k) for k in READING_SHORTCUTS["shortcut_list"]])
        act.triggered.connect(lambda: show_shortcuts(self.window))
        self.act_keys = act

    def _menus(self) -> None:
        view = _menu(self.window, "View")
        if view is None:
            return
        view.addSeparator()
        for a in (self.act_zoom, self.act_ruler, self.act_clear_rulers, self.act_linked):
            view.addAction(a)
        panels = view.addMenu("Panels")
        for a in (self.act_study, self.act_results, self.act_reading):
            panels.addAction(a)

    # ---- events ---------------------------------------------------------------------------
    def _on_volume_shown(self, _uid: str = "") -> None:
        vol = self.window.volume
        self.markers.set_orientation(getattr(vol, "image_orientation", None))
        self.autozoom.on_result()
        if self.linked.isVisible():
            self._offer_linked()

    def _on_results_shown(self, _result: Any = None) -> None:
        self.autozoom.on_result()

    def _on_linked_loaded(self, _uid: str) -> None:
        self.linked_markers.set_orientation(self.linked.volume.image_orientation)

    def _offer_linked(self) -> None:
        folder = self.window.folder
        self.linked.set_study(folder.index if folder is not None else None, self.window.volume)

    def set_linked_visible(self, on: bool) -> None:
        """Show (and fill) or hide the linked viewport."""
        self.linked.setVisible(bool(on))
        if on:
            self._offer_linked()
            w = self.splitter.width()
            self.splitter.setSizes([w // 2, w - w // 2])
        self.act_linked.blockSignals(True)
        self.act_linked.setChecked(bool(on))
        self.act_linked.blockSignals(False)


def attach_reading_tools(window: Any) -> ReadingTools:
    """Add the reading tools to ``window`` (a MainWindow); call once, after its widgets,
    actions and menus exist. The tools are kept as ``window.reading_tools``."""
    tools = ReadingTools(window)
    window.reading_tools = tools
    return tools
