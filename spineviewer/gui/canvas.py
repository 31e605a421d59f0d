"""The image canvas: one slice of a series with window/level, zoom, pan, slice scrolling and
the analysis overlays (masks, labels, draggable corners, heights, depths, endplates).

Mouse as in Weasis / RadiAnt: left drag = window/level, middle drag (or Shift + left) = pan,
right drag = zoom, wheel = slice, Ctrl + wheel = zoom. Overlays use (x = col, y = row) in
source pixels, pixel centres at integer coordinates.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from spineviewer.core.results import StudyResult
from spineviewer.gui import style
from spineviewer.gui.overlays import OVERLAYS, VertebraOverlay

pg.setConfigOptions(imageAxisOrder="row-major", antialias=True)

#: name -> (low percentile, high percentile) of the slice; "DICOM" uses the header window.
WL_PRESETS = {"Auto": (1.0, 99.5), "High contrast": (5.0, 95.0), "Full range": (0.0, 100.0)}


class _ViewBox(pg.ViewBox):
    """ViewBox with radiology mouse bindings; emits drags for window/level and wheel steps."""

    windowDragged = QtCore.Signal(float, float)
    sliceStepped = QtCore.Signal(int)
    #: optional ``tool(ev) -> bool`` that takes left drags first (the distance ruler)
    drag_tool = None

    def mouseDragEvent(self, ev, axis=None):
        if (self.drag_tool is not None and ev.button() == QtCore.Qt.MouseButton.LeftButton
                and not ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier
                and self.drag_tool(ev)):
            return
        pan = ev.button() == QtCore.Qt.MouseButton.MiddleButton or (
            ev.button() == QtCore.Qt.MouseButton.LeftButton
            and ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier)
        if pan:
            ev.accept()
            d = self.mapToView(ev.lastPos()) - self.mapToView(ev.pos())
            self.translateBy(x=d.x(), y=d.y())
        elif ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            d = ev.pos() - ev.lastPos()
            self.windowDragged.emit(float(d.x()), float(d.y()))
        else:
            super().mouseDragEvent(ev, axis)

    def wheelEvent(self, ev, axis=None):
        if ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        ev.accept()
        self.sliceStepped.emit(-1 if ev.delta() > 0 else 1)


class SliceCanvas(QtWidgets.QWidget):
    """One series, one slice at a time, with analysis overlays on the analysed slice."""

    cornerMoved = QtCore.Signal(str, str, float, float)  # level, corner, row, col (on release)
    cornerDragging = QtCore.Signal(str, str, float, float)  # the same, while dragging
    vertebraClicked = QtCore.Signal(str)
    sliceChanged = QtCore.Signal(int)
    cursorInfoChanged = QtCore.Signal(str)
    volumeChanged = QtCore.Signal()  # a new series is shown (set_volume)
    cleared = QtCore.Signal()  # no series is shown any more (clear)
    resultChanged = QtCore.Signal()  # set_result was called (new result, edit or None)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.pixels: np.ndarray | None = None
        self.spacing_mm = (1.0, 1.0)
        self.series_uid = ""
        self.index = 0
        self.window: tuple[float, float] = (0.0, 1.0)  # (centre, width)
        self.result: StudyResult | None = None
        self.overlays: dict[str, VertebraOverlay] = {}
        self.visible = {name: True for name in OVERLAYS}
        self.selected_level = ""
        self._dicom_window: tuple[float, float] | None = None
        self._build()

    # ---- construction ---------------------------------------------------------------------
    def _build(self) -> None:
        self.view = pg.GraphicsView(background="#111111")
        self.vb = _ViewBox(invertY=True, lockAspect=True, enableMenu=False)
        self.view.setCentralItem(self.vb)
        self.image_item = pg.ImageItem(axisOrder="row-major")
        self.vb.addItem(self.image_item)
        self.vb.windowDragged.connect(self._on_window_drag)
        self.vb.sigTransformChanged.connect(lambda *_: self.fit_handles())
        self.vb.sliceStepped.connect(lambda step: self.set_slice(self.index + step))
        self.view.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.view.scene().sigMouseClicked.connect(self._on_mouse_clicked)

        self.slice_label = QtWidgets.QLabel(self.view)
        self.slice_label.setStyleSheet(
            "QLabel{background:rgba(0,0,0,150);color:#f0f0f0;padding:3px 6px;}")
        self.annotation = QtWidgets.QLabel(self.view)  # patient / study / series, as viewers do
        self.annotation.setStyleSheet(
            "QLabel{background:rgba(0,0,0,150);color:#f0f0f0;padding:3px 6px;}")
        self.annotation.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight)
        self.annotation.hide()
        self.legend = QtWidgets.QLabel(style.legend_html(), self.view)
        self.legend.setStyleSheet(
            "QLabel{background:rgba(0,0,0,150);color:#f0f0f0;padding:3px 6px;}")
        self.legend.adjustSize()

        self.slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.slider.setToolTip("Slice (wheel, Up/Down, PgUp/PgDn)")
        self.slider.valueChanged.connect(self.set_slice)
        self.info = QtWidgets.QLabel(" ")
        self.info.setMinimumWidth(260)
        bottom = QtWidgets.QHBoxLayout()
        bottom.addWidget(self.slider, 1)
        bottom.addWidget(self.info)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.view, 1)
        lay.addLayout(bottom)
        self.setFocusPolicy(QtCore.Qt.FocusPolicy.StrongFocus)

    def resizeEvent(self, ev: QtGui.QResizeEvent) -> None:
        super().resizeEvent(ev)
        self._place_legend()

    def _place_legend(self) -> None:
        # on a narrow view (small screen, 2x scaling, linked view) the legend wraps
        room = max(self.view.width() - 12, 60)
        self.legend.setWordWrap(False)
        self.legend.setMinimumWidth(0)
        self.legend.setMaximumWidth(16777215)
        self.legend.adjustSize()
        if self.legend.width() > room:
            self.legend.setWordWrap(True)
            self.legend.setFixedWidth(room)
            self.legend.adjustSize()
        # corners as in PACS viewers: patient top right, slice bottom left, legend bottom right
        self.slice_label.adjustSize()
        bottom = self.view.height() - 6
        self.slice_label.move(6, max(0, bottom - self.slice_label.height()))
        x = max(0, self.view.width() - self.legend.width() - 6)
        if x < 6 + self.slice_label.width() + 6:  # too narrow for both on one line
            bottom -= self.slice_label.height() + 4
        self.legend.move(x, max(0, bottom - self.legend.height()))
        self.annotation.adjustSize()
        self.annotation.move(max(0, self.view.width() - self.annotation.width() - 6), 6)

    def set_annotation(self, text: str) -> None:
        """Corner text (patient, study date, series); empty hides it."""
        self.annotation.setText(text)
        self.annotation.setVisible(bool(text))
        self._place_legend()

    # ---- series and slices ----------------------------------------------------------------
    def set_volume(self, pixels: np.ndarray, spacing_mm: tuple[float, float],
                   series_uid: str = "", index: int | None = None,
                   dicom_window: tuple[float, float] | None = None) -> None:
        """Show a series (n, rows, cols); ``index`` defaults to the centre slice."""
        self.pixels = np.asarray(pixels, dtype=np.float32)
        if self.pixels.ndim == 2:
            self.pixels = self.pixels[None]
        self.spacing_mm = (float(spacing_mm[0]), float(spacing_mm[1]))
        self.series_uid = series_uid
        self._dicom_window = dicom_window
        self.slice_label.show()
        n = len(self.pixels)
        self.vb.setAspectLocked(True, ratio=self.spacing_mm[1] / self.spacing_mm[0])
        self.image_item.setPos(-0.5, -0.5)  # pixel centres at integer coordinates
        self.slider.blockSignals(True)
        self.slider.setRange(0, n - 1)
        self.slider.blockSignals(False)
        self.index = -1
        self.set_slice((n - 1) // 2 if index is None else index, force=True)
        self.apply_preset("DICOM" if dicom_window else "Auto")
        self.fit()
        self.volumeChanged.emit()

    def clear(self) -> None:
        """Show nothing: no image, no overlays, no annotation (e.g. after a failed open)."""
        self.set_result(None)
        self.pixels = None
        self.series_uid = ""
        self.index = 0
        self._dicom_window = None
        self.image_item.clear()
        self.slider.blockSignals(True)
        self.slider.setRange(0, 0)
        self.slider.blockSignals(False)
        self.slice_label.hide()
        self.set_annotation("")
        self.info.setText(" ")
        self.cleared.emit()

    def set_slice(self, index: int, force: bool = False) -> None:
        """Show slice ``index`` (clamped); overlays only on the analysed slice."""
        if self.pixels is None:
            return
        index = int(np.clip(index, 0, len(self.pixels) - 1))
        if index == self.index and not force:
            return
        self.index = index
        self.image_item.setImage(self.pixels[index], autoLevels=False)
        self._apply_levels()
        self.slider.blockSignals(True)
        self.slider.setValue(index)
        self.slider.blockSignals(False)
        self._update_overlay_visibility()
        self._update_slice_label()
        self.sliceChanged.emit(index)

    def _update_slice_label(self) -> None:
        n = 0 if self.pixels is None else len(self.pixels)
        text = f"Slice {self.index + 1} / {n}"
        here = self.levels_measured_here()
        if self.analysed_here():
            text += (f"  <b style='color:{style.ANALYSED_SLICE_COLOUR}'>&#9679; analysed slice</b>")
            if here and len(here) < len(self.result.vertebrae):
                text += f" (measured here: {', '.join(here)})"
        elif here:
            text += (f"  <b style='color:{style.ANALYSED_SLICE_COLOUR}'>&#9679; measured here: "
                     f"{', '.join(here)}</b>")
        elif self.result is not None and self.result.series_uid == self.series_uid:
            text += f"  (analysed: {self.result.slice_index + 1})"
        self.slice_label.setText(text)
        self._place_legend()

    def analysed_here(self) -> bool:
        """True when the shown slice is the analysed slice of the shown result (the slice
        whose labelling named the levels)."""
        r = self.result
        return r is not None and r.series_uid == self.series_uid and r.slice_index == self.index

    def levels_measured_here(self) -> list[str]:
        """Levels of the shown result measured on the shown slice (empty when the result
        belongs to another series)."""
        r = self.result
        if r is None or r.series_uid != self.series_uid:
            return []
        return [v.level for v in r.vertebrae if r.slice_of(v) == self.index]

    # ---- window / level -------------------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        """Set the window from a preset name of ``WL_PRESETS`` or "DICOM"."""
        if self.pixels is None:
            return
        if name == "DICOM" and self._dicom_window:
            self.set_window(*self._dicom_window)
            return
        lo_p, hi_p = WL_PRESETS.get(name, WL_PRESETS["Auto"])
        lo, hi = np.percentile(self.pixels[self.index], [lo_p, hi_p])
        self.set_window((lo + hi) / 2.0, max(float(hi - lo), 1e-3))

    def set_window(self, centre: float, width: float) -> None:
        """Set the display window (centre and width in stored units)."""
        self.window = (float(centre), max(float(width), 1e-3))
        self._apply_levels()

    def _apply_levels(self) -> None:
        c, w = self.window
        self.image_item.setLevels((c - w / 2.0, c + w / 2.0))

    def _on_window_drag(self, dx: float, dy: float) -> None:
        if self.pixels is None:
            return
        span = float(np.ptp(self.pixels[self.index])) or 1.0
        c, w = self.window
        self.set_window(c - dy * span / 400.0, w + dx * span / 400.0)

    def fit(self) -> None:
        """Fit the whole slice into the view."""
        self.vb.autoRange(padding=0.02)

    # ---- results and overlays -------------------------------------------------------------
    def set_result(self, result: StudyResult | None) -> None:
        """Draw (or clear) the overlays of ``result``; called again after every edit."""
        if result is not None and self._can_update(result):
            self.result = result  # same vertebrae: move the existing items (fast, no flicker)
            for v in result.vertebrae:
                self.overlays[v.level].update(v)
            self._update_overlay_visibility()
            self._update_slice_label()
            self.resultChanged.emit()
            return
        for ov in self.overlays.values():
            ov.remove(self.vb)
        self.overlays = {}
        self.result = result
        if result is not None:
            for v in result.vertebrae:
                ov = VertebraOverlay(v, selected=v.level == self.selected_level)
                ov.add_to(self.vb)
                ov.cornerMoved.connect(self.cornerMoved.emit)
                ov.cornerDragging.connect(self.cornerDragging.emit)
                self.overlays[v.level] = ov
        self.fit_handles()
        self._update_overlay_visibility()
        self._update_slice_label()
        self.resultChanged.emit()

    def set_editable(self, on: bool) -> None:
        """Let the corner handles be dragged (off for a preliminary result)."""
        for ov in self.overlays.values():
            for h in ov.handles.values():
                h.movable = bool(on)

    def fit_handles(self) -> None:
        """Size the corner handles to the bodies as shown (zoom, window size, 2x scaling)."""
        if not self.overlays:
            return
        px = self.vb.viewPixelSize()[0]
        if px and np.isfinite(px):
            for ov in self.overlays.values():
                ov.fit_handles(1.0 / px)

    def _can_update(self, result: StudyResult) -> bool:
        levels = [v.level for v in result.vertebrae]
        return bool(levels) and levels == list(self.overlays) and all(
            self.overlays[v.level].can_show(v) for v in result.vertebrae)

    def set_overlay_visible(self, name: str, visible: bool) -> None:
        """Toggle one overlay kind of ``OVERLAYS`` (masks, labels, corners, ...)."""
        self.visible[name] = bool(visible)
        if name == "legend":
            self.legend.setVisible(visible)
        self._update_overlay_visibility()

    def _update_overlay_visibility(self) -> None:
        """Each vertebra's overlays on the slice it was measured on; on the analysed slice the
        level names of the others too, each with the slice that shows its outline."""
        named = self.analysed_here()
        measured = set(self.levels_measured_here())
        for level, ov in self.overlays.items():
            here = level in measured
            kinds = {k: here and on for k, on in self.visible.items()}
            if named and not here:
                kinds["labels"] = self.visible.get("labels", True)
            ov.set_visible(kinds)
            ov.set_elsewhere(None if here or self.result is None
                             else self.result.slice_of(ov.vertebra) + 1)

    def select_level(self, level: str, centre: bool = True) -> None:
        """Highlight ``level`` and (optionally) centre the view on it, keeping the zoom."""
        self.selected_level = level
        for name, ov in self.overlays.items():
            ov.set_selected(name == level)
        if centre and self.result is not None:
            v = self.result.vertebra(level)
            if v is not None and v.corners_rc:
                if self.result.series_uid == self.series_uid:
                    self.set_slice(self.result.slice_of(v))  # where its outline is drawn
                pts = np.asarray(list(v.corners_rc.values()), dtype=float)
                (x0, x1), (y0, y1) = self.vb.viewRange()
                (r_lo, c_lo), (r_hi, c_hi) = pts.min(axis=0), pts.max(axis=0)
                if x0 <= c_lo and c_hi <= x1 and y0 <= r_lo and r_hi <= y1:
                    return  # already in view: re-centring would only cut off other levels
                r, c = pts.mean(axis=0)
                self.vb.setRange(xRange=(c - (x1 - x0) / 2, c + (x1 - x0) / 2),
                                 yRange=(r - (y1 - y0) / 2, r + (y1 - y0) / 2), padding=0)

    def corner_handle(self, level: str, corner: str) -> pg.TargetItem:
        """The draggable handle of one corner (for tests and keyboard nudging)."""
        return self.overlays[level].handles[corner]

    def view_centre_rc(self) -> tuple[float, float]:
        """(row, col) at the centre of the view."""
        (x0, x1), (y0, y1) = self.vb.viewRange()
        return ((y0 + y1) / 2.0, (x0 + x1) / 2.0)

    # ---- mouse and keys -------------------------------------------------------------------
    def pixel_at(self, scene_pos: QtCore.QPointF) -> tuple[int, int] | None:
        """(row, col) of the pixel under a scene position, or None outside."""
        if self.pixels is None:
            return None
        p = self.vb.mapSceneToView(scene_pos)
        r, c = round(p.y()), round(p.x())
        _, rows, cols = self.pixels.shape
        return (r, c) if 0 <= r < rows and 0 <= c < cols else None

    def _on_mouse_moved(self, scene_pos: QtCore.QPointF) -> None:
        rc = self.pixel_at(scene_pos)
        if rc is None:
            text = " "
        else:
            r, c = rc
            val = float(self.pixels[self.index, r, c])
            text = (f"({r}, {c})  {r * self.spacing_mm[0]:.1f}, {c * self.spacing_mm[1]:.1f} mm"
                    f"  value {val:.0f}  W {self.window[1]:.0f} L {self.window[0]:.0f}")
        self.info.setText(text)
        self.cursorInfoChanged.emit(text)

    def _on_mouse_clicked(self, ev) -> None:
        rc = self.pixel_at(ev.scenePos())
        if rc is None or self.result is None or self.result.series_uid != self.series_uid:
            return
        measured = set(self.levels_measured_here())
        named = self.analysed_here()
        for level, ov in self.overlays.items():
            if (level in measured or named) and ov.contains_rc(rc):
                self.vertebraClicked.emit(level)
                return

    def keyPressEvent(self, ev: QtGui.QKeyEvent) -> None:
        keys = QtCore.Qt.Key
        steps = {keys.Key_Up: -1, keys.Key_Down: 1, keys.Key_PageUp: -5, keys.Key_PageDown: 5}
        if ev.key() in steps:
            self.set_slice(self.index + steps[ev.key()])
        elif ev.key() == keys.Key_Home:
            self.set_slice(0)
        elif ev.key() == keys.Key_End and self.pixels is not None:
            self.set_slice(len(self.pixels) - 1)
        else:
            super().keyPressEvent(ev)
