"""Export panel: PDF report, CSV and DICOM outputs of the current (corrected) result, written
by ``spineviewer.io.export`` in a worker thread; asks before overwriting files."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

from PySide6 import QtCore, QtWidgets

from spineviewer.core.results import StudyResult
from spineviewer.gui import worker as workers
from spineviewer.io.export_naming import export_stem, study_export_dir


def _export_module() -> Any | None:
    try:
        from spineviewer.io import export
    except ImportError:
        return None
    return export


class ExportPanel(QtWidgets.QWidget):
    """Options, output folder and the Export button."""

    exportFinished = QtCore.Signal(list)  # paths written
    exportFailed = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: StudyResult | None = None
        self._job: tuple[Any, Any] | None = None
        self.pdf = QtWidgets.QCheckBox("PDF report")
        self.pdf.setChecked(True)
        self.csv = QtWidgets.QCheckBox("CSV table")
        self.csv.setChecked(True)
        self.dicom = QtWidgets.QCheckBox("DICOM (SEG, SR, encapsulated PDF)")
        self.deidentify = QtWidgets.QCheckBox("De-identify (CSV / PDF)")
        self.deidentify.toggled.connect(self._sync_options)
        self.dicom.toggled.connect(self._sync_options)
        self.paper = QtWidgets.QComboBox()
        self.paper.addItems(["A4", "Letter"])
        self.folder = QtWidgets.QLineEdit()
        self.folder.setPlaceholderText("Output folder")
        self.folder.setToolTip("Each study is written into its own sub-folder "
                               "<patient>_<ID>_<date> (anon-<hash> when de-identified)")
        # typed or browsed by the user: kept; otherwise it follows the study shown
        self._folder_chosen = False
        self.folder.textEdited.connect(lambda _t: setattr(self, "_folder_chosen", True))
        self.folder.textChanged.connect(lambda _t: self._show_target())
        self.target = QtWidgets.QLabel("")
        self.target.setWordWrap(True)
        self.deidentify.toggled.connect(lambda _on: self._show_target())
        browse = QtWidgets.QPushButton("\u2026")
        browse.setMaximumWidth(32)
        browse.clicked.connect(self._browse)
        self.export_button = QtWidgets.QPushButton("Export")
        self.export_button.setToolTip("Write the selected outputs with the current corrections "
                                      "(Ctrl+E)")
        self.export_button.clicked.connect(self.export)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        form = QtWidgets.QGridLayout(self)
        form.setContentsMargins(4, 4, 4, 4)
        form.addWidget(self.pdf, 0, 0)
        form.addWidget(self.csv, 0, 1)
        form.addWidget(QtWidgets.QLabel("Paper"), 0, 2)
        form.addWidget(self.paper, 0, 3)
        form.addWidget(self.dicom, 1, 0, 1, 4)  # one per row: fits a 1024 x 700 screen's dock
        form.addWidget(self.deidentify, 2, 0, 1, 4)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        row.addWidget(self.export_button)
        form.addLayout(row, 3, 0, 1, 4)
        form.addWidget(self.target, 4, 0, 1, 4)
        form.addWidget(self.status, 5, 0, 1, 4)
        order = (self.pdf, self.csv, self.paper, self.dicom, self.deidentify, self.folder,
                 browse, self.export_button)
        for a, b in itertools.pairwise(order):  # keyboard reach, in reading order
            QtWidgets.QWidget.setTabOrder(a, b)
        if _export_module() is None:
            self.status.setText("Exports are not available in this installation "
                                "(spineviewer.io.export missing).")
        self.set_result(None)

    def _sync_options(self) -> None:
        # DICOM objects belong to the patient's study and cannot be de-identified.
        self.dicom.setEnabled(not self.deidentify.isChecked())
        self.deidentify.setEnabled(not self.dicom.isChecked())

    def set_result(self, result: StudyResult | None, default_folder: str = "") -> None:
        """The result to export (None disables Export); ``default_folder`` is the base folder
        of this study unless the user chose one."""
        self.result = result
        self.export_button.setEnabled(result is not None and self._job is None)
        if default_folder and (not self._folder_chosen or not self.folder.text()):
            self.folder.setText(default_folder)
        self._show_target()

    def out_dir(self) -> Path | None:
        """This study's export folder: ``<folder>/<stem>`` (None without a result or folder)."""
        base = self.folder.text().strip()
        if self.result is None or not base:
            return None
        return study_export_dir(base, self.result, deidentify=self.options()["deidentify"])

    def _show_target(self) -> None:
        out = self.out_dir()
        self.target.setText("" if out is None else f"Writes into {out.name}/")
        self.target.setToolTip("" if out is None else str(out))

    def _browse(self) -> None:
        path = QtWidgets.QFileDialog.getExistingDirectory(self, "Export to folder",
                                                          self.folder.text())
        if path:
            self.folder.setText(path)
            self._folder_chosen = True
            self._show_target()

    def confirm_overwrite(self, existing: list[Path]) -> bool:
        """Ask before replacing files (tests replace this method)."""
        names = "\n".join(str(p) for p in existing[:8])
        answer = QtWidgets.QMessageBox.question(
            self, "Replace files?", f"These files exist and will be replaced:\n{names}")
        return answer == QtWidgets.QMessageBox.StandardButton.Yes

    def options(self) -> dict[str, Any]:
        """Keyword options for ``io.export.export_all``."""
        return {"pdf": self.pdf.isChecked(), "csv": self.csv.isChecked(),
                "dicom": self.dicom.isChecked() and self.dicom.isEnabled(),
                "deidentify": self.deidentify.isChecked() and self.deidentify.isEnabled(),
                "paper": self.paper.currentText()}

    def export(self) -> bool:
        """Start the export; False when nothing was started (no result, refused, missing)."""
        export = _export_module()
        if export is None:
            self._fail("Exports are not available: spineviewer.io.export is missing.")
            return False
        if self.result is None or self._job is not None:
            return False
        out_dir = self.out_dir()
        if out_dir is None:
            self._fail("Choose an output folder first.")
            return False
        opts = self.options()
        if not (opts["pdf"] or opts["csv"] or opts["dicom"]):
            self._fail("Choose at least one output.")
            return False
        stem = export_stem(self.result, deidentify=opts["deidentify"])
        opts["stem"] = stem
        existing = [p for p in export.planned_paths(out_dir, pdf=opts["pdf"], csv=opts["csv"],
                                                    dicom=opts["dicom"], stem=stem)
                    if p.exists()]
        if existing and not self.confirm_overwrite(existing):
            self.status.setText("Export cancelled: files kept.")
            return False
        frozen = copy.deepcopy(self.result)  # edits made while exporting do not leak in
        job = workers.TaskWorker(lambda: export.export_all(frozen, out_dir, overwrite=True,
                                                           **opts),
                                 what="Export", with_progress=False)
        job.succeeded.connect(self._done)
        job.failed.connect(self._fail)
        thread = workers.start(job, self, on_finished=self._cleanup)
        self._job = (job, thread)
        self.export_button.setEnabled(False)
        self.status.setText("Exporting\u2026")
        return True

    def _done(self, paths: list) -> None:
        self.status.setText("Written: " + ", ".join(Path(p).name for p in paths))
        self.exportFinished.emit([str(p) for p in paths])

    def _fail(self, message: str) -> None:
        self.status.setText(f"<span style='color:#FF5A1F'>{message}</span>")
        self.exportFailed.emit(message)

    def _cleanup(self) -> None:
        self._job = None
        self.export_button.setEnabled(self.result is not None)

    def shutdown(self) -> None:
        """Wait for a running export to end."""
        if self._job is not None:
            workers.stop(*self._job)
