"""Issue 15, results within 1 s: the per-vertebra analysis first shows its centre slice's
result, marked preliminary, never exported nor corrected; the full result replaces it and
says which calls it changed. A full analysis that fails or is cancelled removes it."""

from __future__ import annotations

import copy
import threading
import time

import pytest

from spineviewer.core.errors import Cancelled, SpineViewerError
from spineviewer.core.pipeline import mark_preliminary
from spineviewer.gui import worker as workers
from spineviewer.gui.binding import PRELIMINARY_HEADER
from tests.gui.conftest import ANALYSIS_TIMEOUT_MS, shown_window


class Staged:
    """An ``analyze`` that hands over a preliminary result (the wedge of L1 missed, as the
    centre slice alone might) and holds the full one until ``release``; ``then`` may end the
    full analysis otherwise ("fail" or "cancel": waits for the cancel flag)."""

    def __init__(self, real, then: str = "finish") -> None:
        self.real, self.then = real, then
        self.show_early = threading.Event()
        self.show_early.set()
        self.release = threading.Event()

    def __call__(self, path, preliminary=None, cancel=None, **kw):
        final = self.real(path, **kw)
        early = copy.deepcopy(final)
        mark_preliminary(early)
        v = early.vertebra("L1")
        v.fracture, v.deformity, v.genant_grade = False, "none", 0
        v.reasons = []
        assert preliminary is not None, "the viewer asks for the preliminary result"
        self.show_early.wait(30)
        preliminary(early)
        t_end = time.monotonic() + 30
        while not self.release.is_set() and time.monotonic() < t_end:
            if cancel():
                raise Cancelled("analysis cancelled by the user")
            time.sleep(0.01)
        if self.then == "fail":
            raise SpineViewerError("segmentation failed on slice 3")
        return final


@pytest.fixture
def staged(masks_analyze):
    return Staged(masks_analyze)


def _export_enabled(w) -> bool:
    return w.export_panel.export_button.isEnabled() or w.act_export.isEnabled()


def test_preliminary_result_is_shown_first_marked_and_never_exported_or_corrected(
        qtbot, lumbar_study, staged):
    with shown_window(qtbot, staged) as w:
        order = []
        w.preliminaryShown.connect(lambda r: order.append(("preliminary", r)))
        w.resultsShown.connect(lambda r: order.append(("final", r)))
        with qtbot.waitSignal(w.preliminaryShown, timeout=ANALYSIS_TIMEOUT_MS):
            w.open_folder(lumbar_study.path)
        qtbot.waitUntil(lambda: w.canvas.series_uid == lumbar_study.t2_uid, timeout=10000)
        early = w.session.result
        assert early.preliminary and [k for k, _ in order] == ["preliminary"]
        # shown at once: table, overlays, summary; visibly marked preliminary
        assert w.results.table.rowCount() == len(early.vertebrae) > 4
        assert w.canvas.result is early
        assert PRELIMINARY_HEADER in w.results.header.text()
        assert "Preliminary" in w.results.summary.text()
        # nothing exported, sent or corrected from it
        assert not _export_enabled(w)
        for act in (w.act_fracture, w.act_no_fracture, w.act_up, w.act_down):
            assert not act.isEnabled()
        w.results.select_level("L2")
        assert not w.results.btn_fracture.isEnabled() and not w.results.btn_up.isEnabled()
        assert not any(h.movable for ov in w.canvas.overlays.values()
                       for h in ov.handles.values())
        w.override_call("L2", True, "looks broken")
        w.shift_levels(1)
        assert "preliminary" in w.last_error and not early.edits
        assert w.session.result.vertebra("L2").override in (None, {})
        assert w.is_busy("analysis") and w.progress.isVisible()

        # the full result replaces it and announces the call that changed
        with qtbot.waitSignal(w.resultsShown, timeout=ANALYSIS_TIMEOUT_MS):
            staged.release.set()
        final = w.session.result
        assert [k for k, _ in order] == ["preliminary", "final"] and not final.preliminary
        assert PRELIMINARY_HEADER not in w.results.header.text()
        assert "Preliminary" not in w.results.summary.text()
        assert w.results.header.text().startswith("<b>Results:")
        assert _export_enabled(w) and w.act_fracture.isEnabled()
        assert all(h.movable for ov in w.canvas.overlays.values() for h in ov.handles.values())
        assert final.vertebra("L1").fracture
        want = "L1: now wedge fracture"
        assert w.last_announcement.startswith("Full analysis: " + want)
        assert w.statusBar().currentMessage().startswith("Full analysis: " + want)
        assert "L2" not in w.last_announcement  # unchanged calls are not listed


