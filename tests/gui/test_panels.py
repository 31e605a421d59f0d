"""Workers, browser indexing, results table, export panel, About box and the gui entry point."""

from __future__ import annotations

from pathlib import Path

import pytest

import spineviewer
from spineviewer.core.errors import Cancelled, NoDicomFound
from spineviewer.gui import worker as workers
from spineviewer.gui.about import about_html
from spineviewer.gui.app import parse_args
from spineviewer.gui.browser import DicomBrowser, index_folder
from spineviewer.gui.export_panel import ExportPanel
from spineviewer.gui.results_panel import ResultsPanel, cell_text
from tests.gui.test_canvas import result as box_result


def run_worker(qtbot, job, signal):
    with qtbot.waitSignal(signal, timeout=10000) as blocker:
        thread = workers.start(job)
    assert thread.wait(5000)
    return blocker.args


def test_analysis_worker_reports_result_progress_and_errors(qtbot):
    stages = []

    def ok(path, progress=None, cancel=None, **kw):
        progress("segment", 0.5)
        return {"path": path, **kw}

    job = workers.AnalysisWorker("/study", series_uid="1.2", threads=2, analyze=ok)
    job.progressChanged.connect(lambda s, f: stages.append((s, f)))
    (out,) = run_worker(qtbot, job, job.analysisFinished)
    assert out == {"path": "/study", "series_uid": "1.2", "provider": "auto", "threads": 2}
    qtbot.waitUntil(lambda: stages == [("segment", 0.5)], timeout=2000)

    def user_error(path, **kw):
        raise NoDicomFound("no DICOM image in /study")

    job = workers.AnalysisWorker("/study", analyze=user_error)
    assert run_worker(qtbot, job, job.analysisFailed) == ["no DICOM image in /study"]

    def bug(path, **kw):
        raise ValueError("bad shape")

    job = workers.AnalysisWorker("/study", analyze=bug)
    assert run_worker(qtbot, job, job.analysisFailed) == ["Analysis failed: ValueError: bad shape"]


def test_analysis_worker_cancel_flag_reaches_the_pipeline(qtbot):
    def honours_cancel(path, progress=None, cancel=None, **kw):
        while not cancel():
            pass
        raise Cancelled("stopped")

    job = workers.AnalysisWorker("/study", analyze=honours_cancel)
    with qtbot.waitSignal(job.analysisCancelled, timeout=5000):
        thread = workers.start(job)
        job.cancel()
    assert workers.stop(job, thread)


def test_index_folder_and_browser(qtbot, lumbar_study):
    seen = []
    folder = index_folder(str(lumbar_study.path), progress=lambda m, f: seen.append(f))
    assert len(folder.index.series) == 3 and folder.choice is not None
    assert folder.choice.series.series_uid == lumbar_study.t2_uid
    assert set(folder.thumbnails) == {s.series_uid for s in folder.index.series}
    assert all(t.dtype.name == "uint8" and max(t.shape) <= 56 for t in folder.thumbnails.values())
    assert seen and max(seen) <= 1.0 and seen == sorted(seen)
    b = DicomBrowser()
    qtbot.addWidget(b)
    b.set_folder(folder)
    assert "Analysed series" in b.choice_label.text()
    assert not b.series_items()[lumbar_study.t2_uid].icon(0).isNull()
    with qtbot.waitSignal(b.seriesActivated) as blocker:
        b._on_activated(b.series_items()[lumbar_study.t2_uid])
    assert blocker.args == [lumbar_study.t2_uid]


def test_index_folder_can_be_cancelled(lumbar_study):
    with pytest.raises(Cancelled):
        index_folder(str(lumbar_study.path), cancel=lambda: True)


def test_results_table_rows_and_why(qtbot):
    r = box_result()
    r.vertebrae[1].flags = ["schmorl_node", "needs_review"]
    r.vertebrae[0].reasons = ["wedge ratio AH/PH = 0.57 < threshold 0.76"]
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    panel.set_result(r)
    assert panel.levels() == ["L1", "L2"]
    assert cell_text(r.vertebrae[1], "flags") == "Schmorl, review"
    assert cell_text(r.vertebrae[0], "AH_mm") == "10.0"
    assert "fracture suspected at L1" in panel.summary.text()
    assert not panel.btn_fracture.isEnabled()  # nothing selected yet
    with qtbot.waitSignal(panel.levelSelected) as blocker:
        panel.select_level("L1")
    assert blocker.args == ["L1"] and panel.btn_fracture.isEnabled()
    assert "threshold 0.76" in panel.why.toPlainText()
    with qtbot.waitSignal(panel.overrideRequested) as blocker:
        panel.comment.setText("seen on CT")
        panel.btn_clear.click()
    assert blocker.args == ["L1", -1, "seen on CT"]
    with qtbot.waitSignal(panel.shiftRequested) as blocker:
        panel.btn_up.click()
    assert blocker.args == [-1]


