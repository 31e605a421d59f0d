"""export_all: the files, no overwrite without permission, atomic writes, de-identification."""

from __future__ import annotations

import pytest
from pydicom import dcmread

from spineviewer.core.errors import SpineViewerError
from spineviewer.core.results import read_csv_rows
from spineviewer.io import export
from spineviewer.io.deidentify import KEY_ENV, Pseudonymizer

from .conftest import dciodvfy_errors, pdf_text


def test_export_all_writes_every_output(study_result, tmp_path):
    out = tmp_path / "out"
    paths = export.export_all(study_result, out, dicom=True)
    names = [p.relative_to(out).as_posix() for p in paths]
    assert names == ["report.pdf", "results.csv", "dicom/vertebrae_seg.dcm",
                     "dicom/morphometry_sr.dcm", "dicom/overlay_pr.dcm", "dicom/report_pdf.dcm"]
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)
    assert paths[0].read_bytes().startswith(b"%PDF")
    assert len(read_csv_rows(paths[1])) == 5
    modalities = set()
    for p in paths[2:]:
        assert dciodvfy_errors(p) == []
        ds = dcmread(p)
        assert ds.StudyInstanceUID == study_result.study_uid
        modalities.add(ds.Modality)
    assert modalities == {"SEG", "SR", "PR", "DOC"}
    # the encapsulated document is the report written beside it
    enc = dcmread(paths[5])
    assert enc.EncapsulatedDocument[: enc.EncapsulatedDocumentLength] == paths[0].read_bytes()
    # atomic writes leave no temporary files behind
    leftovers = [p for p in out.rglob("*") if p.is_file() and p not in paths]
    assert leftovers == []


def test_refuses_to_overwrite_and_writes_nothing(study_result, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.csv").write_text("my own notes\n")
    with pytest.raises(export.ExportExists, match="results.csv already exists"):
        export.export_all(study_result, out, pdf=True, csv=True)
    assert (out / "results.csv").read_text() == "my own notes\n"
    assert not (out / "report.pdf").exists()  # nothing written half
    paths = export.export_all(study_result, out, overwrite=True)
    assert read_csv_rows(paths[1])[0]["level"] == "L1"
    assert sorted(p.name for p in out.iterdir()) == ["report.pdf", "results.csv"]


def test_deidentified_export(study_result, tmp_path, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "a research project's key")
    paths = export.export_all(study_result, tmp_path, deidentify=True)
    csv_text = paths[1].read_text()
    key = Pseudonymizer.from_environment()
    assert study_result.study_uid not in csv_text and key.uid(study_result.study_uid) in csv_text
    (tmp_path / "t").mkdir()
    text = pdf_text(paths[0].read_bytes(), tmp_path / "t")
    assert "Fracture suspected at L1" in text
    for secret in ("Muster", "PID-4711", "1948-03-12", "2024-01-02"):
        assert secret not in text
    with pytest.raises(SpineViewerError, match="cannot be de-identified"):
        export.export_all(study_result, tmp_path / "d", dicom=True, deidentify=True)


def test_failed_build_leaves_no_files(study_result, tmp_path):
    study_result.source_slice_file = ""  # DICOM export impossible
    with pytest.raises(SpineViewerError, match="source slice"):
        export.export_all(study_result, tmp_path / "o", dicom=True)
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").rglob("*"))


def test_write_dicom_outputs_for_the_command_line(study_result, tmp_path):
    from spineviewer.io.export import write_dicom_outputs

    paths = write_dicom_outputs(study_result, tmp_path / "dcm")
    assert sorted(p.name for p in paths) == ["morphometry_sr.dcm", "overlay_pr.dcm",
                                             "report_pdf.dcm", "vertebrae_seg.dcm"]
    enc = dcmread(tmp_path / "dcm" / "report_pdf.dcm")
    assert enc.EncapsulatedDocument.startswith(b"%PDF")
    with pytest.raises(export.ExportExists, match="vertebrae_seg.dcm already exists"):
        write_dicom_outputs(study_result, tmp_path / "dcm", include_pdf=False)
    again = write_dicom_outputs(study_result, tmp_path / "dcm", include_pdf=False, overwrite=True)
    assert len(again) == 3


def test_unmeasurable_vertebra_and_empty_result(study_result, tmp_path):
    from spineviewer.core.results import VertebraResult

    study_result.vertebrae.append(VertebraResult(level="S1", flags=["needs_review"],
                                                 reasons=["needs review: measurements missing"]))
    paths = export.export_all(study_result, tmp_path / "a", dicom=True)
    seg = dcmread(paths[2])
    assert len(seg.SegmentSequence) == 5  # S1 has no outline: left out
    text = pdf_text(paths[0].read_bytes(), tmp_path / "a")
    assert "Needs review (measurements missing): S1" in text
    study_result.vertebrae = []
    text = pdf_text(export.export_all(study_result, tmp_path / "b")[0].read_bytes(),
                    tmp_path / "b")
    assert "No vertebral fracture detected by the algorithm" in text
    assert "No vertebral body was measured." in text
    with pytest.raises(SpineViewerError, match="no vertebra has an outline"):
        export.export_all(study_result, tmp_path / "c", pdf=False, csv=False, dicom=True)
