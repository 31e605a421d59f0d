"""Phantom DICOM studies: readable files, vendor tags, rescale, geometry, truth, determinism."""

from pathlib import Path

import numpy as np
import pydicom
import pytest

from spineviewer.synth.params import PhantomParams
from spineviewer.synth.study import load_truth, main, write_cohort, write_study


def _read_all(root: Path):
    return [pydicom.dcmread(p) for p in sorted(root.rglob("*")) if p.is_file()
            and p.name != "DICOMDIR"]


@pytest.fixture(scope="module")
def philips_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("philips")
    params = PhantomParams(deformities={"L1": ("wedge", 2)})
    truth = write_study(out, 17, vendor="philips", field_strength_T=3.0, n_slices=6,
                        pixel_spacing_mm=0.7, matrix=(384, 288), params=params,
                        file_names="random")
    return out, truth


def test_series_tags_and_geometry(philips_study):
    out, truth = philips_study
    ds = _read_all(out / "dicom")
    by_series = {}
    for d in ds:
        by_series.setdefault(d.SeriesInstanceUID, []).append(d)
    assert len(by_series) == 3                              # T2 sag + T1 sag + T2 axial
    t2 = by_series[truth.t2_series_uid]
    assert len(t2) == 6
    d = t2[0]
    assert d.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4" and d.Modality == "MR"
    assert d.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert d.Manufacturer == "Philips Medical Systems" and d.SeriesDescription == "T2W_TSE_SAG"
    assert float(d.MagneticFieldStrength) == 3.0
    assert float(d.EchoTime) >= 80 and float(d.RepetitionTime) >= 3000
    assert [float(x) for x in d.ImageOrientationPatient] == [0, 1, 0, 0, 0, -1]
    assert (d.Rows, d.Columns) == (384, 288) and [float(x) for x in d.PixelSpacing] == [0.7, 0.7]
    assert d.BitsAllocated == 16 and d.BitsStored == 12 and d.PixelRepresentation == 0
    assert str(d.PatientName) == "PHANTOM^017" and d.StudyInstanceUID == truth.study_uid
    for other, d2 in by_series.items():
        if other != truth.t2_series_uid:
            assert float(d2[0].EchoTime) < 80 or d2[0].ImageOrientationPatient[5] == 0
    # slices 1.1 x thickness apart along the normal (-x for this orientation)
    xs = sorted(float(x.ImagePositionPatient[0]) for x in t2)
    assert np.allclose(np.diff(xs), float(d.SliceThickness) * 1.1, atol=1e-3)
    assert len({x.SOPInstanceUID for x in ds}) == len(ds)


def test_centre_slice_is_the_truth_slice_with_philips_rescale(philips_study):
    out, truth = philips_study
    t2 = [d for d in _read_all(out / "dicom") if d.SeriesInstanceUID == truth.t2_series_uid]
    t2.sort(key=lambda d: -float(d.ImagePositionPatient[0]))   # along the normal (-1, 0, 0)
    centre = t2[truth.slice_index]
    assert truth.slice_index == 2 and centre.SOPInstanceUID == truth.sop_instance_uid
    slope = float(centre.RescaleSlope)
    assert slope != 1.0 and slope == pytest.approx(truth.rescale_slope)
    real = centre.pixel_array * slope + float(centre.RescaleIntercept)
    labels = np.load(out / "truth_labels.npy")
    assert labels.shape == real.shape
    classes = np.load(out / "truth_classes.npy")
    assert np.array_equal(classes[(labels >= 1) & (labels <= 6)] == 1, np.ones(1, bool).repeat(
        ((labels >= 1) & (labels <= 6)).sum()))
    csf = np.median(real[classes == 4])
    marrow = np.median(real[(labels >= 1) & (labels <= 6)])
    assert 300 < marrow < 2500 and csf > 1.5 * marrow          # T2: CSF bright
    assert pydicom.pixels.apply_rescale(centre.pixel_array, centre) == pytest.approx(real)
    # truth corners sit on their labelled body in the written slice
    l1 = next(v for v in truth.vertebrae if v.level == "L1")
    r, c = np.mean(list(l1.corners_rc.values()), axis=0)
    assert labels[int(r), int(c)] == 2
    assert l1.deformity == "wedge" and l1.genant_grade == 2 and l1.AH_mm < 0.8 * l1.PH_mm


