"""DICOM outputs in the source study: Encapsulated PDF, Segmentation (SEG) and TID 1500 SR.

SEG and SR are built with highdicom (validating constructors); the Encapsulated PDF, which
highdicom does not build, is written with pydicom following the Encapsulated PDF IOD
(PS3.3 A.45.1). Every object is a new series in the study of the analysed source slice.

Coded concepts: SNOMED CT (``SCT``) for anatomy (L1..L5, T12 vertebra), presence/absence
and the vertebral column; UCUM for units; DCM where a term exists. Concepts without a
standard code (the morphometric heights, endplate concavities, vertebral angle, ratios,
Genant grade, deformity type) use the private coding scheme ``99SPV`` listed in
`PRIVATE_CODES`, declared in each object's Coding Scheme Identification Sequence.
"""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import highdicom as hd
import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import spineviewer
from spineviewer.core.errors import SpineViewerError
from spineviewer.core.results import StudyResult, VertebraResult

logger = logging.getLogger(__name__)

PRIVATE_SCHEME = "99SPV"
PRIVATE_SCHEME_NAME = "SpineViewer private codes"
MANUFACTURER = "SpineViewer project"
MODEL_NAME = "SpineViewer"
#: Series numbers of the new series (fixed so PACS viewers list them after the images).
SERIES_NUMBER = {"pdf": 9901, "seg": 9902, "sr": 9903}
ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
#: LOINC 18748-4 "Diagnostic imaging study" is the document title code PACS use for reports.
PDF_CONCEPT = ("18748-4", "LN", "Diagnostic imaging study")


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


def _declare_private_scheme(ds: Dataset) -> None:
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
    return ds


def outline_mask(outline_rc: list[tuple[float, float]], shape: tuple[int, int]) -> np.ndarray:
    """Rasterise a closed (row, col) outline into a boolean mask of ``shape``."""
    from skimage.draw import polygon

    mask = np.zeros(shape, bool)
    if len(outline_rc) >= 3:
        pts = np.asarray(outline_rc, float)
        rr, cc = polygon(pts[:, 0], pts[:, 1], shape=shape)
        mask[rr, cc] = True
    return mask


def _software_version() -> str:
    return f"spineviewer {spineviewer.__version__}"


def _algorithm(result: StudyResult) -> hd.AlgorithmIdentificationSequence:
    model = result.model or {}
    name = str(model.get("name") or "spineviewer-unet")[:64]
    version = str(model.get("version") or model.get("sha256", "")[:12] or "unknown")[:64]
    return hd.AlgorithmIdentificationSequence(
        name=name, version=version,
        family=codes.cid7162.ArtificialIntelligence, source=MANUFACTURER)


def build_seg(result: StudyResult, source: Dataset) -> hd.seg.Segmentation:
    """Binary SEG with one segment per level: the outline rasterised on the source slice.

    Parameters
    ----------
    result : StudyResult
    source : Dataset
        The analysed slice, with pixel data (see `read_source`).

    Returns
    -------
    highdicom.seg.Segmentation
        Segment ``i + 1`` is ``result.vertebrae[i]``; category Anatomical Structure, type the
        level's SNOMED CT vertebra code; vertebrae with an empty outline are left out.
    """
    shape = (int(source.Rows), int(source.Columns))
    masks, descriptions = [], []
    algorithm = _algorithm(result)
    for v in result.vertebrae:
        mask = outline_mask(v.outline_rc, shape)
        if not mask.any():
            logger.warning("vertebra %s has no outline; left out of the SEG", v.level)
            continue
        masks.append(mask)
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=len(masks), segment_label=f"{v.level} vertebral body",
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=level_code(v.level),
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=generate_uid(), tracking_id=f"vertebral body {v.level}"))
    if not masks:
        raise SpineViewerError("no vertebra has an outline: nothing to put in a DICOM SEG")
    pixels = np.stack(masks, axis=-1)[None].astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=[source], pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER["seg"], sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer=MANUFACTURER, manufacturer_model_name=MODEL_NAME,
        software_versions=_software_version(), device_serial_number="0",
        content_label="VERTEBRAE", content_description="Vertebral bodies (SpineViewer)",
        series_description="SpineViewer vertebral bodies", omit_empty_frames=False)
    _declare_private_scheme(seg)
    return seg


