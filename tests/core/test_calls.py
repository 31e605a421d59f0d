"""core.calls wording, reader overrides with type/grade/age, call-change announcements, and
the unsuitable-series check of core.dicom.select (no Qt)."""

from __future__ import annotations

import pytest

from spineviewer.core import calls, review
from spineviewer.core.dicom.select import UNSUITABLE_FLAG, mark_unsuitable_series
from spineviewer.core.results import VertebraResult, read_csv_rows
from tests.core.test_review import make_result, stub_remeasure


def _v(**kw) -> VertebraResult:
    return VertebraResult(level="L3", AH_mm=20.0, **kw)


@pytest.mark.parametrize("fracture,deformity,grade,text", [
    (False, "none", 0, "no fracture"),
    (True, "wedge", 2, "wedge fracture, Genant grade 2"),
    (True, "crush", 0, "mild crush deformity (height loss below 20%)"),
    (True, "none", 0, "mild deformity (height loss below 20%)"),
])
def test_algorithm_wording_never_says_fracture_grade_0(fracture, deformity, grade, text):
    v = _v(fracture=fracture, deformity=deformity, genant_grade=grade)
    assert calls.algorithm_call(v) == text
    assert "grade 0" not in calls.final_call(v) and "G0" not in calls.algorithm_short(v)


def test_undoing_an_override_says_the_reader_call_is_gone(tmp_path):
    # a reader's call equal to the algorithm's but for its age: undoing it changed the call in
    # force, and the announcement read "now wedge ...; was wedge ..., acute" with no reader
    s = review.ReviewSession(make_result(tmp_path), remeasure=stub_remeasure, autosave=False)
    v = s.result.vertebra("L2")
    algorithm = calls.algorithm_call(v)
    s.override_call("L2", True, deformity="wedge", grade=2, age="acute")
    s.undo()
    texts = [calls.change_text(c) for c in s.last_call_changes]
    assert texts == [f"L2: now {algorithm}; was wedge fracture, Genant grade 2, acute (reader)"]


def test_reader_call_records_type_grade_and_age(tmp_path):
    s = review.ReviewSession(make_result(tmp_path), remeasure=stub_remeasure, autosave=False)
    entry = s.override_call("L2", True, "oedema on STIR", deformity="wedge", grade=2,
                            age="acute")
    v = s.result.vertebra("L2")
    assert v.override == {"fracture": True, "comment": "oedema on STIR", "deformity": "wedge",
                          "grade": 2, "age": "acute"}
    assert calls.reader_call(v) == "wedge fracture, Genant grade 2, acute"
    assert calls.final_grade(v) == 2 and calls.final_deformity(v) == "wedge"
    assert entry["reader_call"] == "wedge fracture, Genant grade 2, acute"
    assert entry["call_changes"] == [("L2: now wedge fracture, Genant grade 2, acute "
                                      "(reader); was no fracture")]
    # an override to fracture without details never reads "(none, grade 0)"
    s.override_call("L3", True)
    assert calls.reader_call(s.result.vertebra("L3")) == "fracture (type and grade not recorded)"
    assert calls.final_grade(s.result.vertebra("L3")) is None
    with pytest.raises(ValueError, match="1, 2 or 3"):
        s.override_call("L4", True, grade=0)
    assert s.result.vertebra("L4").override is None  # a refused edit leaves nothing behind
    # the CSV carries the reader's columns
    rows = {r["level"]: r for r in read_csv_rows(_write(tmp_path, s.result.to_csv()))}
    assert rows["L2"]["reader_override"] == 1 and rows["L2"]["reader_type"] == "wedge"
    assert rows["L2"]["reader_grade"] == 2 and rows["L2"]["reader_age"] == "acute"
    assert rows["L2"]["reader_comment"] == "oedema on STIR"
    assert rows["L2"]["algorithm_fracture"] == 0 and rows["L2"]["fracture"] == 1
    assert rows["L1"]["reader_override"] == "" and rows["L1"]["study_flags"] == []


def _write(tmp_path, text):
    p = tmp_path / "r.csv"
    p.write_text(text)
    return p


def test_relabel_and_undo_announce_the_calls_they_change(tmp_path):
    def level_aware(result):  # a stand-in where the reference depends on the level name
        stub_remeasure(result)
        for v in result.vertebrae:
            if v.level == "L4":
                v.fracture, v.deformity, v.genant_grade = True, "crush", 1

    s = review.ReviewSession(make_result(tmp_path), remeasure=level_aware, autosave=False)
    level_aware(s.result)
    assert calls.final_call(s.result.vertebra("L4")).startswith("crush")
    entry = s.shift_levels(-1)  # L5 -> L4 and so on: another body is now "L4"
    texts = entry["call_changes"]
    assert "L4 (was L5): now crush fracture, Genant grade 1; was no fracture" in texts
    assert "L3 (was L4): now no fracture; was crush fracture, Genant grade 1" in texts
    assert s.undo() and len(s.last_call_changes) == 2
    assert calls.changes(calls.snapshot(s.result), calls.snapshot(s.result)) == []


def test_marked_result_warns_in_json_csv_and_report(tmp_path):
    from spineviewer.io import report_text

    r = make_result(tmp_path)
    mark_unsuitable_series(r, "axial plane, not sagittal")
    mark_unsuitable_series(r, "axial plane, not sagittal")  # idempotent
    assert r.flags == [UNSUITABLE_FLAG] and len(r.warnings) == 1
    assert '"unsuitable": "axial plane, not sagittal"' in r.to_json()
    assert all(row["study_flags"] == [UNSUITABLE_FLAG]
               for row in read_csv_rows(_write(tmp_path, r.to_csv())))
    lines = report_text.summary_lines(r)
    assert lines[1].startswith("WARNING: the analysed series is unsuitable (axial plane")



def test_full_analysis_announces_what_changed_against_the_preliminary_result(tmp_path):
    import copy

    early = make_result(tmp_path)
    same = copy.deepcopy(early)
    assert calls.superseded_calls(early, same) == []
    final = copy.deepcopy(early)
    v = final.vertebra("L3")
    v.fracture, v.deformity, v.genant_grade = True, "wedge", 1
    final.vertebra("L4").deformity = calls.NOT_ASSESSABLE
    assert calls.superseded_calls(early, final) == [
        "L3: now wedge fracture, Genant grade 1; was no fracture",
        f"L4: now {calls.NOT_ASSESSABLE}; was no fracture"]
    # renamed bodies are matched by position; a body found by one result only is named
    renamed = copy.deepcopy(early)
    for u, name in zip(renamed.vertebrae, ["T12", "L1", "L2", "L3", "L4"]):
        u.level = name
    del renamed.vertebrae[0]
    assert calls.superseded_calls(early, renamed) == [
        "L1 (was L2): no fracture", "L2 (was L3): no fracture", "L3 (was L4): no fracture",
        "L4 (was L5): no fracture", "L1 of the preliminary result: not in the full analysis"]
    assert calls.superseded_calls(renamed, early)[0] == (
        "L1: found only by the full analysis (no fracture)")
