"""Scan a folder tree of DICOM files into a patient / study / series index (headers only)."""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from spineviewer.core.dicom import headers as hdr
from spineviewer.core.dicom import reading
from spineviewer.core.errors import Cancelled, NoDicomFound

log = logging.getLogger(__name__)

ProgressFn = Callable[[float, str], None]
CancelFn = Callable[[], bool]

#: Values longer than this stay on disk while indexing (pixel data, vendor blobs).
_DEFER_BYTES = 512
#: A plane is named after the patient axis its normal is within this angle of.
PLANE_TOLERANCE_DEG = 30.0
#: Modalities whose objects carry no image to analyse.
NON_IMAGE_MODALITIES = frozenset(
    {"SR", "SEG", "PR", "KO", "DOC", "RTSTRUCT", "RTPLAN", "RTDOSE", "REG", "RWV", "PLAN"}
)
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
_DEFLATED = "1.2.840.10008.1.2.1.99"


@dataclass(frozen=True)
class SeriesInfo:
    """One series of the index: what the browser shows and what series choice scores.

    Notes
    -----
    ``files`` are sorted along the slice normal (then InstanceNumber); ``pixel_spacing_mm`` is
    (row, col) spacing; ``image_orientation`` the six ImageOrientationPatient cosines.
    """

    series_uid: str
    study_uid: str
    patient_id: str
    patient_name: str
    study_date: str
    study_description: str
    series_description: str
    series_number: int | None
    modality: str
    manufacturer: str
    field_strength_T: float | None
    echo_time_ms: float | None
    repetition_time_ms: float | None
    image_orientation: tuple[float, ...] | None
    plane: str
    n_slices: int
    rows: int
    cols: int
    pixel_spacing_mm: tuple[float, float] | None
    slice_thickness_mm: float | None
    files: tuple[str, ...]
    protocol_name: str = ""
    sequence_name: str = ""
    scanning_sequence: str = ""
    inversion_time_ms: float | None = None
    image_type: tuple[str, ...] = ()
    n_frames: int = 1  # frames per file (> 1 for enhanced multi-frame objects)

    @property
    def label(self) -> str:
        """Short human label, e.g. ``#3 t2_tse_sag``."""
        num = f"#{self.series_number} " if self.series_number is not None else ""
        return f"{num}{self.series_description or '(no description)'}"


@dataclass(frozen=True)
class StudyEntry:
    """One study of the index, for the browser tree."""

    study_uid: str
    study_date: str
    study_description: str
    patient_id: str
    series: tuple[SeriesInfo, ...]


@dataclass(frozen=True)
class PatientEntry:
    """One patient of the index, for the browser tree."""

    patient_id: str
    patient_name: str
    studies: tuple[StudyEntry, ...]


@dataclass
class StudyIndex:
    """All image series found under ``root`` and the files that were skipped (path, why)."""

    root: str
    series: list[SeriesInfo] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    n_files: int = 0

    def get(self, series_uid: str) -> SeriesInfo | None:
        """The series with this SeriesInstanceUID, or None."""
        return next((s for s in self.series if s.series_uid == series_uid), None)

    def studies(self) -> list[StudyEntry]:
        """Series grouped by study, in order of first appearance, series by number."""
        groups: dict[str, list[SeriesInfo]] = defaultdict(list)
        for s in self.series:
            groups[s.study_uid].append(s)
        out = []
        for uid, members in groups.items():
            first = members[0]
            members.sort(key=lambda s: (s.series_number is None, s.series_number or 0))
            out.append(StudyEntry(uid, first.study_date, first.study_description,
                                  first.patient_id, tuple(members)))
        return out

    def patients(self) -> list[PatientEntry]:
        """Studies grouped by patient (PatientID), for the browser tree."""
        groups: dict[str, list[StudyEntry]] = defaultdict(list)
        names: dict[str, str] = {}
        for st in self.studies():
            groups[st.patient_id].append(st)
            names.setdefault(st.patient_id, st.series[0].patient_name)
        return [PatientEntry(pid, names[pid], tuple(sts)) for pid, sts in groups.items()]


@dataclass
class _FileRecord:
    path: str
    series_uid: str
    ds: Dataset  # header only; pixel data deferred, never read here


class _Skip(Exception):
    """A file that is not an indexable image; the message says why."""


