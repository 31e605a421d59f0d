"""One wording of fracture calls for the app, the report, the CSV and the command line (no Qt).

The algorithm's call comes from ``core.genant`` (``fracture``, ``deformity``,
``genant_grade``); the reader's call is ``VertebraResult.override``::

    {"fracture": bool, "comment": str,
     "deformity": "wedge" | "biconcave" | "crush" | None,   # type, when recorded
     "grade": 1 | 2 | 3 | None,                              # Genant grade, when recorded
     "age": "acute" | "chronic" | "indeterminate" | None}

A fracture is never worded "grade 0": a rule-positive body with less than 20 % height loss is
a *mild deformity* (Genant's "0.5, suspected"), and a reader's fracture without a recorded
grade says so. :func:`snapshot` and :func:`changes` let every correction announce the calls
it changed (relabel, corner move, override).
"""

from __future__ import annotations

from typing import Any

#: Types a reader may record (``core.genant`` deformity names).
READER_TYPES = ("wedge", "biconcave", "crush")
#: Genant grades a reader may record for a fracture.
READER_GRADES = (1, 2, 3)
#: Fracture age a reader may record (oedema on STIR: acute).
READER_AGES = ("acute", "chronic", "indeterminate")
#: The algorithm's call (``deformity``) on a body whose mask failed quality control
#: (``core.qc``): no confident call either way.
NOT_ASSESSABLE = "not assessable - review"


def describe(fracture: Any, deformity: Any = None, grade: Any = None) -> str:
    """The algorithm's wording of one call, e.g. ``"wedge fracture, Genant grade 2"``.

    A positive call with grade 0 (or no grade) is ``"mild wedge deformity (height loss below
    20%)"``; a negative call is ``"no fracture"``.
    """
    if not fracture:
        return NOT_ASSESSABLE if deformity == NOT_ASSESSABLE else "no fracture"
    kind = str(deformity) if deformity and deformity != "none" else ""
    try:
        g = int(grade) if grade is not None else 0
    except (TypeError, ValueError):
        g = 0
    if g <= 0:
        return f"mild {kind + ' ' if kind else ''}deformity (height loss below 20%)"
    return f"{kind + ' ' if kind else ''}fracture, Genant grade {g}"


def algorithm_call(v: Any) -> str:
    """The algorithm's call of vertebra ``v`` (after any remeasure), in words."""
    if not v.fracture and getattr(v, "AH_mm", 0) is None:
        return "not measured"
    return describe(v.fracture, v.deformity, v.genant_grade)


def has_override(v: Any) -> bool:
    """True when a reader set the call of ``v``."""
    return bool(v.override) and "fracture" in v.override


def reader_call(v: Any) -> str:
    """The reader's call of ``v`` in words ('' without an override).

    E.g. ``"wedge fracture, Genant grade 2, acute"``, ``"fracture (type and grade not
    recorded)"`` or ``"no fracture"``.
    """
    if not has_override(v):
        return ""
    o = v.override
    if not o["fracture"]:
        return "no fracture"
    kind = o.get("deformity") if o.get("deformity") in READER_TYPES else ""
    head = f"{kind} fracture" if kind else "fracture"
    details = []
    if o.get("grade") in READER_GRADES:
        details.append(f"Genant grade {int(o['grade'])}")
    if o.get("age") in READER_AGES:
        details.append(str(o["age"]))
    if details:
        return ", ".join([head, *details])
    return f"{head} ({'grade' if kind else 'type and grade'} not recorded)"


def final_call(v: Any) -> str:
    """The call in force: the reader's when set, else the algorithm's."""
    return reader_call(v) or algorithm_call(v)


def final_deformity(v: Any) -> str:
    """Deformity type in force ('none' for no fracture; '' for a reader's untyped fracture)."""
    if has_override(v):
        if not v.override["fracture"]:
            return "none"
        return v.override.get("deformity") or ""
    return v.deformity if v.fracture else "none"


def final_grade(v: Any) -> int | None:
    """Genant grade in force: None for no fracture, a mild deformity or an ungraded reader
    fracture (never 0 for a fracture)."""
    if has_override(v):
        g = v.override.get("grade") if v.override["fracture"] else None
        return int(g) if g in READER_GRADES else None
    return int(v.genant_grade) if v.fracture and v.genant_grade else None


def snapshot(result: Any) -> list[tuple[str, str]]:
    """(level, call in force) per vertebra, top to bottom; a reader's call is marked
    "(reader)", so that setting or undoing an override reads as such in an announcement."""
    return [(v.level, final_call(v) + (" (reader)" if has_override(v) else ""))
            for v in result.vertebrae]


