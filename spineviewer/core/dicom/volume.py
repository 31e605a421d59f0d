"""Load a series' pixels as a float32 volume in modality units, sorted along the slice normal."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from spineviewer.core.dicom import headers as hdr
from spineviewer.core.dicom import reading
from spineviewer.core.dicom.index import SeriesInfo, slice_normal
from spineviewer.core.errors import UnreadableSeries

log = logging.getLogger(__name__)


@dataclass
class Volume:
    """Pixels and geometry of one series.

    Attributes
    ----------
    pixels : ndarray, float32, (n, rows, cols)
        Modality values (RescaleSlope / RescaleIntercept applied), slices sorted by position
        along the slice normal (row cosines x column cosines).
    pixel_spacing_mm : (float, float)
        (row, col) spacing: distance between row centres, between column centres.
    image_orientation : tuple of 6 float or None
        ImageOrientationPatient shared by the slices.
    image_positions : ndarray (n, 3)
        ImagePositionPatient (LPS mm) of each slice; NaN when a file had none.
    sop_instance_uids : list of str
    datasets : list of Dataset
        Headers of each slice, PixelData removed (for DICOM SEG / SR output).
    files : list of str
        Source file of each slice (the same file repeats for multi-frame objects).
    skipped : list of (file, why)
        Files of the series that could not be read.
    centre : int or None
        Index of the series' centre slice when files were skipped (set by ``load_series``).
    """

    pixels: np.ndarray
    pixel_spacing_mm: tuple[float, float]
    image_orientation: tuple[float, ...] | None
    image_positions: np.ndarray
    sop_instance_uids: list[str]
    datasets: list[Dataset]
    series: SeriesInfo
    files: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    centre: int | None = None

    @property
    def n_slices(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def centre_index(self) -> int:
        """Centre slice of the series, the centre-left one when the count is even (as the
        paper); counted over the series' files, so a skipped edge file does not move it."""
        return self.centre if self.centre is not None else (self.n_slices - 1) // 2

    def slice(self, i: int) -> np.ndarray:
        """Slice ``i`` as a (rows, cols) float32 view."""
        return self.pixels[i]

    @property
    def centre_dataset(self) -> Dataset:
        """Header of the centre slice (no pixel data)."""
        return self.datasets[self.centre_index]


@dataclass
class _Frame:
    pixels: np.ndarray  # (rows, cols) float32, modality values
    position: tuple[float, ...] | None
    instance: int
    ds: Dataset
    sop_uid: str
    path: str


def load_series(series_info: SeriesInfo) -> Volume:
    """Read every file of ``series_info`` into a :class:`Volume`.

    Unreadable files are skipped with a logged warning as long as most files and the centre
    file load; the centre is the slice the analysis uses.

    Raises
    ------
    UnreadableSeries
        No file, the centre file, or half or more of the files cannot be read.
    """
    files = list(series_info.files)
    if not files:
        raise UnreadableSeries(f"series {series_info.label!r} has no files")
    frames: list[_Frame] = []
    skipped: list[tuple[str, str]] = []
    for f in files:
        try:
            frames.extend(_read_frames(f))
        except Exception as exc:  # noqa: BLE001 - any decoder/parser failure skips the file
            why = str(exc) if isinstance(exc, reading.UnreadableFile) else \
                f"{type(exc).__name__}: {exc}".splitlines()[0].split(" - ")[0][:160]
            skipped.append((f, why))
            log.warning("skipping unreadable file %s (%s)", f, why)
    _check_enough(series_info, files, skipped)
    frames = _same_shape(frames, skipped)
    frames = _sort_frames(frames, series_info.image_orientation)
    positions = np.array([fr.position if fr.position is not None else (np.nan,) * 3
                          for fr in frames], dtype=float)
    spacing = series_info.pixel_spacing_mm or hdr.pixel_spacing_mm(frames[0].ds)
    if spacing is None:  # shown in 1 mm pixels; `checks.check_input` refuses to measure it
        log.info("series %s has no usable PixelSpacing", series_info.series_uid)
        spacing = (1.0, 1.0)
    return Volume(
        pixels=np.stack([fr.pixels for fr in frames]).astype(np.float32, copy=False),
        pixel_spacing_mm=(float(spacing[0]), float(spacing[1])),
        image_orientation=series_info.image_orientation or hdr.orientation(frames[0].ds),
        image_positions=positions,
        sop_instance_uids=[fr.sop_uid for fr in frames],
        datasets=[fr.ds for fr in frames],
        series=series_info,
        files=[fr.path for fr in frames],
        skipped=skipped,
        centre=_centre_after_skips(frames, files, skipped),
    )


