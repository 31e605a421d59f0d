"""Corrections, audit trail, undo/redo and autosave of core.review (no Qt)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from spineviewer.core import review
from spineviewer.core.results import StudyResult, VertebraResult

SPACING_MM = (0.5, 0.5)


def box_outline(top: float, bottom: float, left: float, right: float, dip: float = 0.0,
                n: int = 20) -> list[tuple[float, float]]:
    """Clockwise rectangle border; ``dip`` pushes the superior endplate's middle down."""
    cols = np.linspace(left, right, n)
    sup = [(top + dip * np.sin(np.pi * (c - left) / (right - left)), c) for c in cols]
    rows = np.linspace(top, bottom, n)[1:-1]
    post = [(r, right) for r in rows]
    inf = [(bottom, c) for c in cols[::-1]]
    ant = [(r, left) for r in rows[::-1]]
    return [(float(r), float(c)) for r, c in sup + post + inf + ant]


def make_result(tmp_path, n: int = 5) -> StudyResult:
    verts = []
    for i, level in enumerate(["L1", "L2", "L3", "L4", "L5"][:n]):
        top, bottom, left, right = 20 + 60 * i, 70 + 60 * i, 30.0, 100.0
        corners = {"AS": (top, left), "AI": (bottom, left), "PS": (top, right),
                   "PI": (bottom, right)}
        verts.append(VertebraResult(level=level, corners_rc=corners,
                                    outline_rc=box_outline(top, bottom, left, right)))
    res = StudyResult(study_uid="1.2.3", series_uid="1.2.3.4", sop_instance_uid="1.2.3.4.5",
                      slice_index=3, pixel_spacing_mm=SPACING_MM, vertebrae=verts,
                      source_path=str(tmp_path))
    stub_remeasure(res)
    return res


def stub_remeasure(result: StudyResult) -> None:
    """AH/PH from the corners; a wedge fracture when AH/PH < 0.8 (a stand-in for pipeline)."""
    sr, sc = result.pixel_spacing_mm
    for v in result.vertebrae:
        c = {k: np.asarray(p) for k, p in v.corners_rc.items()}
        v.AH_mm = float(np.hypot(*((c["AS"] - c["AI"]) * (sr, sc))))
        v.PH_mm = float(np.hypot(*((c["PS"] - c["PI"]) * (sr, sc))))
        v.wedge_ratio = v.AH_mm / v.PH_mm
        v.fracture = v.wedge_ratio < 0.8
        v.deformity = "wedge" if v.fracture else "none"


@pytest.fixture
def session(tmp_path):
    return review.ReviewSession(make_result(tmp_path), remeasure=stub_remeasure)


def test_move_corner_remeasures_and_keeps_ai_values(session):
    res = session.result
    assert res.vertebra("L1").AH_mm == pytest.approx(25.0)
    entry = session.move_corner("L1", "AS", (40.0, 30.0))  # 20 px lower -> AH 15 mm
    v = res.vertebra("L1")
    assert v.AH_mm == pytest.approx(15.0)
    assert v.fracture and v.deformity == "wedge"
    assert v.ai["AH_mm"] == pytest.approx(25.0) and v.ai["fracture"] is False
    assert v.ai["corners_rc"]["AS"] == [20.0, 30.0]
    assert entry["field"] == "corner_AS" and entry["ai_value"] == [20.0, 30.0]
    assert entry["new_value"] == [40.0, 30.0] and res.edits == [entry]
    assert set(entry) == {"time", "level", "field", "ai_value", "new_value", "comment",
                          "call_changes"}  # the corner move turned L1 into a fracture
    assert entry["call_changes"][0].startswith("L1: now mild wedge deformity")
    assert "grade 0" not in entry["call_changes"][0]
    assert entry["call_changes"][0].endswith("; was no fracture")
    assert session.last_call_changes[0]["before"] == "no fracture"


def test_second_edit_keeps_first_ai_value(session):
    session.move_corner("L2", "PI", (140.0, 100.0))
    session.move_corner("L2", "PI", (135.0, 100.0))
    v = session.result.vertebra("L2")
    assert v.ai["corners_rc"]["PI"] == [130.0, 100.0]
    assert [e["ai_value"] for e in session.result.edits] == [[130.0, 100.0]] * 2
    assert v.PH_mm == pytest.approx((135 - 80) * 0.5)


def test_override_call_with_comment_and_clear(session):
    session.override_call("L3", True, "endplate fracture seen on STIR")
    v = session.result.vertebra("L3")
    assert v.final_fracture is True and v.fracture is False
    assert session.result.edits[-1]["comment"] == "endplate fracture seen on STIR"
    assert session.result.edits[-1]["ai_value"] is False
    session.override_call("L3", None)
    assert v.override is None and v.final_fracture is False
    assert session.result.edits[-1]["new_value"] is None


def test_undo_redo_restore_values_and_trail(session):
    res = session.result
    session.move_corner("L1", "AS", (40.0, 30.0))
    session.override_call("L2", True)
    assert session.undo() and res.vertebra("L2").override is None
    assert session.undo()
    assert res.vertebra("L1").AH_mm == pytest.approx(25.0) and res.edits == []
    assert res.vertebra("L1").ai is None
    assert not session.undo() and session.can_redo
    assert session.redo() and res.vertebra("L1").AH_mm == pytest.approx(15.0)
    assert len(res.edits) == 1
    session.override_call("L4", False)  # a new edit drops the redo stack
    assert not session.can_redo and not session.redo()