def changes(before: list[tuple[str, str]], after: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Calls that differ between two snapshots of the same column (matched by position).

    Returns
    -------
    list of dict
        ``{"level", "was_level", "before", "after"}`` per changed call; a renamed vertebra
        whose call stayed the same is not a change.
    """
    if len(before) != len(after):
        return [{"level": lv, "was_level": "", "before": "", "after": call}
                for lv, call in after if (lv, call) not in before]
    return [{"level": a[0], "was_level": b[0], "before": b[1], "after": a[1]}
            for b, a in zip(before, after) if b[1] != a[1]]


def change_text(change: dict[str, str]) -> str:
    """``"L4 (was L5): now crush fracture, Genant grade 1; was no fracture"``."""
    level = change["level"]
    if change.get("was_level") and change["was_level"] != level:
        level += f" (was {change['was_level']})"
    if not change.get("before"):
        return f"{level}: {change['after']}"
    return f"{level}: now {change['after']}; was {change['before']}"


def short(fracture: Any, deformity: Any = None, grade: Any = None) -> str:
    """Table form of :func:`describe`: ``"wedge G2"``, ``"mild wedge"``, ``"none"``."""
    if not fracture:
        return "not assessable" if deformity == NOT_ASSESSABLE else "none"
    kind = str(deformity) if deformity and deformity != "none" else "fracture"
    try:
        g = int(grade) if grade is not None else 0
    except (TypeError, ValueError):
        g = 0
    return f"{kind} G{g}" if g > 0 else f"mild {kind}" if kind != "fracture" else "mild"


def algorithm_short(v: Any) -> str:
    """Table form of the algorithm's call of ``v`` ('-' when not measured)."""
    if not v.fracture and getattr(v, "AH_mm", 0) is None:
        return "-"
    return short(v.fracture, v.deformity, v.genant_grade)


def reader_short(v: Any) -> str:
    """Table form of the reader's call ('' without an override), e.g. ``"wedge G2 acute"``."""
    if not has_override(v):
        return ""
    o = v.override
    if not o["fracture"]:
        return "none"
    parts = [o["deformity"] if o.get("deformity") in READER_TYPES else "fracture"]
    if o.get("grade") in READER_GRADES:
        parts.append(f"G{int(o['grade'])}")
    if o.get("age") in READER_AGES:
        parts.append(str(o["age"]))
    return " ".join(parts)


#: Bodies of two results of one series whose centres lie closer than this are the same body
#: (neighbouring lumbar bodies' centres are 30-45 mm apart).
SAME_BODY_MM = 15.0


def _centre_mm(v: Any, spacing_mm: Any) -> tuple[float, float] | None:
    pts = list(v.corners_rc.values()) if len(v.corners_rc) == 4 else list(v.outline_rc)
    if not pts:
        return None
    r = sum(p[0] for p in pts) / len(pts)
    c = sum(p[1] for p in pts) / len(pts)
    return r * float(spacing_mm[0]), c * float(spacing_mm[1])


def _distance(a: tuple[float, float] | None, b: tuple[float, float] | None,
              same_name: bool) -> float:
    """mm between two body centres; without a position, bodies of one name are one body."""
    if a is None or b is None:
        return 0.0 if same_name else float("inf")
    return ((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5


def superseded_calls(early: Any, final: Any) -> list[str]:
    """What the full analysis changed against the early (preliminary) result of the same
    series, one line per body: its call (fracture or not, type, grade, not assessable) or its
    level name, and bodies found by only one of them.

    Bodies are matched by position (within ``SAME_BODY_MM``), so a renamed body is one body.
    E.g. ``"L3: now wedge fracture, Genant grade 1; was no fracture"``,
    ``"L4 (was L5): no fracture"``, ``"T12: found only by the full analysis (no fracture)"``.
    """
    spacing = final.pixel_spacing_mm
    left = [(v, _centre_mm(v, spacing)) for v in early.vertebrae]
    lines = []
    for v in final.vertebrae:
        here = _centre_mm(v, spacing)
        found = [(_distance(here, there, u.level == v.level), i)
                 for i, (u, there) in enumerate(left)]
        found = [(d, i) for d, i in found if d < SAME_BODY_MM]
        if not found:
            lines.append(f"{v.level}: found only by the full analysis ({final_call(v)})")
            continue
        u, _ = left.pop(min(found)[1])
        before, after = final_call(u), final_call(v)
        if u.level != v.level:
            change = {"level": v.level, "was_level": u.level, "before": before, "after": after}
            lines.append(change_text(change) if before != after
                         else f"{v.level} (was {u.level}): {after}")
        elif before != after:
            lines.append(change_text({"level": v.level, "was_level": "", "before": before,
                                      "after": after}))
    lines += [f"{u.level} of the preliminary result: not in the full analysis"
              for u, _ in left]
    return lines
