"""Reading tools (issue 15): orientation letters, scale bar, ruler, auto-zoom, measurement-slice
marks, linked STIR/T1 view, side panels, small-screen layout and the shortcut list.

Each test first shows the state without the tool (or before its key), then with it.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets

from spineviewer.gui.canvas import SliceCanvas
from spineviewer.gui.main_window import MainWindow
from spineviewer.gui.ruler import RulerTool
from spineviewer.gui.view_markers import ViewMarkers
from tests.gui.conftest import SPACING_MM, open_and_wait, shown_window

ANALYSIS_TIMEOUT_MS = 60000
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def window(qtbot, masks_analyze):
    with shown_window(qtbot, masks_analyze, size=(1400, 900)) as w:
        yield w


class _Drag:
    """A left-button drag event as pyqtgraph's ViewBox receives it (view coordinates in)."""

    def __init__(self, vb, a_xy, b_xy, start=False, finish=False):
        self._pos = vb.mapFromView(QtCore.QPointF(*b_xy))
        self._down = vb.mapFromView(QtCore.QPointF(*a_xy))
        self._last = self._down
        self.start, self.finish, self.accepted = start, finish, False

    def button(self):
        return QtCore.Qt.MouseButton.LeftButton

    def modifiers(self):
        return QtCore.Qt.KeyboardModifier.NoModifier

    def isStart(self):
        return self.start

    def isFinish(self):
        return self.finish

    def pos(self):
        return self._pos

    def lastPos(self):
        return self._last

    def buttonDownPos(self, *_):
        return self._down

    def accept(self):
        self.accepted = True


def drag(vb, a_xy, b_xy):
    mid = ((a_xy[0] + b_xy[0]) / 2, (a_xy[1] + b_xy[1]) / 2)
    vb.mouseDragEvent(_Drag(vb, a_xy, mid, start=True))
    vb.mouseDragEvent(_Drag(vb, a_xy, b_xy, finish=True))


def trigger(w, key: str) -> None:
    """Trigger the window action bound to ``key``."""
    from PySide6 import QtGui

    seq = QtGui.QKeySequence(key)
    acts = [a for a in w.findChildren(QtGui.QAction) if seq in a.shortcuts()]
    assert len(acts) == 1, f"{key} is bound to {len(acts)} actions"
    acts[0].trigger()


# ---- orientation letters and scale bar ----------------------------------------------------
def test_orientation_letters_and_scale_bar(qtbot, window, lumbar_study):
    markers = window.reading_tools.markers
    assert not any(lab.isVisible() for lab in markers.letters.values())  # nothing shown yet
    assert not markers.scale_bar.isVisible()
    open_and_wait(qtbot, window, lumbar_study.path)
    qtbot.waitUntil(lambda: markers.letters["top"].isVisible(), timeout=5000)
    # the factory's sagittal IOP [0,1,0, 0,0,-1]: columns run anterior -> posterior
    assert {k: lab.text() for k, lab in markers.letters.items()} == {
        "top": "H", "bottom": "F", "left": "A", "right": "P"}
    bar = markers.scale_bar
    assert bar.isVisible() and bar.text() == f"{bar.length_mm} mm"
    sx, _ = window.canvas.vb.viewPixelSize()
    assert bar.bar_px == pytest.approx(bar.length_mm / (sx * SPACING_MM[1]), rel=1e-6)
    window.canvas.vb.scaleBy((0.5, 0.5))  # zoom in: the same bar length takes more pixels
    qtbot.waitUntil(lambda: bar.px_per_mm > 0, timeout=2000)
    sx2, _ = window.canvas.vb.viewPixelSize()
    assert bar.px_per_mm == pytest.approx(1.0 / (sx2 * SPACING_MM[1]), rel=1e-6)
    window.canvas.clear()  # e.g. a failed open: no letters over an empty canvas
    assert not any(lab.isVisible() for lab in markers.letters.values())
    assert not bar.isVisible()


