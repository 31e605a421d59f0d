"""Small DICOM MR series written with pydicom, for tests (no dependency on spineviewer.synth).

Each vendor style mimics how that manufacturer fills the headers that matter for series choice:
SeriesDescription wording, MagneticFieldStrength units, where TE/TR are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

SAGITTAL_IOP = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
AXIAL_IOP = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL_IOP = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


@dataclass
class SeriesSpec:
    """What to write; defaults are a paper-like sagittal T2 (TE 100 ms, TR 3500 ms)."""

    description: str = "T2 SAG"
    te_ms: float | None = 100.0
    tr_ms: float | None = 3500.0
    iop: tuple[float, ...] = SAGITTAL_IOP
    n_slices: int = 7
    rows: int = 64
    cols: int = 48
    pixel_spacing_mm: tuple[float, float] = (0.6, 0.6)
    thickness_mm: float = 4.0
    gap_mm: float = 0.0
    vendor: str = "SIEMENS"  # SIEMENS | GE | PHILIPS
    field_strength: float = 3.0
    slope: float | None = None
    intercept: float | None = None
    series_number: int = 1
    modality: str = "MR"
    patient_id: str = "PAT1"
    patient_name: str = "Test^Patient"
    study_uid: str = ""
    series_uid: str = field(default_factory=generate_uid)
    pixels: Callable[[int, SeriesSpec], np.ndarray] | None = None  # (slice index, spec) -> stored
    file_names: str = "plain"  # plain (IM0001) | dcm (x.dcm) | uid
    shuffle_instance_numbers: bool = False
    te_private_only: bool = False  # Philips: standard EchoTime left empty, TE in group 2001


def default_pixels(i: int, spec: SeriesSpec) -> np.ndarray:
    """Stored values: a ramp plus 100 * slice index, so slice order and rescale are checkable."""
    r, c = np.mgrid[0:spec.rows, 0:spec.cols]
    return (r * 10 + c + 100 * i).astype(np.uint16)


def _vendor_headers(ds: Dataset, spec: SeriesSpec) -> None:
    if spec.vendor == "SIEMENS":
        ds.Manufacturer = "SIEMENS"
        ds.ManufacturerModelName = "Skyra"
        ds.MagneticFieldStrength = spec.field_strength
        ds.SequenceName = "*tse2d1_17" if (spec.te_ms or 0) >= 60 else "*tse2d1_3"
    elif spec.vendor == "GE":
        ds.Manufacturer = "GE MEDICAL SYSTEMS"
        # older GE systems store the field strength in gauss
        ds.MagneticFieldStrength = spec.field_strength * 10000
        ds.add_new((0x0019, 0x0010), "LO", "GEMS_ACQU_01")
        ds.add_new((0x0019, 0x109C), "LO", "frfse")
    elif spec.vendor == "PHILIPS":
        ds.Manufacturer = "Philips Medical Systems"
        ds.MagneticFieldStrength = spec.field_strength
        ds.add_new((0x2001, 0x0010), "LO", "Philips Imaging DD 001")
        if spec.te_ms is not None:
            # Philips keeps a display copy of TE in its private group
            ds.add_new((0x2001, 0x1025), "SH", f"{spec.te_ms:g}")
    else:
        raise ValueError(spec.vendor)


def dataset_with_meta(sop_class_uid: str) -> Dataset:
    """An empty dataset with file meta (explicit VR little endian) and its SOP UIDs set."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    return ds


