"""Orientation letters (A/P/H/F, L/R) at the image edges and a scale bar, on a SliceCanvas.

The letters come from the series' ImageOrientationPatient (``core.dicom.patient_space``); the
scale bar from the pixel spacing and the current zoom. Both hide when the canvas shows nothing.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from spineviewer.core.dicom.patient_space import edge_letters

#: scale-bar lengths tried, in mm (the longest that fits the target width is drawn)
BAR_LENGTHS_MM = (1, 2, 5, 10, 20, 50, 100, 200)
_LABEL_CSS = ("QLabel{background:rgba(0,0,0,110);color:#f0f0f0;font-weight:bold;"
              "padding:1px 4px;}")


class ScaleBar(QtWidgets.QWidget):
    """A horizontal bar of a round length in mm with its label; ``set_scale`` px per mm."""

    def __init__(self, parent: QtWidgets.QWidget) -> None:
        super().__init__(parent)
        self.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
        self.px_per_mm = 0.0
        self.length_mm = 0
        self.bar_px = 0.0

    def set_scale(self, px_per_mm: float, max_px: float) -> None:
        """Pick the longest round length not wider than ``max_px`` screen pixels."""
        self.px_per_mm = float(px_per_mm)
        fits = [n for n in BAR_LENGTHS_MM if n * self.px_per_mm <= max_px]
        self.length_mm = fits[-1] if fits and self.px_per_mm > 0 else 0
        self.bar_px = self.length_mm * self.px_per_mm
        fm = self.fontMetrics()
        self.resize(int(self.bar_px) + 8, fm.height() + 12)
        self.setVisible(self.length_mm > 0)
        self.update()

    def text(self) -> str:
        """The bar's label, e.g. "50 mm"."""
        return f"{self.length_mm} mm" if self.length_mm else ""

    def paintEvent(self, ev: QtGui.QPaintEvent) -> None:
        if not self.length_mm:
            return
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        h = self.height()
        y = h - 4
        x0, x1 = 4.0, 4.0 + self.bar_px
        for colour, width in (("#000000", 4.0), ("#f0f0f0", 2.0)):  # outlined: any background
            p.setPen(QtGui.QPen(QtGui.QColor(colour), width))
            p.drawLine(QtCore.QPointF(x0, y), QtCore.QPointF(x1, y))
            for x in (x0, x1):
                p.drawLine(QtCore.QPointF(x, y), QtCore.QPointF(x, y - 6))
        p.setPen(QtGui.QColor("#f0f0f0"))
        p.drawText(QtCore.QRectF(x0, 0, self.bar_px, h - 8),
                   QtCore.Qt.AlignmentFlag.AlignCenter, self.text())
        p.end()


class ViewMarkers(QtCore.QObject):
    """Edge letters and a scale bar drawn over ``canvas.view``."""

    def __init__(self, canvas: Any) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self.letters = {side: QtWidgets.QLabel(canvas.view) for side in
                        ("top", "bottom", "left", "right")}
        for lab in self.letters.values():
            lab.setStyleSheet(_LABEL_CSS)
            lab.setAttribute(QtCore.Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            lab.hide()
        self.scale_bar = ScaleBar(canvas.view)
        self.scale_bar.hide()
        self._orientation: dict[str, str] | None = None
        canvas.view.installEventFilter(self)
        canvas.vb.sigRangeChanged.connect(lambda *_: self.update())
        canvas.vb.sigResized.connect(lambda *_: self.update())
        canvas.cleared.connect(self.update)
        canvas.volumeChanged.connect(self.update)

    def set_orientation(self, iop: Any) -> None:
        """Letters from ImageOrientationPatient (None: no letters)."""
        self._orientation = edge_letters(iop)
        for side, lab in self.letters.items():
            lab.setText(self._orientation[side] if self._orientation else "")
            lab.adjustSize()
        self.update()

    def eventFilter(self, obj: QtCore.QObject, ev: QtCore.QEvent) -> bool:
        if ev.type() == QtCore.QEvent.Type.Resize:
            QtCore.QTimer.singleShot(0, self.update)
        return False

    def shown(self) -> bool:
        """True when an image is on the canvas."""
        return self.canvas.pixels is not None

    def update(self) -> None:
        """Place (or hide) the letters and the bar for the current view."""
        try:
            view = self.canvas.view
            w, h = view.width(), view.height()
        except RuntimeError:  # the canvas is being destroyed
            return
        has = self.shown()
        for lab in self.letters.values():
            lab.setVisible(has and bool(self._orientation))
            lab.adjustSize()
        if has and self._orientation:
            t, b, le, r = (self.letters[k] for k in ("top", "bottom", "left", "right"))
            t.move((w - t.width()) // 2, 4)
            x = (w - b.width()) // 2  # above the slice-number and legend boxes
            b.move(x, self._free_above(x, x + b.width(), h) - b.height() - 2)
            le.move(4, (h - le.height()) // 2)
            r.move(w - r.width() - 4, (h - r.height()) // 2)
        if not has:
            self.scale_bar.hide()
            return
        sx, _sy = self.canvas.vb.viewPixelSize()  # image pixels per screen pixel (x = column)
        mm_per_px = sx * self.canvas.spacing_mm[1] if sx > 0 else 0.0
        self.scale_bar.set_scale(1.0 / mm_per_px if mm_per_px > 0 else 0.0, max(w * 0.22, 40))
        bar = self.scale_bar
        bar.move(6, self._free_above(6, 6 + bar.width(), h) - bar.height() - 2)

    def _free_above(self, x0: int, x1: int, h: int) -> int:
        """Top of the lowest corner boxes (slice number, legend) under columns x0..x1."""
        top = h
        for box in (self.canvas.slice_label, self.canvas.legend):
            g = box.geometry()
            if box.isVisible() and g.left() < x1 and g.right() > x0:
                top = min(top, g.top())
        return top