@pytest.mark.parametrize("then", ["cancel", "fail"])
def test_a_full_analysis_that_ends_early_removes_the_preliminary_result(
        qtbot, lumbar_study, masks_analyze, then):
    staged = Staged(masks_analyze, then)
    with shown_window(qtbot, staged) as w:
        with qtbot.waitSignal(w.preliminaryShown, timeout=ANALYSIS_TIMEOUT_MS):
            w.open_folder(lumbar_study.path)
        assert w.session is not None and w.session.result.preliminary
        if then == "cancel":
            with qtbot.waitSignal(w.analysisCancelled, timeout=10000):
                w.cancel_analysis()
            assert "preliminary result was removed" in w.statusBar().currentMessage()
        else:
            with qtbot.waitSignal(w.analysisFailed, timeout=10000):
                staged.release.set()
            assert "segmentation failed" in w.last_error
            assert "preliminary result was removed" in w.last_error
        assert w.session is None and w.canvas.result is None
        assert w.results.table.rowCount() == 0 and not _export_enabled(w)
        assert PRELIMINARY_HEADER not in w.results.header.text()


def test_a_preliminary_result_of_another_series_is_not_shown(qtbot, lumbar_study, staged):
    staged.show_early.clear()  # the preliminary result waits until the reader moved on
    with shown_window(qtbot, staged) as w:
        w.open_folder(lumbar_study.path)
        qtbot.waitUntil(lambda: w.is_busy("analysis"), timeout=ANALYSIS_TIMEOUT_MS)
        other = next(uid for uid in w.browser.series_items() if uid != lumbar_study.t2_uid)
        with qtbot.waitSignal(w.volumeShown, timeout=10000):
            w.browser.seriesActivated.emit(other)
        with qtbot.waitSignal(w.preliminaryShown, timeout=ANALYSIS_TIMEOUT_MS):
            staged.show_early.set()
        assert w.canvas.series_uid == other  # a preliminary result does not take the canvas
        assert w.results.table.rowCount() == 0 and w.canvas.result is None
        assert "belongs to" in w.results.header.text() and not _export_enabled(w)
        staged.release.set()
        qtbot.waitUntil(lambda: not w.is_busy("analysis"), timeout=ANALYSIS_TIMEOUT_MS)


def test_analysis_worker_hands_over_the_preliminary_result_before_the_final(qtbot):
    seen = []

    def analyze(path, preliminary=None, **kw):
        preliminary("early")
        return "final"

    job = workers.AnalysisWorker("/study", analyze=analyze, preliminary=True)
    job.preliminaryReady.connect(lambda r: seen.append(r))
    job.analysisFinished.connect(lambda r: seen.append(r))
    with qtbot.waitSignal(job.done, timeout=10000):
        thread = workers.start(job)
    assert thread.wait(5000)
    qtbot.waitUntil(lambda: len(seen) == 2, timeout=2000)
    assert seen == ["early", "final"]
    # without preliminary=True the analysis is not asked for one
    job = workers.AnalysisWorker("/study", analyze=lambda path, **kw: sorted(kw))
    with qtbot.waitSignal(job.analysisFinished, timeout=10000) as blocker:
        thread = workers.start(job)
    assert thread.wait(5000) and "preliminary" not in blocker.args[0]