def test_export_panel_writes_csv_and_asks_before_overwriting(qtbot, tmp_path, monkeypatch):
    pytest.importorskip("spineviewer.io.export", reason="exports not built yet")
    panel = ExportPanel()
    qtbot.addWidget(panel)
    panel.set_result(box_result(), str(tmp_path / "out"))
    panel.pdf.setChecked(False)
    with qtbot.waitSignal(panel.exportFinished, timeout=20000) as blocker:
        assert panel.export()
    from spineviewer.io.export_naming import export_stem

    stem = export_stem(panel.result)  # a per-study folder and file names (issue 15, item 5)
    csv = tmp_path / "out" / stem / f"{stem}_results.csv"
    assert blocker.args[0] == [str(csv)]
    assert csv.read_text().splitlines()[0].startswith("study_uid,series_uid,level,AH_mm")
    csv.write_text("user's own file")
    asked = []
    monkeypatch.setattr(panel, "confirm_overwrite", lambda paths: asked.append(paths) or False)
    qtbot.waitUntil(lambda: panel.export_button.isEnabled(), timeout=5000)
    assert not panel.export()
    assert asked == [[csv]] and csv.read_text() == "user's own file"
    monkeypatch.setattr(panel, "confirm_overwrite", lambda paths: True)
    with qtbot.waitSignal(panel.exportFinished, timeout=20000):
        assert panel.export()
    assert csv.read_text().startswith("study_uid")
    panel.shutdown()


def test_export_panel_refuses_without_folder(qtbot):
    panel = ExportPanel()
    qtbot.addWidget(panel)
    panel.set_result(box_result())
    with qtbot.waitSignal(panel.exportFailed) as blocker:
        assert not panel.export()
    assert "folder" in blocker.args[0]


def test_about_lists_version_model_and_disclaimer():
    text = about_html({"name": "unet-test", "sha256": "ab" * 32, "provider": "CPU"})
    assert spineviewer.__version__ in text and spineviewer.DISCLAIMER in text
    assert "unet-test" in text and "abababab" in text and "SPIDER" in text


def test_gui_arguments():
    a = parse_args(["/data/study", "--provider", "cpu", "--threads", "2", "--light"])
    assert (a.path, a.provider, a.threads, a.dark) == ("/data/study", "cpu", 2, False)
    assert parse_args([]).path is None and parse_args([]).dark is None


def test_screenshot_script_is_importable():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "screenshots", Path(__file__).resolve().parents[2] / "installer" / "screenshots.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert callable(mod.main)


def test_installed_qt_binding_is_not_the_crashing_release():
    # PySide6 6.12.0 on Python 3.11 frees None after enough void calls (fatal at exit).
    from spineviewer.gui.app import qt_binding_problem

    assert qt_binding_problem() == ""


def test_results_panel_says_when_nothing_was_found(qtbot):
    r = box_result()
    r.vertebrae = []
    r.warnings = ["sacrum not visible"]
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    panel.set_result(r)
    assert panel.table.rowCount() == 0
    assert "No vertebral body found" in panel.summary.text()
    assert "sacrum not visible" in panel.summary.text()


def test_level_column_says_how_the_levels_are_counted(qtbot):
    """The counting assumption behind every level name is one hover away in the table."""
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    tip = panel.table.horizontalHeaderItem(0).toolTip()
    assert panel.table.horizontalHeaderItem(0).text() == "Level"
    assert "counted up from the sacrum" in tip and "five lumbar vertebrae assumed" in tip


def test_why_view_lists_corrections_rounded_not_as_raw_floats(qtbot):
    from spineviewer.core import review

    r = box_result()
    v = r.vertebrae[0]
    old = v.corners_rc["AS"]
    review.move_corner(r, "L1", "AS", (old[0] + 2.14334135298924, old[1] + 0.0001234),
                       remeasure=lambda _r: None)
    assert r.edits[-1]["new_value"][0] == pytest.approx(old[0] + 2.14334135298924)  # JSON: full
    panel = ResultsPanel()
    qtbot.addWidget(panel)
    panel.set_result(r)
    panel.select_level("L1")
    text = panel.why.toPlainText()
    line = next(x for x in text.splitlines() if x.startswith("corner AS"))
    assert line.startswith(f"corner AS: AI (row {old[0]:.0f}, col {old[1]:.0f}) \u2192 "
                           f"(row {old[0] + 2.14:.0f}, col {old[1]:.0f})")
    dr, dc = 2.14334135298924 * r.pixel_spacing_mm[0], 0.0001234 * r.pixel_spacing_mm[1]
    assert line.endswith(f"moved {(dr * dr + dc * dc) ** 0.5:.1f} mm")
    assert "2.1433" not in text and "0.0001" not in text