def test_truth_roundtrip_and_determinism(philips_study, tmp_path):
    out, truth = philips_study
    again = load_truth(out / "truth.json")
    assert again.to_dict() == truth.to_dict()
    twin = write_study(tmp_path, 17, vendor="philips", field_strength_T=3.0, n_slices=6,
                       pixel_spacing_mm=0.7, matrix=(384, 288),
                       params=PhantomParams(deformities={"L1": ("wedge", 2)}),
                       distractors=False, file_names="uid")
    assert twin.sop_instance_uid == truth.sop_instance_uid
    assert twin.to_dict()["vertebrae"] == truth.to_dict()["vertebrae"]
    a = pydicom.dcmread(tmp_path / "dicom" / f"{twin.sop_instance_uid}.dcm")
    centre = next(d for d in _read_all(out / "dicom")
                  if d.SOPInstanceUID == truth.sop_instance_uid)
    assert np.array_equal(a.pixel_array, centre.pixel_array)


def test_vendor_styles_and_dicomdir(tmp_path):
    ge = write_study(tmp_path / "ge", 3, vendor="ge", n_slices=3, distractors=False,
                     file_names="numbered", dicomdir=True)
    assert (tmp_path / "ge" / "dicom" / "DICOMDIR").is_file()
    assert not any(p.is_dir() and not any(p.iterdir()) for p in (tmp_path / "ge").rglob("*"))
    ds = _read_all(tmp_path / "ge" / "dicom")
    assert len(ds) == 3 and ds[0].Manufacturer == "GE MEDICAL SYSTEMS"
    assert ds[0].SeriesDescription == "Sag T2 FRFSE" and float(ds[0].RescaleSlope) == 1.0
    dicomdir = pydicom.dcmread(tmp_path / "ge" / "dicom" / "DICOMDIR")
    assert len(dicomdir.DirectoryRecordSequence) >= 4     # patient, study, series, images
    assert ge.slice_index == 1
    with pytest.raises(ValueError):
        write_study(tmp_path / "x", 1, vendor="toshiba")


def test_cohort_varies_and_covers_deformities(tmp_path):
    truths = write_cohort(tmp_path, 9, 5, distractors=False, n_slices=1)
    assert {t.vendor for t in truths} == {"siemens", "ge", "philips"}
    assert {t.field_strength_T for t in truths} == {1.5, 3.0}
    combos = {(v.deformity, v.genant_grade) for t in truths for v in t.vertebrae if v.fracture}
    assert combos >= {(k, g) for k in ("wedge", "biconcave", "crush") for g in (1, 2, 3)}
    spacings = [t.pixel_spacing_mm[0] for t in truths]
    assert min(spacings) >= 0.6 and max(spacings) <= 0.8 and len(set(spacings)) > 3
    assert all((tmp_path / f"study_{i:03d}" / "truth.json").is_file() for i in range(9))


def test_cli_main_writes_studies(tmp_path, capsys):
    assert main([str(tmp_path), "--n", "1", "--seed", "4", "--no-distractors"]) == 0
    assert "wrote 1 studies" in capsys.readouterr().out
    assert load_truth(tmp_path / "study_000").n_slices >= 11


def test_cli_main_reports_unwritable_output_in_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main([str(blocker / "out"), "--n", "1"]) == 2
    err = capsys.readouterr().err
    assert "cannot write" in err and "Traceback" not in err and err.count("\n") == 1
