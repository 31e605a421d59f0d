"""Genant rules: each deformity, grade boundaries, reasons, Schmorl node, crush at the edge."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from spineviewer.core import genant
from spineviewer.core.errors import SpineViewerError
from spineviewer.core.genant import (
    GRADE_BOUNDARIES,
    THRESHOLD_SD,
    RatioStats,
    ReferenceTable,
    classify,
    crush_ratios,
    grade_from_loss,
    load_reference_table,
)

LEVELS = ["T12", "L1", "L2", "L3", "L4", "L5"]


@dataclass(frozen=True)
class M:
    """Stand-in with the fields of morphometry.Measurements that genant reads."""

    AH_mm: float | None
    PH_mm: float | None
    MH_mm: float | None
    SC_mm: float = 0.5
    IC_mm: float = 0.8
    sc_notch_width_mm: float = 0.0
    ic_notch_width_mm: float = 0.0
    sc_chord_mm: float = 0.0
    ic_chord_mm: float = 0.0


def _table() -> ReferenceTable:
    per = {"wedge": RatioStats(0.93, 0.047, 100), "biconcavity": RatioStats(0.92, 0.04, 100),
           "crush": RatioStats(1.0, 0.05, 100), "crush_above": RatioStats(1.0, 0.06, 100),
           "crush_below": RatioStats(1.0, 0.06, 100)}
    return ReferenceTable(levels={lv: dict(per) for lv in LEVELS}, source="test")


def _healthy(n: int = 6) -> list[M]:
    return [M(AH_mm=26.0 * 0.93, PH_mm=26.0, MH_mm=26.0 * 0.92) for _ in range(n)]


def test_healthy_column_has_no_fracture_and_no_flags():
    calls = classify(LEVELS, _healthy(), _table())
    assert [c.fracture for c in calls] == [False] * 6
    assert all(c.flags == [] for c in calls)
    assert all(c.genant_grade == 0 and c.deformity == "none" for c in calls)
    assert calls[2].ratios["wedge"] == pytest.approx(0.93)
    assert calls[2].ratios["crush"] == pytest.approx(1.0)


def test_wedge_grade_2_with_value_and_threshold_in_reason():
    ms = _healthy()
    ms[1] = M(AH_mm=26.0 * 0.68, PH_mm=26.0, MH_mm=26.0 * 0.92)  # L1
    call = classify(LEVELS, ms, _table())[1]
    assert call.fracture and call.deformity == "wedge"
    loss = 1 - 0.68 / 0.93  # 26.9 %
    assert call.height_loss["wedge"] == pytest.approx(loss, abs=1e-6)
    assert call.genant_grade == 2
    line = next(r for r in call.reasons if r.startswith("wedge ratio"))
    assert "0.68" in line and "0.79" in line and "L1 mean 0.93" in line and "27%" in line


def test_biconcave_deformity():
    ms = _healthy()
    ms[3] = M(AH_mm=26.0 * 0.93, PH_mm=26.0, MH_mm=26.0 * 0.60, SC_mm=4.0, IC_mm=4.0,
              sc_notch_width_mm=25.0, ic_notch_width_mm=25.0)
    call = classify(LEVELS, ms, _table())[3]
    assert call.fracture and call.deformity == "biconcave"
    assert call.genant_grade == grade_from_loss(1 - 0.60 / 0.92) == 2
    assert "schmorl_node" not in call.flags


def test_crush_deformity_against_both_neighbours():
    ms = _healthy()
    ms[2] = M(AH_mm=15.0 * 0.93, PH_mm=15.0, MH_mm=15.0 * 0.92)  # whole body 42 % lower
    call = classify(LEVELS, ms, _table())[2]
    assert call.fracture and call.deformity == "crush"
    assert call.ratios["crush"] == pytest.approx(15.0 / 26.0)
    assert call.genant_grade == 3
    assert any("crush ratio" in r and "0.58" in r and "0.85" in r for r in call.reasons)


def test_crush_at_edge_uses_single_neighbour_and_none_without_neighbour():
    r = crush_ratios([20.0, 25.0, None, 30.0])
    assert r[0] == (pytest.approx(0.8), "crush_below")
    assert r[1] == (pytest.approx(25.0 / 20.0), "crush_above")  # below is missing
    assert r[2] == (None, "")
    assert r[3] == (None, "")  # only neighbour not measured
    ms = _healthy()
    ms[5] = M(AH_mm=18.0 * 0.93, PH_mm=18.0, MH_mm=18.0 * 0.92)  # L5 vs L4 only
    call = classify(LEVELS, ms, _table())[5]
    assert call.deformity == "crush" and call.ratios["crush"] == pytest.approx(18 / 26)
    # one-sided threshold: 1.0 - 3 x 0.06 = 0.82
    assert any("0.82" in r for r in call.reasons if r.startswith("crush"))
    lone = classify(["L3"], [_healthy(1)[0]], _table())[0]
    assert any("crush rule not assessable" in r for r in lone.reasons)
    assert not lone.fracture


def test_adjacent_crush_fractures_do_not_hide_each_other():
    # L4 and L5 both crushed: L5's only neighbour (L4) is itself low, so PH5/PH4 = 1.06 looks
    # normal; the rule must compare L5 with L3 instead (chained reference).
    ms = _healthy()
    ms[4] = M(AH_mm=17.0 * 0.93, PH_mm=17.0, MH_mm=17.0 * 0.92)  # L4 35 % lower
    ms[5] = M(AH_mm=18.0 * 0.93, PH_mm=18.0, MH_mm=18.0 * 0.92)  # L5 31 % lower
    calls = classify(LEVELS, ms, _table())
    assert calls[4].fracture and calls[4].deformity == "crush"
    l5 = calls[5]
    assert l5.fracture and l5.deformity == "crush"
    assert l5.ratios["crush"] == pytest.approx(18.0 / 26.0)
    # chained mean 1.0 x 1.0, relative SD sqrt(0.06^2 + 0.06^2) = 0.085 -> threshold 0.75
    line = next(r for r in l5.reasons if r.startswith("crush ratio PH/PH of the body two above"))
    assert "0.75" in line and "L4 is itself crushed" in line and "L3 is the reference" in line
    # a healthy neighbour of a crushed body is judged against its other neighbour only
    assert not calls[3].fracture
    assert any(r.startswith("crush ratio PH/PH of the body above") for r in calls[3].reasons)


def test_crushed_neighbour_between_two_bodies_leaves_one_sided_reference():
    ms = _healthy()
    ms[2] = M(AH_mm=15.0 * 0.93, PH_mm=15.0, MH_mm=15.0 * 0.92)  # L2 crushed
    ms[3] = M(AH_mm=20.0 * 0.93, PH_mm=20.0, MH_mm=20.0 * 0.92)  # L3 23 % lower
    calls = classify(LEVELS, ms, _table())
    assert calls[2].deformity == "crush"
    # against the mean of L2 (15) and L4 (26), L3's ratio would be 0.98: missed
    assert calls[3].fracture and calls[3].ratios["crush"] == pytest.approx(20.0 / 26.0)


def test_largest_height_loss_wins_when_several_rules_fire():
    ms = _healthy()
    # AH 0.55 PH and PH 0.75 of neighbours: wedge loss 41 %, crush loss 25 %
    ms[2] = M(AH_mm=19.5 * 0.55, PH_mm=19.5, MH_mm=19.5 * 0.9)
    call = classify(LEVELS, ms, _table())[2]
    assert set(call.height_loss) == {"wedge", "crush"}
    assert call.deformity == "wedge" and call.genant_grade == 3


@pytest.mark.parametrize("loss, grade", [(0.10, 0), (0.1999, 0), (0.20, 1), (0.2499, 1),
                                         (0.25, 2), (0.40, 2), (0.4001, 3), (0.7, 3)])
def test_grade_boundaries(loss, grade):
    assert grade_from_loss(loss) == grade


def test_constants_and_sources():
    assert THRESHOLD_SD == 3.0
    assert GRADE_BOUNDARIES == (0.20, 0.25, 0.40)
    assert "Genant" in genant.GRADE_SOURCE and "Eastell" in genant.THRESHOLD_SOURCE


def test_mild_deformity_is_fracture_grade_0():
    tab = ReferenceTable(levels={"L2": {"wedge": RatioStats(0.95, 0.04)}}, source="t")
    # threshold 0.83; 0.80 fires, loss 1 - 0.80/0.95 = 15.8 %
    call = classify(["L2"], [M(AH_mm=20.0, PH_mm=25.0, MH_mm=23.0)], tab)[0]
    assert call.fracture and call.genant_grade == 0
    assert "mild_deformity" in call.flags and "needs_review" in call.flags
    assert any("needs review: below the height loss of a grade 1" in r for r in call.reasons)
    # a grade 1 call (20-25 % loss) is no mild deformity and asks for nothing by itself
    grade1 = classify(["L2"], [M(AH_mm=18.4, PH_mm=25.0, MH_mm=23.0)], tab)[0]
    assert grade1.genant_grade == 1 and "needs_review" not in grade1.flags


def test_schmorl_node_flagged_not_called():
    ms = _healthy()
    ms[3] = M(AH_mm=26.0 * 0.93, PH_mm=26.0, MH_mm=26.0 * 0.75, SC_mm=5.0,
              sc_notch_width_mm=7.0)
    call = classify(LEVELS, ms, _table())[3]
    assert call.ratios["biconcavity"] < _table().levels["L3"]["biconcavity"].threshold
    assert not call.fracture and call.deformity == "none"
    assert "schmorl_node" in call.flags and "needs_review" in call.flags
    assert any("not called a fracture" in r for r in call.reasons)


def test_schmorl_like_notch_with_wedge_is_still_a_fracture():
    ms = _healthy()
    ms[3] = M(AH_mm=26.0 * 0.6, PH_mm=26.0, MH_mm=26.0 * 0.75, SC_mm=5.0,
              sc_notch_width_mm=7.0)
    call = classify(LEVELS, ms, _table())[3]
    assert call.fracture and "schmorl_node" not in call.flags


def test_needs_review_triggers():
    ms = _healthy()
    ms[0] = None
    ms[4] = M(AH_mm=26.0 * 0.80, PH_mm=26.0, MH_mm=26.0 * 0.92)  # 0.80 vs threshold 0.789
    calls = classify(LEVELS, ms, _table(), corner_overlaps=[0.9, 0.8, 0.9, 0.9, 0.9, 0.9],
                     label_flags=[[], [], ["label_uncertain"], [], [], []])
    assert "needs_review" in calls[0].flags  # missing measurements
    assert any("measurements missing" in r for r in calls[0].reasons)
    assert "needs_review" in calls[1].flags  # overlap 0.8
    assert "needs_review" in calls[2].flags  # label doubt
    assert "needs_review" in calls[4].flags and not calls[4].fracture  # borderline
    assert calls[3].flags == []
    assert calls[5].flags == []
    # just below the threshold (0.78 vs 0.789): a fracture, but borderline too
    ms[4] = M(AH_mm=26.0 * 0.78, PH_mm=26.0, MH_mm=26.0 * 0.92)
    call = classify(LEVELS, ms, _table())[4]
    assert call.fracture and "needs_review" in call.flags
    assert any("borderline" in r for r in call.reasons)


def test_missing_level_falls_back_to_nearest(tmp_path):
    tab = _table()
    call = classify(["T11", "T12"], _healthy(2), tab)[0]
    assert any("T12 reference used" in r for r in call.reasons)


def test_load_reference_table_roundtrip(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"source": "s", "provisional": False, "levels": {
        "L1": {"wedge": {"mean": 0.9, "sd": 0.05, "n": 12}}}}))
    t = load_reference_table(p)
    assert t.levels["L1"]["wedge"] == RatioStats(0.9, 0.05, 12)
    assert t.levels["L1"]["wedge"].threshold == pytest.approx(0.75)


def test_shipped_table_covers_t12_to_l5():
    t = load_reference_table()
    for lv in LEVELS:
        need = ["wedge", "biconcavity", "crush_above"]
        need += ["crush", "crush_below"] if lv != "L5" else []  # L5 has no body below
        for r in need:
            st = t.levels[lv][r]
            assert 0.6 < st.mean < 1.4 and 0.0 < st.sd < 0.2, (lv, r)
    assert t.source


def test_wide_biconcave_depression_is_not_a_schmorl_node():
    # half-depth width 14.5 mm on a 36 mm chord (40%): a biconcave fracture, not a node
    ms = _healthy()
    ms[3] = M(AH_mm=26.0 * 0.93, PH_mm=26.0, MH_mm=26.0 * 0.69, SC_mm=3.6, IC_mm=3.6,
              sc_notch_width_mm=14.5, ic_notch_width_mm=14.5, sc_chord_mm=36.0, ic_chord_mm=36.0)
    call = classify(LEVELS, ms, _table())[3]
    assert call.fracture and call.deformity == "biconcave" and "schmorl_node" not in call.flags
    # 8 mm wide on the same chord (22%): narrow enough
    ms[3] = M(AH_mm=26.0 * 0.93, PH_mm=26.0, MH_mm=26.0 * 0.69, SC_mm=3.6, IC_mm=0.8,
              sc_notch_width_mm=8.0, sc_chord_mm=36.0, ic_chord_mm=36.0)
    call = classify(LEVELS, ms, _table())[3]
    assert not call.fracture and "schmorl_node" in call.flags
    assert any("22% of the chord" in r for r in call.reasons)


def test_site_table_from_environment(tmp_path, monkeypatch):
    p = tmp_path / "site.json"
    p.write_text(json.dumps({"source": "site X", "levels": {
        "L1": {"wedge": {"mean": 0.8, "sd": 0.01, "n": 5}}}}))
    monkeypatch.setenv(genant.TABLE_ENV, str(p))
    assert load_reference_table().source == "site X"
    p.write_text("{}")
    with pytest.raises(SpineViewerError, match="no 'levels'"):
        load_reference_table()
    p.write_text("{not json")
    with pytest.raises(SpineViewerError, match="unreadable"):
        load_reference_table()
