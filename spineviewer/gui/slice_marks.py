"""Marks above the slice slider: the slice each vertebra was measured on.

A vertebra's slice is ``VertebraResult.measurement_slice`` when the analysis sets one, else
the analysed slice of the result. Marks show only when the result belongs to the series on
the canvas; clicking a mark shows its slice, and the tooltip names the levels.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

from spineviewer.gui import style


def measurement_slices(result: Any) -> dict[int, list[str]]:
    """slice index -> levels measured on it (in result order)."""
    out: dict[int, list[str]] = {}
    if result is None:
        return out
    for v in result.vertebrae:
        out.setdefault(result.slice_of(v), []).append(v.level)
    return out


def span_text(levels: list[str], order: list[str]) -> str:
    """``"L1\u2013L3"`` for consecutive levels of ``order``, else ``"T12, L4, L5"`` (a dash
    over a gap would claim the levels between)."""
    if len(levels) == 1:
        return levels[0]
    idx = [order.index(lv) for lv in levels] if all(lv in order for lv in levels) else []
    if idx and idx == list(range(idx[0], idx[0] + len(idx))):
        return f"{levels[0]}\u2013{levels[-1]}"
    return ", ".join(levels)


class SliceMarks(QtWidgets.QWidget):
    """A thin strip above ``canvas.slider`` with one mark per measured slice."""

    def __init__(self, canvas: Any) -> None:
        super().__init__(canvas)
        self.canvas = canvas
        self.marks: dict[int, list[str]] = {}
        self._order: list[str] = []  # the result's levels, top to bottom
        self.setMouseTracking(True)
        self.setFixedHeight(max(16, self.fontMetrics().height() + 4))
        lay = canvas.layout()
        lay.insertWidget(lay.indexOf(canvas.view) + 1, self)
        canvas.sliceChanged.connect(lambda _i: self.update())
        canvas.cleared.connect(self.refresh)
        canvas.volumeChanged.connect(self.refresh)
        canvas.resultChanged.connect(self.refresh)

    def refresh(self, *_: Any) -> None:
        """Re-read the marks from the canvas' result."""
        r = self.canvas.result
        shown = (r is not None and self.canvas.pixels is not None
                 and r.series_uid == self.canvas.series_uid)
        self.marks = measurement_slices(r) if shown else {}
        self._order = [v.level for v in r.vertebrae] if shown else []
        self.setToolTip("\n".join(f"slice {k + 1}: {', '.join(v)}"
                                  for k, v in sorted(self.marks.items())))
        self.update()

    def x_of(self, index: int) -> float:
        """Horizontal centre (in this widget) of the slider handle at slice ``index``."""
        s = self.canvas.slider
        opt = QtWidgets.QStyleOptionSlider()
        s.initStyleOption(opt)
        groove = s.style().subControlRect(QtWidgets.QStyle.ComplexControl.CC_Slider, opt,
                                          QtWidgets.QStyle.SubControl.SC_SliderGroove, s)
        handle = s.style().subControlRect(QtWidgets.QStyle.ComplexControl.CC_Slider, opt,
                                          QtWidgets.QStyle.SubControl.SC_SliderHandle, s)
        span = max(groove.width() - handle.width(), 1)
        pos = QtWidgets.QStyle.sliderPositionFromValue(s.minimum(), s.maximum(), index, span)
        x_in_slider = groove.x() + pos + handle.width() / 2.0
        return float(s.mapTo(self.canvas, QtCore.QPoint(int(x_in_slider), 0)).x()
                     - self.mapTo(self.canvas, QtCore.QPoint(0, 0)).x())

    def index_at(self, x: float, tolerance: float = 8.0) -> int | None:
        """The marked slice nearest to ``x`` within ``tolerance`` pixels."""
        best = min(self.marks, key=lambda k: abs(self.x_of(k) - x), default=None)
        if best is None or abs(self.x_of(best) - x) > tolerance:
            return None
        return best

    def paintEvent(self, ev: QtGui.QPaintEvent) -> None:
        if not self.marks:
            return
        p = QtGui.QPainter(self)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        colour = QtGui.QColor(style.ANALYSED_SLICE_COLOUR)
        h = self.height()
        p.setPen(self.palette().color(QtGui.QPalette.ColorRole.WindowText))
        for x, text in self.text_positions():  # under the marks: no mark is hidden
            p.drawText(QtCore.QPointF(x, h - 3), text)
        for k in sorted(self.marks):
            x = self.x_of(k)
            tri = QtGui.QPolygonF([QtCore.QPointF(x - 5, h - 9), QtCore.QPointF(x + 5, h - 9),
                                   QtCore.QPointF(x, h - 1)])
            p.setPen(QtGui.QPen(QtGui.QColor("#000000"), 1))
            p.setBrush(colour if k == self.canvas.index else colour.darker(130))
            p.drawPolygon(tri)
        p.end()

    def text_positions(self) -> list[tuple[float, str]]:
        """(left x, text) of the level texts beside the marks that fit without overlapping:
        the shown slice's first, then left to right (the tooltip lists every mark)."""
        fm = self.fontMetrics()
        placed: list[tuple[float, float, str]] = []
        order = sorted(self.marks, key=lambda k: (k != self.canvas.index, k))
        for k in order:
            text = span_text(self.marks[k], self._order)
            w = fm.horizontalAdvance(text)
            x0 = min(max(self.x_of(k) + 7, 0), self.width() - w)
            if all(x0 + w + 6 <= a or x0 >= b + 6 for a, b, _ in placed):
                placed.append((x0, x0 + w, text))
        return [(a, text) for a, _, text in sorted(placed)]

    def mousePressEvent(self, ev: QtGui.QMouseEvent) -> None:
        k = self.index_at(ev.position().x())
        if k is not None:
            self.canvas.set_slice(k)
        else:
            super().mousePressEvent(ev)