def make_dataset(spec: SeriesSpec, i: int, pixels: np.ndarray) -> Dataset:
    """One MR image dataset of the series (slice ``i``), with file meta."""
    ds = dataset_with_meta(MRImageStorage)
    ds.Modality = spec.modality
    ds.PatientID = spec.patient_id
    ds.PatientName = spec.patient_name
    ds.StudyInstanceUID = spec.study_uid
    ds.StudyDate = "20240102"
    ds.StudyDescription = "LWS"
    ds.SeriesInstanceUID = spec.series_uid
    ds.SeriesNumber = spec.series_number
    ds.SeriesDescription = spec.description
    ds.ProtocolName = spec.description
    ds.InstanceNumber = (spec.n_slices - i) if spec.shuffle_instance_numbers else i + 1
    _vendor_headers(ds, spec)
    if spec.te_ms is not None:
        ds.EchoTime = "" if spec.te_private_only else spec.te_ms
    if spec.tr_ms is not None:
        ds.RepetitionTime = spec.tr_ms
    iop = np.asarray(spec.iop, float)
    normal = np.cross(iop[:3], iop[3:])
    step = spec.thickness_mm + spec.gap_mm
    origin = np.array([-20.0, -30.0, 40.0])
    ds.ImageOrientationPatient = [f"{v:g}" for v in iop]
    ds.ImagePositionPatient = [f"{v:.4f}" for v in origin + normal * step * (i - spec.n_slices // 2)]
    ds.PixelSpacing = [f"{v:g}" for v in spec.pixel_spacing_mm]
    ds.SliceThickness = spec.thickness_mm
    ds.Rows, ds.Columns = spec.rows, spec.cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    if spec.slope is not None:
        ds.RescaleSlope = spec.slope
        ds.RescaleIntercept = spec.intercept or 0.0
        ds.RescaleType = "US"
    ds.PixelData = np.ascontiguousarray(pixels, dtype=np.uint16).tobytes()
    return ds


def write_series(folder: str | Path, spec: SeriesSpec) -> list[Path]:
    """Write ``spec`` as one file per slice into ``folder``; return the paths in slice order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not spec.study_uid:
        spec.study_uid = generate_uid()
    make_pixels = spec.pixels or default_pixels
    paths = []
    for i in range(spec.n_slices):
        ds = make_dataset(spec, i, make_pixels(i, spec))
        if spec.file_names == "dcm":
            name = f"s{spec.series_number:03d}_{i:04d}.dcm"
        elif spec.file_names == "uid":
            name = ds.SOPInstanceUID
        else:
            name = f"IM{spec.series_number:03d}{i:04d}"
        path = folder / name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def write_study(folder: str | Path, specs: list[SeriesSpec]) -> dict[str, list[Path]]:
    """Write several series of one study (shared StudyInstanceUID), each in a subfolder."""
    study_uid = generate_uid()
    out = {}
    for n, spec in enumerate(specs, start=1):
        spec.study_uid = study_uid
        spec.series_number = n
        out[spec.series_uid] = write_series(Path(folder) / f"series{n}", spec)
    return out


def typical_study() -> list[SeriesSpec]:
    """Sagittal T2, sagittal T1 and axial T2, as a lumbar MRI study has them."""
    return [
        SeriesSpec(description="t2_tse_sag", te_ms=102.0, tr_ms=3500.0),
        SeriesSpec(description="t1_tse_sag", te_ms=10.0, tr_ms=600.0),
        SeriesSpec(description="t2_tse_tra", te_ms=100.0, tr_ms=4000.0, iop=AXIAL_IOP,
                   n_slices=5),
    ]


def write_enhanced(path: str | Path, spec: SeriesSpec) -> Path:
    """Write ``spec`` as one Enhanced MR multi-frame file: geometry, TE/TR and rescale only in
    the functional groups (Philips-style), frames stored in reverse slice order."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not spec.study_uid:
        spec.study_uid = generate_uid()
    make_pixels = spec.pixels or default_pixels
    order = list(range(spec.n_slices))[::-1]
    ds = make_dataset(spec, 0, np.stack([make_pixels(i, spec) for i in order]))
    enhanced = "1.2.840.10008.5.1.4.1.1.4.1"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = enhanced
    ds.NumberOfFrames = spec.n_slices
    for keyword in ("EchoTime", "RepetitionTime", "ImageOrientationPatient",
                    "ImagePositionPatient", "PixelSpacing", "SliceThickness",
                    "RescaleSlope", "RescaleIntercept", "RescaleType"):
        if keyword in ds:
            delattr(ds, keyword)
    iop = np.asarray(spec.iop, float)
    normal = np.cross(iop[:3], iop[3:])
    shared = Dataset()
    pm = Dataset()
    pm.PixelSpacing = list(spec.pixel_spacing_mm)
    pm.SliceThickness = spec.thickness_mm
    po = Dataset()
    po.ImageOrientationPatient = list(iop)
    timing = Dataset()
    timing.RepetitionTime = spec.tr_ms
    echo = Dataset()
    echo.EffectiveEchoTime = spec.te_ms
    shared.PixelMeasuresSequence = [pm]
    shared.PlaneOrientationSequence = [po]
    shared.MRTimingAndRelatedParametersSequence = [timing]
    shared.MREchoSequence = [echo]
    if spec.slope is not None:
        pvt = Dataset()
        pvt.RescaleSlope = spec.slope
        pvt.RescaleIntercept = spec.intercept or 0.0
        pvt.RescaleType = "US"
        shared.PixelValueTransformationSequence = [pvt]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    step = spec.thickness_mm + spec.gap_mm
    for i in order:
        item, pp = Dataset(), Dataset()
        pos = np.array([-20.0, -30.0, 40.0]) + normal * step * (i - spec.n_slices // 2)
        pp.ImagePositionPatient = [round(float(v), 4) for v in pos]
        item.PlanePositionSequence = [pp]
        frames.append(item)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.save_as(path, enforce_file_format=True)
    return path
