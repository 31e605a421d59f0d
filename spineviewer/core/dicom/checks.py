"""Sanity of the series about to be measured: refuse what cannot give millimetres, flag the rest.

``check_input(volume)`` runs after loading and before any measurement:

- **Pixel spacing** of the analysed slice missing, zero, negative, not a number or outside
  0.05-5 mm: refused (`errors.NoPixelSpacing`); no millimetre is ever computed from a guess.
- **Centre slice** chosen on the grid of slice positions (not by counting the files that
  happened to load): when the file at the grid's centre is missing or unreadable the study is
  refused (`errors.UnreadableSeries`), so a neighbour is never analysed as "mid-sagittal".
  A gap elsewhere in the grid, or a missing InstanceNumber, is flagged (``slice_missing``)
  and named in the warnings.
- **Flags** (``INPUT_FLAGS``) for what is measured but less trustworthy: fewer than 3 slices,
  8-bit pixels, lossy compression, a photometric interpretation other than MONOCHROME2,
  slices of differing geometry; **refused** when the analysed slice's pixel rows do not line up
  with each other (Rows/Columns swapped or a wrong matrix size: the image is scrambled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spineviewer.core.dicom import headers as hdr
from spineviewer.core.dicom import reading
from spineviewer.core.dicom.index import slice_normal
from spineviewer.core.dicom.volume import full_scale_value
from spineviewer.core.errors import NoPixelSpacing, UnreadableSeries

#: Plausible in-plane pixel spacing of an MR image, mm (anything else is a broken header).
SPACING_RANGE_MM = (0.05, 5.0)
#: Fewer slices than this: the mid-sagittal plane may not be in the series at all.
MIN_SLICES = 3
#: Below this, adjacent rows (or columns) of the analysed slice are taken as not lining up.
#: Real MR slices sit far above it (SPIDER, development figure in docs/RELIABILITY.md).
MIN_ADJACENT_CORRELATION = 0.3

#: Study-level flags set here, with the sentence every output prints for them.
INPUT_FLAGS = {
    "slice_missing": "A slice of the series is missing or unreadable (named in the warnings); "
                     "the analysed centre slice is present.",
    "few_slices": "The series has fewer than 3 slices: the mid-sagittal plane may not be in it.",
    "eight_bit": "8-bit pixel data: contrast is coarse, outlines may be less precise.",
    "lossy_compression": "The images were lossy-compressed: outlines may be less precise.",
    "not_monochrome2": "Photometric interpretation is not MONOCHROME2: grey values may be "
                       "inverted or remapped.",
    "mixed_geometry": "Slices of the series differ in orientation, pixel spacing or matrix "
                      "(named in the warnings).",
}


#: Warnings that name a missing slice start with this; every output prints them.
MISSING_SLICE = "Missing slice: "


@dataclass
class InputCheck:
    """What ``check_input`` found: the slice to analyse, its spacing, flags and warnings."""

    centre: int
    spacing_mm: tuple[float, float]
    flags: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    min_adjacent_correlation: float = 1.0
    #: The analysed slice's BitsStored, and the modality value of its largest stored value
    #: ((2 ** bits - 1) rescaled): an 8-bit series' full scale (``preprocess.intensity_scale``).
    bits_stored: int | None = None
    full_scale: float | None = None

    def add(self, flag: str, warning: str) -> None:
        if flag not in self.flags:
            self.flags.append(flag)
        self.warnings.append(warning)


def valid_spacing(value) -> tuple[float, float] | None:
    """(row, col) spacing when both values are finite and inside ``SPACING_RANGE_MM``."""
    if value is None or len(value) != 2:
        return None
    lo, hi = SPACING_RANGE_MM
    try:
        out = (float(value[0]), float(value[1]))
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) and lo <= v <= hi for v in out):
        return None
    return out


def check_input(volume) -> InputCheck:
    """Refuse or flag the loaded ``volume`` (a `volume.Volume`) before it is measured.

    Raises
    ------
    NoPixelSpacing
        The analysed slice has no usable pixel spacing.
    UnreadableSeries
        The centre slice is missing or unreadable, or its pixels are scrambled.
    """
    label = volume.series.label
    centre, gaps = _grid_centre(volume)
    ds = volume.datasets[centre]
    spacing = valid_spacing(hdr.pixel_spacing_mm(ds) or _raw_spacing(ds))
    if spacing is None:
        raise NoPixelSpacing(
            f"series {label!r} has no usable pixel spacing (PixelSpacing "
            f"{_raw_spacing_text(ds)}): no measurement in millimetres is possible")
    out = InputCheck(centre=centre, spacing_mm=spacing)
    for text in gaps:
        out.add("slice_missing", text)
    _check_instances(volume, out)
    for f, why in getattr(volume, "skipped", []):
        if "differs from" in why:
            out.add("mixed_geometry", f"{f}: {why}")
    _check_geometry(volume, out)
    if volume.n_slices < MIN_SLICES:
        out.add("few_slices", f"series {label!r} has {volume.n_slices} slice(s)")
    bits = hdr.int_value(ds, "BitsStored")
    if bits is not None and 1 <= bits <= 32:
        out.bits_stored = bits
        out.full_scale = full_scale_value(2 ** bits - 1, ds)
    if bits is not None and bits <= 8:
        out.add("eight_bit", f"the analysed slice has {bits}-bit pixels")
    if reading.is_lossy(ds):
        out.add("lossy_compression", "the analysed slice was lossy-compressed "
                f"(transfer syntax {reading.transfer_syntax(ds) or 'unknown'})")
    photometric = hdr.text(ds, "PhotometricInterpretation").upper()
    if photometric and photometric != "MONOCHROME2":
        out.add("not_monochrome2", f"the analysed slice is {photometric}")
    corr = adjacent_correlation(volume.pixels[centre])
    out.min_adjacent_correlation = corr
    if corr < MIN_ADJACENT_CORRELATION:
        raise UnreadableSeries(
            f"the pixels of the centre slice of series {label!r} do not line up (adjacent "
            f"rows correlate {corr:.2f}): Rows/Columns swapped or a wrong matrix size")
    return out


def adjacent_correlation(image: np.ndarray) -> float:
    """The lower of the Pearson correlations between adjacent rows and adjacent columns.

    A natural image correlates strongly with itself shifted by one pixel; pixel data read with
    a wrong row length (Rows/Columns swapped) does not, along the wrapped axis. A flat image
    (no variance) returns 1.0.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or min(img.shape) < 3:
        return 1.0
    return min(_pearson(img[:-1], img[1:]), _pearson(img[:, :-1], img[:, 1:]))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a.ravel() - a.mean()
    b = b.ravel() - b.mean()
    # elementwise sums, not BLAS dot products: a threaded dot of this size stalled for
    # 40-50 ms on a loaded 2-core machine (4 ms otherwise); the value only meets a threshold
    den = math.sqrt(float(np.sum(a * a)) * float(np.sum(b * b)))
    return 1.0 if den == 0 or not math.isfinite(den) else float(np.sum(a * b)) / den


