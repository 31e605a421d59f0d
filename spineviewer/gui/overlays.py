"""Overlay items of one vertebra on the canvas: tint, outline, label, corner handles, AH/PH
lines, SC/IC depth markers and endplate lines, each kind toggleable.

Coordinates are (x = col, y = row) source pixels. Corner handles are draggable; while one is
dragged the lines follow it, and ``cornerMoved`` fires once on release.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from spineviewer.core import calls
from spineviewer.core.results import CORNER_NAMES, VertebraResult
from spineviewer.core.review import endplate_depth_points
from spineviewer.gui import style

#: Corner handle size in screen pixels, and the least it shrinks to on small bodies.
HANDLE_PX = 9.0
MIN_HANDLE_PX = 4.0

#: overlay kinds the user can toggle, with their menu text
OVERLAYS = {
    "masks": "Mask tint", "outlines": "Outlines", "labels": "Level labels",
    "corners": "Corner points", "heights": "AH / PH lines", "depths": "SC / IC depth markers",
    "endplates": "Endplate lines (VA)", "legend": "Legend",
}
_Z = {"masks": 10, "outlines": 11, "endplates": 12, "heights": 13, "depths": 13,
      "labels": 15, "corners": 20}
ENDPLATE_EXTENSION = 0.25  # endplate lines reach this fraction of the chord beyond the corners


def _pen(colour: QtGui.QColor, width: float = 1.6, dash: bool = False) -> QtGui.QPen:
    pen = pg.mkPen(colour, width=width)
    pen.setCosmetic(True)
    if dash:
        pen.setStyle(QtCore.Qt.PenStyle.DashLine)
    return pen


def _segments(item: pg.PlotCurveItem, pairs: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Show disconnected segments (a, b) given as (row, col) points."""
    if not pairs:
        item.setData([], [])
        return
    pts = np.array([p for pair in pairs for p in pair], dtype=float)
    item.setData(x=pts[:, 1], y=pts[:, 0], connect="pairs")


