"""Issue 15, the viewer safe for a reading room: one test per numbered defect, each set up as
the reader met it (A/B patient switch, failed open, T1 and axial analysis, silent call
changes, crossing exports, small defects, report/CSV), asserting the fixed behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6 import QtCore, QtGui

from spineviewer.core import calls
from spineviewer.core.results import read_csv_rows
from spineviewer.gui.browser import STAR
from spineviewer.gui.main_window import MainWindow
from tests import dicom_factory as df
from tests.gui.conftest import open_and_wait, shown_window

SPACING_MM = (0.8, 0.8)  # as conftest's lumbar study
TIMEOUT_MS = 60000


def _write_patient(folder, pid: str, name: str, labels) -> dict[str, str]:
    """A lumbar study like conftest's for another patient; returns series UIDs by kind."""
    bright = np.where(labels > 0, 900, 250).astype(np.uint16)
    specs = df.typical_study()
    for s in specs:
        s.patient_id, s.patient_name = pid, name
    t2 = specs[0]
    (t2.rows, t2.cols), t2.pixel_spacing_mm = labels.shape, SPACING_MM
    t2.pixels = lambda i, spec: (bright + 10 * i).astype(np.uint16)
    t2.n_slices = 5
    specs[1].n_slices = 3
    df.write_study(folder, specs)
    return {"t2": t2.series_uid, "t1": specs[1].series_uid, "axial": specs[2].series_uid}


@pytest.fixture
def analyze(lumbar_study):
    """The real pipeline with the study's label map on a T2, an empty map elsewhere."""
    from spineviewer.core.pipeline import analyze_study

    def run(path, **kw):
        from spineviewer.core.dicom.index import scan_folder

        uid = kw.get("series_uid")
        info = scan_folder(path).get(uid) if uid else None
        masks = lumbar_study.labels
        if info is not None and (info.rows, info.cols) != masks.shape:
            masks = np.zeros((info.rows, info.cols), np.uint8)
        return analyze_study(path, masks_override=masks, **kw)

    return run


@pytest.fixture
def window(qtbot, analyze):
    with shown_window(qtbot, analyze) as w:
        yield w


@pytest.fixture
def two_patients(tmp_path, lumbar_study):
    root = tmp_path / "two"
    a = _write_patient(root / "A", "PAT-A", "Alpha^Anna", lumbar_study.labels)
    b = _write_patient(root / "B", "PAT-B", "Beta^Bert", lumbar_study.labels)
    return root, a, b


def _show(qtbot, w, uid):
    with qtbot.waitSignal(w.volumeShown, timeout=10000):
        w.show_series(uid)


def _analyse(qtbot, w, uid, **kw):
    with qtbot.waitSignal(w.resultsShown, timeout=TIMEOUT_MS) as blocker:
        assert w.start_analysis(uid, **kw)
    return blocker.args[0]


def _exportable(w) -> bool:
    return w.act_export.isEnabled() or w.export_panel.export_button.isEnabled()


# ---- 1. another patient's results ---------------------------------------------------------
def test_1_results_follow_the_patient_on_the_canvas(qtbot, window, two_patients):
    root, a, b = two_patients
    first = open_and_wait(qtbot, window, root)
    mine, other = (a, b) if first.series_uid == a["t2"] else (b, a)
    other_pid = "PAT-B" if mine is a else "PAT-A"
    assert window.results.table.rowCount() > 0 and _exportable(window)
    assert first.patient["id"] in window.results.header.text()  # header names patient+series
    # the defect: click the other patient's T2 -> the first patient's result stayed shown
    _show(qtbot, window, other["t2"])
    assert window.canvas.series_uid == other["t2"]
    assert window.results.table.rowCount() == 0 and window.canvas.overlays == {}
    assert "belongs to" in window.results.header.text()
    assert "fracture suspected" not in window.results.summary.text()
    assert not _exportable(window) and not window.act_fracture.isEnabled()
    window.override_call("L1", False)  # a correction cannot land on the hidden result
    assert window.session.result.edits == [] and "not the series shown" in window.last_error
    # back on the analysed series the result shows again
    _show(qtbot, window, mine["t2"])
    assert window.results.table.rowCount() > 0 and _exportable(window)
    # analysing the other patient moves that patient's star to it; one star per patient
    second = _analyse(qtbot, window, other["t2"])
    assert second.patient["id"] == other_pid and other_pid in window.results.header.text()
    assert window.browser.analysed[other_pid] == other["t2"]
    starred = {uid for uid, item in window.browser.series_items().items()
               if item.text(0).startswith(STAR)}
    assert starred == {mine["t2"], other["t2"]}


