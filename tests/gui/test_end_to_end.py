"""The viewer on a generated phantom study with the shipped ONNX model (skipped without one)."""

from __future__ import annotations

import pytest

from spineviewer.gui.demo import model_available, prepare_demo
from spineviewer.gui.main_window import MainWindow

pytestmark = pytest.mark.skipif(not model_available(),
                                reason="no segmentation model in models/*.onnx")


def test_demo_study_through_the_real_model(qtbot, tmp_path):
    dicom, analyze, _note = prepare_demo(tmp_path)
    assert analyze is None  # the real pipeline, network included
    w = MainWindow(threads=2)
    qtbot.addWidget(w)
    with qtbot.waitSignal(w.resultsShown, timeout=120000) as blocker:
        w.open_folder(dicom)
    result = blocker.args[0]
    lumbar = [lv for lv in w.results.levels() if lv in ("L1", "L2", "L3", "L4", "L5")]
    assert lumbar == ["L1", "L2", "L3", "L4", "L5"]
    assert result.model.get("sha256") and "Model:" in w.model_label.text()
    ah0 = result.vertebra("L2").AH_mm
    handle = w.canvas.corner_handle("L2", "AS")
    p = handle.pos()
    handle.setPos(p.x(), p.y() + 5.0)
    handle.sigPositionChangeFinished.emit(handle)
    qtbot.waitUntil(lambda: w.session.result.vertebra("L2").AH_mm < ah0 - 1.0, timeout=5000)
    w.shutdown()
