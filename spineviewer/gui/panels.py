"""Collapsible side panels: the Study (F9) and Results (F10) docks can be closed and brought
back, F11 hides both for reading (and restores them), and their widths follow the window so
that the image keeps most of the room on a small screen."""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtWidgets

#: largest share of the window width each side panel takes when the window is resized
MAX_SHARE = {"Study": 0.16, "Results": 0.4}
#: the canvas keeps at least this share of the window width
MIN_CANVAS_SHARE = 0.42
#: below this window width the status bar shows the short form of the disclaimer
SHORT_DISCLAIMER_BELOW = 1500
SHORT_DISCLAIMER = "\u26a0 Research software, not a medical device"


class Panels(QtCore.QObject):
    """Side-panel control of a main window (``docks`` by title)."""

    def __init__(self, window: QtWidgets.QMainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.docks: dict[str, QtWidgets.QDockWidget] = {
            d.windowTitle(): d for d in window.findChildren(QtWidgets.QDockWidget)}
        features = QtWidgets.QDockWidget.DockWidgetFeature
        for title, dock in self.docks.items():
            dock.setFeatures(dock.features() | features.DockWidgetClosable)
            if title == "Results":  # scrolls rather than pushing the canvas off a small screen
                scroll = QtWidgets.QScrollArea()
                scroll.setObjectName("results scroll")
                scroll.setWidgetResizable(True)
                scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
                scroll.setWidget(dock.widget())
                dock.setWidget(scroll)
        disclaimer = getattr(window, "disclaimer", None)
        self._disclaimer = (disclaimer, disclaimer.text()) if disclaimer is not None else None
        self._stepped_aside: list[QtWidgets.QWidget] = []  # status labels hidden for a message
        # a status message (e.g. "Call changed: ...") must not be cut by the disclaimer
        window.statusBar().messageChanged.connect(lambda _m: self.fit_disclaimer())
        self._hidden_for_reading: list[str] = []
        self._last_width = 0
        window.installEventFilter(self)

    def toggle(self, title: str) -> None:
        """Show or hide one panel."""
        dock = self.docks.get(title)
        if dock is not None:
            dock.setVisible(not dock.isVisible())

    def reading_mode(self) -> bool:
        """F11: hide every panel (or bring back the ones hidden this way); True when hidden."""
        if self._hidden_for_reading:
            for title in self._hidden_for_reading:
                self.docks[title].show()
            self._hidden_for_reading = []
            return False
        self._hidden_for_reading = [t for t, d in self.docks.items() if d.isVisible()]
        for title in self._hidden_for_reading:
            self.docks[title].hide()
        return bool(self._hidden_for_reading)

    def fit_to_window(self) -> None:
        """Shrink the side panels so that each stays within its share of the window (and the
        disclaimer to its short form on a narrow window)."""
        width = self.window.width()
        self.fit_disclaimer()
        docks, sizes = [], []
        for title, dock in self.docks.items():
            if dock.isVisible() and not dock.isFloating():
                docks.append(dock)
                sizes.append(min(dock.width(), int(width * MAX_SHARE.get(title, 0.3))))
        free = width * (1 - MIN_CANVAS_SHARE)
        if sum(sizes) > free:
            sizes = [int(s * free / sum(sizes)) for s in sizes]
        if docks:
            self.window.resizeDocks(docks, sizes, QtCore.Qt.Orientation.Horizontal)

    def fit_disclaimer(self) -> None:
        """The full disclaimer when the window is wide enough for it beside the status message,
        else its short form (the full text stays in its tooltip). A message that still does not
        fit (a "Call changed: ..." line on a 1024 px window) gets the room of the model and
        timing labels while it shows; they come back with the next message or when it clears."""
        if self._disclaimer is None:
            return
        label, full = self._disclaimer
        bar = self.window.statusBar()
        for w in self._stepped_aside:
            w.show()
        self._stepped_aside = []
        fm = label.fontMetrics()
        others = sum(w.sizeHint().width() for w in bar.findChildren(QtWidgets.QWidget)
                     if w is not label and w.isVisible() and w.parent() is bar)
        message = bar.currentMessage()
        text_w = bar.fontMetrics().horizontalAdvance(message) + 24 if message else 0
        needed = fm.horizontalAdvance(full) + 24 + others + text_w
        width = self.window.width()
        short = width < SHORT_DISCLAIMER_BELOW or needed > width
        label.setText(SHORT_DISCLAIMER if short else full)
        if message and fm.horizontalAdvance(label.text()) + 24 + others + text_w > width:
            for name in ("timing_label", "model_label"):
                w = getattr(self.window, name, None)
                if w is not None and w.isVisible():
                    w.hide()
                    self._stepped_aside.append(w)

    def eventFilter(self, obj: Any, ev: QtCore.QEvent) -> bool:
        if (obj is self.window and ev.type() in (QtCore.QEvent.Type.Resize,
                                                  QtCore.QEvent.Type.Show)
                and self.window.width() != self._last_width):
            self._last_width = self.window.width()
            QtCore.QTimer.singleShot(0, self.fit_to_window)
        return False