# ---- 2. a failed open leaves the old study on screen --------------------------------------
def test_2_failed_open_clears_the_previous_study(qtbot, window, lumbar_study, tmp_path):
    open_and_wait(qtbot, window, lumbar_study.path)
    empty = tmp_path / "no-dicom"
    empty.mkdir()
    (empty / "notes.txt").write_text("not DICOM")
    window.open_folder(empty)
    qtbot.waitUntil(lambda: not window.is_busy("index") and bool(window.last_error),
                    timeout=20000)
    assert window.banner.isVisible()
    assert window.canvas.pixels is None and window.canvas.series_uid == ""
    assert not window.canvas.annotation.isVisible() and window.canvas.overlays == {}
    assert window.browser.tree.topLevelItemCount() == 0
    assert window.results.table.rowCount() == 0 and not _exportable(window)


def test_2_failed_open_of_a_quick_job_is_not_lost(qtbot, window, tmp_path, monkeypatch):
    """The empty folder is indexed so fast that, under load, its thread can end before
    ``start`` returns: the end of the job must still be seen (the flaky-timeout cause)."""
    from PySide6 import QtCore

    started = QtCore.QThread.start

    def start_and_finish(thread, *args):  # the worst case: the job ends before start returns
        started(thread, *args)
        assert thread.wait(10000)

    monkeypatch.setattr(QtCore.QThread, "start", start_and_finish)
    empty = tmp_path / "no-dicom"
    empty.mkdir()
    window.open_folder(empty)
    qtbot.waitUntil(lambda: not window.is_busy("index") and bool(window.last_error),
                    timeout=5000)
    assert window.banner.isVisible() and window.act_cancel.isEnabled() is False


# ---- 3. the T2 network on a T1 or an axial series -----------------------------------------
@pytest.mark.parametrize("kind,reason", [("t1", "TE 10 ms < 80 ms"),
                                         ("axial", "axial plane, not sagittal")])
def test_3_unsuitable_series_refused_or_marked(qtbot, window, tmp_path, lumbar_study, kind,
                                               reason):
    uids = _write_patient(tmp_path / "s", "PAT-C", "Gamma^Carl", lumbar_study.labels)
    open_and_wait(qtbot, window, tmp_path / "s")
    _show(qtbot, window, uids[kind])
    asked = []
    window.confirm_unsuitable = lambda label, why: asked.append(why) or False
    assert not window.start_analysis(uids[kind])  # refused, with the reason
    assert asked == [reason] or asked[0].startswith(reason)
    assert "not a sagittal T2" in window.last_error and reason in window.last_error
    assert not window.is_busy("analysis")
    window.confirm_unsuitable = lambda label, why: True  # "Analyse anyway"
    result = _analyse(qtbot, window, uids[kind])
    assert result.series_uid == uids[kind] and "unsuitable_series" in result.flags
    assert "WARNING" in window.results.summary.text()
    assert result.series_choice["unsuitable"].startswith(reason)
    rows = read_csv_rows(_csv(tmp_path, result.to_csv()))
    assert all("unsuitable_series" in r["study_flags"] for r in rows)


def test_3_pipeline_refuses_unsuitable_series_without_force(lumbar_study, analyze):
    from spineviewer.core.errors import UnsuitableSeries

    specs = df.typical_study()
    df.write_study(lumbar_study.path.parent / "t1only", specs)
    with pytest.raises(UnsuitableSeries, match="TE 10 ms < 80 ms"):
        analyze(lumbar_study.path.parent / "t1only", series_uid=specs[1].series_uid)


