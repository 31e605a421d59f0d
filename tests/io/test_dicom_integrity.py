"""`dicom_integrity`: complete files pass, cut ones are refused (what `send` checks)."""

from __future__ import annotations

import copy

import pytest
from pydicom import dcmread
from pydicom.uid import DeflatedExplicitVRLittleEndian, ImplicitVRLittleEndian, RLELossless

from spineviewer.io import export
from spineviewer.io.dicom_integrity import IncompleteDicom, verify_bytes, verify_file


@pytest.fixture
def outputs(study_result, tmp_path):
    return export.write_dicom_outputs(study_result, tmp_path / "dcm")


def test_complete_outputs_pass_and_cuts_are_refused(outputs):
    for path in outputs:
        data = path.read_bytes()
        verify_file(path)
        # a sample of cuts: every 97th byte, the last bytes, and just before the last element
        cuts = [*range(1, len(data), 97), len(data) - 1, len(data) - 2, len(data) - 16]
        accepted = []
        for cut in cuts:
            try:
                verify_bytes(data[:cut], path.name)
            except IncompleteDicom as exc:
                assert "\n" not in str(exc)
            else:
                accepted.append(cut)
        assert accepted == [], (path.name, accepted)


def test_cut_between_top_level_elements_is_refused(outputs, tmp_path):
    pr = next(p for p in outputs if p.name == "overlay_pr.dcm")
    ds = dcmread(pr)
    del ds.PresentationLUTShape  # what a cut just before the last element leaves
    ds.save_as(tmp_path / "cut.dcm", enforce_file_format=True)
    with pytest.raises(IncompleteDicom, match="PresentationLUTShape"):
        verify_file(tmp_path / "cut.dcm")


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                                    RLELossless])
def test_other_transfer_syntaxes(source_file, tmp_path, syntax):
    ds = copy.deepcopy(dcmread(source_file))
    if syntax.is_compressed:
        ds.compress(syntax)
    else:
        ds.file_meta.TransferSyntaxUID = syntax
    path = tmp_path / "x.dcm"
    ds.save_as(path, enforce_file_format=True)
    verify_file(path)
    data = path.read_bytes()
    for cut in range(200, len(data), 211):
        with pytest.raises(IncompleteDicom):
            verify_bytes(data[:cut])


def test_not_dicom_or_unreadable(tmp_path):
    (tmp_path / "a.dcm").write_bytes(b"hello")
    with pytest.raises(IncompleteDicom, match="preamble"):
        verify_file(tmp_path / "a.dcm")
    with pytest.raises(IncompleteDicom, match="cannot be read"):
        verify_file(tmp_path / "missing.dcm")
