"""Genant classification: wedge / biconcave / crush by the 3 SD rule, SQ grade and reasons.

Rules (Eastell et al. 1991, J Bone Miner Res 6:207; McCloskey et al. 1993, Osteoporos Int
3:138; as used by the reference paper): a ratio more than ``THRESHOLD_SD`` standard
deviations below the healthy mean *for that level* is a deformity.

- wedge ratio AH/PH, biconcavity ratio MH/PH;
- crush ratio PH / mean PH of the available neighbours (above and below); at an edge of
  the measured column the single neighbour is used, against that level's one-sided
  reference (``crush_above`` / ``crush_below`` in the table). A neighbour that is itself
  crushed is no reference: the vertebra is judged again without it (the other neighbour,
  one-sided; or, with none left, the next uncrushed body beyond, against a chained
  reference; ``crush_skipping_crushed``). Adjacent "cascade" fractures would otherwise hide
  each other.

Genant semi-quantitative grade (Genant et al. 1993, J Bone Miner Res 8:1137) from the height
reduction of the deformed dimension against its expected height, where expected = reference
mean ratio x the comparison height (PH for wedge and biconcave, the neighbours' PH for crush),
so the loss is ``1 - ratio / mean_ratio``.

Decision documented here: the paper calls a fracture whenever a 3 SD rule fires, so a
rule-positive vertebra is a fracture even when its height loss is below 20 %; it then gets
grade 0 and the flags ``mild_deformity`` (Genant's "0.5, suspected") and ``needs_review``:
a call below the height loss of a grade 1 fracture is borderline by definition (on the
independent phantom renderer most such calls were false alarms at endplate signal changes).

Flags: ``schmorl_node`` (narrow deep endplate notch with AH and PH preserved; the
biconcavity rule alone then calls no fracture), ``mild_deformity``, ``needs_review`` (corner
overlap < 0.85, labelling doubt, measurements missing, a ratio within 0.5 SD of its threshold
on either side, a Schmorl node, or a mild deformity).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from spineviewer.core.reference_table import (  # noqa: F401  (re-exported)
    _LEVEL_ORDER,
    DEFAULT_TABLE,
    TABLE_ENV,
    THRESHOLD_SD,
    RatioStats,
    ReferenceTable,
    load_reference_table,
)

logger = logging.getLogger(__name__)

#: Genant 1993 SQ boundaries on fractional height loss: < 0.20 grade 0, 0.20-0.25 grade 1,
#: 0.25-0.40 grade 2, > 0.40 grade 3.
GRADE_BOUNDARIES = (0.20, 0.25, 0.40)
GRADE_SOURCE = ("Genant HK, Wu CY, van Kuijk C, Nevitt MC. Vertebral fracture assessment "
                "using a semiquantitative technique. J Bone Miner Res 1993;8:1137-48")
THRESHOLD_SOURCE = ("Eastell R, Cedel SL, Wahner HW, Riggs BL, Melton LJ. Classification of "
                    "vertebral fractures. J Bone Miner Res 1991;6:207-15")
#: Corner-quadrilateral overlap below which a vertebra needs review.
MIN_CORNER_OVERLAP = 0.85
#: A ratio within this many SD of its threshold is borderline (needs review).
BORDERLINE_SD = 0.5
#: Schmorl node: an endplate notch at least SCHMORL_MIN_DEPTH_MM deep whose width at half
#: depth (morphometry's ``*_notch_width_mm``, about half the full notch width) is below
#: SCHMORL_MAX_WIDTH_MM *and* at most SCHMORL_MAX_WIDTH_FRACTION of the endplate chord.
#: Both are required: on phantoms, biconcave fractures have half-depth widths of 12-17 mm
#: (0.35-0.45 of the chord), Schmorl nodes 2-4 mm, healthy 2 mm concavities 10-15 mm.
SCHMORL_MIN_DEPTH_MM = 2.0
SCHMORL_MAX_WIDTH_MM = 10.0
SCHMORL_MAX_WIDTH_FRACTION = 0.25
RATIOS = ("wedge", "biconcavity", "crush")
DEFORMITY_OF = {"wedge": "wedge", "biconcavity": "biconcave", "crush": "crush"}
_HEIGHT_OF = {"wedge": "anterior", "biconcavity": "middle", "crush": "posterior"}


@dataclass
class GenantCall:
    """The Genant call for one vertebra and why."""

    level: str
    fracture: bool = False
    deformity: str = "none"
    genant_grade: int = 0
    ratios: dict[str, float | None] = field(default_factory=dict)
    height_loss: dict[str, float] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)


def grade_from_loss(loss: float) -> int:
    """Genant SQ grade (0..3) from a fractional height loss (0.27 means 27 %)."""
    g1, g2, g3 = GRADE_BOUNDARIES
    if loss < g1:
        return 0
    if loss < g2:
        return 1
    if loss <= g3:
        return 2
    return 3


def crush_ratios(ph_mm: Sequence[float | None]) -> list[tuple[float | None, str]]:
    """PH over the mean PH of the available neighbours, per vertebra (top to bottom).

    Returns
    -------
    list of (ratio or None, kind): kind is "crush" (both neighbours), "crush_above" (only
    the body above), "crush_below" (only the body below) or "" (none measurable).
    """
    out: list[tuple[float | None, str]] = []
    for i, ph in enumerate(ph_mm):
        up = ph_mm[i - 1] if i > 0 else None
        down = ph_mm[i + 1] if i + 1 < len(ph_mm) else None
        if ph is None or (up is None and down is None):
            out.append((None, ""))
        elif up is not None and down is not None:
            out.append((ph / ((up + down) / 2.0), "crush"))
        elif up is not None:
            out.append((ph / up, "crush_above"))
        else:
            out.append((ph / down, "crush_below"))
    return out


def _get(m: Any, name: str) -> float | None:
    v = getattr(m, name, None) if m is not None else None
    return None if v is None else float(v)


def _is_schmorl(m: Any) -> tuple[bool, str]:
    """Narrow, deep endplate notch (either endplate); returns (flag, description)."""
    for ep, depth_name, width_name, chord_name in (
        ("superior", "SC_mm", "sc_notch_width_mm", "sc_chord_mm"),
        ("inferior", "IC_mm", "ic_notch_width_mm", "ic_chord_mm"),
    ):
        depth, width, chord = _get(m, depth_name), _get(m, width_name), _get(m, chord_name)
        if depth is None or width is None or depth < SCHMORL_MIN_DEPTH_MM or width <= 0:
            continue
        narrow = width < SCHMORL_MAX_WIDTH_MM and (
            not chord or width <= SCHMORL_MAX_WIDTH_FRACTION * chord)
        if narrow:
            of_chord = f", {100 * width / chord:.0f}% of the chord" if chord else ""
            return True, (f"{ep} endplate notch {depth:.1f} mm deep, {width:.1f} mm wide at half "
                          f"depth{of_chord} (>= {SCHMORL_MIN_DEPTH_MM:g} mm deep, < "
                          f"{SCHMORL_MAX_WIDTH_MM:g} mm and <= "
                          f"{100 * SCHMORL_MAX_WIDTH_FRACTION:.0f}% of the chord wide)")
    return False, ""


_RATIO_LABEL = {"wedge": "wedge ratio AH/PH", "biconcavity": "biconcavity ratio MH/PH",
                "crush": "crush ratio PH/mean PH of the neighbours",
                "crush_above": "crush ratio PH/PH of the body above",
                "crush_below": "crush ratio PH/PH of the body below",
                "crush_above2": "crush ratio PH/PH of the body two above",
                "crush_below2": "crush ratio PH/PH of the body two below"}


def _rule_line(level: str, key: str, value: float, st: RatioStats, ref_level_note: str) -> str:
    label = _RATIO_LABEL[key]
    rel = "<" if value < st.threshold else ">="
    note = f"; {ref_level_note}" if ref_level_note else ""
    return (f"{label} = {value:.2f} {rel} threshold {st.threshold:.2f} ({level} mean "
            f"{st.mean:.2f} - {THRESHOLD_SD:g} x {st.sd:.3f}){note}")


def _add(lst: list[str], item: str) -> None:
    if item not in lst:
        lst.append(item)


def classify(levels: list[str], measurements: list[Any], table: ReferenceTable,
             corner_overlaps: Sequence[float | None] | None = None,
             label_flags: Sequence[Sequence[str]] | None = None) -> list[GenantCall]:
    """Apply the 3 SD rules and the Genant grade to a column of vertebrae.

    Parameters
    ----------
    levels : list of str
        Level names top to bottom (e.g. ``["T12", "L1", ..., "L5"]``), adjacent in the column.
    measurements : list of Measurements or None
        One per level (``AH_mm``, ``PH_mm``, ``MH_mm``, ``SC_mm``, ``IC_mm``,
        ``sc_notch_width_mm``, ``ic_notch_width_mm``); None when not measurable.
    table : ReferenceTable
    corner_overlaps : list of float, optional
        Corner quadrilateral/mask overlap per vertebra; < 0.85 sets ``needs_review``.
    label_flags : list of list of str, optional
        Labelling flags per vertebra; ``label_uncertain``, ``needs_review`` or
        ``partial_body`` set ``needs_review``.

    Returns
    -------
    list of GenantCall, one per level.
    """
    if len(levels) != len(measurements):
        raise ValueError("levels and measurements differ in length")
    ph = [_get(m, "PH_mm") for m in measurements]
    crush: list[tuple] = list(crush_ratios(ph))

    def one(i: int) -> GenantCall:
        overlap = corner_overlaps[i] if corner_overlaps is not None else None
        lflags = list(label_flags[i]) if label_flags is not None else []
        return _classify_one(levels[i], measurements[i], crush[i], table, overlap, lflags)

    calls = [one(i) for i in range(len(levels))]
    # A crushed neighbour is no reference for posterior height: judge its neighbours again
    # against the nearest uncrushed bodies (adjacent, "cascade" fractures).
    crushed = ["crush" in c.height_loss for c in calls]
    for i in range(len(levels)):
        if crushed[i] or not any(crushed[j] for j in (i - 1, i + 1) if 0 <= j < len(levels)):
            continue
        crush[i] = crush_skipping_crushed(i, levels, ph, crushed, table)
        calls[i] = one(i)
    return calls


def crush_skipping_crushed(i: int, levels: Sequence[str], ph: Sequence[float | None],
                           crushed: Sequence[bool], table: ReferenceTable) -> tuple:
    """Crush ratio of vertebra ``i`` whose reference heights skip crushed neighbours.

    An uncrushed neighbour is used as usual (one-sided reference if the other is crushed);
    when every neighbour is crushed, the next body beyond the crushed one in that direction
    is used, against a chained reference: mean = product of the one-sided level means
    (e.g. L5 over L3 = crush_above(L5) x crush_above(L4)), relative SD = root sum of squares
    of their relative SDs (independence assumed; an approximation, stated in the reason).

    Returns
    -------
    (ratio or None, key) or (ratio, key, RatioStats, note) for a chained reference.
    """
    n = len(levels)
    near = crush_ratios([p if j == i or not crushed[j] else None for j, p in enumerate(ph)])[i]
    if near[0] is not None or ph[i] is None:
        return near
    for j, k, key in ((i - 1, i - 2, "crush_above"), (i + 1, i + 2, "crush_below")):
        if not (0 <= k < n) or ph[k] is None or crushed[k] or not crushed[j]:
            continue
        s1, _ = table.stats(levels[i], key)
        s2, _ = table.stats(levels[j], key)
        if s1 is None or s2 is None or s1.mean <= 0 or s2.mean <= 0:
            continue
        mean = s1.mean * s2.mean
        sd = mean * ((s1.sd / s1.mean) ** 2 + (s2.sd / s2.mean) ** 2) ** 0.5
        note = (f"{levels[j]} is itself crushed, so {levels[k]} is the reference "
                f"(chained reference, approximate)")
        return (ph[i] / ph[k], f"{key}2", RatioStats(mean, sd), note)
    return (None, "")


def _ratios_of(m: Any) -> dict[str, float | None]:
    ah, ph, mh = _get(m, "AH_mm"), _get(m, "PH_mm"), _get(m, "MH_mm")
    ok = ph is not None and ph > 0
    return {"wedge": ah / ph if ok and ah is not None else None,
            "biconcavity": mh / ph if ok and mh is not None else None}


def _classify_one(level: str, m: Any, crush: tuple, table: ReferenceTable,
                  overlap: float | None, lflags: list[str]) -> GenantCall:
    call = GenantCall(level=level)
    call.ratios = {**_ratios_of(m), "crush": crush[0]}
    fired: dict[str, float] = {}
    for ratio in RATIOS:
        value = call.ratios[ratio]
        key = crush[1] if ratio == "crush" else ratio
        if value is None:
            why = ("no measurable neighbour" if ratio == "crush" and m is not None
                   else "measurements missing")
            call.reasons.append(f"{ratio} rule not assessable: {why}")
            continue
        if ratio == "crush" and len(crush) > 2:
            st, note = crush[2], crush[3]
        else:
            st, note = table.stats(level, key)
        if st is None:
            call.reasons.append(f"{ratio} rule not assessable: {note}")
            continue
        line = _rule_line(level, key, value, st, note)
        loss = max(0.0, 1.0 - value / st.mean)
        if value < st.threshold:
            fired[ratio] = loss
            call.height_loss[ratio] = loss
            line += (f": {_HEIGHT_OF[ratio]} height loss {100 * loss:.0f}% -> grade "
                     f"{grade_from_loss(loss)}")
        if abs(value - st.threshold) < BORDERLINE_SD * st.sd:
            _add(call.flags, "needs_review")
            line += f" (borderline: within {BORDERLINE_SD:g} SD of the threshold)"
        call.reasons.append(line)
    _apply_schmorl(call, m, fired)
    if fired:
        worst = max(fired, key=lambda r: fired[r])
        call.fracture = True
        call.deformity = DEFORMITY_OF[worst]
        call.genant_grade = grade_from_loss(fired[worst])
        call.reasons.append(f"fracture: {call.deformity} deformity, {_HEIGHT_OF[worst]} height "
                            f"loss {100 * fired[worst]:.0f}%, Genant grade {call.genant_grade}")
        if fired[worst] < GRADE_BOUNDARIES[0]:
            _add(call.flags, "mild_deformity")
            _add(call.flags, "needs_review")
            call.reasons.append("height loss below 20%: 3 SD rule positive but Genant grade 0 "
                                "(mild deformity, suspected) - needs review: below the "
                                "height loss of a grade 1 fracture")
    elif m is not None:
        call.reasons.append("no deformity: every assessable ratio within 3 SD of its level mean")
    _review_flags(call, m, overlap, lflags)
    return call


def _apply_schmorl(call: GenantCall, m: Any, fired: dict[str, float]) -> None:
    is_node, desc = _is_schmorl(m)
    if not is_node or "wedge" in fired or "crush" in fired:
        return
    _add(call.flags, "schmorl_node")
    _add(call.flags, "needs_review")
    call.reasons.append(f"Schmorl node suspected: {desc}; anterior and posterior heights "
                        "preserved (wedge and crush rules negative)")
    if "biconcavity" in fired:
        del fired["biconcavity"]
        call.height_loss.pop("biconcavity", None)
        call.reasons.append("biconcavity rule alone not called a fracture: a focal notch "
                            "(Schmorl node) is not an endplate fracture")


def _review_flags(call: GenantCall, m: Any, overlap: float | None, lflags: list[str]) -> None:
    if overlap is not None and overlap < MIN_CORNER_OVERLAP:
        _add(call.flags, "needs_review")
        call.reasons.append(f"needs review: corner overlap {overlap:.2f} < {MIN_CORNER_OVERLAP:g}")
    doubt = [f for f in lflags if f in ("label_uncertain", "needs_review", "partial_body")]
    if doubt:
        _add(call.flags, "needs_review")
        call.reasons.append(f"needs review: labelling ({', '.join(doubt)})")
    if m is None or any(call.ratios[r] is None for r in ("wedge", "biconcavity")):
        _add(call.flags, "needs_review")
        call.reasons.append("needs review: measurements missing")


def level_sort_key(level: str) -> int:
    """Position of a level name from T1 (0) down to S1; unknown names last."""
    return _LEVEL_ORDER.index(level) if level in _LEVEL_ORDER else len(_LEVEL_ORDER)

