"""Tests of core.dicom.index: folder scan, grouping, vendor headers, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydicom.uid import generate_uid

from spineviewer.core.dicom.index import plane_of, scan_folder
from spineviewer.core.errors import Cancelled, NoDicomFound


def test_typical_study_is_grouped_into_three_series(typical_study):
    root, specs, files = typical_study
    index = scan_folder(root)
    assert [s.series_description for s in index.series] == ["t2_tse_sag", "t1_tse_sag",
                                                             "t2_tse_tra"]
    assert [s.plane for s in index.series] == ["sagittal", "sagittal", "axial"]
    assert [s.n_slices for s in index.series] == [7, 7, 5]
    t2 = index.series[0]
    assert (t2.echo_time_ms, t2.repetition_time_ms) == (102.0, 3500.0)
    assert t2.pixel_spacing_mm == (0.6, 0.6)
    assert t2.slice_thickness_mm == 4.0
    assert (t2.rows, t2.cols) == (64, 48)
    assert t2.image_orientation == (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    assert sorted(t2.files) == sorted(str(p) for p in files[specs[0].series_uid])
    assert index.skipped == []
    assert index.get(specs[2].series_uid).modality == "MR"
    assert index.get("1.2.3") is None


def test_patients_and_studies_tree(tmp_path, factory):
    a = factory.typical_study()
    factory.write_study(tmp_path / "a", a)
    b = factory.SeriesSpec(patient_id="PAT2", patient_name="Other^Person")
    factory.write_series(tmp_path / "b", b)
    index = scan_folder(tmp_path)
    patients = index.patients()
    assert [p.patient_id for p in patients] == ["PAT1", "PAT2"]
    assert len(patients[0].studies) == 1 and len(patients[0].studies[0].series) == 3
    assert [s.series_number for s in patients[0].studies[0].series] == [1, 2, 3]
    assert patients[1].patient_name == "Other^Person"
    assert len(index.studies()) == 2


def test_vendor_header_styles(tmp_path, factory):
    specs = [
        factory.SeriesSpec(description="SAG T2 FRFSE", vendor="GE", field_strength=1.5),
        factory.SeriesSpec(description="T2W_TSE SAG", vendor="PHILIPS", te_ms=110.0,
                           te_private_only=True),
        factory.SeriesSpec(description="t2_tse_sag", vendor="SIEMENS", field_strength=2.89362),
    ]
    factory.write_study(tmp_path, specs)
    by_desc = {s.series_description: s for s in scan_folder(tmp_path).series}
    ge, philips, siemens = by_desc["SAG T2 FRFSE"], by_desc["T2W_TSE SAG"], by_desc["t2_tse_sag"]
    assert ge.field_strength_T == pytest.approx(1.5)  # stored as 15000 gauss
    assert ge.sequence_name == "frfse"
    assert philips.echo_time_ms == 110.0  # standard EchoTime empty, private display TE read
    assert siemens.field_strength_T == pytest.approx(2.89362)
    assert siemens.sequence_name.startswith("*tse")


def test_any_file_names_nested_folders_and_single_file(tmp_path, factory):
    a = factory.SeriesSpec(file_names="dcm", n_slices=3)
    b = factory.SeriesSpec(file_names="uid", n_slices=4, series_number=2)
    pa = factory.write_series(tmp_path / "x" / "y" / "z", a)
    factory.write_series(tmp_path / "flat", b)
    index = scan_folder(tmp_path)
    assert sorted(s.n_slices for s in index.series) == [3, 4]
    single = scan_folder(pa[1])
    assert single.series[0].n_slices == 1 and single.series[0].files == (str(pa[1]),)


def test_bad_files_are_skipped_with_reasons(tmp_path, factory):
    paths = factory.write_series(tmp_path, factory.SeriesSpec(n_slices=5))
    (tmp_path / "notes.txt").write_text("not an image\n")
    (tmp_path / "image.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    data = paths[0].read_bytes()
    (tmp_path / "cut_in_pixels").write_bytes(data[: len(data) - 1000])
    (tmp_path / "cut_in_header").write_bytes(data[:200])
    _write_sr(tmp_path / "report_sr", factory)
    index = scan_folder(tmp_path)
    assert len(index.series) == 1 and index.series[0].n_slices == 5
    why = {name.split("/")[-1]: reason for name, reason in index.skipped}
    assert why["notes.txt"] == "not DICOM"
    assert why["image.jpg"] == "not DICOM"
    assert why["cut_in_pixels"].startswith("truncated")
    assert "truncated" in why["cut_in_header"]
    assert why["report_sr"] == "not an image: SR object"


def test_dicomdir_and_hidden_files_are_not_images(tmp_path, factory):
    factory.write_series(tmp_path / "IMG", factory.SeriesSpec(n_slices=2))
    ds = factory.dataset_with_meta("1.2.840.10008.1.3.10")  # Media Storage Directory
    ds.FileSetID = "X"
    ds.DirectoryRecordSequence = []
    ds.save_as(tmp_path / "DICOMDIR", enforce_file_format=True)
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    index = scan_folder(tmp_path)
    assert [s.n_slices for s in index.series] == [2]
    assert [(p.split("/")[-1], w.split(" ")[0]) for p, w in index.skipped] == [("DICOMDIR",
                                                                                 "DICOMDIR")]


def test_file_without_preamble_is_read(tmp_path, factory):
    spec = factory.SeriesSpec(n_slices=1)
    ds = factory.make_dataset(spec, 0, factory.default_pixels(0, spec))
    del ds.file_meta
    ds.save_as(tmp_path / "old", implicit_vr=True, little_endian=True)
    assert (tmp_path / "old").read_bytes()[:2] == b"\x08\x00"
    index = scan_folder(tmp_path)
    assert index.series[0].echo_time_ms == 100.0


def test_missing_empty_and_non_dicom_folders(tmp_path):
    with pytest.raises(NoDicomFound, match="does not exist"):
        scan_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoDicomFound, match="no files"):
        scan_folder(tmp_path / "empty")
    (tmp_path / "docs").mkdir()
    for i in range(3):
        (tmp_path / "docs" / f"f{i}.txt").write_text("hello")
    with pytest.raises(NoDicomFound) as err:
        scan_folder(tmp_path / "docs")
    msg = str(err.value)
    assert "no DICOM image found" in msg and "3 files: 3 not DICOM" in msg
    assert "\n" not in msg


def test_progress_and_cancel(typical_study):
    root = typical_study[0]
    seen = []
    scan_folder(root, progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert "3 series in 19 files" in seen[-1][1]
    calls = []

    def cancel():
        calls.append(1)
        return len(calls) > 4

    with pytest.raises(Cancelled):
        scan_folder(root, cancel=cancel)
    assert len(calls) == 5


def test_mixed_orientations_in_one_series_are_not_a_plane(tmp_path, factory):
    spec = factory.SeriesSpec(n_slices=3, description="3-plane loc")
    paths = factory.write_series(tmp_path, spec)
    axial = factory.SeriesSpec(n_slices=1, iop=factory.AXIAL_IOP, series_uid=spec.series_uid,
                               study_uid=spec.study_uid, file_names="dcm")
    factory.write_series(tmp_path, axial)
    index = scan_folder(tmp_path)
    assert len(index.series) == 1
    assert index.series[0].plane == "unknown" and index.series[0].n_slices == len(paths) + 1


@pytest.mark.parametrize("iop,plane", [
    ((0, 1, 0, 0, 0, -1), "sagittal"),
    ((0, -1, 0, 0, 0, -1), "sagittal"),
    ((1, 0, 0, 0, 0, -1), "coronal"),
    ((1, 0, 0, 0, 1, 0), "axial"),
    (None, "unknown"),
    ((0, 0, 0, 0, 0, 0), "unknown"),
])
def test_plane_of_standard_orientations(iop, plane):
    assert plane_of(iop) == plane


@pytest.mark.parametrize("tilt_deg,plane", [(20.0, "sagittal"), (29.0, "sagittal"),
                                            (31.0, "oblique"), (45.0, "oblique"),
                                            (70.0, "coronal")])
def test_plane_of_tilted_sagittal(tilt_deg, plane):
    # rotate the sagittal rows (along +y) about z, so the normal tilts from x towards y
    t = math.radians(tilt_deg)
    row = (math.sin(t), math.cos(t), 0.0)
    assert plane_of((*row, 0.0, 0.0, -1.0)) == plane


def test_index_speed(tmp_path, factory):
    specs = [factory.SeriesSpec(n_slices=50, series_number=k) for k in range(4)]
    factory.write_study(tmp_path, specs)
    import time

    t0 = time.perf_counter()
    index = scan_folder(tmp_path)
    per_file_ms = (time.perf_counter() - t0) / 200 * 1000
    assert sum(s.n_slices for s in index.series) == 200
    assert per_file_ms < 10.0, f"{per_file_ms:.2f} ms per file"


def _write_sr(path, factory):
    ds = factory.dataset_with_meta("1.2.840.10008.5.1.4.1.1.88.33")  # Comprehensive SR
    ds.Modality = "SR"
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.save_as(path, enforce_file_format=True)


def test_plane_of_accepts_numpy_arrays():
    assert plane_of(np.array([0.0, 1.0, 0.0, 0.0, 0.0, -1.0])) == "sagittal"
