"""Plain-language text of the report: summary, corrections, method and provenance lines.

Pure functions of a `StudyResult` (no layout), so the PDF, the GUI and tests share them.
"""

from __future__ import annotations

import re
from typing import Any

from spineviewer.core import calls, genant
from spineviewer.core.dicom.checks import INPUT_FLAGS, MISSING_SLICE
from spineviewer.core.dicom.select import UNSUITABLE_FLAG
from spineviewer.core.endplates import EDGE_CONVENTION, UNCONFIRMED_EDGE
from spineviewer.core.labeling import NAMING_CONVENTION
from spineviewer.core.results import MEASUREMENT_FIELDS, StudyResult, VertebraResult

NO_FRACTURE = "No vertebral fracture detected by the algorithm"
NO_FRACTURE_AFTER_REVIEW = ("No vertebral fracture after review by a clinician (the "
                            "algorithm's fracture call was overruled)")
PAPER_CITATION = ("Germann C, Meyer AN, Staib M, Sutter R, Fritz B. Performance of a deep "
                  "convolutional neural network for MRI-based vertebral body measurements and "
                  "insufficiency fracture detection. Eur Radiol 2023;33:3188-3199, "
                  "doi:10.1007/s00330-022-09354-6")
SCHMORL_CAUSE = "possible Schmorl node"
MILD_CAUSE = "mild deformity, below grade 1"
_LOSS = re.compile(r"(anterior|middle|posterior) height loss (\d+(?:\.\d+)?)%")
_FIELD_LABEL = {"AH_mm": ("AH", "mm"), "PH_mm": ("PH", "mm"), "MH_mm": ("MH", "mm"),
                "SC_mm": ("SC", "mm"), "IC_mm": ("IC", "mm"), "VA_deg": ("VA", "deg"),
                "wedge_ratio": ("AH/PH", ""), "biconcavity_ratio": ("MH/PH", ""),
                "crush_ratio": ("crush ratio", "")}
_STUDY_FLAG_TEXT = {
    "transitional_anatomy": "Possible transitional anatomy: confirm the level names.",
    "sacrum_not_visible": "Sacrum not in the field of view: level names need confirmation.",
    "s1_suspected": "The disc under the lowest body is small and short: the lowest body may "
                    "be S1 read as a body. Confirm the level names.",
    "sacrum_inferred": "Sacrum not segmented; S1 inferred from the segment below the lowest "
                       "disc: confirm the level names.",
    "naming_disagrees_between_slices": "Neighbouring slices count the levels differently "
                                       "(S1 read as a body, or a body missed, on one of "
                                       "them): confirm the level names.",
    "levels_missing": "Bodies between the lowest outlined one and the sacrum were not "
                      "outlined: the level names counted up from the sacrum are too low. "
                      "Confirm the level names.",
    "names_unchecked": "One or two slices only: the level names could not be checked "
                       "against neighbouring slices (S1 read as L5 goes unseen on one image). "
                       "Confirm the level names.",
    "sacrum_unsegmented": "Sacrum not outlined by the network; the lowest body sits on a full "
                          "disc with the image going on below it, so that disc was taken as "
                          "L5-S1.",
    "preliminary": "Preliminary: the centre slice only, while the full per-vertebra "
                   "analysis runs; not for reporting.",
}


def study_flag_text(flag: str) -> str:
    """Plain-language sentence for a study-level flag (the flag itself when unknown)."""
    return _STUDY_FLAG_TEXT.get(flag) or INPUT_FLAGS.get(flag) or flag.replace("_", " ")


def fmt_date(value: Any) -> str:
    """DICOM ``YYYYMMDD`` -> ``YYYY-MM-DD``; other text unchanged; None -> ''."""
    s = "" if value is None else str(value).strip()
    if re.fullmatch(r"\d{8}", s):
        return f"{s[:4]}-{s[4:6]}-{s[6:]}"
    return s


def fmt_person(value: Any) -> str:
    """DICOM person name ``Family^Given^Middle`` -> ``Family, Given Middle``."""
    s = "" if value is None else str(value).strip()
    if "^" not in s:
        return s
    parts = [p for p in s.split("=")[0].split("^")]
    family, rest = parts[0], " ".join(p for p in parts[1:3] if p)
    return f"{family}, {rest}" if rest else family


