"""Shared pieces of the DICOM writers: coded concepts, the source slice, geometry helpers.

Coded concepts: SNOMED CT (``SCT``) for anatomy (L1..L5, T12 vertebra) and presence/absence;
UCUM for units. Concepts without a standard code (the morphometric heights, endplate
concavities, vertebral angle, ratios, Genant grade, deformity type) use the private coding
scheme ``99SPV`` listed in `PRIVATE_CODES`, declared in each object's Coding Scheme
Identification Sequence (`declare_private_scheme`).
"""

from __future__ import annotations

import copy
from io import BytesIO
from pathlib import Path

import highdicom as hd
import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

import spineviewer
from spineviewer.core.errors import SpineViewerError
from spineviewer.core.results import StudyResult

PRIVATE_SCHEME = "99SPV"
PRIVATE_SCHEME_NAME = "SpineViewer private codes"
MANUFACTURER = "SpineViewer project"
MODEL_NAME = "SpineViewer"
#: Series numbers of the new series (fixed so PACS viewers list them after the images).
SERIES_NUMBER = {"pdf": 9901, "seg": 9902, "sr": 9903, "pr": 9904}


def _private(value: str, meaning: str) -> hd.sr.CodedConcept:
    return hd.sr.CodedConcept(value=value, scheme_designator=PRIVATE_SCHEME, meaning=meaning)


#: Private concepts (scheme 99SPV): keyword -> (code value, meaning).
PRIVATE_CODES: dict[str, tuple[str, str]] = {
    "AH_mm": ("SPV001", "Anterior vertebral body height"),
    "PH_mm": ("SPV002", "Posterior vertebral body height"),
    "MH_mm": ("SPV003", "Middle vertebral body height"),
    "SC_mm": ("SPV004", "Superior endplate concavity depth"),
    "IC_mm": ("SPV005", "Inferior endplate concavity depth"),
    "VA_deg": ("SPV006", "Vertebral body endplate angle"),
    "wedge_ratio": ("SPV007", "Wedge ratio AH/PH"),
    "biconcavity_ratio": ("SPV008", "Biconcavity ratio MH/PH"),
    "crush_ratio": ("SPV009", "Crush ratio PH/neighbours PH"),
    "fracture": ("SPV010", "Vertebral fracture (3 SD morphometric rule)"),
    "deformity": ("SPV011", "Vertebral deformity type"),
    "genant_grade": ("SPV012", "Genant semi-quantitative grade"),
    "vertebral_body": ("SPV013", "Vertebral body"),
    "morphometry": ("SPV014", "MRI vertebral body morphometry"),
    "none": ("SPV020", "No deformity"),
    "wedge": ("SPV021", "Wedge deformity"),
    "biconcave": ("SPV022", "Biconcave deformity"),
    "crush": ("SPV023", "Crush deformity"),
    "grade0": ("SPV030", "Genant grade 0"),
    "grade1": ("SPV031", "Genant grade 1"),
    "grade2": ("SPV032", "Genant grade 2"),
    "grade3": ("SPV033", "Genant grade 3"),
    "unknown_level": ("SPV040", "Vertebra of unlisted level"),
}


def code(key: str) -> hd.sr.CodedConcept:
    """The private 99SPV concept for ``key`` (see `PRIVATE_CODES`)."""
    value, meaning = PRIVATE_CODES[key]
    return _private(value, meaning)


def level_code(level: str) -> hd.sr.CodedConcept:
    """SNOMED CT concept of a vertebra level (``L1`` -> 66794005 "L1 vertebra")."""
    c = getattr(codes.SCT, f"{level}Vertebra", None)
    if c is None:
        return _private(PRIVATE_CODES["unknown_level"][0] + level, f"{level} vertebra")
    return hd.sr.CodedConcept(c.value, c.scheme_designator, c.meaning)


def coding_scheme_identification() -> Dataset:
    """Coding Scheme Identification item declaring the private 99SPV scheme."""
    item = Dataset()
    item.CodingSchemeDesignator = PRIVATE_SCHEME
    item.CodingSchemeName = PRIVATE_SCHEME_NAME
    item.CodingSchemeResponsibleOrganization = MANUFACTURER
    return item


def declare_private_scheme(ds: Dataset) -> None:
    seq = list(getattr(ds, "CodingSchemeIdentificationSequence", []))
    if not any(getattr(i, "CodingSchemeDesignator", "") == PRIVATE_SCHEME for i in seq):
        seq.append(coding_scheme_identification())
    ds.CodingSchemeIdentificationSequence = seq


def read_source(result: StudyResult) -> Dataset:
    """Read the analysed source slice (with pixels) named in ``result.source_slice_file``.

    Raises
    ------
    SpineViewerError
        When the file is missing, unreadable, or is not the analysed instance.
    """
    path = result.source_slice_file
    if not path or not Path(path).is_file():
        raise SpineViewerError(f"DICOM export needs the analysed source slice; not found: {path!r}")
    try:
        ds = dcmread(path)
    except Exception as exc:  # pydicom raises several types for bad files
        raise SpineViewerError(f"cannot read the source slice {path}: {exc}") from exc
    if result.sop_instance_uid and ds.get("SOPInstanceUID") != result.sop_instance_uid:
        raise SpineViewerError(f"{path} is not the analysed slice (SOP Instance UID differs)")
    return complete_source(ds)


#: Type 2 patient/study attributes (present, possibly empty) that highdicom copies.
_TYPE2_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
                   "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName")


def complete_source(ds: Dataset) -> Dataset:
    """A shallow copy of ``ds`` with missing type 2 patient/study attributes added empty.

    Anonymised or minimal files often lack them; the derived objects must carry them
    (empty is allowed), and highdicom copies them from the source.
    """
    out = copy.copy(ds)
    for kw in _TYPE2_KEYWORDS:
        if kw not in out:
            setattr(out, kw, "")
    return out


def outline_mask(outline_rc: list[tuple[float, float]], shape: tuple[int, int]) -> np.ndarray:
    """Rasterise a closed (row, col) outline into a boolean mask of ``shape``."""
    from skimage.draw import polygon

    mask = np.zeros(shape, bool)
    if len(outline_rc) >= 3:
        pts = np.asarray(outline_rc, float)
        rr, cc = polygon(pts[:, 0], pts[:, 1], shape=shape)
        mask[rr, cc] = True
    return mask


def software_version() -> str:
    return f"spineviewer {spineviewer.__version__}"


def outline_scoord(outline_rc: list[tuple[float, float]]) -> np.ndarray:
    """(row, col) pixel centres -> closed SCOORD (column, row) graphic data.

    Notes
    -----
    In DICOM SCOORD the top-left corner of the top-left pixel is (0, 0) and its centre is
    (0.5, 0.5), while our (row, col) indices put pixel centres on integers: add 0.5.
    """
    pts = np.asarray(outline_rc, float)[:, ::-1] + 0.5
    if not np.allclose(pts[0], pts[-1]):
        pts = np.vstack([pts, pts[:1]])
    return pts


def dataset_bytes(ds: Dataset) -> bytes:
    """Serialise a dataset as a DICOM file (preamble + file meta) in memory."""
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