def _centre_after_skips(frames: list[_Frame], files: list[str],
                        skipped: list[tuple[str, str]]) -> int | None:
    """Index in ``frames`` of the series' centre file when files were skipped, else None."""
    if not skipped or len(frames) != len({fr.path for fr in frames}):
        return None  # nothing skipped, or multi-frame: the plain centre is right
    centre_file = files[(len(files) - 1) // 2]
    return next((k for k, fr in enumerate(frames) if fr.path == centre_file), None)


def _check_enough(series: SeriesInfo, files: list[str], skipped: list[tuple[str, str]]) -> None:
    bad = {f for f, _ in skipped}
    name = series.label
    if len(bad) == len(files):
        raise UnreadableSeries(f"no file of series {name!r} can be read ({skipped[0][1]})")
    centre = files[(len(files) - 1) // 2]
    if centre in bad:
        raise UnreadableSeries(f"the centre slice of series {name!r} cannot be read "
                               f"({dict(skipped)[centre]})")
    if 2 * len(bad) >= len(files):
        raise UnreadableSeries(f"{len(bad)} of {len(files)} files of series {name!r} "
                               "cannot be read")


def _read_frames(path: str) -> list[_Frame]:
    ds = reading.read_dataset(path)
    stored = reading.decode_pixels(ds, path)
    n_frames = hdr.int_value(ds, "NumberOfFrames") or 1
    if stored.ndim == 3 and ds.get("SamplesPerPixel", 1) != 1:
        raise ValueError("colour image, not an MR magnitude image")
    stored = stored.reshape((n_frames, *stored.shape[-2:]))
    values = _rescale(stored, ds)
    del ds.PixelData  # keep the header only
    sop = hdr.text(ds, "SOPInstanceUID")
    instance = hdr.int_value(ds, "InstanceNumber") or 0
    if n_frames == 1:
        return [_Frame(values[0], hdr.position(ds), instance, ds, sop, path)]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    out = []
    for k in range(n_frames):
        pos = _frame_position(per_frame[k]) if k < len(per_frame) else None
        out.append(_Frame(values[k], pos, instance * 10000 + k, ds, sop, path))
    return out


def _frame_position(item: Dataset) -> tuple[float, ...] | None:
    try:
        return tuple(float(v) for v in item.PlanePositionSequence[0].ImagePositionPatient)
    except (AttributeError, IndexError, TypeError, ValueError):
        return None


def full_scale_value(stored: int, ds: Dataset) -> float | None:
    """The modality value of one stored value (RescaleSlope / Intercept applied), or None
    when the rescale is out of range."""
    try:
        return float(_rescale(np.array([stored]), ds)[0])
    except ValueError:
        return None


def _rescale(stored: np.ndarray, ds: Dataset) -> np.ndarray:
    """Modality values = stored * RescaleSlope + RescaleIntercept (identity when absent)."""
    slope = hdr.float_value(ds, "RescaleSlope")
    intercept = hdr.float_value(ds, "RescaleIntercept")
    # enhanced objects keep them in the Pixel Value Transformation functional group
    if slope is None:
        slope = hdr.float_value_of(hdr.functional(ds, "PixelValueTransformationSequence",
                                                  "RescaleSlope"))
    if intercept is None:
        intercept = hdr.float_value_of(hdr.functional(ds, "PixelValueTransformationSequence",
                                                      "RescaleIntercept"))
    values = stored.astype(np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        if slope not in (None, 1.0):
            values *= np.float32(slope)
        if intercept not in (None, 0.0):
            values += np.float32(intercept)
    if not np.isfinite(values).all():
        raise ValueError(f"RescaleSlope {slope} / RescaleIntercept {intercept} out of range")
    return values


def _same_shape(frames: list[_Frame], skipped: list[tuple[str, str]]) -> list[_Frame]:
    """Drop frames whose matrix differs from the most common one (mixed series)."""
    shapes = [fr.pixels.shape for fr in frames]
    common = max(set(shapes), key=shapes.count)
    kept = [fr for fr in frames if fr.pixels.shape == common]
    for fr in frames:
        if fr.pixels.shape != common:
            skipped.append((fr.path, f"matrix {fr.pixels.shape} differs from {common}"))
            log.warning("skipping %s: matrix %s differs from %s", fr.path, fr.pixels.shape,
                        common)
    return kept


def _sort_frames(frames: list[_Frame], iop: tuple[float, ...] | None) -> list[_Frame]:
    """Sort along the slice normal; by InstanceNumber when positions are missing."""
    if iop is None or any(fr.position is None for fr in frames):
        return sorted(frames, key=lambda fr: fr.instance)
    normal = slice_normal(iop)
    frames = sorted(frames, key=lambda fr: (float(np.dot(normal, fr.position)), fr.instance))
    along = np.array([np.dot(normal, fr.position) for fr in frames])
    if len(along) > 1 and np.any(np.diff(along) < 1e-3):
        log.warning("series has several images at the same position (multi-echo or repeats)")
    return frames