def _pick(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if d.get(k) not in (None, ""):
            return d[k]
    inner = d.get("series")
    if isinstance(inner, dict):
        return _pick(inner, *keys)
    return None


def series_text(result: StudyResult) -> str:
    """``"t2_tse_sag (series 3), slice 8"`` from the series choice, as far as known."""
    sc = result.series_choice or {}
    desc = _pick(sc, "series_description", "description") or "sagittal T2"
    num = _pick(sc, "series_number")
    text = f"{desc} (series {num})" if num not in (None, "") else str(desc)
    return f"{text}, slice {result.slice_index + 1}"


def height_loss_text(v: VertebraResult) -> str:
    """``"32% anterior height loss"`` from the Genant reasons, or '' when not stated."""
    for line in reversed(v.reasons):
        m = _LOSS.search(line)
        if m:
            return f"{float(m.group(2)):.0f}% {m.group(1)} height loss"
    return ""


def fracture_line(v: VertebraResult) -> str:
    """One sentence for a vertebra whose final call is a fracture (``core.calls`` wording)."""
    if calls.has_override(v):
        return (f"Fracture at {v.level}: {calls.reader_call(v)}, set by a clinician "
                f"(algorithm: {calls.algorithm_call(v)})")
    parts = [calls.describe(True, v.deformity, v.genant_grade)]
    loss = height_loss_text(v)
    if loss:
        parts.append(loss)
    return f"Fracture suspected at {v.level}: " + ", ".join(parts)


def unsuitable_series_line(result: StudyResult) -> str:
    """The warning for a result of a series that is not a sagittal T2 ('' otherwise)."""
    if UNSUITABLE_FLAG not in result.flags:
        return ""
    why = (result.series_choice or {}).get("unsuitable") or "not a sagittal T2 series"
    return (f"WARNING: the analysed series is unsuitable ({why}); the model is made for "
            "sagittal T2 images, so these results are unreliable.")


def review_cause(v: VertebraResult) -> str:
    """Why a vertebra needs review, in a few words, from its flags and reasons."""
    text = " ".join(v.reasons)
    if "label_uncertain" in v.flags or "labelling" in text:
        return "level label uncertain"
    if "partial_body" in v.flags:
        return "body only partly in view"
    if "segmentation_uncertain" in v.flags:
        return "segmentation uncertain, fracture not assessable"
    if "schmorl_node" in v.flags:
        return SCHMORL_CAUSE
    if "corner overlap" in text:
        return "outline uncertain"
    if "mild_deformity" in v.flags:
        return MILD_CAUSE
    if UNCONFIRMED_EDGE in text:
        return "endplate not confirmed by the image"
    if "endplate_fold" in v.flags:
        return "outline folds back along an endplate"
    if "measurements missing" in text:
        return "measurements missing"
    if "borderline" in text:
        return "ratio close to its threshold"
    return "low confidence"


def summary_lines(result: StudyResult) -> list[str]:
    """Headline first (fractures, ``NO_FRACTURE`` or ``NO_FRACTURE_AFTER_REVIEW``), then the
    unsuitable-series warning (if any) and review notes.

    Returns
    -------
    list of str
        Line 0 is the headline; e.g. ``"Fracture suspected at L1: wedge fracture, Genant
        grade 2, 32% anterior height loss"``. Review notes are grouped by cause, e.g.
        ``"Needs review (level label uncertain): T12, L1"``.
    """
    fx = [v for v in result.vertebrae if v.final_fracture]
    overruled = [v for v in result.vertebrae if v.fracture and not v.final_fracture]
    head = NO_FRACTURE_AFTER_REVIEW if overruled else NO_FRACTURE
    lines = ["; ".join(fracture_line(v) for v in fx) if fx else head]
    if unsuitable_series_line(result):
        lines.append(unsuitable_series_line(result))
    review: dict[str, list[str]] = {}
    for v in overruled:
        lines.append(f"{v.level}: the algorithm's call ({calls.algorithm_call(v)}) was "
                     "overruled by a clinician (no fracture)")
    for v in result.vertebrae:
        if "schmorl_node" in v.flags:
            lines.append(f"{v.level}: focal endplate notch, possibly a Schmorl node; not "
                         "called a fracture. Review advised.")
        if v.deformity == calls.NOT_ASSESSABLE and not v.final_fracture:
            why = "; ".join(v.qc_reasons) or "segmentation uncertain"
            lines.append(f"{v.level}: {calls.NOT_ASSESSABLE} ({why}).")
        if "mild_deformity" in v.flags:
            lines.append(f"{v.level}: mild deformity (height loss below 20%, below a grade 1 "
                         "fracture). Review advised.")
        cause = review_cause(v)
        if "needs_review" in v.flags and cause not in (SCHMORL_CAUSE, MILD_CAUSE):  # own lines
            review.setdefault(cause, []).append(v.level)
    lines += [f"Needs review ({cause}): {', '.join(levels)}" for cause, levels in review.items()]
    lines += [study_flag_text(f) for f in result.flags if f != UNSUITABLE_FLAG]
    lines += [w for w in result.warnings if w.startswith(MISSING_SLICE)]
    if not result.vertebrae:
        lines.append("No vertebral body was measured.")
    return lines


def _fmt_value(v: Any, unit: str) -> str:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return f"{v:.2f}" if not unit else f"{v:.1f} {unit}"
    return str(v)


def _moved_corners(v: VertebraResult) -> list[str]:
    before = (v.ai or {}).get("corners_rc") or {}
    moved = []
    for name, rc in v.corners_rc.items():
        old = before.get(name)
        if old is not None and max(abs(float(old[0]) - rc[0]), abs(float(old[1]) - rc[1])) > 0.01:
            moved.append(name)
    return moved


def _vertebra_corrections(v: VertebraResult) -> list[str]:
    ai = v.ai or {}
    out = []
    if ai.get("level") and ai["level"] != v.level:
        out.append(f"{v.level}: relabelled by a clinician (algorithm: {ai['level']})")
    moved = _moved_corners(v)
    if moved:
        out.append(f"{v.level}: corner{'s' if len(moved) > 1 else ''} {', '.join(moved)} "
                   "moved by a clinician")
    for name in MEASUREMENT_FIELDS:
        old, new = ai.get(name), getattr(v, name)
        if old is None or new is None:
            continue
        label, unit = _FIELD_LABEL[name]
        old_text, new_text = _fmt_value(old, unit), _fmt_value(new, unit)
        if old_text != new_text:  # a change below the printed precision is no correction
            out.append(f"{v.level} {label}: {old_text} (algorithm) -> {new_text} (corrected)")
    if "fracture" in ai:
        old_call = calls.describe(ai["fracture"], ai.get("deformity"), ai.get("genant_grade"))
        new_call = calls.describe(v.fracture, v.deformity, v.genant_grade)
        if old_call != new_call:
            out.append(f"{v.level}: algorithm's call after the corrections: {new_call} "
                       f"(before: {old_call})")
    if calls.has_override(v):
        note = f" ({v.override['comment']})" if v.override.get("comment") else ""
        out.append(f"{v.level}: reader's call {calls.reader_call(v)}{note}; "
                   f"algorithm's call {calls.algorithm_call(v)}")
    return out


def _fmt_edit_value(field: str, value: Any) -> str:
    """An audit-trail value as a reader reads it: pixel positions rounded, calls in words,
    other numbers to 1 decimal (the JSON keeps full precision)."""
    if field == "fracture":
        return {True: "fracture", False: "no fracture", None: "override cleared"}.get(
            value, str(value))
    if field.startswith("corner_") and isinstance(value, (list, tuple)) and len(value) == 2:
        return f"(row {float(value[0]):.0f}, col {float(value[1]):.0f})"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt_edit_value(field, x) for x in value)
    if isinstance(value, float):
        label_unit = _FIELD_LABEL.get(field)
        return _fmt_value(value, label_unit[1] if label_unit else "mm")
    return "-" if value is None else str(value)