def test_scale_bar_uses_column_spacing(qtbot):
    canvas = SliceCanvas()
    qtbot.addWidget(canvas)
    canvas.resize(600, 500)
    canvas.show()
    markers = ViewMarkers(canvas)
    canvas.set_volume(np.zeros((1, 100, 100), np.float32), (0.5, 2.0))
    markers.update()
    sx, _ = canvas.vb.viewPixelSize()
    assert markers.scale_bar.px_per_mm == pytest.approx(1.0 / (sx * 2.0), rel=1e-6)


# ---- ruler --------------------------------------------------------------------------------
def test_ruler_measures_in_mm_and_left_drag_is_window_level_without_it(qtbot, window,
                                                                       lumbar_study):
    open_and_wait(qtbot, window, lumbar_study.path)
    canvas, tool = window.canvas, window.reading_tools.ruler
    before = canvas.window
    drag(canvas.vb, (10, 20), (40, 60))  # ruler off: the drag changes window / level
    assert canvas.window != before and tool.rulers == []
    trigger(window, "D")
    assert tool.active and window.reading_tools.act_ruler.isChecked()
    win = canvas.window
    with qtbot.waitSignal(tool.measured) as blocker:
        drag(canvas.vb, (10, 20), (40, 60))
    assert canvas.window == win  # no window change while measuring
    assert len(tool.rulers) == 1
    # (30, 40) pixels at 0.8 mm = 24 and 32 mm -> 40 mm
    assert blocker.args[0] == pytest.approx(40.0, abs=0.05)
    assert tool.rulers[0].text() == "40.0 mm"
    assert "40.0 mm" in window.statusBar().currentMessage()
    canvas.set_slice(canvas.index + 1)  # a ruler belongs to its slice
    assert not tool.rulers[0].roi.isVisible()
    canvas.set_slice(canvas.index - 1)
    assert tool.rulers[0].roi.isVisible()
    trigger(window, "Shift+D")
    assert tool.rulers == []
    trigger(window, "D")
    assert not tool.active and canvas.vb.drag_tool is None


def test_ruler_on_anisotropic_pixels(qtbot):
    canvas = SliceCanvas()
    qtbot.addWidget(canvas)
    canvas.set_volume(np.zeros((2, 50, 50), np.float32), (0.5, 1.0))
    tool = RulerTool(canvas)
    r = tool.add((0.0, 0.0), (10.0, 10.0))  # 10 columns (10 mm) and 10 rows (5 mm)
    assert r.length_mm() == pytest.approx(np.hypot(10.0, 5.0))
    canvas.clear()
    assert tool.rulers == []


# ---- auto-zoom ----------------------------------------------------------------------------
def test_auto_zoom_to_the_spine_and_z_toggles(qtbot, window, lumbar_study):
    canvas = window.canvas
    result = open_and_wait(qtbot, window, lumbar_study.path)
    rows, cols = canvas.pixels.shape[1:]
    (x0, x1), (y0, y1) = canvas.vb.viewRange()
    outline = np.concatenate([np.asarray(v.outline_rc, float).reshape(-1, 2)
                              for v in result.vertebrae])
    # every body is in view, and the view is smaller than the whole slice
    assert y0 <= outline[:, 0].min() and y1 >= outline[:, 0].max()
    assert x0 <= outline[:, 1].min() and x1 >= outline[:, 1].max()
    span_zoomed = (x1 - x0) * (y1 - y0)
    trigger(window, "Z")
    (x0, x1), (y0, y1) = canvas.vb.viewRange()
    assert x0 <= 0 and x1 >= cols - 1 and y0 <= 0 and y1 >= rows - 1  # the whole slice
    assert (x1 - x0) * (y1 - y0) > span_zoomed
    trigger(window, "Z")
    (x0, x1), (y0, y1) = canvas.vb.viewRange()
    assert (x1 - x0) * (y1 - y0) == pytest.approx(span_zoomed, rel=0.02)


