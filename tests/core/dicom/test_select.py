"""Tests of core.dicom.select: sagittal T2 choice, its explanation and the no-T2 error."""

from __future__ import annotations

import pytest

from spineviewer.core.dicom.index import scan_folder
from spineviewer.core.dicom.select import choose_series, series_unsuitability
from spineviewer.core.errors import NoSagittalT2Series, SeriesNotFound


def _index(tmp_path, factory, specs):
    factory.write_study(tmp_path, specs)
    return scan_folder(tmp_path)


def test_typical_study_chooses_sagittal_t2_and_explains(typical_study):
    root, specs, _ = typical_study
    choice = choose_series(scan_folder(root))
    assert choice.series.series_uid == specs[0].series_uid
    assert choice.reason.startswith("Sagittal T2 t2_tse_sag (TE 102 ms, TR 3500 ms, 7 slices")
    assert "only series that qualifies" in choice.reason
    by_desc = {c["description"]: c for c in choice.candidates}
    assert [c["qualifies"] for c in choice.candidates] == [True, False, False]
    assert by_desc["t1_tse_sag"]["why"] == "TE 10 ms < 80 ms (not T2-weighted)"
    assert by_desc["t2_tse_tra"]["why"] == "axial plane, not sagittal"
    assert by_desc["t2_tse_sag"]["te_ms"] == 102.0 and by_desc["t2_tse_sag"]["n_slices"] == 7
    d = choice.to_dict()
    assert d["series_uid"] == specs[0].series_uid and len(d["candidates"]) == 3


def test_closest_to_reference_protocol_wins(tmp_path, factory):
    coarse = factory.SeriesSpec(description="T2 SAG thick", thickness_mm=6.0,
                                pixel_spacing_mm=(1.1, 1.1), n_slices=11)
    paper = factory.SeriesSpec(description="T2 SAG", thickness_mm=4.0,
                               pixel_spacing_mm=(0.6, 0.6), n_slices=15)
    few = factory.SeriesSpec(description="T2 SAG few", n_slices=3)
    choice = choose_series(_index(tmp_path, factory, [coarse, paper, few]))
    assert choice.series.series_uid == paper.series_uid
    assert "closest to the reference protocol of 3 qualifying series" in choice.reason
    scores = {c["description"]: c["score"] for c in choice.candidates}
    assert scores["T2 SAG"] > scores["T2 SAG thick"] > scores["T2 SAG few"]
    assert scores["T2 SAG"] == pytest.approx(0.5)  # perfect match plus "timing known" bonus


@pytest.mark.parametrize("vendor,description,te_private", [
    ("GE", "SAG T2 FRFSE", False),
    ("PHILIPS", "T2W_TSE SAG", True),
    ("SIEMENS", "t2_tse_sag", False),
])
def test_vendor_styles_choose_the_t2(tmp_path, factory, vendor, description, te_private):
    t1 = factory.SeriesSpec(description="SAG T1", vendor=vendor, te_ms=12.0, tr_ms=500.0)
    t2 = factory.SeriesSpec(description=description, vendor=vendor, te_ms=95.0, tr_ms=4000.0,
                            te_private_only=te_private)
    choice = choose_series(_index(tmp_path, factory, [t1, t2]))
    assert choice.series.series_uid == t2.series_uid
    assert "TE 95 ms" in choice.reason


def test_missing_timing_falls_back_to_description(tmp_path, factory):
    t2 = factory.SeriesSpec(description="T2W_TSE_SAG", te_ms=None, tr_ms=None)
    t1 = factory.SeriesSpec(description="T1W_TSE_SAG", te_ms=None, tr_ms=None)
    loc = factory.SeriesSpec(description="localizer T2", te_ms=100.0, tr_ms=4000.0)
    choice = choose_series(_index(tmp_path, factory, [t1, t2, loc]))
    assert choice.series.series_uid == t2.series_uid
    assert "TE/TR missing; T2 by description 'T2W_TSE_SAG'" in choice.reason
    why = {c["description"]: c["why"] for c in choice.candidates}
    assert why["T1W_TSE_SAG"] == "TE/TR missing and description 'T1W_TSE_SAG' is not T2"
    assert why["localizer T2"] == "localizer"


def test_stir_only_when_nothing_else(tmp_path, factory):
    stir = factory.SeriesSpec(description="t2_tirm_sag", te_ms=85.0, tr_ms=4500.0)
    t2 = factory.SeriesSpec(description="t2_tse_sag", te_ms=90.0, tr_ms=3200.0, n_slices=5)
    assert choose_series(_index(tmp_path / "a", factory, [stir, t2])).series.series_uid == \
        t2.series_uid
    alone = factory.SeriesSpec(description="t2_tirm_sag", te_ms=85.0, tr_ms=4500.0)
    choice = choose_series(_index(tmp_path / "b", factory, [alone]))
    assert choice.series.series_uid == alone.series_uid
    assert choice.reason.startswith("Sagittal fat-suppressed T2 (no plain T2 found)")
    assert choice.candidates[0]["qualifies"] is False


def test_no_sagittal_t2_lists_what_the_study_has(tmp_path, factory):
    specs = [factory.SeriesSpec(description="t1_tse_sag", te_ms=10.0, tr_ms=600.0),
             factory.SeriesSpec(description="t2_tse_tra", iop=factory.AXIAL_IOP),
             factory.SeriesSpec(description="t2_tse_cor", iop=factory.CORONAL_IOP)]
    index = _index(tmp_path, factory, specs)
    with pytest.raises(NoSagittalT2Series) as err:
        choose_series(index)
    msg = str(err.value)
    assert msg.startswith("study has 3 series (#1 t1_tse_sag: TE 10 ms < 80 ms")
    assert "#2 t2_tse_tra: axial plane, not sagittal" in msg
    assert "#3 t2_tse_cor: coronal plane, not sagittal" in msg
    assert msg.endswith("none is sagittal T2 (TE >= 80 ms, TR >= 3000 ms)")
    assert "\n" not in msg


def test_short_tr_is_not_t2(tmp_path, factory):
    pd = factory.SeriesSpec(description="T2 SAG", te_ms=90.0, tr_ms=2000.0)
    with pytest.raises(NoSagittalT2Series, match="TR 2000 ms < 3000 ms"):
        choose_series(_index(tmp_path, factory, [pd]))


def test_user_series_is_used_even_if_not_t2(typical_study):
    root, specs, _ = typical_study
    index = scan_folder(root)
    choice = choose_series(index, series_uid=specs[2].series_uid)
    assert choice.series.series_uid == specs[2].series_uid
    assert "chosen by the user (note: axial plane, not sagittal)" in choice.reason
    with pytest.raises(SeriesNotFound, match="series 1.2.3 is not in the study"):
        choose_series(index, series_uid="1.2.3")


def test_series_unsuitability_names_t1_and_axial(typical_study):
    root, specs, _ = typical_study
    by_uid = {s.series_uid: s for s in scan_folder(root).series}
    assert series_unsuitability(by_uid[specs[0].series_uid]) == ""
    assert series_unsuitability(by_uid[specs[1].series_uid]) == \
        "TE 10 ms < 80 ms (not T2-weighted)"
    assert series_unsuitability(by_uid[specs[2].series_uid]) == "axial plane, not sagittal"
