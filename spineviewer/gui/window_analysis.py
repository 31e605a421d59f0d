"""Analysis of the main window: start, cancel, progress, and showing a finished result.

A per-vertebra analysis first hands over its centre slice's result (``preliminaryReady``):
it is shown at once, marked preliminary, and cannot be exported or corrected
(``gui.binding``). The full result replaces it, and the status line names every call the full
analysis changed. A full analysis that fails or is cancelled removes the preliminary result
(nothing on screen looks final when it is not).

A mixin of :class:`~spineviewer.gui.main_window.MainWindow`; handlers here carry no
``@QtCore.Slot`` decorator, because a decorated mixin method loses ``sender()``.
"""

from __future__ import annotations

from PySide6 import QtWidgets

from spineviewer.core import calls, review
from spineviewer.core.dicom.select import series_unsuitability
from spineviewer.core.results import StudyResult
from spineviewer.gui import worker as workers


class AnalysisMixin:
    """Running the analysis in the background and installing its result."""

    def start_analysis(self, series_uid: str | None = None, force: bool = False, *,
                       keep_banner: bool = False) -> bool:
        """Analyse ``series_uid`` (default: the series on the canvas, else the auto-chosen one)
        in the background.

        The folder's index and, when it is the series on the canvas, the loaded volume go to
        the analysis: the folder is not walked again nor the series read twice.
        ``keep_banner`` leaves a message on the banner (one reported when the folder opened).
        A series that is not a sagittal T2 is refused with the reason unless the reader
        confirms "Analyse anyway" (`confirm_unsuitable`) or ``force`` is set; such a result
        carries a warning into every output. Returns True when an analysis started.
        """
        if self.folder is None:
            return False
        self._analyse_when_loaded = None  # an analysis started now replaces the one on hold
        uid = series_uid or self.canvas.series_uid or self.browser.chosen_uid or None
        info = self.folder.index.get(uid) if uid else None
        reason = series_unsuitability(info) if info is not None else ""
        if reason and not force:
            if not self.confirm_unsuitable(info.label, reason):
                self._error(f"Not analysed: {info.label} is not a sagittal T2 series "
                            f"({reason}). The model is made for sagittal T2 images.")
                return False
            force = True
        loaded = self.volume if (self.volume is not None
                                 and self.volume.series.series_uid == uid) else None
        job = workers.AnalysisWorker(self.folder.path, series_uid=uid, provider=self.provider,
                                     threads=self.threads, analyze=self._analyze,
                                     force_series=bool(reason and force),
                                     index=self.folder.index, volume=loaded,
                                     preliminary=True)
        job.progressChanged.connect(self._on_progress)
        job.preliminaryReady.connect(self._on_preliminary)
        job.analysisFinished.connect(self._on_analysis_finished)
        job.analysisFailed.connect(self._on_analysis_failed)
        job.analysisCancelled.connect(self._on_analysis_cancelled)
        self.progress.setValue(0)
        self.progress.setFormat("analysis\u2026")
        self.progress.show()
        if not keep_banner:
            self.banner.hide()
        self._start_job("analysis", job)
        return True

    def confirm_unsuitable(self, label: str, reason: str) -> bool:
        """Ask whether to analyse a series that is not a sagittal T2 (tests replace this)."""
        box = QtWidgets.QMessageBox(self)
        box.setIcon(QtWidgets.QMessageBox.Icon.Warning)
        box.setWindowTitle("Not a sagittal T2 series")
        box.setText(f"{label} is not a sagittal T2 series ({reason}).\n\nThe model is made "
                    "for sagittal T2 images; its results on this series are unreliable and "
                    "every output will carry a warning.")
        anyway = box.addButton("Analyse anyway", QtWidgets.QMessageBox.ButtonRole.AcceptRole)
        cancel = box.addButton(QtWidgets.QMessageBox.StandardButton.Cancel)
        box.setDefaultButton(cancel)
        box.exec()
        return box.clickedButton() is anyway

    def cancel_analysis(self) -> None:
        """Cancel the running analysis (and indexing)."""
        self._cancel_job("analysis")
        self._cancel_job("index")

    def _on_progress(self, stage: str, fraction: float) -> None:
        if self._is_current("analysis"):
            self.progress.setValue(int(1000 * fraction))
            self.progress.setFormat(f"{stage} %p%")

    def _on_preliminary(self, result: StudyResult) -> None:
        if self._is_current("analysis"):
            self._set_result(result)

    def _on_analysis_finished(self, result: StudyResult) -> None:
        if not self._is_current("analysis"):
            return
        self.progress.hide()
        early = self._preliminary_result()
        self._set_result(result)
        if early is not None and early.series_uid == result.series_uid:
            self._announce_full_analysis(early, result)

    def _preliminary_result(self) -> StudyResult | None:
        r = self.session.result if self.session is not None else None
        return r if r is not None and r.preliminary else None

    def _drop_preliminary(self) -> str:
        """Remove a preliminary result whose full analysis will not come; says so ('' when
        there was none)."""
        if self._preliminary_result() is None:
            return ""
        self._set_result(None)
        return "; the preliminary result was removed"

    def _announce_full_analysis(self, early: StudyResult, final: StudyResult) -> None:
        """Status line: the calls the full analysis changed against the preliminary result."""
        lines = calls.superseded_calls(early, final)
        self.last_announcement = ("Full analysis: " + "; ".join(lines) if lines else
                                  "Full analysis: no call changed from the preliminary result")
        self.statusBar().showMessage(self.last_announcement, 20000)

    def _on_analysis_failed(self, message: str) -> None:
        if self._is_current("analysis"):
            self.progress.hide()
            self._error(message + self._drop_preliminary())
            self.analysisFailed.emit(message)

    def _on_analysis_cancelled(self) -> None:
        if self._is_current("analysis"):
            self.progress.hide()
            self.statusBar().showMessage("Analysis cancelled" + self._drop_preliminary(), 8000)
            self.analysisCancelled.emit()

    def analyse_shown_series(self) -> None:
        """The Analyse action: the series on the canvas; asks first when it has corrections."""
        uid = self.canvas.series_uid or self.browser.chosen_uid
        if self.session and self.session.result.edits and self.session.result.series_uid == uid:
            self.discard_and_reanalyse()
        else:
            self.start_analysis(uid)

    def discard_and_reanalyse(self) -> None:
        """Drop the corrections (after asking) and analyse again."""
        if self.folder is None:
            return
        uid = self.session.result.series_uid if self.session else self.browser.chosen_uid
        if self.session and self.session.result.edits:
            answer = QtWidgets.QMessageBox.question(
                self, "Discard corrections?",
                f"Discard {len(self.session.result.edits)} correction(s) and analyse again?")
            if answer != QtWidgets.QMessageBox.StandardButton.Yes:
                return
        review.discard_autosave(self.folder.path, uid)
        self.start_analysis(uid)

    # ---- the result -----------------------------------------------------------------------
    def _set_result(self, result: StudyResult | None) -> None:
        early = self._preliminary_result()
        self.session = None if result is None else review.ReviewSession(result, self._remeasure)
        self._apply_binding()
        if result is None:
            return
        if self.canvas.series_uid == result.series_uid:
            # after a preliminary result, only when the reader has not moved on meanwhile
            if early is None or early.series_uid != result.series_uid or \
                    self.canvas.index == early.slice_index:
                self.canvas.set_slice(result.slice_index)
        elif self.folder is not None and not result.preliminary:  # the final result only
            self.show_series(result.series_uid)
        self._show_model(result)
        (self.preliminaryShown if result.preliminary else self.resultsShown).emit(result)

    def _show_model(self, r: StudyResult) -> None:
        m = r.model or {}
        provider = str(m.get("provider", "")).replace("ExecutionProvider", "")
        text = f"Model: {m.get('name') or '-'}"
        self.model_label.setText(f"{text} on {provider}" if provider else text)
        self.model_label.setToolTip(f"sha256 {m.get('sha256', '')}")
        t = r.timings_s or {}
        if t:
            total = sum(t.values())
            main = ", ".join(f"{k} {v:.2f}" for k, v in t.items() if v >= 0.05)
            self.timing_label.setText(f"{total:.1f} s")
            self.timing_label.setToolTip(f"Stage times (s): {main}")