def _raw_spacing(ds):
    try:
        value = ds.get("PixelSpacing")
        return tuple(float(v) for v in value) if value is not None else None
    except Exception:  # noqa: BLE001 - a malformed value is no spacing
        return None


def _raw_spacing_text(ds) -> str:
    try:
        value = ds.get("PixelSpacing")
        if value is None or value == "":
            return "missing"
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            return repr(str(value))[:40]
        return repr("\\".join(str(v) for v in value))[:40]
    except Exception:  # noqa: BLE001 - whatever it holds, it is not a spacing
        return "unreadable"


def _along(volume) -> np.ndarray | None:
    """Position of each slice along the slice normal (mm), None when unknown."""
    iop = volume.image_orientation
    pos = np.asarray(volume.image_positions, dtype=float)
    if iop is None or pos.ndim != 2 or not np.isfinite(pos).all():
        return None
    return pos @ slice_normal(iop)


def _grid_centre(volume) -> tuple[int, list[str]]:
    """Index of the slice at the centre of the position grid, and text for each gap.

    Without positions, the volume's own centre (series files counted, see `Volume`).
    """
    along = _along(volume)
    n = volume.n_slices
    label = volume.series.label
    if along is None or n < 3:
        if volume.centre is None and getattr(volume, "skipped", None):
            centre_file = _series_centre_file(volume)
            if centre_file is not None and centre_file not in volume.files:
                raise UnreadableSeries(f"the centre slice of series {label!r} is missing or "
                                       "unreadable")
        return int(volume.centre_index), []
    distinct = np.unique(np.round(along, 3))
    steps = np.diff(distinct)
    steps = steps[steps > 1e-3]
    if steps.size == 0:  # every image at one position (repeats): plain centre
        return int(volume.centre_index), []
    step = float(np.median(steps))  # the regular spacing; a gap is a multiple of it
    lo, hi = float(distinct[0]), float(distinct[-1])
    n_grid = int(round((hi - lo) / step)) + 1
    grid = lo + step * np.arange(n_grid)
    present = [np.any(np.abs(along - g) < step / 2) for g in grid]
    mid = (n_grid - 1) // 2
    if not present[mid]:
        raise UnreadableSeries(
            f"the centre slice of series {label!r} (position {grid[mid]:.1f} mm) is missing "
            "or unreadable: refusing to analyse a neighbour instead")
    at_mid = np.flatnonzero(np.abs(along - grid[mid]) < step / 2)
    centre = int(at_mid[0])
    gaps = [f"{MISSING_SLICE}no slice at position {g:.1f} mm of series {label!r} (missing or unreadable)"
            for g, ok in zip(grid, present) if not ok]
    return centre, gaps


