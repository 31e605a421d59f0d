"""The main window end to end: open a study, analyse through the real worker, correct, undo,
autosave and restore, cancel, and keep the event loop turning."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6 import QtCore

from spineviewer.core import review
from spineviewer.core.errors import NoSagittalT2Series
from spineviewer.gui.main_window import MainWindow
from tests.gui.conftest import ANALYSIS_TIMEOUT_MS, open_and_wait, shown_window


@pytest.fixture
def window(qtbot, masks_analyze):
    with shown_window(qtbot, masks_analyze) as w:
        yield w


def cell(w: MainWindow, level: str, header: str) -> str:
    from spineviewer.gui.results_panel import COLUMNS

    row = w.results.levels().index(level)
    col = [c[0] for c in COLUMNS].index(header)
    return w.results.table.item(row, col).text()


def test_open_study_analyses_and_shows_lumbar_rows(qtbot, window, lumbar_study):
    result = open_and_wait(qtbot, window, lumbar_study.path)
    assert result.series_uid == lumbar_study.t2_uid
    levels = window.results.levels()
    assert [lv for lv in levels if lv.startswith("L")] == ["L1", "L2", "L3", "L4", "L5"]
    # the browser lists all three series and stars the sagittal T2 with its reason
    items = window.browser.series_items()
    assert len(items) == 3 and window.browser.chosen_uid == lumbar_study.t2_uid
    chosen = items[lumbar_study.t2_uid]
    assert chosen.font(0).bold() and chosen.text(0).startswith("\u2605")
    assert "sagittal \u00b7 TE 102 / TR 3500 \u00b7 5 sl" in chosen.text(0)
    assert "Auto-chosen" in chosen.toolTip(0)
    # the wedge-fractured L1 stands out in table, summary and overlay
    assert cell(window, "L1", "Fracture").startswith("yes")
    assert cell(window, "L1", "Deformity") == "wedge"
    assert "fracture suspected at L1" in window.results.summary.text()
    assert window.canvas.overlays["L1"].colour.name().lower() == "#ff5a1f"
    assert float(cell(window, "L3", "AH")) == pytest.approx(32 * 0.8, abs=1.0)
    assert window.canvas.index == result.slice_index
    assert "analysed slice" in window.canvas.slice_label.text()
    assert "Research software" in window.disclaimer.text()


def test_drag_corner_recomputes_and_autosaves(qtbot, window, lumbar_study):
    result = open_and_wait(qtbot, window, lumbar_study.path)
    v = result.vertebra("L3")
    ah0 = v.AH_mm
    handle = window.canvas.corner_handle("L3", "AS")
    p = handle.pos()
    handle.setPos(p.x(), p.y() + 6.0)  # drag the anterior-superior corner 6 px down
    handle.sigPositionChangeFinished.emit(handle)
    qtbot.waitUntil(lambda: window.session.result.vertebra("L3").AH_mm < ah0 - 1, timeout=5000)
    v = window.session.result.vertebra("L3")
    assert v.AH_mm == pytest.approx(ah0 - 6 * 0.8, abs=0.3)
    assert float(cell(window, "L3", "AH")) == pytest.approx(v.AH_mm, abs=0.06)
    assert cell(window, "L3", "Level") == "L3 \u270e"
    assert v.ai["AH_mm"] == pytest.approx(ah0)
    saved = lumbar_study.path / ".spineviewer" / f"{lumbar_study.t2_uid}.autosave.json"
    assert saved.is_file()
    assert window.statusBar().currentMessage().startswith(
        "1 correction(s) autosaved beside the study")
    assert review.restore(lumbar_study.path, lumbar_study.t2_uid).vertebra("L3").AH_mm == \
        pytest.approx(v.AH_mm)
    # undo brings the AI corner and height back, on the canvas too
    window.act_undo.trigger()
    assert window.session.result.vertebra("L3").AH_mm == pytest.approx(ah0)
    assert window.canvas.corner_handle("L3", "AS").pos().y() == pytest.approx(p.y())


def test_override_call_with_comment_then_undo_redo(qtbot, window, lumbar_study):
    open_and_wait(qtbot, window, lumbar_study.path)
    window.results.select_level("L1")
    window.results.comment.setText("old healed deformity")
    window.results.btn_no_fracture.click()
    v = window.session.result.vertebra("L1")
    assert v.final_fracture is False and v.fracture is True
    assert cell(window, "L1", "Fracture") == "no (override)"
    assert cell(window, "L1", "Deformity") == "wedge (AI)"
    assert "old healed deformity" in window.results.why.toPlainText()
    assert window.session.result.edits[-1]["comment"] == "old healed deformity"
    window.act_undo.trigger()
    assert window.session.result.vertebra("L1").final_fracture is True
    assert cell(window, "L1", "Fracture") == "yes"
    window.act_redo.trigger()
    assert cell(window, "L1", "Fracture") == "no (override)"


def test_shift_levels_relabels_table(qtbot, window, lumbar_study):
    open_and_wait(qtbot, window, lumbar_study.path)
    window.act_down.trigger()
    assert window.results.levels() == ["L1", "L2", "L3", "L4", "L5", "L6"]
    assert "L6" in window.canvas.overlays
    window.act_undo.trigger()
    assert window.results.levels()[0] == "T12"


def test_selecting_a_row_centres_the_vertebra(qtbot, window, lumbar_study):
    result = open_and_wait(qtbot, window, lumbar_study.path)
    window.canvas.vb.scaleBy((0.4, 0.4))  # zoom in so centring matters
    window.results.select_level("L5")
    r, c = np.mean(list(result.vertebra("L5").corners_rc.values()), axis=0)
    cr, cc = window.canvas.view_centre_rc()
    assert (cr, cc) == pytest.approx((r, c), abs=2.0)
    assert "L5" in window.results.why.toPlainText()


def test_autosave_is_restored_on_reopen(qtbot, window, lumbar_study, masks_analyze):
    open_and_wait(qtbot, window, lumbar_study.path)
    window.override_call("L2", True, "sclerotic band on T1")
    window.shutdown()
    calls = []

    def must_not_run(path, **kw):
        calls.append(path)
        return masks_analyze(path, **kw)

    w2 = MainWindow(analyze=must_not_run)
    qtbot.addWidget(w2)
    restored = open_and_wait(qtbot, w2, lumbar_study.path)
    assert calls == []  # restored from the autosave, not re-analysed
    assert restored.vertebra("L2").override == {"fracture": True,
                                                "comment": "sclerotic band on T1"}
    assert cell(w2, "L2", "Fracture") == "yes (override)"
    w2.act_undo.trigger()  # a new session starts with an empty undo stack
    assert restored.vertebra("L2").override is not None
    w2.shutdown()


def _slow_analyze(real, seconds: float):
    def analyze(path, progress=None, cancel=None, **kw):
        t_end = time.monotonic() + seconds
        while time.monotonic() < t_end:
            if cancel is not None and cancel():
                from spineviewer.core.errors import Cancelled

                raise Cancelled("analysis cancelled by the user")
            if progress is not None:
                progress("segment", 0.4)
            time.sleep(0.02)
        return real(path, progress=progress, cancel=cancel, **kw)

    return analyze


def test_cancel_a_running_analysis(qtbot, lumbar_study, masks_analyze):
    w = MainWindow(analyze=_slow_analyze(masks_analyze, 30.0))
    qtbot.addWidget(w)
    w.open_folder(lumbar_study.path)
    qtbot.waitUntil(lambda: w.is_busy("analysis") and w.progress.value() > 0, timeout=20000)
    assert w.act_cancel.isEnabled()
    t0 = time.monotonic()
    with qtbot.waitSignal(w.analysisCancelled, timeout=5000):
        w.act_cancel.trigger()
    assert time.monotonic() - t0 < 2.0
    qtbot.waitUntil(lambda: not w.is_busy("analysis"), timeout=5000)
    assert w.session is None and not w.progress.isVisible()
    w.shutdown()


def test_event_loop_turns_during_analysis(qtbot, lumbar_study, masks_analyze):
    w = MainWindow(analyze=_slow_analyze(masks_analyze, 1.0))
    qtbot.addWidget(w)
    ticks = []
    timer = QtCore.QTimer()
    timer.timeout.connect(lambda: ticks.append(w.is_busy("analysis")))
    timer.start(20)
    open_and_wait(qtbot, w, lumbar_study.path)
    timer.stop()
    assert sum(ticks) >= 20  # >= 0.4 s of 20 ms ticks while the analysis ran
    w.shutdown()


def test_analysis_error_is_one_readable_line(qtbot, lumbar_study):
    def fails(path, **kw):
        raise NoSagittalT2Series("study has 3 series; none is sagittal T2 (TE >= 80 ms)")

    w = MainWindow(analyze=fails)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.analysisFailed, timeout=20000) as blocker:
        w.open_folder(lumbar_study.path)
    assert blocker.args[0] == "study has 3 series; none is sagittal T2 (TE >= 80 ms)"
    assert w.banner.text().endswith(blocker.args[0]) and not w.banner.isHidden()
    w.shutdown()


def test_not_a_study_shows_message(qtbot, tmp_path, masks_analyze):
    empty = tmp_path / "not-a-study"
    empty.mkdir()
    (empty / "notes.txt").write_text("not dicom")
    w = MainWindow(analyze=masks_analyze)
    qtbot.addWidget(w)
    w.open_folder(empty)
    qtbot.waitUntil(lambda: not w.banner.isHidden(), timeout=10000)
    assert "\n" not in w.last_error and "DICOM" in w.last_error
    w.shutdown()


def test_any_series_can_be_viewed(qtbot, window, lumbar_study):
    open_and_wait(qtbot, window, lumbar_study.path)
    axial = next(uid for uid, it in window.browser.series_items().items()
                 if "axial" in it.text(0))
    with qtbot.waitSignal(window.volumeShown, timeout=10000):
        window.browser.seriesActivated.emit(axial)
    assert window.canvas.series_uid == axial and not window.canvas.analysed_here()
    assert window.canvas.pixels.shape[0] == 5


def test_drop_a_folder_opens_it_and_remembers_it(qtbot, window, lumbar_study):
    from PySide6 import QtGui

    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(lumbar_study.path))])
    drop = QtGui.QDropEvent(QtCore.QPointF(10, 10), QtCore.Qt.DropAction.CopyAction, mime,
                            QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.resultsShown, timeout=ANALYSIS_TIMEOUT_MS):
        window.dropEvent(drop)
    assert window.recent_folders()[0] == str(lumbar_study.path)
    assert window.recent_menu.actions()[0].text() == str(lumbar_study.path)


def test_table_follows_a_corner_while_it_is_dragged(qtbot, window, lumbar_study):
    result = open_and_wait(qtbot, window, lumbar_study.path)
    ah0 = result.vertebra("L4").AH_mm
    handle = window.canvas.corner_handle("L4", "AI")
    p = handle.pos()
    handle.setPos(p.x(), p.y() - 5.0)  # mid-drag: the inferior corner 5 px up (4 mm)
    qtbot.waitUntil(lambda: float(cell(window, "L4", "AH")) < ah0 - 3.0, timeout=3000)
    assert float(cell(window, "L4", "AH")) == pytest.approx(ah0 - 4.0, abs=0.3)
    assert window.session.result.vertebra("L4").AH_mm == pytest.approx(ah0)  # not committed
    assert window.session.result.edits == [] and not window.act_undo.isEnabled()
    handle.sigPositionChangeFinished.emit(handle)  # release commits one edit
    qtbot.waitUntil(lambda: len(window.session.result.edits) == 1, timeout=3000)
    assert window.session.result.vertebra("L4").AH_mm == pytest.approx(ah0 - 4.0, abs=0.3)


def test_indexing_can_be_cancelled_from_the_browser(qtbot, lumbar_study, masks_analyze,
                                                    monkeypatch):
    import spineviewer.gui.window_study as mw
    from spineviewer.core.errors import Cancelled

    def slow_index(path, progress=None, cancel=None):
        for i in range(500):
            if cancel():
                raise Cancelled("indexing cancelled")
            progress(f"reading headers {i + 1}/500", i / 500)
            time.sleep(0.01)
        raise AssertionError("not cancelled")

    monkeypatch.setattr(mw, "index_folder", slow_index)
    w = MainWindow(analyze=masks_analyze)
    qtbot.addWidget(w)
    w.show()
    w.open_folder(lumbar_study.path)
    qtbot.waitUntil(lambda: w.browser.progress.value() > 0, timeout=5000)
    assert w.browser.cancel_button.isVisible()
    w.browser.cancel_button.click()
    qtbot.waitUntil(lambda: not w.is_busy("index"), timeout=5000)
    assert not w.browser.progress.isVisible() and w.folder is None
    w.shutdown()


def test_opening_a_study_walks_the_folder_and_reads_the_series_once(qtbot, window,
                                                                     lumbar_study, monkeypatch):
    # The analysis uses the browser's index and the canvas's volume: before, it walked the
    # folder and read the T2 series a second time while the viewer did the same.
    from spineviewer.core.dicom import index as index_mod
    from spineviewer.core.dicom import volume as volume_mod

    scans, loads = [], []
    real_scan, real_load = index_mod.scan_folder, volume_mod.load_series

    def scan(path, *a, **k):
        scans.append(str(path))
        return real_scan(path, *a, **k)

    def load(info):
        loads.append(info.series_uid)
        return real_load(info)

    monkeypatch.setattr(index_mod, "scan_folder", scan)
    monkeypatch.setattr(volume_mod, "load_series", load)
    result = open_and_wait(qtbot, window, lumbar_study.path)
    assert result.series_uid == lumbar_study.t2_uid
    assert len(scans) == 1
    assert loads == [lumbar_study.t2_uid]