def edit_text(entry: dict[str, Any], pixel_spacing_mm: Any = None) -> str:
    """One audit-trail entry in words, e.g. ``"corner AS: (row 197, col 85) -> (row 199,
    col 86), moved 1.8 mm"``; the stored entry keeps full precision."""
    field = str(entry.get("field", ""))
    old, new = entry.get("ai_value"), entry.get("new_value")
    name = f"corner {field[len('corner_'):]}" if field.startswith("corner_") else field
    text = f"{name}: AI {_fmt_edit_value(field, old)} -> {_fmt_edit_value(field, new)}"
    try:  # how far a corner moved, in mm, when the spacing is known
        dr, dc = float(new[0]) - float(old[0]), float(new[1]) - float(old[1])
        sr, sc = (float(x) for x in pixel_spacing_mm)
    except (TypeError, ValueError, IndexError, KeyError):
        return text
    if field.startswith("corner_"):
        text += f", moved {((dr * sr) ** 2 + (dc * sc) ** 2) ** 0.5:.1f} mm"
    return text


def corrections(result: StudyResult) -> list[str]:
    """What a clinician changed, AI value against corrected value, and the audit-trail size.

    Reads ``VertebraResult.ai`` (the network's values, kept at the first edit), the current
    values, user overrides and ``StudyResult.edits``; unchanged fields are not listed.
    """
    out = [line for v in result.vertebrae for line in _vertebra_corrections(v)]
    if result.edits:
        levels = sorted({str(e.get("level")) for e in result.edits if e.get("level")})
        out.append(f"{len(result.edits)} edit(s) in the audit trail"
                   + (f" (levels {', '.join(levels)})" if levels else ""))
    return out