class VertebraOverlay(QtCore.QObject):
    """All overlay items of one vertebra."""

    cornerMoved = QtCore.Signal(str, str, float, float)  # level, corner, row, col (on release)
    cornerDragging = QtCore.Signal(str, str, float, float)  # the same, while dragging

    def __init__(self, v: VertebraResult, selected: bool = False) -> None:
        super().__init__()
        self.level = v.level
        self.selected = selected
        #: 1-based slice of the outline when the label is shown on another slice, else None
        self.elsewhere: int | None = None
        self.tint = QtWidgets.QGraphicsPolygonItem()
        self.tint.setPen(QtGui.QPen(QtCore.Qt.PenStyle.NoPen))
        self.outline_item = pg.PlotCurveItem()
        self.heights_item = pg.PlotCurveItem()
        self.endplates_item = pg.PlotCurveItem()
        self.depth_item = pg.PlotCurveItem(pen=_pen(QtGui.QColor("#FFFFFF"), 1.6))
        self.tips_item = pg.ScatterPlotItem(size=5, brush=pg.mkBrush("#FFFFFF"), pen=None)
        self.label = pg.TextItem(fill=pg.mkBrush(0, 0, 0, 150))
        self.handles = {name: self._make_handle(name) for name in CORNER_NAMES
                        if name in v.corners_rc}
        self.items: dict[str, list[QtWidgets.QGraphicsItem]] = {
            "masks": [self.tint], "outlines": [self.outline_item], "labels": [self.label],
            "corners": list(self.handles.values()), "heights": [self.heights_item],
            "depths": [self.depth_item, self.tips_item], "endplates": [self.endplates_item],
            "legend": []}
        self.update(v)

    # ---- content --------------------------------------------------------------------------
    def can_show(self, v: VertebraResult) -> bool:
        """True when ``update(v)`` can show ``v`` (same level and corner set)."""
        return v.level == self.level and set(v.corners_rc) == set(self.handles)

    @staticmethod
    def _signature(v: VertebraResult) -> tuple:
        """Everything the overlay draws from ``v``: an unchanged vertebra is not redrawn."""
        outline = v.outline_rc
        return (v.level, tuple(sorted((k, tuple(map(float, p))) for k, p in v.corners_rc.items())),
                len(outline), tuple(map(float, outline[0])) if outline else (),
                tuple(map(float, outline[-1])) if outline else (), calls.final_call(v),
                style.call_status(v), tuple(v.flags), v.ai is not None,
                v.AH_mm, v.MH_mm, v.PH_mm)

    def update(self, v: VertebraResult) -> None:
        """Show ``v`` with the existing items (after an edit: cheap, no items re-created)."""
        sig = self._signature(v)
        if sig == getattr(self, "_drawn", None):
            self.vertebra = v
            return
        self._drawn = sig
        self.vertebra = v
        self.colour = style.status_colour(v)
        self.corners = {k: np.asarray(p, dtype=float) for k, p in v.corners_rc.items()}
        outline = np.asarray(v.outline_rc, dtype=float).reshape(-1, 2)
        self.polygon = QtGui.QPolygonF([QtCore.QPointF(c, r) for r, c in outline])
        self.tint.setPolygon(self.polygon)
        self.tint.setBrush(QtGui.QBrush(style.status_colour(v, alpha=60)))
        closed = np.vstack([outline, outline[:1]]) if len(outline) else np.zeros((0, 2))
        self.outline_item.setData(x=closed[:, 1], y=closed[:, 0])
        self.heights_item.setPen(_pen(self.colour, 2.0))
        self.endplates_item.setPen(_pen(self.colour, 1.2, dash=True))
        marks = endplate_depth_points(v.corners_rc, outline)
        _segments(self.depth_item, [(np.asarray(a), np.asarray(b)) for a, b in marks.values()])
        deep = np.array([a for a, _ in marks.values()]).reshape(-1, 2)
        self.tips_item.setData(x=deep[:, 1], y=deep[:, 0])
        for name, h in self.handles.items():
            r, c = self.corners[name]
            h.blockSignals(True)  # a programmatic move is not a drag
            h.setPos(float(c), float(r))
            h.blockSignals(False)
            h.setBrush(pg.mkBrush(self.colour))
        self._place_label()
        self._update_lines()
        self.set_selected(self.selected)

    def _label_html(self, v: VertebraResult, details: bool = False) -> str:
        text = f"<b>{v.level}</b>"
        if v.ai is not None:
            text += " &#9998;"
        if v.final_fracture:  # core.calls wording: "wedge G2", "mild crush", never "G0"
            text += f" {calls.reader_short(v) or calls.algorithm_short(v)}"
        elif v.deformity == calls.NOT_ASSESSABLE and not calls.has_override(v):
            text += " not assessable"
        elif "schmorl_node" in v.flags:
            text += " Schmorl"
        doubt = ""
        if "needs_review" in v.flags:
            doubt = f" <b style='color:{style.STATUS_COLOURS['review'][0]}'>?</b>"
        html = f"<span style='color:{self.colour.name()};font-size:10pt'>{text}</span>{doubt}"
        if details:  # the selected vertebra shows its heights on the image
            nums = " ".join(f"{k[:2]} {getattr(v, k):.1f}" for k in ("AH_mm", "MH_mm", "PH_mm")
                            if getattr(v, k) is not None)
            if nums:
                html += f"<br><span style='color:#f0f0f0;font-size:9pt'>{nums} mm</span>"
        return html

    def _place_label(self) -> None:
        c = self.corners
        self._label_nowhere = False
        if not all(k in c for k in CORNER_NAMES):
            # a partly visible body: at its outline, else at its known corners; never at the
            # image's top-left corner (issue 15)
            if len(self.polygon):
                self.label.setPos(self.polygon.boundingRect().center())
            elif c:
                r, col = np.mean(list(c.values()), axis=0)
                self.label.setPos(float(col), float(r))
            else:
                self._label_nowhere = True
            return
        ant = (c["AS"] + c["AI"]) / 2.0
        post = (c["PS"] + c["PI"]) / 2.0
        d = ant - post
        d = d / (np.hypot(*d) or 1.0)
        pos = ant + d * 0.25 * np.hypot(*(ant - post))
        self.label.setAnchor((1.0, 0.5) if d[1] < 0 else (0.0, 0.5))
        self.label.setPos(float(pos[1]), float(pos[0]))

    def fit_handles(self, screen_px_per_image_px: float) -> None:
        """Corner handles no larger than ~1/3 of the shortest side of this body on screen, so
        that they never overlap on a small view or at 2x display scaling."""
        pts = [self.corners[k] for k in CORNER_NAMES if k in self.corners]
        if len(pts) < 2 or not np.isfinite(screen_px_per_image_px):
            return
        d = min(float(np.hypot(*(a - b))) for i, a in enumerate(pts) for b in pts[i + 1:])
        size = float(np.clip(0.3 * d * screen_px_per_image_px, MIN_HANDLE_PX, HANDLE_PX))
        for h in self.handles.values():
            if h.scale != size:  # pg.TargetItem keeps its symbol size in ``scale``
                h.prepareGeometryChange()
                h.scale = size
                h.viewTransformChanged()  # drops the cached shape
                h.update()

    def _make_handle(self, name: str) -> pg.TargetItem:
        h = pg.TargetItem(pos=(0, 0), size=HANDLE_PX, symbol="o", movable=True,
                          pen=_pen(QtGui.QColor("#000000"), 1.0),
                          hoverBrush=pg.mkBrush("#FFFFFF"))
        h.setToolTip(f"{self.level} {name}: drag to correct")
        h.sigPositionChanged.connect(lambda item, n=name: self._on_drag(n, item))
        h.sigPositionChangeFinished.connect(lambda item, n=name: self._on_drop(n, item))
        return h

    def _on_drag(self, name: str, item: pg.TargetItem) -> None:
        self._drawn = None  # the screen no longer shows the result: the next update redraws
        p = item.pos()
        self.corners[name] = np.array([p.y(), p.x()])
        self._update_lines()
        self.cornerDragging.emit(self.level, name, float(p.y()), float(p.x()))

    def _on_drop(self, name: str, item: pg.TargetItem) -> None:
        p = item.pos()
        self.cornerMoved.emit(self.level, name, float(p.y()), float(p.x()))

    def _update_lines(self) -> None:
        c = self.corners
        if not all(k in c for k in CORNER_NAMES):
            return
        _segments(self.heights_item, [(c["AS"], c["AI"]), (c["PS"], c["PI"])])
        ext = []
        for a, b in (("AS", "PS"), ("AI", "PI")):
            d = c[b] - c[a]
            ext.append((c[a] - ENDPLATE_EXTENSION * d, c[b] + ENDPLATE_EXTENSION * d))
        _segments(self.endplates_item, ext)

    # ---- scene ----------------------------------------------------------------------------
    def all_items(self) -> list[QtWidgets.QGraphicsItem]:
        """Every graphics item of this vertebra."""
        return [it for kind in self.items.values() for it in kind]

    def add_to(self, vb: pg.ViewBox) -> None:
        """Add the items to a view box."""
        for kind, items in self.items.items():
            for it in items:
                it.setZValue(_Z.get(kind, 10))
                vb.addItem(it)
        self.set_selected(self.selected)

    def remove(self, vb: pg.ViewBox) -> None:
        """Remove the items from a view box."""
        for it in self.all_items():
            vb.removeItem(it)

    def set_visible(self, visible: dict[str, bool]) -> None:
        """Show or hide each overlay kind."""
        for kind, items in self.items.items():
            for it in items:
                it.setVisible(bool(visible.get(kind, True)))

    def set_elsewhere(self, slice_number: int | None) -> None:
        """The label is shown on a slice other than the vertebra's measurement slice (the
        analysed slice, where the levels were named): it names the slice of the outline."""
        if slice_number != self.elsewhere:
            self.elsewhere = slice_number
            self.set_selected(self.selected)

    def set_selected(self, selected: bool) -> None:
        """Highlight the outline of the selected vertebra."""
        self.selected = selected
        nowhere = getattr(self, "_label_nowhere", False)
        html = "" if nowhere else self._label_html(self.vertebra,
                                                   details=selected and self.elsewhere is None)
        if html and self.elsewhere is not None:
            html += (f"<br><span style='color:#d0d0d0;font-size:8pt'>measured on slice "
                     f"{self.elsewhere}</span>")
        self.label.setHtml(html)
        colour = QtGui.QColor(style.SELECTED_COLOUR) if selected else self.colour
        self.outline_item.setPen(_pen(colour, 3.0 if selected else 1.6))
        # the selected outline sits above the height and endplate lines
        self.outline_item.setZValue(_Z["labels"] - 1 if selected else _Z["outlines"])

    def contains_rc(self, rc: tuple[float, float]) -> bool:
        """True when (row, col) lies inside the outline."""
        return self.polygon.containsPoint(QtCore.QPointF(rc[1], rc[0]),
                                          QtCore.Qt.FillRule.OddEvenFill)