def _series_centre_file(volume) -> str | None:
    files = list(getattr(volume.series, "files", ()) or ())
    return files[(len(files) - 1) // 2] if files else None


def _check_instances(volume, out: InputCheck) -> None:
    """InstanceNumbers 1..N with holes: name the missing ones (the first slices included, the
    last ones where the header says how many images the acquisition had)."""
    numbers = sorted({hdr.int_value(d, "InstanceNumber") for d in volume.datasets} - {None})
    if len(numbers) < 2 or len(numbers) != len(volume.datasets):
        return  # absent, repeated or multi-frame: nothing to conclude
    total = hdr.int_value(volume.datasets[0], "ImagesInAcquisition") or 0
    last = total if numbers[-1] < total <= 2 * len(numbers) else numbers[-1]
    expected = set(range(min(numbers[0], 1), last + 1))
    missing = sorted(expected - set(numbers))
    if missing and len(missing) <= max(3, len(numbers) // 2):
        shown = ", ".join(str(m) for m in missing[:10])
        out.add("slice_missing", f"{MISSING_SLICE}instance number(s) {shown} of series "
                f"{volume.series.label!r} missing or unreadable")


def _check_geometry(volume, out: InputCheck) -> None:
    """Flag slices whose orientation or pixel spacing differs from the analysed slice's."""
    ref = volume.datasets[out.centre]
    ref_iop = hdr.orientation(ref)
    odd = []
    for f, d in zip(volume.files, volume.datasets):
        if d is ref:
            continue
        iop = hdr.orientation(d)
        sp = hdr.pixel_spacing_mm(d)
        if (iop is None) != (ref_iop is None) or (
                iop is not None and not np.allclose(iop, ref_iop, atol=1e-3)):
            odd.append(f"{f}: orientation differs from the analysed slice")
        elif sp is None or not np.allclose(sp, out.spacing_mm, rtol=1e-3):
            odd.append(f"{f}: pixel spacing {sp} differs from the analysed slice's "
                       f"{out.spacing_mm}")
    for text in odd[:10]:
        out.add("mixed_geometry", text)
    if len(odd) > 10:
        out.warnings.append(f"... and {len(odd) - 10} more slices of differing geometry")
