"""The image canvas: slices, window/level, cursor read-out, overlays and real mouse drags."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from spineviewer.core.results import StudyResult, VertebraResult
from spineviewer.gui.canvas import SliceCanvas

N, ROWS, COLS = 5, 120, 80
SPACING = (0.5, 0.7)


def volume() -> np.ndarray:
    r, c = np.mgrid[0:ROWS, 0:COLS]
    return np.stack([r * 10.0 + c + 1000.0 * i for i in range(N)]).astype(np.float32)


def box_vertebra(level: str, top: float, fracture: bool = False) -> VertebraResult:
    corners = {"AS": (top, 20.0), "AI": (top + 20, 20.0), "PS": (top, 50.0),
               "PI": (top + 20, 50.0)}
    outline = ([(top, c) for c in np.linspace(20, 50, 8)]
               + [(r, 50.0) for r in np.linspace(top, top + 20, 6)[1:-1]]
               + [(top + 20, c) for c in np.linspace(50, 20, 8)]
               + [(r, 20.0) for r in np.linspace(top + 20, top, 6)[1:-1]])
    return VertebraResult(level=level, corners_rc=corners, outline_rc=outline, AH_mm=10.0,
                          PH_mm=10.0, fracture=fracture,
                          deformity="wedge" if fracture else "none")


def result(series_uid: str = "1.2.3") -> StudyResult:
    return StudyResult(study_uid="1", series_uid=series_uid, sop_instance_uid="1.2",
                       slice_index=3, pixel_spacing_mm=SPACING,
                       vertebrae=[box_vertebra("L1", 10.0, fracture=True),
                                  box_vertebra("L2", 50.0)])


@pytest.fixture
def canvas(qtbot):
    c = SliceCanvas()
    qtbot.addWidget(c)
    c.resize(500, 600)
    c.show()
    qtbot.waitExposed(c)
    c.set_volume(volume(), SPACING, "1.2.3")
    return c


def view_point(c: SliceCanvas, row: float, col: float) -> QtCore.QPoint:
    """Widget (viewport) coordinates of a source pixel."""
    scene = c.vb.mapViewToScene(QtCore.QPointF(col, row))
    return c.view.mapFromScene(scene)


def send_drag(c: SliceCanvas, start: QtCore.QPoint, end: QtCore.QPoint,
              button=QtCore.Qt.MouseButton.LeftButton) -> None:
    vp = c.view.viewport()
    def ev(kind, pos, buttons):
        return QtGui.QMouseEvent(kind, QtCore.QPointF(pos), QtCore.QPointF(vp.mapToGlobal(pos)),
                                 button, buttons, QtCore.Qt.KeyboardModifier.NoModifier)
    QtWidgets.QApplication.sendEvent(vp, ev(QtCore.QEvent.Type.MouseButtonPress, start, button))
    for t in np.linspace(0.1, 1.0, 8):
        time.sleep(0.015)  # pyqtgraph drops moves faster than its mouse rate limit (100 Hz)
        p = QtCore.QPoint(int(start.x() + t * (end.x() - start.x())),
                          int(start.y() + t * (end.y() - start.y())))
        QtWidgets.QApplication.sendEvent(vp, ev(QtCore.QEvent.Type.MouseMove, p, button))
    QtWidgets.QApplication.sendEvent(
        vp, ev(QtCore.QEvent.Type.MouseButtonRelease, end, QtCore.Qt.MouseButton.NoButton))


def test_starts_on_centre_slice_and_scrolls(qtbot, canvas):
    assert canvas.index == 2
    qtbot.keyClick(canvas, QtCore.Qt.Key.Key_Down)
    assert canvas.index == 3
    qtbot.keyClick(canvas, QtCore.Qt.Key.Key_End)
    assert canvas.index == N - 1
    canvas.vb.sliceStepped.emit(1)  # a wheel step past the end stays on the last slice
    assert canvas.index == N - 1
    qtbot.keyClick(canvas, QtCore.Qt.Key.Key_Home)
    assert canvas.index == 0 and canvas.slider.value() == 0
    np.testing.assert_array_equal(canvas.image_item.image, volume()[0])


def test_presets_and_window_drag(canvas):
    canvas.apply_preset("Full range")
    img = volume()[2]
    assert canvas.window == pytest.approx(((img.min() + img.max()) / 2, np.ptp(img)))
    w0 = canvas.window[1]
    canvas.vb.windowDragged.emit(40.0, 0.0)  # 40 px to the right widens the window
    assert canvas.window[1] == pytest.approx(w0 + 40 * np.ptp(img) / 400)
    assert canvas.image_item.levels == pytest.approx(
        [canvas.window[0] - canvas.window[1] / 2, canvas.window[0] + canvas.window[1] / 2])


def test_real_left_drag_changes_window_not_view(canvas):
    canvas.apply_preset("Auto")
    before, view_before = canvas.window, canvas.vb.viewRange()
    mid = view_point(canvas, 60, 40)
    send_drag(canvas, mid, mid + QtCore.QPoint(60, 30))
    assert canvas.window[1] > before[1] and canvas.window[0] < before[0]
    assert np.allclose(canvas.vb.viewRange(), view_before)


def test_cursor_reads_value_and_mm(canvas):
    scene = canvas.vb.mapViewToScene(QtCore.QPointF(30.0, 40.0))  # x = col 30, y = row 40
    canvas._on_mouse_moved(scene)
    text = canvas.info.text()
    assert "(40, 30)" in text and "20.0, 21.0 mm" in text
    assert f"value {40 * 10 + 30 + 2000}" in text


def test_overlays_only_on_analysed_slice_and_toggle(canvas):
    canvas.set_result(result())
    tint = canvas.overlays["L1"].items["masks"][0]
    assert not tint.isVisible()  # slice 2 shown, slice 3 analysed
    canvas.set_slice(3)
    assert tint.isVisible() and "analysed slice" in canvas.slice_label.text()
    canvas.set_overlay_visible("masks", False)
    assert not tint.isVisible() and canvas.corner_handle("L1", "AS").isVisible()
    assert canvas.overlays["L1"].colour.name() != canvas.overlays["L2"].colour.name()


def test_overlays_hidden_for_another_series(canvas):
    canvas.set_result(result(series_uid="9.9.9"))
    canvas.set_slice(3)
    assert not canvas.analysed_here()
    assert not canvas.corner_handle("L1", "AS").isVisible()


def test_real_mouse_drag_of_a_corner_emits_corner_moved(qtbot, canvas):
    canvas.set_result(result())
    canvas.set_slice(3)
    qtbot.wait(50)
    start = view_point(canvas, 10.0, 20.0)  # the AS corner of L1
    end = view_point(canvas, 16.0, 20.0)
    with qtbot.waitSignal(canvas.cornerMoved, timeout=2000) as blocker:
        send_drag(canvas, start, end)
    level, corner, row, col = blocker.args
    assert (level, corner) == ("L1", "AS")
    assert row == pytest.approx(16.0, abs=1.0) and col == pytest.approx(20.0, abs=1.0)


def test_click_in_a_vertebra_selects_it(qtbot, canvas):
    canvas.set_result(result())
    canvas.set_slice(3)
    ov = canvas.overlays["L2"]
    assert ov.contains_rc((60.0, 35.0)) and not ov.contains_rc((30.0, 35.0))


def test_select_level_centres_and_highlights(canvas):
    canvas.set_result(result())
    canvas.vb.scaleBy((0.5, 0.5))
    canvas.select_level("L2")  # still wholly in view: the view stays (issue 15, item 6)
    assert canvas.view_centre_rc()[1] == pytest.approx(39.5, abs=0.5)
    canvas.vb.scaleBy((0.2, 0.2))
    canvas.vb.translateBy(x=40, y=40)  # L2 now outside the view
    canvas.select_level("L2")
    assert canvas.index == 3
    assert canvas.view_centre_rc() == pytest.approx((60.0, 35.0), abs=0.5)
    assert canvas.overlays["L2"].outline_item.opts["pen"].widthF() == pytest.approx(3.0)


def test_middle_drag_pans_and_keeps_window(canvas):
    canvas.vb.scaleBy((0.5, 0.5))
    before_view, before_window = canvas.view_centre_rc(), canvas.window
    mid = view_point(canvas, 60, 40)
    send_drag(canvas, mid, mid + QtCore.QPoint(0, 50), button=QtCore.Qt.MouseButton.MiddleButton)
    row, col = canvas.view_centre_rc()
    assert row < before_view[0] - 5 and col == pytest.approx(before_view[1], abs=0.5)
    assert canvas.window == before_window


def test_new_result_with_same_vertebrae_moves_existing_items(canvas):
    canvas.set_result(result())
    canvas.set_slice(3)
    handle = canvas.corner_handle("L2", "PI")
    moved = result()
    moved.vertebrae[1].corners_rc["PI"] = (75.0, 52.0)
    moved.vertebrae[1].fracture = True
    canvas.set_result(moved)
    assert canvas.corner_handle("L2", "PI") is handle  # updated in place, not re-created
    assert (handle.pos().x(), handle.pos().y()) == pytest.approx((52.0, 75.0))
    assert canvas.overlays["L2"].colour.name().lower() == "#ff5a1f"
    relabelled = result()
    relabelled.vertebrae[0].level = "T12"
    canvas.set_result(relabelled)
    assert list(canvas.overlays) == ["T12", "L2"] and canvas.corner_handle("L2", "PI") is not handle


def test_each_vertebra_is_drawn_on_its_measurement_slice(canvas):
    # Per-vertebra mode: L1 was measured on the analysed slice 3 (where the levels were
    # named), L2 on slice 1. Before, both outlines were drawn on slice 3 and none on slice 1.
    r = result()
    r.vertebrae[0].measurement_slice = 3
    r.vertebrae[1].measurement_slice = 1
    canvas.set_result(r)
    l1, l2 = canvas.overlays["L1"], canvas.overlays["L2"]

    def shown(ov, kind):
        return all(it.isVisible() for it in ov.items[kind])

    canvas.set_slice(3)  # the analysed slice: L1 drawn, L2 named there but drawn on slice 2
    assert shown(l1, "outlines") and shown(l1, "corners")
    assert not shown(l2, "outlines") and not shown(l2, "corners") and not shown(l2, "masks")
    assert shown(l2, "labels") and "measured on slice 2" in l2.label.toPlainText()
    assert "measured on slice" not in l1.label.toPlainText()
    text = canvas.slice_label.text()
    assert "analysed slice" in text and "measured here: L1" in text
    canvas.set_slice(1)  # L2's slice: L2 drawn with its corners, nothing of L1
    assert shown(l2, "outlines") and shown(l2, "corners") and shown(l2, "labels")
    assert "measured on slice" not in l2.label.toPlainText()
    assert not any(it.isVisible() for it in l1.all_items())
    assert "measured here: L2" in canvas.slice_label.text()
    canvas.set_slice(2)  # a slice nobody was measured on: no overlay
    assert not any(it.isVisible() for ov in (l1, l2) for it in ov.all_items())
    # selecting a vertebra shows the slice its outline is drawn on
    canvas.select_level("L2")
    assert canvas.index == 1
    canvas.select_level("L1")
    assert canvas.index == 3
