"""Choose the sagittal T2-weighted series of a study and explain the choice."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from spineviewer.core.dicom.index import SeriesInfo, StudyIndex
from spineviewer.core.errors import NoSagittalT2Series, SeriesNotFound

#: Inclusion protocol of the reference study (Germann et al., Eur Radiol 2023;33:3188-3199,
#: "Input" in shared/docs/PAPER.md): sagittal T2 with TE >= 80 ms and TR >= 3000 ms, slice
#: thickness 2-4 mm, in-plane voxel <= 0.8 mm; typical in-house protocol 15 slices.
REFERENCE_PROTOCOL = {
    "min_echo_time_ms": 80.0,
    "min_repetition_time_ms": 3000.0,
    "slice_thickness_mm": (2.0, 4.0),
    "max_pixel_spacing_mm": 0.8,
    "typical_n_slices": 15,
}
#: Fewer slices than this rarely cover the mid-sagittal plane well; such series rank lower.
PREFERRED_MIN_SLICES = 5
#: Study flag of a result whose series is not a sagittal T2 (see `mark_unsuitable_series`).
UNSUITABLE_FLAG = "unsuitable_series"

_T2_HINT = re.compile(r"t2|frfse|haste|ssfse", re.IGNORECASE)
_T1_HINT = re.compile(r"(?<![a-z])t1|(?<![a-z])pd(?![a-z])|flash|spgr|mprage|vibe", re.IGNORECASE)
_LOCALIZER_HINT = re.compile(r"locali[sz]er|scout|survey|(?<![a-z])loc(?![a-z])|3.?pl(ane)?|aahscout",
                             re.IGNORECASE)
_STIR_HINT = re.compile(r"stir|tirm|(?<![a-z])ir(?![a-z])|flair|dixon|fat.?sat|(?<![a-z])fs(?![a-z])",
                        re.IGNORECASE)


@dataclass(frozen=True)
class SeriesChoice:
    """The chosen series, one sentence on why, and every series considered."""

    series: SeriesInfo
    reason: str
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``series_choice`` block of the result JSON."""
        return {"series_uid": self.series.series_uid,
                "series_description": self.series.series_description,
                "reason": self.reason, "candidates": list(self.candidates)}


@dataclass(frozen=True)
class _Assessment:
    series: SeriesInfo
    tier: int  # 0 qualifies, 1 fallback (fat-suppressed / inversion T2), 2 rejected
    why: str
    score: float


def choose_series(index: StudyIndex, series_uid: str | None = None) -> SeriesChoice:
    """Pick the series to analyse: the user's, else the sagittal T2 closest to the paper's.

    Parameters
    ----------
    index : StudyIndex
        Result of ``scan_folder``.
    series_uid : str, optional
        SeriesInstanceUID the user asked for; used whatever its weighting.

    Returns
    -------
    SeriesChoice
        ``reason`` is one human sentence; ``candidates`` lists every series with
        ``qualifies`` and ``why``.

    Raises
    ------
    SeriesNotFound
        ``series_uid`` is not in the index.
    NoSagittalT2Series
        No series is a sagittal T2 (TE >= 80 ms, TR >= 3000 ms, or T2 by its description).
    """
    assessed = [assess(s) for s in index.series]
    candidates = [_candidate(a) for a in assessed]
    if series_uid is not None:
        chosen = next((a for a in assessed if a.series.series_uid == series_uid), None)
        if chosen is None:
            raise SeriesNotFound(f"series {series_uid} is not in the study "
                                 f"({len(index.series)} series found)")
        note = "" if chosen.tier == 0 else f" (note: {chosen.why})"
        return SeriesChoice(chosen.series, f"{_summary(chosen.series)}: chosen by the user{note}",
                            candidates)
    for tier in (0, 1):
        pool = [a for a in assessed if a.tier == tier]
        if pool:
            best = max(pool, key=lambda a: (a.score, a.series.n_slices,
                                            -(a.series.series_number or 0)))
            return SeriesChoice(best.series, _reason(best, len(pool)), candidates)
    raise NoSagittalT2Series(_none_message(assessed))


def series_unsuitability(series: SeriesInfo) -> str:
    """Why ``series`` is no sagittal T2 for the model ('' when it is one).

    E.g. ``"axial plane, not sagittal"`` or ``"TE 10 ms < 80 ms (not T2-weighted)"``; a
    fat-suppressed or inversion-recovery T2 (the automatic fallback) counts as suitable.
    """
    a = assess(series)
    return a.why if a.tier == 2 else ""


def mark_unsuitable_series(result: Any, reason: str) -> None:
    """Mark ``result`` as the analysis of an unsuitable series, analysed on request.

    Adds the study flag ``unsuitable_series``, keeps ``reason`` in
    ``result.series_choice["unsuitable"]`` and a warning, so that the app, the PDF, the CSV
    (``study_flags``) and the JSON all carry it.
    """
    if UNSUITABLE_FLAG not in result.flags:
        result.flags.insert(0, UNSUITABLE_FLAG)
    result.series_choice = {**(result.series_choice or {}), "unsuitable": reason}
    warning = (f"analysed on request although the series is unsuitable ({reason}): the model "
               "is made for sagittal T2 images")
    if warning not in result.warnings:
        result.warnings.insert(0, warning)