#: Measurements of the SR: result field -> unit.
_SR_MEASUREMENTS = (
    ("AH_mm", codes.UCUM.Millimeter), ("PH_mm", codes.UCUM.Millimeter),
    ("MH_mm", codes.UCUM.Millimeter), ("SC_mm", codes.UCUM.Millimeter),
    ("IC_mm", codes.UCUM.Millimeter), ("VA_deg", codes.UCUM.Degree),
    ("wedge_ratio", codes.UCUM.Ratio), ("biconcavity_ratio", codes.UCUM.Ratio),
    ("crush_ratio", codes.UCUM.Ratio),
)


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


def _qualitative(v: VertebraResult) -> list[hd.sr.QualitativeEvaluation]:
    present = codes.SCT.Present if v.final_fracture else codes.SCT.Absent
    grade = f"grade{int(v.genant_grade)}" if f"grade{int(v.genant_grade)}" in PRIVATE_CODES else None
    items = [hd.sr.QualitativeEvaluation(code("fracture"), present)]
    if v.deformity in PRIVATE_CODES:
        items.append(hd.sr.QualitativeEvaluation(code("deformity"), code(v.deformity)))
    if grade:
        items.append(hd.sr.QualitativeEvaluation(code("genant_grade"), code(grade)))
    return items


def _vertebra_group(v: VertebraResult, source: Dataset,
                    algorithm: hd.sr.AlgorithmIdentification
                    ) -> hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations | None:
    if len(v.outline_rc) < 3:
        return None
    region = hd.sr.ImageRegion(
        graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=outline_scoord(v.outline_rc),
        source_image=hd.sr.SourceImageForRegion.from_source_image(source))
    site = hd.sr.FindingSite(anatomic_location=level_code(v.level))
    measurements = [
        hd.sr.Measurement(name=code(name), value=float(getattr(v, name)), unit=unit,
                          algorithm_id=algorithm)
        for name, unit in _SR_MEASUREMENTS if getattr(v, name) is not None]
    return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(), identifier=f"vertebral body {v.level}"),
        referenced_region=region, finding_type=code("vertebral_body"),
        finding_sites=[site], algorithm_id=algorithm, measurements=measurements,
        qualitative_evaluations=_qualitative(v))


def build_sr(result: StudyResult, source: Dataset) -> hd.sr.Comprehensive3DSR:
    """Comprehensive 3D SR (TID 1500 Measurement Report), one group per vertebra.

    Parameters
    ----------
    result : StudyResult
    source : Dataset
        The analysed slice (see `read_source`).

    Returns
    -------
    highdicom.sr.Comprehensive3DSR
        Each group holds the vertebra outline (POLYLINE on the source slice), its level as
        finding site, AH/PH/MH/SC/IC (mm), VA (deg) and the three ratios, and qualitative
        evaluations: fracture present/absent (the final call, after any user override),
        deformity type and Genant grade.
    """
    model = result.model or {}
    algorithm = hd.sr.AlgorithmIdentification(
        name=str(model.get("name") or "spineviewer-unet")[:64],
        version=str(model.get("version") or str(model.get("sha256", ""))[:12] or "unknown")[:64])
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(), name=MODEL_NAME, manufacturer_name=MANUFACTURER,
        model_name=MODEL_NAME)
    context = hd.sr.ObservationContext(observer_device_context=hd.sr.ObserverContext(
        observer_type=codes.DCM.Device, observer_identifying_attributes=device))
    groups = [g for g in (_vertebra_group(v, source, algorithm) for v in result.vertebrae)
              if g is not None]
    report = hd.sr.MeasurementReport(
        observation_context=context, procedure_reported=code("morphometry"),
        imaging_measurements=groups)
    sr = hd.sr.Comprehensive3DSR(
        evidence=[source], content=report[0], series_instance_uid=generate_uid(),
        series_number=SERIES_NUMBER["sr"], sop_instance_uid=generate_uid(), instance_number=1,
        manufacturer=MANUFACTURER, is_complete=True, is_final=False, is_verified=False,
        series_description="SpineViewer vertebral morphometry")
    _declare_private_scheme(sr)
    return sr


#: Patient and study attributes copied from the source image into new objects.
_PATIENT_STUDY_KEYWORDS = (
    "SpecificCharacterSet", "PatientName", "PatientID", "IssuerOfPatientID", "PatientBirthDate",
    "PatientSex", "PatientAge", "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID",
    "AccessionNumber", "ReferringPhysicianName", "StudyDescription",
)


