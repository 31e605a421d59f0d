"""Fixtures for the io tests: a source MR slice written with pydicom and a hand-made result.

The slice is a 128 x 128 sagittal MR image (1.5 mm pixels, IOP [0,1,0, 0,0,-1]: columns run
anterior -> posterior, rows superior -> inferior) with five bright rectangles (L1..L5) and
brighter discs between them. The result's outlines are those rectangles, L1 wedged.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import MRImageStorage, generate_uid

from spineviewer.core.results import StudyResult, VertebraResult
from tests.dicom_factory import dataset_with_meta

ROWS, COLS = 128, 128
SPACING_MM = (1.5, 1.5)
LEVELS = ("L1", "L2", "L3", "L4", "L5")
TOP_ROW, BODY_ROWS, DISC_ROWS = 10, 17, 5
ANT_COL, POST_COL = 40, 63
L1_WEDGE_ROWS = 6  # L1's anterior-superior corner sits this many rows lower
PATIENT = {"name": "Muster^Erika", "id": "PID-4711", "birth_date": "19480312", "sex": "F",
           "study_date": "20240102"}


def vertebra_corners(i: int) -> dict[str, tuple[float, float]]:
    """Corners (row, col) of body ``i`` (0 = L1); L1 is wedged anteriorly."""
    top = TOP_ROW + i * (BODY_ROWS + DISC_ROWS)
    bottom = top + BODY_ROWS
    ant_top = top + (L1_WEDGE_ROWS if i == 0 else 0)
    return {"AS": (float(ant_top), float(ANT_COL)), "AI": (float(bottom), float(ANT_COL)),
            "PS": (float(top), float(POST_COL)), "PI": (float(bottom), float(POST_COL))}


def source_pixels() -> np.ndarray:
    """Stored values: dark background, grey bodies, bright discs, a little deterministic noise."""
    rng = np.random.default_rng(0)
    img = np.full((ROWS, COLS), 150, np.int32) + rng.integers(0, 40, (ROWS, COLS))
    for i in range(len(LEVELS)):
        c = vertebra_corners(i)
        top = int(c["PS"][0])
        bottom = int(c["PI"][0])
        img[top:bottom + 1, ANT_COL:POST_COL + 1] = 700
        img[bottom + 1:bottom + DISC_ROWS, ANT_COL + 2:POST_COL - 1] = 1300
    img[:, POST_COL + 6:POST_COL + 14] = 1500  # CSF in the canal
    return img.astype(np.uint16)


def make_source_dataset(study_uid: str | None = None) -> Dataset:
    """A complete MR Image IOD instance (what a scanner would write) for the slice."""
    ds = dataset_with_meta(MRImageStorage)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = PATIENT["study_date"]
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "101500"
    ds.AccessionNumber = "ACC123"
    ds.Modality = "MR"
    ds.Manufacturer = "SIEMENS"
    ds.ReferringPhysicianName = "Doc^Referring"
    ds.StudyDescription = "LWS"
    ds.SeriesDescription = "t2_tse_sag"
    ds.PatientName = PATIENT["name"]
    ds.PatientID = PATIENT["id"]
    ds.PatientBirthDate = PATIENT["birth_date"]
    ds.PatientSex = PATIENT["sex"]
    ds.ScanningSequence = "SE"
    ds.SequenceVariant = "SK"
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "2D"
    ds.SliceThickness = 4.0
    ds.RepetitionTime = 3500.0
    ds.EchoTime = 100.0
    ds.EchoTrainLength = 17
    ds.MagneticFieldStrength = 3.0
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyID = "1"
    ds.SeriesNumber = 3
    ds.Laterality = ""
    ds.PatientPosition = "HFS"
    ds.InstanceNumber = 8
    ds.ImagePositionPatient = [-2.0, -90.0, 100.0]
    ds.ImageOrientationPatient = [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
    ds.FrameOfReferenceUID = generate_uid()
    ds.PositionReferenceIndicator = ""
    ds.SliceLocation = -2.0
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ROWS, COLS
    ds.PixelSpacing = list(SPACING_MM)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = source_pixels().tobytes()
    return ds


def _vertebra(i: int, level: str) -> VertebraResult:
    c = vertebra_corners(i)
    sr, sc = SPACING_MM
    ah = abs(c["AI"][0] - c["AS"][0]) * sr
    ph = abs(c["PI"][0] - c["PS"][0]) * sr
    mh = (ah + ph) / 2.0
    depth_mm = (sc * (POST_COL - ANT_COL))
    va = math.degrees(math.atan2((ph - ah), depth_mm))
    outline = [c["AS"], c["PS"], c["PI"], c["AI"], c["AS"]]
    v = VertebraResult(level=level, corners_rc=c, outline_rc=outline, AH_mm=ah, PH_mm=ph,
                       MH_mm=mh, SC_mm=0.4, IC_mm=0.9, VA_deg=va, wedge_ratio=ah / ph,
                       biconcavity_ratio=mh / ph, crush_ratio=1.0, corner_strategy="line_fit",
                       corner_overlap=0.97)
    if level == "L1":
        v.fracture, v.deformity, v.genant_grade = True, "wedge", 2
        v.reasons = [
            (f"wedge ratio AH/PH = {ah / ph:.2f} < threshold 0.76 (L1 mean 0.91 - 3 x 0.050): "
             "anterior height loss 35% -> grade 2"),
            "fracture: wedge deformity, anterior height loss 35%, Genant grade 2",
        ]
    else:
        v.reasons = ["no deformity: every assessable ratio within 3 SD of its level mean"]
    if level == "L4":
        v.flags = ["schmorl_node", "needs_review"]
    return v


def _heights_from_corners(result: StudyResult) -> None:
    """A minimal remeasure for the fixture's edits: AH, PH and AH/PH from the corners."""
    sr = result.pixel_spacing_mm[0]
    for v in result.vertebrae:
        c = v.corners_rc
        v.AH_mm = abs(c["AI"][0] - c["AS"][0]) * sr
        v.PH_mm = abs(c["PI"][0] - c["PS"][0]) * sr
        v.wedge_ratio = v.AH_mm / v.PH_mm