def _csv(tmp_path, text):
    p = tmp_path / "out.csv"
    p.write_text(text)
    return p


# ---- 4. corrections change calls silently -------------------------------------------------
def test_4_relabel_announces_the_calls_it_changes(qtbot, lumbar_study, analyze):
    from spineviewer.core import review

    def level_aware(result):  # the real remeasure; plus a crush call wherever "L2" lands
        review.default_remeasure(result)
        for v in result.vertebrae:
            if v.level == "L2" and not v.fracture:
                v.fracture, v.deformity, v.genant_grade = True, "crush", 1

    w = MainWindow(analyze=analyze, remeasure=level_aware)
    qtbot.addWidget(w)
    w.show()
    open_and_wait(qtbot, w, lumbar_study.path)
    with qtbot.waitSignal(w.callsChanged, timeout=5000) as blocker:
        w.act_up.trigger()  # "Levels up": the body that was L3 is now L2
    assert any(line.startswith("L2 (was L3): now crush fracture, Genant grade 1")
               for line in blocker.args[0])
    assert "Call changed: " in w.statusBar().currentMessage()
    assert w.session.result.edits[-1]["call_changes"] == blocker.args[0]  # audit trail
    from spineviewer.io.report_text import corrections

    assert any("algorithm's call after the corrections: crush fracture" in line
               for line in corrections(w.session.result))  # the report
    w.shutdown()


def test_4_override_records_type_grade_age_and_never_grade_0(qtbot, window, lumbar_study):
    open_and_wait(qtbot, window, lumbar_study.path)
    window.results.select_level("L3")
    window.results.comment.setText("oedema on STIR")
    window.results.reader_type.setCurrentText("wedge")
    window.results.reader_grade.setCurrentIndex(2)  # grade 2
    window.results.reader_age.setCurrentText("acute")
    with qtbot.waitSignal(window.callsChanged, timeout=5000) as blocker:
        window.results.btn_fracture.click()
    assert blocker.args[0] == [
        "L3: now wedge fracture, Genant grade 2, acute (reader); was no fracture"]
    v = window.session.result.vertebra("L3")
    assert v.override == {"fracture": True, "comment": "oedema on STIR", "deformity": "wedge",
                          "grade": 2, "age": "acute"}
    # an override to fracture without details: no "(none, grade 0)" anywhere
    window.results.select_level("L4")
    window.results.btn_fracture.click()
    texts = [window.results.summary.text(), window.results.why.toPlainText(),
             *(window.results.table.item(r, c).text()
               for r in range(window.results.table.rowCount())
               for c in range(window.results.table.columnCount()))]
    from spineviewer.io.report_text import corrections, summary_lines

    texts += summary_lines(window.session.result) + corrections(window.session.result)
    assert not any("grade 0" in t or "none, grade" in t for t in texts)
    assert "fracture (type and grade not recorded)" in window.results.why.toPlainText()


# ---- 5. exports cross patients ------------------------------------------------------------
def test_5_exports_go_to_a_per_study_folder(qtbot, window, two_patients, tmp_path):
    root, a, b = two_patients
    base = tmp_path / "exports"
    written = []
    for n in range(2):
        if n == 0:
            first = open_and_wait(qtbot, window, root)
            uid = b["t2"] if first.series_uid == a["t2"] else a["t2"]
        else:
            _show(qtbot, window, uid)
            _analyse(qtbot, window, uid)
        window.export_panel.folder.setText(str(base))
        window.export_panel.pdf.setChecked(False)
        with qtbot.waitSignal(window.export_panel.exportFinished, timeout=20000) as blocker:
            assert window.export_panel.export()
        written += blocker.args[0]
        qtbot.waitUntil(lambda: window.export_panel.export_button.isEnabled(), timeout=5000)
    assert len(written) == 2 and written[0] != written[1]
    names = sorted(p.split("/")[-1] for p in written)
    assert names[0].startswith("Alpha_Anna_PAT-A_") and names[1].startswith("Beta_Bert_PAT-B_")
    assert all(p.endswith("_results.csv") for p in written)
    # de-identified: a pseudonym, no name
    window.export_panel.deidentify.setChecked(True)
    assert window.export_panel.out_dir().name.startswith("anon-")