def build_encapsulated_pdf(pdf_bytes: bytes, source: Dataset, *,
                           title: str = "Vertebral morphometry report") -> Dataset:
    """An Encapsulated PDF instance (new series) in the study of ``source``.

    Parameters
    ----------
    pdf_bytes : bytes
        The PDF document (must start with ``%PDF``).
    source : Dataset
        The analysed slice; patient and study attributes are copied from it and it is
        listed in the Source Instance Sequence.
    title : str
        Document Title.

    Returns
    -------
    pydicom.dataset.Dataset
        With file meta, ready for ``save_as(..., enforce_file_format=True)``.
    """
    if not pdf_bytes.startswith(b"%PDF"):
        raise ValueError("not a PDF document")
    now = dt.datetime.now()
    ds = Dataset()
    for kw in _PATIENT_STUDY_KEYWORDS:
        if kw in source:
            setattr(ds, kw, source.data_element(kw).value)
    for kw in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
               "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
        if kw not in ds:
            setattr(ds, kw, "")  # type 2: present, may be empty
    ds.SOPClassUID = ENCAPSULATED_PDF_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "DOC"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = SERIES_NUMBER["pdf"]
    ds.SeriesDescription = "SpineViewer report"
    ds.SeriesDate = ds.ContentDate = now.strftime("%Y%m%d")
    ds.SeriesTime = ds.ContentTime = now.strftime("%H%M%S")
    ds.Manufacturer = MANUFACTURER
    ds.ManufacturerModelName = MODEL_NAME
    ds.SoftwareVersions = _software_version()
    ds.ConversionType = "SD"  # scanned document / synthetic: "SD" for workstation output
    ds.InstanceNumber = 1
    ds.AcquisitionDateTime = now.strftime("%Y%m%d%H%M%S")
    ds.BurnedInAnnotation = "YES"  # the report prints the patient's name and ID
    ds.DocumentTitle = title
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = PDF_CONCEPT
    ds.ConceptNameCodeSequence = [concept]
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    ds.SourceInstanceSequence = [ref]
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    # the value must have even length: pad with a NUL byte as PS3.5 allows for OB
    ds.EncapsulatedDocument = pdf_bytes + (b"\0" if len(pdf_bytes) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf_bytes)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    return ds


def dataset_bytes(ds: Dataset) -> bytes:
    """Serialise a dataset as a DICOM file (preamble + file meta) in memory."""
    from io import BytesIO

    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def build_dicom_outputs(result: StudyResult, pdf_bytes: bytes | None = None,
                        source: Dataset | None = None) -> dict[str, Dataset]:
    """All DICOM objects for ``result``: ``{"seg": ..., "sr": ..., "pdf": ...}``.

    Parameters
    ----------
    result : StudyResult
    pdf_bytes : bytes, optional
        The rendered report; without it no Encapsulated PDF is built.
    source : Dataset, optional
        The analysed slice; read from ``result.source_slice_file`` when not given.
    """
    source = source if source is not None else read_source(result)
    out: dict[str, Dataset] = {"seg": build_seg(result, source), "sr": build_sr(result, source)}
    if pdf_bytes is not None:
        out["pdf"] = build_encapsulated_pdf(pdf_bytes, source)
    return out


def describe(ds: Dataset) -> dict[str, Any]:
    """Short description of a written object (for logs and the send command)."""
    return {"sop_class_uid": str(ds.SOPClassUID), "sop_instance_uid": str(ds.SOPInstanceUID),
            "modality": str(ds.get("Modality", "")), "series_number": ds.get("SeriesNumber")}


def write_dicom_outputs(result: StudyResult, out_dir: str | Path, *, overwrite: bool = False,
                        pdf_bytes: bytes | None = None, include_pdf: bool = True,
                        paper: str = "A4") -> list[Path]:
    """Write SEG, SR and (by default) the report as Encapsulated PDF into ``out_dir``.

    Parameters
    ----------
    result : StudyResult
    out_dir : str or Path
        Created when missing; files ``vertebrae_seg.dcm``, ``morphometry_sr.dcm``,
        ``report_pdf.dcm``.
    overwrite : bool
        Otherwise an existing file raises ``ExportExists`` and nothing is written.
    pdf_bytes : bytes, optional
        An already rendered report; rendered here (``paper``) when None and ``include_pdf``.

    Returns
    -------
    list of Path
    """
    from spineviewer.io.export import DICOM_NAMES, write_files

    if include_pdf and pdf_bytes is None:
        from spineviewer.io.report_pdf import build_report_pdf

        pdf_bytes = build_report_pdf(result, paper=paper)
    objects = build_dicom_outputs(result, pdf_bytes if include_pdf else None)
    out = Path(out_dir)
    return write_files({out / DICOM_NAMES[k]: dataset_bytes(ds) for k, ds in objects.items()},
                       overwrite=overwrite)