def test_auto_zoom_keeps_the_readers_zoom_after_a_correction(qtbot, window, lumbar_study):
    open_and_wait(qtbot, window, lumbar_study.path)
    window.canvas.vb.setRange(xRange=(10, 60), yRange=(10, 60), padding=0)
    rng = window.canvas.vb.viewRange()
    window.override_call("L3", True, "")
    qtbot.wait(50)
    np.testing.assert_allclose(window.canvas.vb.viewRange(), rng)


# ---- measurement-slice marks --------------------------------------------------------------
def test_measurement_slice_marks_on_the_slider(qtbot, window, lumbar_study):
    marks = window.reading_tools.slice_marks
    assert marks.marks == {}
    result = open_and_wait(qtbot, window, lumbar_study.path)
    qtbot.waitUntil(lambda: bool(marks.marks), timeout=5000)
    expected: dict[int, list[str]] = {}
    for v in result.vertebrae:
        k = result.slice_index if v.measurement_slice is None else v.measurement_slice
        expected.setdefault(k, []).append(v.level)
    assert marks.marks == expected
    k0 = min(expected)
    assert f"slice {k0 + 1}: {', '.join(expected[k0])}" in marks.toolTip()
    # clicking a mark brings its slice back
    window.canvas.set_slice(0 if k0 else window.canvas.pixels.shape[0] - 1)
    x = marks.x_of(k0)
    qtbot.mouseClick(marks, QtCore.Qt.MouseButton.LeftButton,
                     pos=QtCore.QPoint(round(x), marks.height() // 2))
    assert window.canvas.index == k0
    # a marked slice per vertebra when the analysis measured them on different slices
    from spineviewer.gui.slice_marks import measurement_slices

    for i, v in enumerate(result.vertebrae):
        object.__setattr__(v, "measurement_slice", i % 2)
    assert measurement_slices(result) == {
        0: [v.level for i, v in enumerate(result.vertebrae) if i % 2 == 0],
        1: [v.level for i, v in enumerate(result.vertebrae) if i % 2 == 1]}
    before = {v.level for v in result.vertebrae}
    window.shift_levels(+1)  # renamed levels: the marks follow at once
    after = {lv for levels in marks.marks.values() for lv in levels}
    assert after == {v.level for v in window.canvas.result.vertebrae} and after != before
    window.canvas.clear()
    assert marks.marks == {}


# ---- linked view --------------------------------------------------------------------------
def test_linked_view_shows_the_t1_at_the_same_position(qtbot, window, lumbar_study):
    tools = window.reading_tools
    assert not tools.linked.isVisible()
    open_and_wait(qtbot, window, lumbar_study.path)
    with qtbot.waitSignal(tools.linked.loaded, timeout=10000):
        trigger(window, "V")
    linked = tools.linked
    assert linked.isVisible() and linked.volume.series.series_description == "t1_tse_sag"
    main_vol, t1 = window.volume, linked.volume
    normal = np.cross(np.asarray(t1.image_orientation[:3], float),
                      np.asarray(t1.image_orientation[3:], float))
    for k in range(main_vol.n_slices):
        window.canvas.set_slice(k)
        expected = int(np.argmin(np.abs((t1.image_positions - main_vol.image_positions[k])
                                        @ normal)))
        assert linked.canvas.index == expected
    assert {k: lab.text() for k, lab in tools.linked_markers.letters.items()}["right"] == "P"
    # the levels of the T2 result are named on the T1, anterior of their bodies
    result = window.canvas.result
    named = [v.level for v in result.vertebrae if len(v.corners_rc) == 4]
    assert list(linked.level_labels) == named and named
    # both series share origin and orientation: T1 pixel = T2 pixel * (0.8 / 0.6)
    s = main_vol.pixel_spacing_mm[0] / t1.pixel_spacing_mm[0]
    v = result.vertebra("L3")
    ant_col = (v.corners_rc["AS"][1] + v.corners_rc["AI"][1]) / 2 * s
    assert linked.level_labels["L3"].pos().x() < ant_col
    # a level shift renames them at once
    window.shift_levels(+1)
    assert list(linked.level_labels) == [v.level for v in window.canvas.result.vertebrae
                                         if len(v.corners_rc) == 4]
    assert list(linked.level_labels) != named
    window.undo()
    # the cross-reference cursor marks the same patient point
    assert linked.show_cursor(100, 40) == (pytest.approx(100 * s), pytest.approx(40 * s))
    # the linked view shows the same patient region: mm per screen pixel agree
    sx_main, _ = window.canvas.vb.viewPixelSize()
    sx_link, _ = linked.canvas.vb.viewPixelSize()
    assert sx_link * t1.pixel_spacing_mm[1] == pytest.approx(
        sx_main * main_vol.pixel_spacing_mm[1], rel=0.35)
    trigger(window, "V")
    assert not linked.isVisible()


def test_linked_view_says_when_there_is_nothing_to_link(qtbot, tmp_path, masks_analyze):
    from tests import dicom_factory as df

    folder = tmp_path / "single"  # (tmp_path also holds the lumbar study of masks_analyze)
    df.write_study(folder, [df.SeriesSpec(description="t2_tse_sag", n_slices=3)])
    w = MainWindow(analyze=masks_analyze, analyse_on_open=False)
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.volumeShown, timeout=10000):
        w.open_folder(folder)
    w.reading_tools.set_linked_visible(True)
    assert w.reading_tools.linked.volume is None
    assert "no other sagittal series" in w.reading_tools.linked.note.text()
    w.shutdown()


def test_series_kind_prefers_stir_then_t1():
    from types import SimpleNamespace

    from spineviewer.gui.linked_view import linked_candidates, series_kind

    def s(uid, desc, te, tr, ti=None, plane="sagittal", number=1):
        return SimpleNamespace(series_uid=uid, study_uid="S", series_description=desc,
                               protocol_name="", echo_time_ms=te, repetition_time_ms=tr,
                               inversion_time_ms=ti, plane=plane, n_slices=5,
                               series_number=number)

    t2, t1 = s("a", "t2_tse_sag", 100, 3500), s("b", "t1_tse_sag", 10, 600, number=2)
    stir, ax = s("c", "t2_tirm_sag", 60, 5000, ti=160, number=5), s("d", "ax", 100, 4000,
                                                                     plane="axial")
    assert [series_kind(x) for x in (t2, t1, stir)] == ["", "T1", "STIR"]
    index = SimpleNamespace(series=[t2, t1, stir, ax])
    assert [x.series_uid for x in linked_candidates(index, t2)] == ["c", "b"]


# ---- panels, layout and shortcuts ---------------------------------------------------------
def test_side_panels_collapse_with_f9_f10_f11(qtbot, window):
    docks = window.reading_tools.panels.docks
    assert set(docks) == {"Study", "Results"}
    assert all(d.isVisible() for d in docks.values())
    assert all(d.features() & QtWidgets.QDockWidget.DockWidgetFeature.DockWidgetClosable
               for d in docks.values())
    trigger(window, "F9")
    assert not docks["Study"].isVisible() and docks["Results"].isVisible()
    trigger(window, "F9")
    trigger(window, "F10")
    assert docks["Study"].isVisible() and not docks["Results"].isVisible()
    trigger(window, "F10")
    width = window.canvas.width()
    trigger(window, "F11")
    assert not any(d.isVisible() for d in docks.values())
    qtbot.waitUntil(lambda: window.canvas.width() > width + 300, timeout=2000)
    trigger(window, "F11")
    assert all(d.isVisible() for d in docks.values())


@pytest.mark.parametrize("size", [(1024, 700), (3840, 2160)])
def test_canvas_keeps_room_from_1024x700_to_4k(qtbot, window, lumbar_study, size):
    open_and_wait(qtbot, window, lumbar_study.path)
    window.resize(*size)
    qtbot.waitUntil(lambda: window.width() == size[0], timeout=2000)
    qtbot.waitUntil(lambda: window.canvas.width() >= 0.4 * size[0], timeout=3000)
    assert window.minimumSizeHint().width() <= 1024
    assert all(d.isVisible() for d in window.reading_tools.panels.docks.values())
    assert window.canvas.legend.geometry().right() <= window.canvas.view.width()
    # the results panel scrolls instead of squeezing the image
    scroll = window.findChild(QtWidgets.QScrollArea, "results scroll")
    assert scroll is not None and scroll.widget().isAncestorOf(window.results)


def test_a_status_message_is_not_cut_by_the_disclaimer(qtbot, window):
    window.resize(1600, 1000)
    qtbot.waitUntil(lambda: window.width() == 1600, timeout=2000)
    label = window.disclaimer
    qtbot.waitUntil(lambda: "qualified reader" in label.text(), timeout=2000)
    full = label.text()
    message = ("Call changed: L4 (was L5): now crush fracture, Genant grade 1; was no fracture;"
               " L3: now wedge fracture, Genant grade 2")
    window.statusBar().showMessage(message)
    assert "medical device" in label.text() and label.text() != full  # the short form
    window.statusBar().clearMessage()
    assert label.text() == full


def test_a_call_change_is_readable_on_a_1024_px_window(qtbot, window):
    # at 1024 px the model and timing labels cut "Call changed: ..." short: they step aside
    # while it shows and come back when it clears
    window.resize(1024, 700)
    qtbot.waitUntil(lambda: window.width() == 1024, timeout=2000)
    window.model_label.setText("Model: spineviewer-unet-v4 on CPUExecutionProvider")
    window.timing_label.setText("1.9 s")
    message = ("Call changed: L1: now wedge fracture, Genant grade 2; was wedge fracture, "
               "Genant grade 3, acute (reader)")
    window.statusBar().showMessage(message)
    qtbot.wait(50)
    assert not window.model_label.isVisible() and not window.timing_label.isVisible()
    bar = window.statusBar()
    room = bar.width() - sum(w.width() for w in bar.findChildren(QtWidgets.QWidget)
                             if w.isVisible() and w.parent() is bar)
    assert bar.fontMetrics().horizontalAdvance(message) < room
    window.statusBar().clearMessage()
    qtbot.wait(50)
    assert window.model_label.isVisible() and window.timing_label.isVisible()


@pytest.fixture(scope="module")
def phantom_study(tmp_path_factory):
    """The demo phantom (448 x 314 pixels of 0.6 mm, L1 wedge), three slices, T2 only."""
    from spineviewer.cli import DEMO_SEED, demo_study_options
    from spineviewer.synth.study import write_study

    out = tmp_path_factory.mktemp("phantom")
    options = {**demo_study_options(), "stir": False}
    write_study(out, DEMO_SEED, n_slices=3, distractors=False, **options)
    return out


def test_zoom_to_spine_keeps_every_level_label_in_view_at_1024x700(qtbot, phantom_study):
    from spineviewer.core.pipeline import analyze_study

    labels = np.load(phantom_study / "truth_labels.npy")
    w = MainWindow(analyze=lambda p, **kw: analyze_study(p, masks_override=labels, **kw))
    qtbot.addWidget(w)
    w.resize(1024, 700)
    w.show()
    open_and_wait(qtbot, w, phantom_study / "dicom")
    w.results.select_level("L1")  # the selected label also lists AH / MH / PH: the widest
    w.reading_tools.autozoom.zoom_to_spine()
    qtbot.wait(50)
    view = w.canvas.vb.sceneBoundingRect()
    for level, ov in w.canvas.overlays.items():
        assert view.contains(ov.label.sceneBoundingRect()), level
    w.shutdown()


_SCALED = """
import json, sys
from PySide6 import QtWidgets
app = QtWidgets.QApplication([])
from spineviewer.gui.main_window import MainWindow
w = MainWindow()
w.resize(1024, 700)
w.show()
for _ in range(20):
    app.processEvents()
print(json.dumps({"dpr": w.devicePixelRatioF(), "width": w.width(),
                  "min": w.minimumSizeHint().width(), "canvas": w.canvas.width()}))
w.shutdown()
"""


def test_layout_at_2x_scaling():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QT_SCALE_FACTOR="2",
               PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _SCALED], check=False, env=env, capture_output=True,
                         text=True, timeout=120, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout.strip().splitlines()[-1])
    assert d["dpr"] == pytest.approx(2.0)
    assert d["width"] == 1024 and d["min"] <= 1024  # 2048 device pixels wide
    assert d["canvas"] >= 0.4 * 1024


