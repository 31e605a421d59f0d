"""Encapsulated PDF (PS3.3 A.45.1) written with pydicom: highdicom has no builder for it."""

from __future__ import annotations

import datetime as dt

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from spineviewer.io.dicom_common import MANUFACTURER, MODEL_NAME, SERIES_NUMBER, software_version

ENCAPSULATED_PDF_STORAGE = "1.2.840.10008.5.1.4.1.1.104.1"
#: LOINC 18748-4 "Diagnostic imaging study" is the document title code PACS use for reports.
PDF_CONCEPT = ("18748-4", "LN", "Diagnostic imaging study")

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
    ds.SoftwareVersions = software_version()
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
