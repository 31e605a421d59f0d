"""A second, linked viewport: the study's sagittal STIR (or T1) beside the main canvas.

It shows the slice nearest, in patient space, to the main canvas' slice and the same region
(pan and zoom follow the main view), using ``core.dicom.patient_space``. Oedema on STIR is how
a reader tells an acute fracture from an old one, so STIR is preferred, then T1.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from spineviewer.core.dicom.patient_space import SeriesGeometry
from spineviewer.gui import style
from spineviewer.gui import worker as workers
from spineviewer.gui.canvas import SliceCanvas

_STIR = re.compile(r"stir|tirm|(?<![a-z])ir(?![a-z])|fat.?sat|(?<![a-z])fs(?![a-z])", re.IGNORECASE)
_T1 = re.compile(r"(?<![a-z])t1", re.IGNORECASE)


def _load(info: Any) -> Any:
    from spineviewer.core.dicom.volume import load_series

    return load_series(info)


def series_kind(s: Any) -> str:
    """"STIR", "T1" or "" for a series (by inversion time, then description / timing)."""
    text = f"{s.series_description} {getattr(s, 'protocol_name', '')}"
    if (getattr(s, "inversion_time_ms", None) or 0) > 0 or _STIR.search(text):
        return "STIR"
    te, tr = s.echo_time_ms, s.repetition_time_ms
    if _T1.search(text) or (te is not None and tr is not None and te < 30 and tr < 1000):
        return "T1"
    return ""


def linked_candidates(index: Any, shown: Any) -> list[Any]:
    """Sagittal series of the shown series' study that can sit beside it, best first
    (STIR, then T1, then any other sagittal series)."""
    if index is None or shown is None:
        return []
    rank = {"STIR": 0, "T1": 1, "": 2}
    out = [s for s in index.series if s.study_uid == shown.study_uid
           and s.series_uid != shown.series_uid and s.plane == "sagittal" and s.n_slices > 0]
    return sorted(out, key=lambda s: (rank[series_kind(s)], s.series_number or 0))


class LinkedView(QtWidgets.QWidget):
    """A header (series choice, distance note) over a SliceCanvas that follows ``main``."""

    loaded = QtCore.Signal(str)  # series uid shown
    synced = QtCore.Signal(int)  # slice shown after following the main canvas

    def __init__(self, main: SliceCanvas, parent: QtWidgets.QWidget | None = None,
                 start_job: Any = None) -> None:
        super().__init__(parent)
        self.main = main
        # ``start_job(name, job)`` of the main window: its jobs are cancelled on open/close
        self._start_job = start_job
        self.canvas = SliceCanvas()
        self.canvas.set_overlay_visible("legend", False)
        self.canvas.setObjectName("linked canvas")
        self.combo = QtWidgets.QComboBox()
        self.combo.setToolTip("Series shown in the linked view")
        self.combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.combo.activated.connect(lambda _i: self.show_series(self.combo.currentData()))
        self.note = QtWidgets.QLabel("")
        self.note.setToolTip("Distance between the main slice and the linked slice")
        head = QtWidgets.QHBoxLayout()
        head.setContentsMargins(4, 2, 4, 2)
        head.addWidget(QtWidgets.QLabel("Linked:"))
        head.addWidget(self.combo, 1)
        head.addWidget(self.note)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(0)
        lay.addLayout(head)
        lay.addWidget(self.canvas, 1)
        self.volume: Any = None
        self.main_volume: Any = None
        self.geometry_main: SeriesGeometry | None = None
        self.geometry_linked: SeriesGeometry | None = None
        self._candidates: list[Any] = []
        self._job: QtCore.QObject | None = None
        self._thread: QtCore.QThread | None = None
        self._syncing = False
        self.result: Any = None  # the main canvas' result: its levels are named here too
        self.level_labels: dict[str, pg.TextItem] = {}
        # where the mouse is on the main canvas, shown here (cross-reference cursor)
        self.cursor = pg.ScatterPlotItem(size=14, symbol="+", pen=pg.mkPen("#00E5FF", width=2),
                                         brush=None)
        self.cursor.setZValue(50)
        self.cursor.hide()
        self.canvas.vb.addItem(self.cursor)
        main.view.scene().sigMouseMoved.connect(self._on_main_mouse)
        main.sliceChanged.connect(lambda _i: self.sync())
        main.vb.sigRangeChanged.connect(lambda *_: self.sync_range())
        main.cleared.connect(self.clear)

    # ---- series ---------------------------------------------------------------------------
    def set_study(self, index: Any, main_volume: Any) -> None:
        """The main canvas now shows ``main_volume`` of ``index``: offer its study's series
        and show the best one (keeping the current one when it is still offered)."""
        self.main_volume = main_volume
        self.geometry_main = SeriesGeometry.from_volume(main_volume)
        shown = getattr(main_volume, "series", None)
        self._candidates = linked_candidates(index, shown)
        keep = self.volume.series.series_uid if self.volume is not None else ""
        self.combo.blockSignals(True)
        self.combo.clear()
        for s in self._candidates:
            kind = series_kind(s)
            self.combo.addItem(f"{s.label}" + (f"  [{kind}]" if kind else ""), s.series_uid)
        self.combo.blockSignals(False)
        if not self._candidates:
            self._show_nothing("no other sagittal series in this study")
            return
        uids = [s.series_uid for s in self._candidates]
        uid = keep if keep in uids else uids[0]
        self.combo.setCurrentIndex(uids.index(uid))
        if keep == uid and self.volume is not None:
            self.sync()
            self.sync_range()
        else:
            self._show_nothing("")  # never another study's image while the new one loads
            self.show_series(uid)

    def show_series(self, uid: str) -> None:
        """Load series ``uid`` (in the background) into the linked view."""
        info = next((s for s in self._candidates if s.series_uid == uid), None)
        if info is None:
            return
        self.stop()
        self.note.setText("loading\u2026")
        job = workers.TaskWorker(_load, info, what="Loading the linked series",
                                 with_progress=False)
        job.succeeded.connect(self._on_loaded)
        job.failed.connect(self._on_failed)
        self._job = job
        if self._start_job is not None:
            self._start_job("linked", job)
        else:
            self._thread = workers.start(job, self)

    def _current(self) -> bool:
        return self._job is not None and self.sender() is self._job

    @QtCore.Slot(object)
    def _on_loaded(self, volume: Any) -> None:
        if not self._current():
            return
        self.volume = volume
        self.geometry_linked = SeriesGeometry.from_volume(volume)
        from spineviewer.gui.window_study import _annotation, _dicom_window

        self.canvas.set_volume(volume.pixels, volume.pixel_spacing_mm, volume.series.series_uid,
                               dicom_window=_dicom_window(volume))
        self.canvas.set_annotation(_annotation(volume.series).split("\n", 2)[-1])
        self._place_levels()
        self.sync()
        self.sync_range()
        self.loaded.emit(volume.series.series_uid)

    @QtCore.Slot(str)
    def _on_failed(self, message: str) -> None:
        if self._current():
            self._show_nothing(message)

    def _show_nothing(self, why: str) -> None:
        self.cursor.hide()
        self.volume = None
        self.geometry_linked = None
        self._place_levels()
        self.canvas.clear()
        self.note.setText(why)

    def set_result(self, result: Any) -> None:
        """Name the levels of ``result`` (a result of the main canvas' series) in this view."""
        self.result = result
        self._place_levels()

    def _place_levels(self) -> None:
        for item in self.level_labels.values():
            self.canvas.vb.removeItem(item)
        self.level_labels = {}
        r = self.result
        if (r is None or not self.linked() or self.main_volume is None
                or r.series_uid != self.main_volume.series.series_uid):
            return
        g_m, g_l, k = self.geometry_main, self.geometry_linked, self.canvas.index
        for v in r.vertebrae:
            c = v.corners_rc
            if not all(n in c for n in ("AS", "AI", "PS", "PI")):
                continue
            ant = [(c["AS"][0] + c["AI"][0]) / 2, (c["AS"][1] + c["AI"][1]) / 2]
            post = [(c["PS"][0] + c["PI"][0]) / 2, (c["PS"][1] + c["PI"][1]) / 2]
            src = r.slice_of(v)
            a = np.array(g_l.to_pixel(g_m.to_patient(src, *ant), k)[1:])
            p = np.array(g_l.to_pixel(g_m.to_patient(src, *post), k)[1:])
            pos = a + 0.25 * (a - p)
            colour = style.status_colour(v).name()
            item = pg.TextItem(html=f"<b style='color:{colour}'>{v.level}</b>",
                               fill=pg.mkBrush(0, 0, 0, 150),
                               anchor=(1.0, 0.5) if (a - p)[1] < 0 else (0.0, 0.5))
            item.setPos(float(pos[1]), float(pos[0]))
            item.setZValue(30)
            self.canvas.vb.addItem(item)
            self.level_labels[v.level] = item

    def clear(self) -> None:
        """The main canvas shows nothing: neither does this view."""
        self.stop()
        self.result = None
        self._candidates = []
        self.combo.clear()
        self._show_nothing("")

    def stop(self) -> None:
        """Cancel a running load (its late result is dropped)."""
        if self._job is not None:
            self._job.cancel()
            if self._thread is not None:
                workers.stop(self._job, self._thread)
            self._job = self._thread = None

    def _on_main_mouse(self, scene_pos: Any) -> None:
        if not self.isVisible() or not self.linked() or self.main.pixels is None:
            return
        rc = self.main.pixel_at(scene_pos)
        if rc is None:
            self.cursor.hide()
            return
        self.show_cursor(*rc)

    def show_cursor(self, r: float, c: float) -> tuple[float, float] | None:
        """Mark the point (r, c) of the main canvas' slice in this view; returns its (row,
        col) here, or None when the views are not linked."""
        if not self.linked() or self.main.pixels is None:
            return None
        point = self.geometry_main.to_patient(self.main.index, r, c)
        _k, r2, c2 = self.geometry_linked.to_pixel(point, self.canvas.index)
        self.cursor.setData([c2], [r2])
        self.cursor.show()
        return r2, c2

    # ---- following the main canvas --------------------------------------------------------
    def linked(self) -> bool:
        """True when both series have a usable geometry in the same patient space."""
        if self.geometry_main is None or self.geometry_linked is None or self.volume is None:
            return False
        ma, li = self.main_volume, self.volume
        frame = [getattr(v.datasets[0], "FrameOfReferenceUID", None) if v.datasets else None
                 for v in (ma, li)]
        return frame[0] is None or frame[1] is None or frame[0] == frame[1]

    def sync(self) -> None:
        """Show the linked slice nearest to the main canvas' slice (at the view centre)."""
        if not self.isVisible() or not self.linked() or self.main.pixels is None:
            if self.volume is not None and not self.linked():
                self.note.setText("not linked: no common patient geometry")
            return
        r, c = self.main.view_centre_rc()
        point = self.geometry_main.to_patient(self.main.index, r, c)
        k, dist = self.geometry_linked.nearest_slice(point)
        moved = k != self.canvas.index
        self.canvas.set_slice(k)
        if moved:
            self._place_levels()
        self.note.setText(f"\u0394 {dist:.1f} mm")
        self.synced.emit(k)

    def sync_range(self) -> None:
        """Show the same patient region as the main view (same mm per screen pixel)."""
        if self._syncing or not self.isVisible() or not self.linked() or self.main.pixels is None:
            return
        (x0, x1), (y0, y1) = self.main.vb.viewRange()
        k = self.canvas.index
        g_m, g_l = self.geometry_main, self.geometry_linked
        corners = [g_l.to_pixel(g_m.to_patient(self.main.index, y, x), k)[1:]
                   for x, y in ((x0, y0), (x1, y1))]
        (r0, c0), (r1, c1) = corners
        self._syncing = True
        try:
            self.canvas.vb.setRange(xRange=sorted((c0, c1)), yRange=sorted((r0, r1)), padding=0)
        finally:
            self._syncing = False

    def showEvent(self, ev: Any) -> None:
        super().showEvent(ev)
        QtCore.QTimer.singleShot(0, lambda: (self.sync(), self.sync_range()))