def test_shift_levels_up_and_down(session):
    res = session.result
    session.shift_levels(-1, "sacralised L5")
    assert [v.level for v in res.vertebrae] == ["T12", "L1", "L2", "L3", "L4"]
    e = res.edits[-1]
    assert e["ai_value"] == ["L1", "L2", "L3", "L4", "L5"] and e["new_value"][0] == "T12"
    assert res.vertebrae[0].ai["level"] == "L1"
    session.undo()
    session.shift_levels(+1)
    assert [v.level for v in res.vertebrae] == ["L2", "L3", "L4", "L5", "L6"]
    with pytest.raises(ValueError):
        session.shift_levels(+2)  # L6 + 2 leaves the sequence
    assert [v.level for v in res.vertebrae] == ["L2", "L3", "L4", "L5", "L6"]


def test_bad_edits_raise_and_change_nothing(session):
    before = session.result.to_dict()
    with pytest.raises(KeyError):
        session.move_corner("C2", "AS", (1.0, 1.0))
    with pytest.raises(ValueError):
        session.move_corner("L1", "XX", (1.0, 1.0))
    assert session.result.to_dict() == before and not session.can_undo


def test_failed_remeasure_rolls_back(tmp_path):
    def broken(result):
        raise RuntimeError("boom")

    s = review.ReviewSession(make_result(tmp_path), remeasure=broken)
    with pytest.raises(RuntimeError):
        s.move_corner("L1", "AS", (40.0, 30.0))
    v = s.result.vertebra("L1")
    assert v.corners_rc["AS"] == (20.0, 30.0) and v.ai is None and s.result.edits == []


def test_autosave_after_each_edit_and_restore(session, tmp_path):
    session.move_corner("L1", "AS", (40.0, 30.0))
    path = tmp_path / ".spineviewer" / "1.2.3.4.autosave.json"
    assert session.last_autosave_path == path and path.is_file()
    session.override_call("L1", False, "no fracture, Schmorl node")
    back = review.restore(tmp_path, "1.2.3.4")
    assert back is not None and len(back.edits) == 2
    assert back.vertebra("L1").AH_mm == pytest.approx(15.0)
    assert back.vertebra("L1").override == {"fracture": False,
                                            "comment": "no fracture, Schmorl node"}
    assert review.restore(tmp_path, "9.9.9") is None
    assert review.discard_autosave(tmp_path, "1.2.3.4") == 1
    assert review.restore(tmp_path, "1.2.3.4") is None


def test_autosave_falls_back_when_study_folder_is_read_only(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    study = tmp_path / "study"
    study.mkdir()
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    res = make_result(study)
    study.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        s = review.ReviewSession(res, remeasure=stub_remeasure)
        s.move_corner("L1", "AS", (30.0, 30.0))
        assert str(s.last_autosave_path).startswith(str(tmp_path / "data" / "spineviewer"))
        assert review.restore(study, res.series_uid).vertebra("L1").AH_mm == pytest.approx(20.0)
    finally:
        study.chmod(stat.S_IRWXU)


def test_fallback_dir_used_when_primary_unwritable(tmp_path, monkeypatch):
    # Works as root too: make the primary location a file so the folder cannot be created.
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    (tmp_path / ".spineviewer").write_text("not a folder")
    res = make_result(tmp_path)
    path = review.autosave(res)
    assert path.parent == review.fallback_autosave_dir(tmp_path.resolve())
    assert review.restore(tmp_path, res.series_uid) is not None


def test_corrupt_autosave_is_ignored(tmp_path):
    p = tmp_path / ".spineviewer" / "1.2.3.4.autosave.json"
    p.parent.mkdir()
    p.write_text("{not json")
    assert review.restore(tmp_path, "1.2.3.4") is None


def test_endplate_depth_points_find_the_dip():
    corners = {"AS": (0.0, 0.0), "PS": (0.0, 40.0), "AI": (30.0, 0.0), "PI": (30.0, 40.0)}
    pts = review.endplate_depth_points(corners, box_outline(0, 30, 0, 40, dip=5.0, n=41))
    deep, foot = pts["SC"]
    assert deep == pytest.approx((5.0, 20.0), abs=0.05)
    assert foot == pytest.approx((0.0, 20.0), abs=0.05)
    assert "IC" not in pts  # the flat inferior endplate has no depression


def test_real_remeasure_after_corner_move(tmp_path):
    pipeline = pytest.importorskip("spineviewer.core.pipeline", reason="pipeline not built yet")
    if not hasattr(pipeline, "remeasure"):
        pytest.skip("pipeline.remeasure not available yet")
    res = make_result(tmp_path)
    pipeline.remeasure(res)
    ah0 = res.vertebra("L3").AH_mm
    s = review.ReviewSession(res)
    s.move_corner("L3", "AS", (res.vertebra("L3").corners_rc["AS"][0] + 10, 30.0))
    assert res.vertebra("L3").AH_mm == pytest.approx(ah0 - 5.0, abs=0.05)


def test_preview_move_corner_leaves_result_untouched(session):
    res = session.result
    before = res.to_json()
    preview = review.preview_move_corner(res, "L2", "PS", (90.0, 100.0), stub_remeasure)
    assert preview.vertebra("L2").PH_mm == pytest.approx((130 - 90) * 0.5)
    assert res.to_json() == before and res.edits == [] and preview.edits == []
