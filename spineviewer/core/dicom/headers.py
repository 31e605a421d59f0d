"""Tolerant readers of the header values series choice needs, across vendor tag styles.

Values may be missing, empty (type 2), multi-valued or kept only in the functional groups of an
enhanced multi-frame object or in a vendor's private group; every reader returns None then.
"""

from __future__ import annotations

import math
import re
from typing import Any

from pydicom.dataset import Dataset

#: Philips "Echo Time Display" (private group 2001, creator "Philips Imaging DD 001"): the TE
#: shown on the console, present when the standard EchoTime is empty in some exports.
PHILIPS_ECHO_TIME_DISPLAY = (0x2001, 0x1025)
#: Field strengths above this are taken to be in gauss (older GE and Philips headers).
_GAUSS_THRESHOLD = 100.0


def _raw(ds: Dataset, keyword: str | tuple[int, int]) -> Any:
    try:
        value = ds.get(keyword)
    except Exception:  # noqa: BLE001 - a malformed value counts as missing
        return None
    if hasattr(value, "value") and not isinstance(value, (str, bytes)):
        value = value.value  # DataElement returned for tag-tuple lookups
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace").strip("\x00 ")
    return None if value in ("", None) else value


def text(ds: Dataset, keyword: str) -> str:
    """Header value as a stripped string ('' when missing)."""
    value = _raw(ds, keyword)
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def float_value_of(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        value = value[0] if len(value) else None
    try:
        out = float(value)
    except (TypeError, ValueError):
        m = re.search(r"[-+]?\d+(\.\d+)?", str(value))
        return float(m.group()) if m else None
    return out if math.isfinite(out) else None


def float_value(ds: Dataset, keyword: str | tuple[int, int]) -> float | None:
    """First value of a numeric header as float, None when missing or not a number."""
    return float_value_of(_raw(ds, keyword))


def int_value(ds: Dataset, keyword: str) -> int | None:
    value = float_value(ds, keyword)
    return None if value is None else int(value)


def functional(ds: Dataset, sequence: str, keyword: str) -> Any:
    """A value from the shared, else the first per-frame, functional group (enhanced objects)."""
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        try:
            item = ds.get(groups)[0].get(sequence)[0]
        except (TypeError, IndexError, AttributeError, KeyError):
            continue
        value = _raw(item, keyword)
        if value is not None:
            return value
    return None


def echo_time_ms(ds: Dataset) -> float | None:
    """EchoTime, else the enhanced MR EffectiveEchoTime, else Philips' private display TE."""
    for value in (_raw(ds, "EchoTime"), _raw(ds, "EffectiveEchoTime"),
                  functional(ds, "MREchoSequence", "EffectiveEchoTime"),
                  _raw(ds, PHILIPS_ECHO_TIME_DISPLAY)):
        te = float_value_of(value)
        if te is not None and te > 0:
            return te
    return None


def repetition_time_ms(ds: Dataset) -> float | None:
    """RepetitionTime, else the enhanced MR timing functional group."""
    for value in (_raw(ds, "RepetitionTime"),
                  functional(ds, "MRTimingAndRelatedParametersSequence", "RepetitionTime")):
        tr = float_value_of(value)
        if tr is not None and tr > 0:
            return tr
    return None


def field_strength_T(ds: Dataset) -> float | None:
    """MagneticFieldStrength in tesla (gauss values of older headers converted)."""
    b = float_value(ds, "MagneticFieldStrength")
    if b is None or b <= 0:
        return None
    return b / 10000.0 if b > _GAUSS_THRESHOLD else b


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n else None


def orientation(ds: Dataset) -> tuple[float, ...] | None:
    """ImageOrientationPatient (6 cosines), from the top level or the functional groups."""
    value = _raw(ds, "ImageOrientationPatient")
    if value is None:
        value = functional(ds, "PlaneOrientationSequence", "ImageOrientationPatient")
    return _floats(value, 6) if value is not None else None


def position(ds: Dataset) -> tuple[float, ...] | None:
    """ImagePositionPatient (x, y, z mm) of the (first) frame."""
    value = _raw(ds, "ImagePositionPatient")
    if value is None:
        value = functional(ds, "PlanePositionSequence", "ImagePositionPatient")
    return _floats(value, 3) if value is not None else None


def pixel_spacing_mm(ds: Dataset) -> tuple[float, float] | None:
    """PixelSpacing as (row, col) mm, from the top level or the functional groups."""
    value = _raw(ds, "PixelSpacing")
    if value is None:
        value = functional(ds, "PixelMeasuresSequence", "PixelSpacing")
    out = _floats(value, 2) if value is not None else None
    return out if out is not None and min(out) > 0 else None  # type: ignore[return-value]


def slice_thickness_mm(ds: Dataset) -> float | None:
    value = _raw(ds, "SliceThickness")
    if value is None:
        value = functional(ds, "PixelMeasuresSequence", "SliceThickness")
    return float_value_of(value)


def sequence_name(ds: Dataset) -> str:
    """SequenceName (Siemens '*tse2d1_17'), PulseSequenceName (enhanced) or GE's private name."""
    for keyword in ("SequenceName", "PulseSequenceName"):
        value = text(ds, keyword)
        if value:
            return value
    ge = _raw(ds, (0x0019, 0x109C))  # GE "Pulse Sequence Name" (creator GEMS_ACQU_01)
    return str(ge).strip() if ge is not None else ""
