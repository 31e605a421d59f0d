"""CSV contract and de-identification."""

from __future__ import annotations

import csv
import io
import re

from spineviewer.core.results import CSV_COLUMNS, read_csv_rows
from spineviewer.io.csv_export import deidentify_result, result_csv, write_csv
from spineviewer.io.deidentify import Pseudonymizer

KEY = Pseudonymizer(b"project key of 24 bytes!", "test")

from .conftest import PATIENT


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_has_contract_columns_and_final_calls(study_result, tmp_path):
    path = write_csv(study_result, tmp_path / "r.csv")
    rows = read_csv_rows(path)
    assert tuple(_rows(path.read_text())[0].keys()) == CSV_COLUMNS
    assert [r["level"] for r in rows] == ["L1", "L2", "L3", "L4", "L5"]
    l1 = rows[0]
    assert l1["fracture"] == 1 and l1["deformity"] == "wedge" and l1["genant_grade"] == 2
    assert abs(l1["AH_mm"] - 16.5) < 1e-3 and abs(l1["PH_mm"] - 25.5) < 1e-3
    assert rows[3]["flags"] == ["schmorl_node", "needs_review"]
    assert rows[0]["study_uid"] == study_result.study_uid


def test_pseudonyms_are_keyed_stable_valid_uids():
    uid = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"
    h = KEY.uid(uid)
    assert h == Pseudonymizer(b"project key of 24 bytes!", "again").uid(uid)  # same key: same
    assert re.fullmatch(r"2\.25\.[1-9]\d*", h) and len(h) <= 64
    assert KEY.uid(uid + "1") != h
    # the unsalted SHA-256 pseudonym anyone could recompute from the UID is gone
    assert h != "2.25.278671689243424011931637835946547009291"
    assert Pseudonymizer(b"another project key 1234", "b").uid(uid) != h
    assert Pseudonymizer.random_key().uid(uid) != Pseudonymizer.random_key().uid(uid)


def test_deidentified_csv_has_no_names_ids_dates(study_result):
    text = result_csv(study_result, deidentify=True, pseudonymizer=KEY)
    for secret in (PATIENT["name"], "Muster", PATIENT["id"], PATIENT["birth_date"],
                   PATIENT["study_date"], study_result.study_uid, study_result.series_uid):
        assert secret not in text
    rows = _rows(text)
    assert {r["study_uid"] for r in rows} == {KEY.uid(study_result.study_uid)}
    assert {r["series_uid"] for r in rows} == {KEY.uid(study_result.series_uid)}
    # measurements unchanged
    plain = _rows(result_csv(study_result))
    assert [r["AH_mm"] for r in rows] == [r["AH_mm"] for r in plain]
    assert result_csv(study_result, deidentify=True, pseudonymizer=KEY) == text  # stable


def test_deidentified_result_drops_phi_everywhere(study_result):
    d = deidentify_result(study_result, KEY)
    js = d.to_json()
    for secret in ("Muster", PATIENT["id"], "19480312", "20240102", "reader1",
                   "healed endplate", study_result.sop_instance_uid, "IM0008"):
        assert secret not in js
    assert d.vertebra("L5").override == {"fracture": False}
    assert d.edits[0] == {"level": "L3", "field": "corner_AS", "ai_value": [54.0, 40.0],
                          "new_value": [53.2, 40.0]}  # no time, user or comment
    assert study_result.edits[0]["time"] not in js
    assert study_result.patient["id"] == PATIENT["id"]  # the original is untouched


def test_deidentify_csv_text_hashes_uids_and_drops_phi_columns(study_result):
    from spineviewer.io.csv_export import deidentify_csv_text

    plain = study_result.to_csv()
    assert deidentify_csv_text(plain, KEY) == result_csv(study_result, deidentify=True,
                                                          pseudonymizer=KEY)
    extra = ("study_uid,level,PatientName,patient_id,StudyDate,AH_mm,comment\n"
             "1.2.3,L1,Doe^John,X17,20240101,20.5,seen by Dr Who\n")
    rows = _rows(deidentify_csv_text(extra, KEY))
    assert rows == [{"study_uid": KEY.uid("1.2.3"), "level": "L1", "AH_mm": "20.5"}]