def _reference_source(result: StudyResult) -> str:
    ref = (result.parameters or {}).get("reference_table")
    if isinstance(ref, dict):
        return str(ref.get("source") or ref.get("path") or ref)
    if ref:
        return str(ref)
    try:
        return genant.load_reference_table().source
    except (OSError, ValueError, KeyError):
        return "default reference table (not readable)"


_SLICE_MODE_TEXT = {
    "centre": "the centre slice of the sagittal T2 series (the paper's mode)",
    "per-vertebra": ("every slice of the sagittal T2 series, each body measured on the slice "
                     "nearest its own mid-sagittal plane"),
}


def method_lines(result: StudyResult) -> list[str]:
    """Method, model and reference provenance for the report's last section."""
    m = result.model or {}
    params = result.parameters or {}
    sd = params.get("threshold_sd", genant.THRESHOLD_SD)
    g1, g2, g3 = genant.GRADE_BOUNDARIES
    model = f"{m.get('name') or 'unknown'}"
    if m.get("version"):
        model += f" version {m['version']}"
    lines = [
        ("Method: U-Net segmentation of the vertebral bodies on "
         + (_SLICE_MODE_TEXT.get(params.get("slice_mode"), "the mid-sagittal T2 slice") + ", ")
         + "four corners per body (each the median of three strategies: basin-hopping, hull "
         "curvature, line fits), heights, endplate concavities and angle, after "
         + PAPER_CITATION),
        f"Heights: {EDGE_CONVENTION}.",
        *([f"Intensities: {params['intensity_scale_reason']}, clipped to 1."]
          if params.get("intensity_scale_reason") else []),
        f"Level names: {NAMING_CONVENTION}.",
        f"Model: {model}; sha256 {m.get('sha256') or 'unknown'}"
        + (f"; run on {m['provider']}" if m.get("provider") else ""),
        (f"Fracture rule: a ratio (AH/PH wedge, MH/PH biconcave, PH/neighbours' PH crush) "
         f"more than {sd:g} SD below the healthy mean for its level "
         f"({genant.THRESHOLD_SOURCE}). A crushed neighbour is not used as the crush "
         f"reference; the next uncrushed body is."),
        (f"Genant grade from the height loss: 0 below {g1:.0%}, 1 {g1:.0%}-{g2:.0%}, "
         f"2 {g2:.0%}-{g3:.0%}, 3 above {g3:.0%} ({genant.GRADE_SOURCE})."),
        f"Reference ratios: {_reference_source(result)}",
    ]
    if result.software.get("version"):
        lines.append(f"Software: SpineViewer {result.software['version']}")
    return lines