def assess(series: SeriesInfo) -> _Assessment:
    """Classify one series as qualifying, fallback or rejected, with a short reason and score."""
    rejected = _rejection(series)
    if rejected:
        return _Assessment(series, 2, rejected, float("-inf"))
    timing, why = _t2_evidence(series)
    if timing is None:
        return _Assessment(series, 2, why, float("-inf"))
    score = protocol_score(series) + (0.5 if timing else 0.0)
    if _STIR_HINT.search(_text(series)) or (series.inversion_time_ms or 0) > 0:
        return _Assessment(series, 1, f"fat-suppressed / inversion-recovery T2 ({why})", score)
    return _Assessment(series, 0, why, score)


def _text(series: SeriesInfo) -> str:
    return f"{series.series_description} {series.protocol_name}"


def _rejection(series: SeriesInfo) -> str:
    if series.modality.upper() != "MR":
        return f"not MR ({series.modality or 'no modality'})"
    if _LOCALIZER_HINT.search(_text(series)):
        return "localizer"
    if series.plane != "sagittal":
        return f"{series.plane} plane, not sagittal"
    if series.n_slices < 1:
        return "no slices"
    return ""


def _t2_evidence(series: SeriesInfo) -> tuple[bool | None, str]:
    """(True: T2 by TE/TR, False: T2 by description only, None: not T2), with the reason."""
    p = REFERENCE_PROTOCOL
    te, tr = series.echo_time_ms, series.repetition_time_ms
    if te is not None and te < p["min_echo_time_ms"]:
        return None, f"TE {te:g} ms < {p['min_echo_time_ms']:g} ms (not T2-weighted)"
    if tr is not None and tr < p["min_repetition_time_ms"]:
        return None, f"TR {tr:g} ms < {p['min_repetition_time_ms']:g} ms (not T2-weighted)"
    if te is not None and tr is not None:
        return True, f"sagittal T2 (TE {te:g} ms, TR {tr:g} ms)"
    text = _text(series)
    missing = "TE" if te is None else "TR"
    if te is None and tr is None:
        missing = "TE/TR"
    if _T2_HINT.search(text) and not _T1_HINT.search(text):
        return False, f"{missing} missing; T2 by description {series.series_description!r}"
    return None, f"{missing} missing and description {series.series_description!r} is not T2"


def protocol_score(series: SeriesInfo) -> float:
    """Closeness to the paper's protocol: 0 is a perfect match, more negative is further.

    Each of slice thickness, in-plane spacing and slice count contributes up to about -1;
    fewer than ``PREFERRED_MIN_SLICES`` slices costs 2 more.
    """
    p = REFERENCE_PROTOCOL
    score = 0.0
    lo, hi = p["slice_thickness_mm"]
    t = series.slice_thickness_mm
    score -= 0.5 if t is None else min(1.0, max(lo - t, t - hi, 0.0) / 2.0)
    sp = series.pixel_spacing_mm
    if sp is None:
        score -= 0.5
    else:
        score -= min(1.0, max(max(sp) - p["max_pixel_spacing_mm"], 0.0) / 0.4)
    n = series.n_slices
    score -= min(1.0, abs(n - p["typical_n_slices"]) / p["typical_n_slices"])
    if n < PREFERRED_MIN_SLICES:
        score -= 2.0
    return score


def _summary(series: SeriesInfo) -> str:
    parts = []
    if series.echo_time_ms is not None:
        parts.append(f"TE {series.echo_time_ms:g} ms")
    if series.repetition_time_ms is not None:
        parts.append(f"TR {series.repetition_time_ms:g} ms")
    parts.append(f"{series.n_slices} slice{'s' if series.n_slices != 1 else ''}")
    if series.pixel_spacing_mm is not None:
        parts.append(f"{max(series.pixel_spacing_mm):.2g} mm")
    name = series.series_description or f"series {series.series_number}"
    return f"{name} ({', '.join(parts)})"


def _reason(best: _Assessment, n_pool: int) -> str:
    kind = "Sagittal T2" if best.tier == 0 else "Sagittal fat-suppressed T2 (no plain T2 found)"
    head = f"{kind} {_summary(best.series)}"
    if "description" in best.why:
        head += f" [{best.why}]"
    if n_pool == 1:
        return f"{head}: the only series that qualifies"
    return f"{head}: closest to the reference protocol of {n_pool} qualifying series"


def _candidate(a: _Assessment) -> dict[str, Any]:
    s = a.series
    return {"series_uid": s.series_uid, "series_number": s.series_number,
            "description": s.series_description, "plane": s.plane, "te_ms": s.echo_time_ms,
            "tr_ms": s.repetition_time_ms, "n_slices": s.n_slices, "qualifies": a.tier == 0,
            "why": a.why, "score": None if a.tier == 2 else round(a.score, 3)}


def _none_message(assessed: list[_Assessment], limit: int = 6) -> str:
    p = REFERENCE_PROTOCOL
    items = [f"{a.series.label}: {a.why}" for a in assessed[:limit]]
    if len(assessed) > limit:
        items.append(f"and {len(assessed) - limit} more")
    n = len(assessed)
    return (f"study has {n} series ({'; '.join(items)}); none is sagittal T2 "
            f"(TE >= {p['min_echo_time_ms']:g} ms, TR >= {p['min_repetition_time_ms']:g} ms)")