def test_shortcut_list_lists_every_bound_key(qtbot, window):
    from PySide6 import QtGui

    from spineviewer.gui.shortcut_dialog import ShortcutDialog

    assert not window.findChildren(ShortcutDialog)
    trigger(window, "F1")
    dialogs = window.findChildren(ShortcutDialog)
    assert len(dialogs) == 1
    text = "\n".join(dialogs[0].texts())
    for act in window.findChildren(QtGui.QAction):
        for seq in act.shortcuts():
            assert seq.toString(QtGui.QKeySequence.SequenceFormat.NativeText) in text
    for needle in ("Ctrl+Z", "Undo", "Redo", "D: Distance ruler", "V: Linked view", "F9",
                   "F10", "F11", "Z: Zoom to spine", "Left drag"):
        assert needle in text
    dialogs[0].filter.setText("ruler")
    assert all("ruler" in t.lower() for t in dialogs[0].texts())
    dialogs[0].close()
    trigger(window, "Ctrl+/")
    assert window.findChildren(ShortcutDialog)


def test_slice_mark_text_never_spans_a_gap():
    # "T12-L5" over a mark of T12, L4 and L5 claimed L1-L3 were measured there too
    from spineviewer.gui.slice_marks import span_text

    order = ["T12", "L1", "L2", "L3", "L4", "L5"]
    assert span_text(["L1", "L2", "L3"], order) == "L1\u2013L3"
    assert span_text(["T12", "L4", "L5"], order) == "T12, L4, L5"
    assert span_text(["L4"], order) == "L4"


