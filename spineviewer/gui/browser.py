"""DICOM browser: patient / study / series tree with thumbnails, indexing progress and the
auto-chosen sagittal T2 series highlighted with the reason it was chosen."""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from spineviewer.core.errors import SpineViewerError

logger = logging.getLogger(__name__)
STAR = "\u2605 "

THUMB_PX = 56
COLUMNS = ("Series",)
_UID_ROLE = QtCore.Qt.ItemDataRole.UserRole


@dataclass
class IndexedFolder:
    """What indexing a folder yields for the browser."""

    path: str
    index: Any  # core.dicom.index.StudyIndex
    choice: Any = None  # core.dicom.select.SeriesChoice, None when no series qualifies
    choice_error: str = ""
    thumbnails: dict[str, np.ndarray] = field(default_factory=dict)  # uid -> uint8 (h, w)


def thumbnail(files: tuple[str, ...], size: int = THUMB_PX) -> np.ndarray | None:
    """A uint8 thumbnail of the middle file of a series (None when unreadable)."""
    import pydicom

    if not files:
        return None
    try:
        ds = pydicom.dcmread(files[len(files) // 2])
        img = np.asarray(ds.pixel_array, dtype=np.float32)
    except Exception as exc:  # noqa: BLE001 - a missing thumbnail never stops browsing
        logger.debug("no thumbnail: %s", exc)
        return None
    if img.ndim == 3:
        img = img[len(img) // 2]
    step = max(1, int(np.ceil(max(img.shape) / size)))
    img = img[::step, ::step]
    lo, hi = np.percentile(img, [1, 99.5])
    return np.clip((img - lo) / max(hi - lo, 1e-6) * 255, 0, 255).astype(np.uint8)


def index_folder(path: str, progress: Callable[[str, float], None] | None = None,
                 cancel: Callable[[], bool] | None = None) -> IndexedFolder:
    """Scan ``path``, choose the sagittal T2 series and make thumbnails (worker thread)."""
    from spineviewer.core.dicom.index import scan_folder
    from spineviewer.core.dicom.select import choose_series
    from spineviewer.core.errors import Cancelled

    def scan_progress(a: Any, b: Any) -> None:  # scan_folder reports (fraction, message)
        if progress is not None:
            frac, msg = (a, b) if isinstance(a, (int, float)) else (b, a)
            progress(str(msg), 0.8 * float(frac))

    index = scan_folder(path, progress=scan_progress, cancel=cancel)
    out = IndexedFolder(path=str(path), index=index)
    try:
        out.choice = choose_series(index)
    except SpineViewerError as exc:
        out.choice_error = str(exc)
    for i, s in enumerate(index.series):
        if cancel is not None and cancel():
            raise Cancelled("indexing cancelled")
        if progress is not None:
            progress(f"thumbnails {i + 1}/{len(index.series)}", 0.8 + 0.2 * i / len(index.series))
        thumb = thumbnail(s.files)
        if thumb is not None:
            out.thumbnails[s.series_uid] = thumb
    return out


def _icon(thumb: np.ndarray) -> QtGui.QIcon:
    h, w = thumb.shape
    data = np.ascontiguousarray(thumb)
    img = QtGui.QImage(data.data, w, h, w, QtGui.QImage.Format.Format_Grayscale8).copy()
    return QtGui.QIcon(QtGui.QPixmap.fromImage(img))


def _te_tr(s: Any) -> str:
    te = "-" if s.echo_time_ms is None else f"{s.echo_time_ms:.0f}"
    tr = "-" if s.repetition_time_ms is None else f"{s.repetition_time_ms:.0f}"
    return f"TE {te} / TR {tr}"


def series_details(s: Any) -> str:
    """Second line of a series row: plane, TE/TR, slice count."""
    return f"{s.plane} \u00b7 {_te_tr(s)} \u00b7 {s.n_slices} sl"


class DicomBrowser(QtWidgets.QWidget):
    """Folder indexing controls and the series tree."""

    openRequested = QtCore.Signal()
    cancelRequested = QtCore.Signal()
    seriesActivated = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.folder: IndexedFolder | None = None
        #: patient ID -> SeriesInstanceUID of that patient's starred (analysed) series
        self.analysed: dict[str, str] = {}
        self.open_button = QtWidgets.QPushButton("Open folder\u2026")
        self.open_button.setToolTip("Open a study folder (Ctrl+O); you can also drop a folder "
                                    "onto the window")
        self.open_button.clicked.connect(self.openRequested.emit)
        self.progress = QtWidgets.QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(True)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancelRequested.emit)
        self.tree = QtWidgets.QTreeWidget()
        self.tree.setColumnCount(len(COLUMNS))
        self.tree.setHeaderHidden(True)
        self.tree.setIconSize(QtCore.QSize(THUMB_PX, THUMB_PX))
        self.tree.setRootIsDecorated(True)
        self.tree.setUniformRowHeights(False)
        self.tree.header().setSectionResizeMode(
            QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.tree.itemActivated.connect(self._on_activated)
        self.tree.itemClicked.connect(self._on_activated)
        self.choice_label = QtWidgets.QLabel("Open a folder to begin.")
        self.choice_label.setWordWrap(True)
        self.choice_label.setTextInteractionFlags(
            QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_button)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.open_button)
        lay.addLayout(row)
        lay.addWidget(self.tree, 1)
        lay.addWidget(self.choice_label)
        self.set_busy(False)

    # ---- progress -------------------------------------------------------------------------
    def set_busy(self, busy: bool, text: str = "") -> None:
        """Show or hide the indexing progress bar and its Cancel button."""
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.open_button.setEnabled(not busy)
        if busy:
            self.progress.setValue(0)
            self.progress.setFormat(text or "Indexing\u2026")

    def set_progress(self, text: str, fraction: float) -> None:
        """Update the indexing progress (fraction in [0, 1])."""
        self.progress.setValue(int(1000 * max(0.0, min(1.0, fraction))))
        self.progress.setFormat(text)

    # ---- tree -----------------------------------------------------------------------------
    @property
    def chosen_uid(self) -> str:
        """SeriesInstanceUID of the auto-chosen series ("" when none)."""
        f = self.folder
        return f.choice.series.series_uid if f is not None and f.choice is not None else ""

    def clear(self, text: str = "Open a folder to begin.") -> None:
        """Forget the folder: empty tree, no star (e.g. after a failed open)."""
        self.folder = None
        self.analysed = {}
        self.tree.clear()
        self.choice_label.setText(html.escape(text))

    def mark_analysed(self, series_uid: str) -> None:
        """Star ``series_uid`` as its patient's analysed series (one star per patient)."""
        info = self.folder.index.get(series_uid) if self.folder else None
        if info is None or self.analysed.get(str(info.patient_id)) == series_uid:
            return
        self.analysed[str(info.patient_id)] = series_uid
        starred = set(self.analysed.values())
        for uid, item in self.series_items().items():
            self._style_item(item, uid in starred)
        self.choice_label.setText(f"<b>★ Analysed series:</b> {html.escape(info.label)}"
                                  + self._choice_note(series_uid))

    def _choice_note(self, series_uid: str) -> str:
        f = self.folder
        if f is not None and f.choice is not None and f.choice.series.series_uid == series_uid:
            return f"<br>{html.escape(f.choice.reason)}"
        return "<br>chosen by the reader"

    def set_folder(self, folder: IndexedFolder) -> None:
        """Show an indexed folder; the auto-chosen series is bold, starred and explained."""
        self.folder = folder
        self.tree.clear()
        chosen = self.chosen_uid
        self.analysed = {}
        if folder.choice is not None:
            self.analysed[str(folder.choice.series.patient_id)] = chosen
        for patient in folder.index.patients():
            p_item = QtWidgets.QTreeWidgetItem(
                [f"{patient.patient_name or '(no name)'}  [{patient.patient_id}]"])
            self.tree.addTopLevelItem(p_item)
            for study in patient.studies:
                s_item = QtWidgets.QTreeWidgetItem(
                    [f"{format_date(study.study_date)}  {study.study_description}".strip()])
                p_item.addChild(s_item)
                for s in study.series:
                    s_item.addChild(self._series_item(s, s.series_uid == chosen))
        self.tree.expandAll()
        if folder.choice is not None:
            self.choice_label.setText(
                f"<b>\u2605 Analysed series:</b> {html.escape(folder.choice.series.label)}<br>"
                f"{html.escape(folder.choice.reason)}")  # reasons hold "<" (TE 10 ms < 80 ms)
        else:
            self.choice_label.setText(
                f"<b>No series chosen:</b> {html.escape(folder.choice_error or '')}")
        if folder.index.skipped:
            self.choice_label.setText(self.choice_label.text()
                                      + f"<br>{len(folder.index.skipped)} file(s) skipped.")

    def _series_item(self, s: Any, chosen: bool) -> QtWidgets.QTreeWidgetItem:
        item = QtWidgets.QTreeWidgetItem([""])
        item.setData(0, _UID_ROLE, s.series_uid)
        spacing = "" if not s.pixel_spacing_mm else \
            f"{s.pixel_spacing_mm[0]:.2f} x {s.pixel_spacing_mm[1]:.2f} mm"
        tip = (f"{s.series_description}\n{s.manufacturer} {s.field_strength_T or ''} T\n"
               f"{s.rows} x {s.cols}, {spacing}, {s.n_slices} slices")
        if chosen:
            tip = f"Auto-chosen: {self.folder.choice.reason}\n\n" + tip
        thumb = self.folder.thumbnails.get(s.series_uid) if self.folder else None
        if thumb is not None:
            item.setIcon(0, _icon(thumb))
        for col in range(len(COLUMNS)):
            item.setToolTip(col, tip)
        self._style_item(item, chosen)
        return item

    def _style_item(self, item: QtWidgets.QTreeWidgetItem, starred: bool) -> None:
        """Star, bold and tint the analysed series; plain text for the others."""
        s = self.folder.index.get(item.data(0, _UID_ROLE)) if self.folder else None
        if s is None:
            return
        star = STAR if starred else ""
        item.setText(0, f"{star}{s.label}\n{series_details(s)}")
        font = item.font(0)
        font.setBold(starred)
        tint = QtGui.QColor("#E69F00")
        tint.setAlpha(60)
        for col in range(len(COLUMNS)):
            item.setFont(col, font)
            item.setBackground(col, QtGui.QBrush(tint) if starred else QtGui.QBrush())

    def series_items(self) -> dict[str, QtWidgets.QTreeWidgetItem]:
        """Tree items of every series, by SeriesInstanceUID."""
        out = {}
        it = QtWidgets.QTreeWidgetItemIterator(self.tree)
        while it.value():
            uid = it.value().data(0, _UID_ROLE)
            if uid:
                out[uid] = it.value()
            it += 1
        return out

    def mark_current(self, series_uid: str) -> None:
        """Select the row of the series shown on the canvas."""
        item = self.series_items().get(series_uid)
        if item is not None:
            self.tree.blockSignals(True)
            self.tree.setCurrentItem(item)
            self.tree.blockSignals(False)

    def _on_activated(self, item: QtWidgets.QTreeWidgetItem, _col: int = 0) -> None:
        uid = item.data(0, _UID_ROLE)
        if uid:
            self.seriesActivated.emit(uid)


def format_date(dicom_date: str) -> str:
    """YYYYMMDD as YYYY-MM-DD (other text unchanged)."""
    d = dicom_date or ""
    return f"{d[:4]}-{d[4:6]}-{d[6:8]}" if len(d) == 8 and d.isdigit() else d