# ---- 6. smaller defects -------------------------------------------------------------------
def test_6_series_choice_text_escapes_less_than(qtbot, window, tmp_path):
    specs = df.typical_study()[1:2]  # only a T1: "TE 10 ms < 80 ms"
    df.write_study(tmp_path / "t1", specs)
    window.open_folder(tmp_path / "t1")
    qtbot.waitUntil(lambda: window.folder is not None, timeout=20000)
    assert "&lt; 80 ms" in window.browser.choice_label.text()


def test_6_redo_presets_and_keyboard_reach(qtbot, window, lumbar_study):
    open_and_wait(qtbot, window, lumbar_study.path)
    assert QtGui.QKeySequence("Ctrl+Y") in window.act_redo.shortcuts()
    window.override_call("L2", True)
    window.act_undo.trigger()
    assert window.session.result.vertebra("L2").override is None
    window.act_redo.trigger()
    assert window.session.result.vertebra("L2").override is not None
    window.wl_combo.setCurrentText("DICOM")
    window.apply_wl_preset("High contrast")
    assert window.wl_combo.currentText() == "High contrast"
    window.results.select_level("L2")
    window.activateWindow()
    window.act_comment.trigger()
    qtbot.waitUntil(lambda: window.results.comment.hasFocus(), timeout=2000)
    window.act_export_options.trigger()
    qtbot.waitUntil(lambda: window.export_panel.pdf.hasFocus(), timeout=2000)


# ---- 7. report and CSV --------------------------------------------------------------------
def test_7_report_after_override_and_csv_reader_columns(qtbot, window, lumbar_study,
                                                         tmp_path):
    result = open_and_wait(qtbot, window, lumbar_study.path)
    l1 = result.vertebra("L1")
    assert l1.fracture  # the algorithm calls the wedge
    window.results.select_level("L1")
    window.results.comment.setText("old healed")
    window.results.btn_no_fracture.click()
    from spineviewer.io.report_text import NO_FRACTURE, corrections, summary_lines

    lines = summary_lines(window.session.result)
    assert lines[0] != NO_FRACTURE and "overruled" in lines[0]
    assert "algorithm's call overruled" in window.results.summary.text()
    assert not any(" -> " in f and f.split(": ", 1)[1].split(" (algorithm) -> ")[0]
                   == f.split(" -> ")[1].split(" (corrected)")[0] for f in
                   corrections(window.session.result))  # no "MH 19.2 -> 19.2"
    rows = {r["level"]: r for r in read_csv_rows(_csv(tmp_path, window.session.result.to_csv()))}
    assert rows["L1"]["algorithm_fracture"] == 1 and rows["L1"]["reader_override"] == 0
    assert rows["L1"]["reader_comment"] == "old healed" and rows["L1"]["fracture"] == 0
    assert calls.reader_short(window.session.result.vertebra("L1")) == "none"


def test_6_partial_body_label_sits_on_the_body(qtbot):
    from spineviewer.core.results import StudyResult, VertebraResult
    from spineviewer.gui.canvas import SliceCanvas

    canvas = SliceCanvas()
    qtbot.addWidget(canvas)
    canvas.set_volume(np.zeros((3, 200, 100), np.float32), (1.0, 1.0), "1.2")
    outline = [(150.0, 40.0), (150.0, 80.0), (190.0, 80.0), (190.0, 40.0)]
    partial = VertebraResult(level="T10", outline_rc=outline, flags=["partial_body"])
    nothing = VertebraResult(level="T11", flags=["partial_body"])
    canvas.set_result(StudyResult(study_uid="1", series_uid="1.2", sop_instance_uid="3",
                                  slice_index=1, pixel_spacing_mm=(1.0, 1.0),
                                  vertebrae=[partial, nothing]))
    pos = canvas.overlays["T10"].label.pos()
    assert (pos.x(), pos.y()) == pytest.approx((60.0, 170.0))  # not at (0, 0)
    assert canvas.overlays["T11"].label.toPlainText() == ""  # no place: no label