def test_slice_mark_texts_do_not_overlap(qtbot):
    # marks on neighbouring slices wrote their level texts over each other ("T12-T11-L3")
    from spineviewer.core.results import StudyResult, VertebraResult
    from spineviewer.gui.canvas import SliceCanvas
    from spineviewer.gui.slice_marks import SliceMarks, span_text

    c = SliceCanvas()
    qtbot.addWidget(c)
    c.resize(300, 400)
    c.show()
    qtbot.waitExposed(c)
    c.set_volume(np.zeros((9, 60, 40), np.float32), (1.0, 1.0), "1.2")
    marks = SliceMarks(c)
    verts = [VertebraResult(level=lv, measurement_slice=k)
             for lv, k in (("T12", 3), ("L1", 4), ("L2", 3), ("L3", 4), ("L4", 5))]
    c.set_result(StudyResult(study_uid="1", series_uid="1.2", sop_instance_uid="1.3",
                             slice_index=4, pixel_spacing_mm=(1.0, 1.0), vertebrae=verts))
    c.set_slice(4)
    assert sorted(marks.marks) == [3, 4, 5]
    fm = marks.fontMetrics()
    placed = marks.text_positions()
    spans = sorted((x, x + fm.horizontalAdvance(t)) for x, t in placed)
    assert all(b <= c2 for (_, b), (c2, _) in itertools.pairwise(spans))
    assert span_text(["L1", "L3"], [v.level for v in verts]) in [t for _, t in placed]
