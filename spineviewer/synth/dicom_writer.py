"""MR Image Storage datasets for phantom series, in the tag style of three vendors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

#: Vendor tag styles (names as the scanners write them; model names per field strength).
VENDORS: dict[str, dict] = {
    "siemens": {"Manufacturer": "SIEMENS", "models": {1.5: "Avanto_fit", 3.0: "Skyra_fit"},
                "t2": "t2_tse_sag_{cols}", "t1": "t1_tse_sag", "ax": "t2_tse_tra",
                "stir": "t2_tirm_sag",
                "SequenceName": "*tse2d1_21", "SoftwareVersions": "syngo MR E11"},
    "ge": {"Manufacturer": "GE MEDICAL SYSTEMS", "models": {1.5: "SIGNA Artist", 3.0: "DISCOVERY MR750"},
           "t2": "Sag T2 FRFSE", "t1": "Sag T1 FSE", "ax": "Ax T2 FRFSE", "stir": "Sag STIR",
           "SequenceName": "frfse2d", "SoftwareVersions": "28\\LX\\MR Software release:RX28.0"},
    "philips": {"Manufacturer": "Philips Medical Systems", "models": {1.5: "Ingenia", 3.0: "Achieva dStream"},
                "t2": "T2W_TSE_SAG", "t1": "T1W_TSE_SAG", "ax": "T2W_TSE_TRA",
                "stir": "STIR_SAG",
                "SequenceName": "TSE", "SoftwareVersions": "5.6.1\\5.6.1.2"},
}

#: Larmor frequency of hydrogen, MHz per tesla (ImagingFrequency).
GYROMAGNETIC_MHZ_PER_T = 42.577


def uid_for(seed: int, *parts: object) -> str:
    """Deterministic UID from the study seed and a name (pydicom root prefix + hash)."""
    return str(generate_uid(entropy_srcs=[f"spineviewer-phantom-{seed}", *map(str, parts)]))


@dataclass
class SeriesSpec:
    """One series: acquisition parameters and geometry (positions in LPS mm)."""

    series_uid: str
    series_number: int
    description: str
    echo_time_ms: float
    repetition_time_ms: float
    orientation: tuple[float, ...]
    positions: list[tuple[float, float, float]]
    pixel_spacing_mm: tuple[float, float]
    slice_thickness_mm: float
    spacing_between_mm: float
    echo_train_length: int = 17
    inversion_time_ms: float | None = None  # set for inversion-recovery series (STIR)


@dataclass
class StudySpec:
    """Study-level attributes shared by every series."""

    seed: int
    vendor: str
    field_strength_T: float
    study_uid: str
    frame_uid: str
    patient_name: str
    patient_id: str
    study_date: str
    study_time: str


def _base(study: StudySpec, series: SeriesSpec, sop_uid: str) -> Dataset:
    v = VENDORS[study.vendor]
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = uid_for(0, "implementation")
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = ds.AcquisitionDate = study.study_date
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = study.study_time
    ds.AccessionNumber = f"ACC{study.seed:06d}"
    ds.Modality = "MR"
    ds.Manufacturer = v["Manufacturer"]
    ds.ManufacturerModelName = v["models"][1.5 if study.field_strength_T < 2 else 3.0]
    ds.SoftwareVersions = v["SoftwareVersions"]
    ds.InstitutionName = "SpineViewer Phantom Institute"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "LWS" if study.vendor == "siemens" else "L-SPINE"
    ds.SeriesDescription = series.description
    ds.ProtocolName = series.description
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.BodyPartExamined = "LSPINE"
    ds.ScanningSequence = "SE"
    ds.SequenceVariant = ["SK", "SP", "OSP"] if study.vendor == "siemens" else ["SK", "SP"]
    ds.ScanOptions = ""
    ds.MRAcquisitionType = "2D"
    ds.SequenceName = v["SequenceName"]
    ds.SliceThickness = f"{series.slice_thickness_mm:.2f}"
    ds.SpacingBetweenSlices = f"{series.spacing_between_mm:.2f}"
    ds.RepetitionTime = f"{series.repetition_time_ms:.1f}"
    ds.EchoTime = f"{series.echo_time_ms:.1f}"
    ds.EchoTrainLength = series.echo_train_length
    ds.NumberOfAverages = "2"
    ds.ImagingFrequency = f"{GYROMAGNETIC_MHZ_PER_T * study.field_strength_T:.6f}"
    ds.ImagedNucleus = "1H"
    ds.MagneticFieldStrength = f"{study.field_strength_T:.1f}"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = series.series_uid
    ds.StudyID = f"{study.seed % 100000}"
    ds.SeriesNumber = series.series_number
    ds.AcquisitionNumber = 1
    ds.FrameOfReferenceUID = study.frame_uid
    ds.PositionReferenceIndicator = ""
    ds.ImageOrientationPatient = [f"{x:g}" for x in series.orientation]
    ds.ImagesInAcquisition = len(series.positions)
    if series.inversion_time_ms is not None:
        ds.ScanningSequence = ["SE", "IR"]
        ds.InversionTime = f"{series.inversion_time_ms:.0f}"
    return ds


def mr_dataset(study: StudySpec, series: SeriesSpec, index: int, stored: np.ndarray,
               slope: float, intercept: float, instance_number: int) -> Dataset:
    """A complete MR image dataset for slice ``index`` of ``series``.

    ``stored`` are the 12-bit stored values (uint16); real = stored * slope + intercept.
    """
    sop = uid_for(study.seed, series.series_uid, "sop", index)
    ds = _base(study, series, sop)
    ds.InstanceNumber = instance_number
    ds.ImagePositionPatient = [f"{x:.4f}" for x in series.positions[index]]
    ds.SliceLocation = f"{series.positions[index][0]:.4f}"
    ds.PixelSpacing = [f"{series.pixel_spacing_mm[0]:.6g}", f"{series.pixel_spacing_mm[1]:.6g}"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleSlope = f"{slope:.8g}"
    ds.RescaleIntercept = f"{intercept:.8g}"
    ds.RescaleType = "US"
    real = stored.astype(np.float64) * slope + intercept
    ds.WindowCenter = f"{np.percentile(real, 99) / 2:.0f}"
    ds.WindowWidth = f"{max(np.percentile(real, 99), 1.0):.0f}"
    ds.PixelData = np.ascontiguousarray(stored.astype(np.uint16)).tobytes()
    return ds


def to_stored(real: np.ndarray, slope: float, intercept: float) -> np.ndarray:
    """Real values -> 12-bit stored values (rounded and clipped to 0..4095)."""
    return np.clip(np.rint((real - intercept) / slope), 0, 4095).astype(np.uint16)