def test_6_layout_at_1024x700(qtbot, window, lumbar_study):
    window.resize(1024, 700)
    open_and_wait(qtbot, window, lumbar_study.path)
    qtbot.wait(50)
    assert window.canvas.width() >= 420
    # the results dock (table, correction and export boxes) never scrolls sideways
    from PySide6 import QtWidgets

    scroll = window.findChild(QtWidgets.QScrollArea, "results scroll")
    assert scroll.widget().minimumSizeHint().width() <= scroll.viewport().width()
    assert not scroll.horizontalScrollBar().isVisible()
    table = window.results.table
    # and its table shows five vertebrae at once (T12..L5), not two
    assert table.viewport().height() >= 5 * table.verticalHeader().defaultSectionSize()
    assert not table.horizontalScrollBar().isVisible()
    visible = [i for i in range(table.columnCount()) if not table.isColumnHidden(i)]
    assert sum(table.horizontalHeader().sectionSize(i) for i in visible[:-1]) \
        <= table.viewport().width()
    for name in ("Level", "AH", "PH", "Fracture", "Deformity", "Grade"):  # never hidden
        col = [table.horizontalHeaderItem(i).text() for i in range(table.columnCount())]
        assert not table.isColumnHidden(col.index(name))
    # the overlay toggles sit on a second toolbar row, not behind an overflow button
    for tb in (window.main_toolbar, window.overlay_toolbar):
        ext = [b for b in tb.children() if b.objectName() == "qt_toolbar_ext_button"]
        assert not any(b.isVisible() for b in ext)
    assert all(window.overlay_toolbar.widgetForAction(a).isVisible()
               for a in window.overlay_toolbar.actions())


def test_6_corner_handles_shrink_instead_of_overlapping(qtbot, window, lumbar_study):
    open_and_wait(qtbot, window, lumbar_study.path)
    window.canvas.fit_handles()
    big = window.canvas.corner_handle("L3", "AS").scale
    window.canvas.vb.scaleBy((6.0, 6.0))  # zoom far out: bodies a few pixels tall on screen
    qtbot.waitUntil(lambda: window.canvas.corner_handle("L3", "AS").scale < big, timeout=3000)
    h = window.canvas.corner_handle("L3", "AS")
    v = window.session.result.vertebra("L3")
    side = abs(v.corners_rc["AI"][0] - v.corners_rc["AS"][0])  # image px
    on_screen = side / window.canvas.vb.viewPixelSize()[1]
    assert h.scale <= max(0.3 * on_screen + 0.5, 4.0)  # handles of AS and AI stay apart


def test_6_why_view_is_readable_at_1024x700(qtbot, window, lumbar_study):
    # At 1024 x 700 the "why" view had shrunk to three lines, the table was drawn over its
    # heading and its flags were out of sight (the wrapped header and summary were not
    # counted in the panel's minimum height).
    window.resize(1024, 700)
    open_and_wait(qtbot, window, lumbar_study.path)
    qtbot.wait(50)
    panel = window.results
    panel.select_level("L1")
    qtbot.wait(50)
    why, table = panel.why, panel.table
    assert why.viewport().height() >= 7 * why.fontMetrics().lineSpacing()

    def rect_in_panel(w):
        return QtCore.QRect(w.mapTo(panel, QtCore.QPoint(0, 0)), w.size())

    # nothing of the panel lies over the "why" view
    for other in (table, panel.header, panel.summary, panel.btn_fracture.parentWidget()):
        assert not rect_in_panel(other).intersects(rect_in_panel(why)), other
    # the call's heading and the flags line are in sight without scrolling the view
    assert why.verticalScrollBar().value() == 0
    doc, layout = why.document(), why.document().documentLayout()
    block = doc.firstBlock()
    tops = {}
    while block.isValid():
        tops.setdefault(block.text().split(":")[0], layout.blockBoundingRect(block).bottom())
        block = block.next()
    assert tops["L1"] <= why.viewport().height()
    assert tops["Flags"] <= why.viewport().height()
