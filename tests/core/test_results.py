"""Round trips of the result contract (JSON and CSV)."""

import json

import pytest

from spineviewer.core.results import (
    CSV_COLUMNS,
    SCHEMA,
    StudyResult,
    VertebraResult,
    load_json,
    read_csv_rows,
    save_json,
)


def _result() -> StudyResult:
    v1 = VertebraResult(level="L1", corners_rc={"AS": (10.0, 20.5), "AI": (40, 21), "PS": (11, 60),
                                                "PI": (41, 61)},
                        outline_rc=[(10, 20), (40, 21), (41, 61), (11, 60)], AH_mm=18.2,
                        PH_mm=26.0, MH_mm=24.1, SC_mm=0.8, IC_mm=1.2, VA_deg=7.5,
                        wedge_ratio=0.7, biconcavity_ratio=0.93, crush_ratio=0.98, fracture=True,
                        deformity="wedge", genant_grade=2, flags=["needs_review"],
                        reasons=["wedge ratio 0.70 < 0.79"])
    v2 = VertebraResult(level="L2", flags=["schmorl_node", "needs_review"])
    return StudyResult(study_uid="1.2.3", series_uid="1.2.3.4", sop_instance_uid="1.2.3.4.5",
                       slice_index=7, pixel_spacing_mm=(0.6, 0.65), vertebrae=[v1, v2],
                       model={"name": "m", "sha256": "ab"})


def test_json_round_trip_keeps_contract_keys(tmp_path):
    r = _result()
    d = json.loads(r.to_json())
    assert d["schema"] == SCHEMA
    for key in ("study_uid", "series_uid", "sop_instance_uid", "slice_index", "pixel_spacing_mm",
                "model", "series_choice", "vertebrae"):
        assert key in d
    v = d["vertebrae"][0]
    assert v["corners_rc"]["AS"] == [10.0, 20.5]
    assert v["fracture"] is True and v["genant_grade"] == 2
    save_json(r, tmp_path / "r.json")
    back = load_json(tmp_path / "r.json")
    assert back == r


def test_json_rejects_foreign_schema():
    with pytest.raises(ValueError, match="schema"):
        StudyResult.from_dict({"schema": "other/1"})


def test_csv_columns_and_override(tmp_path):
    r = _result()
    r.vertebrae[0].override = {"fracture": False, "comment": "old Schmorl"}
    text = r.to_csv()
    header = text.splitlines()[0].split(",")
    assert tuple(header) == CSV_COLUMNS
    p = tmp_path / "r.csv"
    p.write_text(text)
    rows = read_csv_rows(p)
    assert rows[0]["level"] == "L1" and rows[0]["fracture"] == 0  # overridden
    assert rows[0]["AH_mm"] == pytest.approx(18.2)
    assert rows[1]["AH_mm"] is None and rows[1]["flags"] == ["schmorl_node", "needs_review"]
