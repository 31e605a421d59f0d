"""Opening a study: choose and index a folder, load and show a series, recent folders, drops.

A mixin of :class:`~spineviewer.gui.main_window.MainWindow`; handlers here carry no
``@QtCore.Slot`` decorator, because a decorated mixin method loses ``sender()``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6 import QtGui, QtWidgets

from spineviewer.core import autosave
from spineviewer.gui import worker as workers
from spineviewer.gui.browser import IndexedFolder, index_folder

MAX_RECENT = 8


def _load_volume(info: Any) -> Any:
    from spineviewer.core.dicom.volume import load_series

    return load_series(info)


def _dicom_window(volume: Any) -> tuple[float, float] | None:
    """(centre, width) from the centre slice's WindowCenter/WindowWidth, if present."""
    try:
        ds = volume.datasets[len(volume.datasets) // 2]
        c, w = ds.get("WindowCenter"), ds.get("WindowWidth")
        if c is None or w is None:
            return None
        c = c[0] if hasattr(c, "__len__") and not isinstance(c, str) else c
        w = w[0] if hasattr(w, "__len__") and not isinstance(w, str) else w
        return float(c), float(w)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def _annotation(series: Any) -> str:
    """Corner text of the canvas: patient, study date, series and its TE/TR."""
    from spineviewer.gui.browser import format_date, series_details

    name = str(series.patient_name or "").replace("^", " ").strip()
    lines = [f"{name}  [{series.patient_id}]" if name else series.patient_id,
             f"{format_date(series.study_date)}  {series.study_description}".strip(),
             series.label, series_details(series)]
    return "\n".join(line for line in lines if line)


class StudyMixin:
    """Folder and series handling of the main window."""

    folder: IndexedFolder | None
    volume: Any
    settings: Any
    #: series to analyse once it is loaded (open with ``analyse_on_open``), else None
    _analyse_when_loaded: str | None = None

    # ---- folder ---------------------------------------------------------------------------
    def choose_folder(self) -> None:
        """Ask for a folder and open it."""
        start = self.settings.value("last_folder", str(Path.home()))
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open study folder", start)
        if path:
            self.open_folder(path)

    def open_folder(self, path: str | Path) -> None:
        """Index ``path`` in the background; then show and analyse (or restore) its series."""
        path = str(path)
        self._analyse_when_loaded = None
        for name in list(self._jobs):
            self._cancel_job(name)
        self._set_result(None)
        self.folder = None
        self.volume = None
        self.canvas.clear()  # the previous patient leaves the screen at once
        self.browser.clear("")
        self._apply_binding()
        self.banner.hide()
        self.browser.set_busy(True, f"Indexing {Path(path).name}\u2026")
        job = workers.TaskWorker(index_folder, path, what="Indexing")
        job.progressChanged.connect(self.browser.set_progress)
        job.succeeded.connect(self._on_indexed)
        job.failed.connect(self._on_index_failed)
        job.cancelled.connect(self._on_index_cancelled)
        self._start_job("index", job)
        self.setWindowTitle(f"SpineViewer - {path}")

    def _on_indexed(self, folder: IndexedFolder) -> None:
        if not self._is_current("index"):
            return
        self.browser.set_busy(False)
        self.folder = folder
        self.browser.set_folder(folder)
        self._remember_folder(folder.path)
        self.folderIndexed.emit(folder)
        if folder.choice is None:
            self._error(folder.choice_error)
            if folder.index.series:
                self.show_series(folder.index.series[0].series_uid)
            return
        uid = folder.choice.series.series_uid
        self.show_series(uid)
        loaded = autosave.load(folder.path, uid)  # never raises for a bad file
        restored = loaded.result
        if restored is not None:
            self._set_result(restored)
            self.statusBar().showMessage(
                f"Restored the autosaved result with {len(restored.edits)} correction(s)", 10000)
        elif self.analyse_on_open:
            # analysed as soon as the series is loaded, with the canvas's own volume
            # (`_on_volume`): the series is read once, not by the viewer and the analysis both
            self._analyse_when_loaded = uid
            self.banner.hide()
        if loaded.problems:  # after the banner is cleared for the analysis
            self._error(" ".join(loaded.problems))

    def _on_index_failed(self, message: str) -> None:
        if self._is_current("index"):
            self.browser.set_busy(False)
            self.browser.clear(f"Not opened: {message}")
            self.canvas.clear()
            self._apply_binding()
            self._error(message)

    def _on_index_cancelled(self) -> None:
        if self._is_current("index"):
            self.browser.set_busy(False)
            self.statusBar().showMessage("Indexing cancelled", 5000)

    # ---- series ---------------------------------------------------------------------------
    def show_series(self, series_uid: str) -> None:
        """Load and show any series of the indexed folder."""
        info = self.folder.index.get(series_uid) if self.folder else None
        if info is None or (self.is_busy("load") and self._loading_uid == series_uid):
            return
        pending = self._analyse_when_loaded
        if pending is not None and pending != series_uid:  # another series replaces its load:
            self._analyse_when_loaded = None               # the analysis reads it itself
            self.start_analysis(pending, keep_banner=True)
        self._loading_uid = series_uid
        job = workers.TaskWorker(_load_volume, info, what="Loading the series",
                                 with_progress=False)
        job.succeeded.connect(self._on_volume)
        job.failed.connect(self._on_volume_failed)
        self._start_job("load", job)

    def _on_volume(self, volume: Any) -> None:
        if not self._is_current("load"):
            return
        self.volume = volume
        uid = volume.series.series_uid
        if self._analyse_when_loaded == uid:  # before painting: the analysis starts first
            self._analyse_when_loaded = None
            self.start_analysis(uid, keep_banner=True)  # the open's messages stay up
        r = self.session.result if self.session else None
        index = r.slice_index if r is not None and r.series_uid == uid else None
        self.canvas.set_volume(volume.pixels, volume.pixel_spacing_mm, uid, index=index,
                               dicom_window=_dicom_window(volume))
        self.wl_combo.setCurrentText("DICOM" if _dicom_window(volume) else "Auto")
        self.canvas.set_annotation(_annotation(volume.series))
        self._apply_binding()
        self.browser.mark_current(uid)
        self.volumeShown.emit(uid)

    def _on_volume_failed(self, message: str) -> None:
        if self._is_current("load"):
            self.volume = None
            self.canvas.clear()  # never leave another series on screen under this one's name
            self._apply_binding()
            self._error(message)
            if self._analyse_when_loaded is not None:  # the analysis says why on its own
                uid, self._analyse_when_loaded = self._analyse_when_loaded, None
                self.start_analysis(uid, keep_banner=True)

    # ---- recent folders and drops ---------------------------------------------------------
    def _remember_folder(self, path: str) -> None:
        recent = [p for p in self.recent_folders() if p != path]
        self.settings.setValue("recent_folders", [path, *recent][:MAX_RECENT])
        self.settings.setValue("last_folder", path)
        self.rebuild_recent()

    def recent_folders(self) -> list[str]:
        """Recently opened folders, newest first."""
        value = self.settings.value("recent_folders", [])
        return [value] if isinstance(value, str) else list(value or [])

    def rebuild_recent(self) -> None:
        """Refill the File > Open recent menu."""
        self.recent_menu.clear()
        for p in self.recent_folders():
            self.recent_menu.addAction(p, lambda p=p: self.open_folder(p))
        self.recent_menu.setEnabled(bool(self.recent_folders()))

    def dragEnterEvent(self, ev: QtGui.QDragEnterEvent) -> None:
        if ev.mimeData().hasUrls() and any(u.isLocalFile() for u in ev.mimeData().urls()):
            ev.acceptProposedAction()

    def dropEvent(self, ev: QtGui.QDropEvent) -> None:
        paths = [u.toLocalFile() for u in ev.mimeData().urls() if u.isLocalFile()]
        if paths:
            self.open_folder(paths[0])
