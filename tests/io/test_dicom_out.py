"""DICOM SEG, TID 1500 SR and Encapsulated PDF: valid (dciodvfy), readable, in the source study."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pytest
from pydicom import dcmread
from pydicom.sr.codedict import codes

from spineviewer.core.errors import SpineViewerError
from spineviewer.io import dicom_out

from .conftest import ANT_COL, LEVELS, POST_COL, dciodvfy_errors, vertebra_corners


@pytest.fixture
def source(study_result):
    return dicom_out.read_source(study_result)


def _save(ds, path):
    path.write_bytes(dicom_out.dataset_bytes(ds))
    return path


def test_seg_valid_one_segment_per_level(study_result, source, tmp_path):
    path = _save(dicom_out.build_seg(study_result, source), tmp_path / "seg.dcm")
    assert dciodvfy_errors(path) == []
    seg = hd.seg.segread(path)
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.SeriesInstanceUID not in (source.SeriesInstanceUID,)
    assert seg.PatientID == source.PatientID
    assert seg.number_of_segments == 5
    labels = [seg.get_segment_description(i).SegmentLabel for i in range(1, 6)]
    assert labels == [f"{lv} vertebral body" for lv in LEVELS]
    l1_type = seg.get_segment_description(1).segmented_property_type
    assert (l1_type.value, l1_type.scheme_designator) == ("66794005", "SCT")
    # references the analysed slice
    ref = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
    masks = seg.get_pixels_by_source_instance([source.SOPInstanceUID])[0]
    assert masks.shape == (source.Rows, source.Columns, 5)
    # L2 is a rectangle of 18 x 24 pixels (inclusive corners) on the source grid
    c = vertebra_corners(1)
    l2 = masks[..., 1].astype(bool)
    rows, cols = np.nonzero(l2)
    assert rows.min() == c["PS"][0] and rows.max() == c["PI"][0]
    assert cols.min() == ANT_COL and cols.max() == POST_COL
    assert l2.sum() == 18 * 24
    assert masks[..., 0].sum() < l2.sum() * 0.9  # the wedged L1 is smaller
    assert not (masks.sum(axis=-1) > 1).any()  # bodies do not overlap


def test_sr_valid_tid1500_one_group_per_vertebra(study_result, source, tmp_path):
    path = _save(dicom_out.build_sr(study_result, source), tmp_path / "sr.dcm")
    assert dciodvfy_errors(path) == []
    sr = hd.sr.srread(path)
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    groups = sr.content.get_planar_roi_measurement_groups()
    assert len(groups) == 5
    by_level = {}
    for g in groups:
        site = g.finding_sites[0].value.value
        by_level[site] = g
    assert set(by_level) == {"66794005", "14293000", "36470004", "11994002", "49668003"}
    l1 = by_level[codes.SCT.L1Vertebra.value]
    values = {m.name.meaning: (m.value, m.unit.value) for m in l1.get_measurements()}
    ah = study_result.vertebra("L1").AH_mm
    assert values["Anterior vertebral body height"] == (pytest.approx(ah), "mm")
    assert values["Posterior vertebral body height"][0] == pytest.approx(25.5)
    assert values["Vertebral body endplate angle"][1] == "deg"
    assert len(values) == 9
    quals = {q.name.meaning: q.value for q in l1.get_qualitative_evaluations()}
    fx = quals["Vertebral fracture (3 SD morphometric rule)"]
    assert (fx.value, fx.scheme_designator) == (codes.SCT.Present.value, "SCT")
    assert quals["Vertebral deformity type"].meaning == "Wedge deformity"
    l2 = by_level[codes.SCT.L2Vertebra.value]
    l2q = {q.name.meaning: q.value for q in l2.get_qualitative_evaluations()}
    assert l2q["Vertebral fracture (3 SD morphometric rule)"].value == codes.SCT.Absent.value
    # outline as a closed polyline on the source slice, SCOORD pixel centres at +0.5
    roi = l1.roi
    assert roi.GraphicType == "POLYLINE"
    pts = np.asarray(roi.value).reshape(-1, 2)
    c = vertebra_corners(0)
    assert np.allclose(pts[0], [c["AS"][1] + 0.5, c["AS"][0] + 0.5])
    assert np.allclose(pts[0], pts[-1])
    assert roi.ContentSequence[0].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == \
        source.SOPInstanceUID
    schemes = [i.CodingSchemeDesignator for i in sr.CodingSchemeIdentificationSequence]
    assert dicom_out.PRIVATE_SCHEME in schemes


@pytest.mark.parametrize("n_bytes", [301, 302])  # odd and even length documents
def test_encapsulated_pdf_valid_and_intact(source, tmp_path, n_bytes):
    pdf = (b"%PDF-1.4\n" + b"x" * n_bytes)[:n_bytes]
    path = _save(dicom_out.build_encapsulated_pdf(pdf, source), tmp_path / "pdf.dcm")
    assert dciodvfy_errors(path) == []
    ds = dcmread(path)
    assert ds.SOPClassUID == dicom_out.ENCAPSULATED_PDF_STORAGE
    doc = ds.EncapsulatedDocument[: ds.EncapsulatedDocumentLength]
    assert doc == pdf and ds.EncapsulatedDocumentLength == n_bytes
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    assert ds.SeriesInstanceUID != source.SeriesInstanceUID
    assert (ds.PatientName, ds.PatientID) == (source.PatientName, source.PatientID)
    assert ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.SourceInstanceSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID


def test_missing_source_slice_is_a_clear_error(study_result, tmp_path):
    study_result.source_slice_file = str(tmp_path / "gone.dcm")
    with pytest.raises(SpineViewerError, match="source slice"):
        dicom_out.read_source(study_result)


def test_wrong_source_instance_refused(study_result):
    study_result.sop_instance_uid = "1.2.3.4"
    with pytest.raises(SpineViewerError, match="not the analysed slice"):
        dicom_out.read_source(study_result)


def test_outline_mask_rasterises_polygon():
    mask = dicom_out.outline_mask([(2, 2), (2, 9), (7, 9), (7, 2)], (12, 12))
    assert mask.sum() == 6 * 8 and mask[2, 2] and mask[7, 9] and not mask[8, 5]
    assert not dicom_out.outline_mask([], (4, 4)).any()


def test_minimal_source_gets_type2_attributes(study_result, tmp_path):
    """Anonymised sources without birth date / accession still give valid objects."""
    ds = dcmread(study_result.source_slice_file)
    for kw in ("PatientBirthDate", "AccessionNumber", "ReferringPhysicianName", "StudyID"):
        delattr(ds, kw)
    ds.save_as(study_result.source_slice_file, enforce_file_format=True)
    source = dicom_out.read_source(study_result)
    assert source.PatientBirthDate == ""
    for build in (dicom_out.build_seg, dicom_out.build_sr):
        path = _save(build(study_result, source), tmp_path / f"{build.__name__}.dcm")
        assert dciodvfy_errors(path) == []
    del source.FrameOfReferenceUID
    with pytest.raises(SpineViewerError, match="Frame of Reference UID"):
        dicom_out.build_seg(study_result, source)


def test_presentation_state_draws_outlines_labels_and_heights(study_result, source, tmp_path):
    path = _save(dicom_out.build_pr(study_result, source), tmp_path / "pr.dcm")
    assert dciodvfy_errors(path) == []
    pr = dcmread(path)
    assert pr.Modality == "PR" and pr.StudyInstanceUID == source.StudyInstanceUID
    ref = pr.ReferencedSeriesSequence[0].ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == source.SOPInstanceUID
    layers = {a.GraphicLayer: a for a in pr.GraphicAnnotationSequence}
    assert set(layers) == {"FRACTURE", "REVIEW", "NORMAL", "HEIGHTS"}
    fx_texts = [t.UnformattedTextValue for t in layers["FRACTURE"].TextObjectSequence]
    assert fx_texts == ["L1 FX wedge G2 AH 16.5 PH 25.5"]  # core.calls short form
    assert [t.UnformattedTextValue for t in layers["REVIEW"].TextObjectSequence] == \
        ["L4 AH 25.5 PH 25.5"]
    heights = layers["HEIGHTS"].GraphicObjectSequence
    assert len(heights) == 10  # AH and PH of five vertebrae
    c = vertebra_corners(0)
    ah = np.asarray(heights[0].GraphicData, float).reshape(-1, 2)
    assert np.allclose(ah, [[c["AS"][1] + 0.5, c["AS"][0] + 0.5], [c["AI"][1] + 0.5,
                                                                  c["AI"][0] + 0.5]])
