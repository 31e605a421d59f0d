"""Distance ruler on a SliceCanvas: with the ruler on (key D), a left drag draws a line whose
length is shown in mm (from the pixel spacing); its ends can be dragged afterwards.

Rulers belong to the slice they were drawn on (hidden on other slices) and are removed when
another series is shown or the canvas is cleared; Shift+D removes them all.
"""

from __future__ import annotations

import math
from typing import Any

import pyqtgraph as pg
from PySide6 import QtCore

RULER_COLOUR = "#00E5FF"  # cyan: not a status colour of the overlays


def distance_mm(a_rc: tuple[float, float], b_rc: tuple[float, float],
                spacing_mm: tuple[float, float]) -> float:
    """Length in mm between two (row, col) points with (row, col) pixel spacing."""
    return math.hypot((b_rc[0] - a_rc[0]) * spacing_mm[0], (b_rc[1] - a_rc[1]) * spacing_mm[1])


class Ruler(QtCore.QObject):
    """One measured line: a two-handle segment with its length label."""

    changed = QtCore.Signal()

    def __init__(self, canvas: Any, a_xy: tuple[float, float], b_xy: tuple[float, float],
                 index: int) -> None:
        super().__init__(canvas)
        self.canvas, self.index = canvas, index
        pen = pg.mkPen(RULER_COLOUR, width=2)
        pen.setCosmetic(True)
        self.roi = pg.LineSegmentROI([a_xy, b_xy], pen=pen, movable=False)
        self.roi.setZValue(40)
        self.label = pg.TextItem(color=RULER_COLOUR, fill=pg.mkBrush(0, 0, 0, 170),
                                 anchor=(0, 1))
        self.label.setZValue(41)
        canvas.vb.addItem(self.roi)
        canvas.vb.addItem(self.label)
        self.roi.sigRegionChanged.connect(self._update)
        self._update()

    def ends_rc(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """The two ends as (row, col) image pixels."""
        pts = [self.roi.mapToParent(h["item"].pos()) for h in self.roi.handles]
        return (pts[0].y(), pts[0].x()), (pts[1].y(), pts[1].x())

    def set_end(self, b_xy: tuple[float, float]) -> None:
        """Move the second end (while drawing)."""
        h = self.roi.handles[1]["item"]
        self.roi.movePoint(h, QtCore.QPointF(*b_xy), finish=False)

    def length_mm(self) -> float:
        """Length of the line in mm."""
        a, b = self.ends_rc()
        return distance_mm(a, b, self.canvas.spacing_mm)

    def text(self) -> str:
        """The label, e.g. "23.4 mm"."""
        return f"{self.length_mm():.1f} mm"

    def _update(self) -> None:
        a, b = self.ends_rc()
        self.label.setText(self.text())
        self.label.setPos(QtCore.QPointF(max(a[1], b[1]), (a[0] + b[0]) / 2.0))
        self.changed.emit()

    def set_visible(self, on: bool) -> None:
        """Show or hide the line and its label."""
        self.roi.setVisible(on)
        self.label.setVisible(on)

    def remove(self) -> None:
        """Take the line off the canvas."""
        for item in (self.roi, self.label):
            scene = item.scene()
            if scene is not None:
                self.canvas.vb.removeItem(item)


class RulerTool(QtCore.QObject):
    """Ruler mode of one canvas (``set_active``) and the rulers drawn with it."""

    activeChanged = QtCore.Signal(bool)
    measured = QtCore.Signal(float)  # mm, when a drawn line is released

    def __init__(self, canvas: Any) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self.active = False
        self.rulers: list[Ruler] = []
        self._drawing: Ruler | None = None
        canvas.sliceChanged.connect(lambda _i: self._show_for_slice())
        canvas.volumeChanged.connect(self.clear)
        canvas.cleared.connect(self.clear)

    def set_active(self, on: bool) -> None:
        """Turn ruler mode on (left drag measures) or off (left drag is window/level again)."""
        self.active = bool(on)
        self.canvas.vb.drag_tool = self._drag if self.active else None
        self.canvas.view.setCursor(QtCore.Qt.CursorShape.CrossCursor if self.active
                                   else QtCore.Qt.CursorShape.ArrowCursor)
        self.activeChanged.emit(self.active)

    def _drag(self, ev: Any) -> bool:
        if self.canvas.pixels is None:
            return False
        ev.accept()
        p = self.canvas.vb.mapToView(ev.pos())
        if ev.isStart():
            a = self.canvas.vb.mapToView(ev.buttonDownPos())
            self._drawing = self.add((a.x(), a.y()), (p.x(), p.y()))
        elif self._drawing is not None:
            self._drawing.set_end((p.x(), p.y()))
            if ev.isFinish():
                self.measured.emit(self._drawing.length_mm())
                self._drawing = None
        return True

    def add(self, a_xy: tuple[float, float], b_xy: tuple[float, float]) -> Ruler:
        """A ruler from ``a`` to ``b`` ((x = col, y = row) pixels) on the shown slice."""
        r = Ruler(self.canvas, a_xy, b_xy, self.canvas.index)
        self.rulers.append(r)
        return r

    def clear(self) -> None:
        """Remove every ruler."""
        for r in self.rulers:
            r.remove()
        self.rulers = []
        self._drawing = None

    def _show_for_slice(self) -> None:
        for r in self.rulers:
            r.set_visible(r.index == self.canvas.index)