def make_result(source_file: Path, ds: Dataset) -> StudyResult:
    """Five vertebrae on the source slice with one fracture (L1), an edit and an override.

    The edits go through `spineviewer.core.review` (the GUI's edit functions): a reader moves
    L3's AS corner 0.8 px up (AH 25.5 -> 26.7 mm) and confirms "no fracture" at L5.
    """
    from spineviewer.core import review

    result = _bare_result(source_file, ds)
    as_rc = result.vertebra("L3").corners_rc["AS"]
    review.move_corner(result, "L3", "AS", (as_rc[0] - 0.8, as_rc[1]),
                       remeasure=_heights_from_corners)
    review.override_call(result, "L5", False, comment="old healed endplate irregularity")
    for e in result.edits:
        e["user"] = "reader1"
    return result


def _bare_result(source_file: Path, ds: Dataset) -> StudyResult:
    return StudyResult(
        study_uid=str(ds.StudyInstanceUID), series_uid=str(ds.SeriesInstanceUID),
        sop_instance_uid=str(ds.SOPInstanceUID), slice_index=7, pixel_spacing_mm=SPACING_MM,
        model={"name": "unet-test", "version": "0.0-test", "sha256": "ab" * 32,
               "provider": "CPUExecutionProvider"},
        series_choice={"series_description": "t2_tse_sag", "series_number": 3,
                       "reason": "sagittal, TE 100 ms >= 80 ms, TR 3500 ms >= 3000 ms"},
        vertebrae=[_vertebra(i, lv) for i, lv in enumerate(LEVELS)],
        patient=dict(PATIENT),
        parameters={"threshold_sd": 3.0, "reference_table": "PROVISIONAL test table"},
        source_path=str(source_file.parent), source_slice_file=str(source_file),
        software={"name": "spineviewer", "version": "0.1.0"}, image_shape=(ROWS, COLS),
    )


@pytest.fixture
def source_file(tmp_path: Path) -> Path:
    ds = make_source_dataset()
    path = tmp_path / "src" / "IM0008"
    path.parent.mkdir()
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def study_result(source_file: Path) -> StudyResult:
    from pydicom import dcmread

    return make_result(source_file, dcmread(source_file))


def dciodvfy_errors(path: str | Path) -> list[str]:
    """The ``Error - ...`` lines dciodvfy (Debian dicom3tools) prints for ``path``."""
    import shutil
    import subprocess

    exe = shutil.which("dciodvfy")
    if exe is None:
        pytest.skip("dciodvfy not installed (Debian package dicom3tools)")
    proc = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=60,
                          check=False)
    out = proc.stdout + proc.stderr
    assert out.strip(), "dciodvfy printed nothing"
    return [line for line in out.splitlines() if line.startswith("Error")]


def pdf_text(pdf: bytes, tmp_path: Path) -> str:
    """Text of a PDF via pdftotext (poppler-utils), whitespace collapsed to single spaces."""
    import re
    import shutil
    import subprocess

    exe = shutil.which("pdftotext")
    if exe is None:
        pytest.skip("pdftotext not installed (Debian package poppler-utils)")
    src = tmp_path / "_text.pdf"
    src.write_bytes(pdf)
    subprocess.run([exe, str(src), str(tmp_path / "_text.txt")], check=True, timeout=60)
    return re.sub(r"\s+", " ", (tmp_path / "_text.txt").read_text())