def scan_folder(path: str | os.PathLike, progress: ProgressFn | None = None,
                cancel: CancelFn | None = None,
                files: Iterable[str | os.PathLike] | None = None) -> StudyIndex:
    """Index every DICOM image under ``path`` (a folder tree or a single file).

    Parameters
    ----------
    path : str or PathLike
        Folder (searched recursively, any file names) or one file.
    progress : callable, optional
        ``progress(fraction, message)`` with fraction in [0, 1].
    cancel : callable, optional
        ``cancel() -> bool`` polled before each file; True raises ``Cancelled``.
    files : iterable of paths, optional
        Index exactly these files instead of walking ``path`` (the batch runner passes the
        files of one study; ``path`` then only names the study in messages).

    Returns
    -------
    StudyIndex
        Image series (non-image objects, DICOMDIR, non-DICOM and broken files are listed in
        ``skipped`` with the reason).

    Raises
    ------
    NoDicomFound
        The path does not exist or holds no readable DICOM image.
    """
    root = Path(path)
    if files is None and not root.exists():
        raise NoDicomFound(f"folder {str(root)!r} does not exist")
    if files is not None:
        files = sorted(str(f) for f in files)
    else:
        files = [str(root)] if root.is_file() else sorted(_walk(root))
    index = StudyIndex(root=str(root), n_files=len(files))
    records: list[_FileRecord] = []
    step = max(1, len(files) // 100)
    for i, f in enumerate(files):
        if cancel is not None and cancel():
            raise Cancelled("indexing cancelled")
        if progress is not None and i % step == 0:
            progress(i / max(1, len(files)), f"reading headers {i + 1}/{len(files)}")
        try:
            records.append(_read_record(f))
        except _Skip as why:
            index.skipped.append((f, str(why)))
        except Exception as exc:  # noqa: BLE001 - a damaged header skips the file, not the study
            index.skipped.append((f, f"unreadable DICOM: {type(exc).__name__}"))
    index.series = _group(records)
    if progress is not None:
        progress(1.0, f"{len(index.series)} series in {len(files)} files")
    if not index.series:
        raise NoDicomFound(_nothing_found_message(root, files, index.skipped))
    if index.skipped:
        log.info("indexing %s: %d of %d files skipped", root, len(index.skipped), len(files))
    return index


def probe_file(path: str) -> tuple[str | None, str | None]:
    """Read one file's header: ``(StudyInstanceUID, None)`` for an indexable image, else
    ``(None, reason)`` with the reason `scan_folder` would give for skipping it."""
    try:
        record = _read_record(path)
    except _Skip as why:
        return None, str(why)
    except Exception as exc:  # noqa: BLE001 - as in scan_folder: a damaged header skips it
        return None, f"unreadable DICOM: {type(exc).__name__}"
    return hdr.text(record.ds, "StudyInstanceUID"), None


def _walk(root: Path) -> Iterable[str]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith("."):
                yield os.path.join(dirpath, name)


def _nothing_found_message(root: Path, files: list[str], skipped: list[tuple[str, str]]) -> str:
    if not files:
        return f"no files in {str(root)!r}"
    reasons = Counter(why.split(":")[0] for _, why in skipped)
    detail = ", ".join(f"{n} {why}" for why, n in reasons.most_common(3))
    return f"no DICOM image found in {str(root)!r} ({len(files)} files: {detail})"


def _read_record(path: str) -> _FileRecord:
    ds = _read_header(path)
    sop_class = str(ds.get("SOPClassUID", "") or ds.file_meta.get("MediaStorageSOPClassUID", ""))
    if sop_class == _DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        raise _Skip("DICOMDIR (directory file, not an image)")
    modality = str(ds.get("Modality", "") or "")
    if modality.upper() in NON_IMAGE_MODALITIES:
        raise _Skip(f"not an image: {modality} object")
    uid = str(ds.get("SeriesInstanceUID", "") or "")
    pixel = ds.get_item("PixelData", keep_deferred=True)
    if pixel is None or not uid or "Rows" not in ds:
        if len(ds) < 5 or not uid:
            raise _Skip("incomplete DICOM header: file truncated or damaged")
        raise _Skip("not an image: no pixel data")
    if reading.transfer_syntax(ds) != _DEFLATED:  # offsets of a deflated file are inflated ones
        _check_complete(path, pixel)
    return _FileRecord(path, uid, ds)


def _read_header(path: str) -> Dataset:
    try:
        return reading.read_dataset(path, defer_size=_DEFER_BYTES)
    except reading.UnreadableFile as why:
        raise _Skip(str(why)) from None


def _check_complete(path: str, pixel) -> None:
    """Raise _Skip when the pixel data runs past the end of the file (truncated copy)."""
    tell = getattr(pixel, "value_tell", None)
    length = getattr(pixel, "length", None)
    if tell is None or length is None or length == 0xFFFFFFFF:
        return
    if tell + length > os.path.getsize(path):
        raise _Skip("truncated: pixel data ends before its declared length")


def _group(records: list[_FileRecord]) -> list[SeriesInfo]:
    by_uid: dict[str, list[_FileRecord]] = defaultdict(list)
    for r in records:
        by_uid[r.series_uid].append(r)
    series = [_series_info(members) for members in by_uid.values()]
    series.sort(key=lambda s: (s.patient_id, s.study_uid,
                               s.series_number is None, s.series_number or 0, s.series_uid))
    return series


def _series_info(members: list[_FileRecord]) -> SeriesInfo:
    first = members[0].ds
    iops = [hdr.orientation(m.ds) for m in members]
    iop = iops[0]
    consistent = all(o is not None and iop is not None and np.allclose(o, iop, atol=1e-3)
                     for o in iops)
    plane = plane_of(iop) if consistent else "unknown"
    members = _sorted_members(members, iop if consistent else None)
    n_frames = hdr.int_value(first, "NumberOfFrames") or 1
    return SeriesInfo(
        series_uid=members[0].series_uid,
        study_uid=hdr.text(first, "StudyInstanceUID"),
        patient_id=hdr.text(first, "PatientID"),
        patient_name=hdr.text(first, "PatientName"),
        study_date=hdr.text(first, "StudyDate"),
        study_description=hdr.text(first, "StudyDescription"),
        series_description=hdr.text(first, "SeriesDescription"),
        series_number=hdr.int_value(first, "SeriesNumber"),
        modality=hdr.text(first, "Modality"),
        manufacturer=hdr.text(first, "Manufacturer"),
        field_strength_T=hdr.field_strength_T(first),
        echo_time_ms=hdr.echo_time_ms(first),
        repetition_time_ms=hdr.repetition_time_ms(first),
        image_orientation=iop if consistent else None,
        plane=plane,
        n_slices=len(members) * n_frames,
        rows=hdr.int_value(first, "Rows") or 0,
        cols=hdr.int_value(first, "Columns") or 0,
        pixel_spacing_mm=hdr.pixel_spacing_mm(first),
        slice_thickness_mm=hdr.slice_thickness_mm(first),
        files=tuple(m.path for m in members),
        protocol_name=hdr.text(first, "ProtocolName"),
        sequence_name=hdr.sequence_name(first),
        scanning_sequence=hdr.text(first, "ScanningSequence"),
        inversion_time_ms=hdr.float_value(first, "InversionTime"),
        image_type=tuple(str(v) for v in (first.get("ImageType") or ())),
        n_frames=n_frames,
    )


def _sorted_members(members: list[_FileRecord], iop: tuple[float, ...] | None):
    def key(m: _FileRecord):
        pos = hdr.position(m.ds)
        along = float(np.dot(slice_normal(iop), pos)) if iop is not None and pos is not None else 0.0
        return (along, hdr.int_value(m.ds, "InstanceNumber") or 0, m.path)

    return sorted(members, key=key)


def slice_normal(iop: Iterable[float]) -> np.ndarray:
    """Unit normal (LPS) of a slice: row direction cosines x column direction cosines."""
    v = np.asarray(tuple(iop), dtype=float)
    n = np.cross(v[:3], v[3:])
    norm = np.linalg.norm(n)
    return n / norm if norm > 0 else n


def plane_of(iop: Iterable[float] | None, tolerance_deg: float = PLANE_TOLERANCE_DEG) -> str:
    """Name the imaging plane from ImageOrientationPatient.

    Returns "sagittal" (normal along patient x, left-right), "coronal" (y), "axial" (z),
    "oblique" when the normal is further than ``tolerance_deg`` from every axis, or "unknown"
    when the orientation is missing or degenerate.
    """
    if iop is None:
        return "unknown"
    n = np.abs(slice_normal(iop))
    if not np.isfinite(n).all() or n.max() < 0.5:
        return "unknown"
    axis = int(np.argmax(n))
    if n[axis] < np.cos(np.deg2rad(tolerance_deg)):
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]
