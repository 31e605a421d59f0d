"""User corrections of a StudyResult: edits, audit trail, undo/redo and autosave (no Qt).

Every edit keeps the network's original values in ``VertebraResult.ai`` (stored at the first
edit of that vertebra) and appends one audit entry per changed field to ``StudyResult.edits``::

    {"time": ISO-8601 UTC, "level": "L1", "field": "corner_AS",
     "ai_value": [r, c], "new_value": [r, c], "comment": ""}

Undo and redo restore whole snapshots of the result, so the audit trail always describes the
corrections that are in force. Corrections recompute morphometry and the Genant call through
``pipeline.remeasure`` (never the network).

Autosave (after every edit, undo and redo): `spineviewer.core.autosave`, beside the study or
in the per-user folder; a failure to save never undoes an edit (``ReviewSession.save_error``).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from spineviewer.core import autosave as autosave_mod
from spineviewer.core import calls
from spineviewer.core.errors import SpineViewerError
from spineviewer.core.results import (
    CORNER_NAMES,
    MEASUREMENT_FIELDS,
    StudyResult,
    VertebraResult,
)

logger = logging.getLogger(__name__)

Remeasure = Callable[[StudyResult], None]

#: Level names from cranial to caudal, used to shift labels for transitional anatomy.
LEVEL_SEQUENCE = tuple([f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 7)] + ["S1"])
AUTOSAVE_DIR = autosave_mod.AUTOSAVE_DIR
AUTOSAVE_SUFFIX = autosave_mod.AUTOSAVE_SUFFIX
#: Fields copied into ``VertebraResult.ai`` at the first edit.
AI_FIELDS = ("level", "corners_rc", *MEASUREMENT_FIELDS, "fracture", "deformity",
             "genant_grade", "flags")


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _plain(value: Any) -> Any:
    """JSON-friendly copy: tuples and numpy values become lists and floats."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def remember_ai(v: VertebraResult) -> None:
    """Store the AI values of ``v`` in ``v.ai`` unless an earlier edit already did."""
    if v.ai is None:
        v.ai = {name: _plain(copy.deepcopy(getattr(v, name))) for name in AI_FIELDS}


def audit_entry(level: str, field_name: str, ai_value: Any, new_value: Any,
                comment: str = "") -> dict[str, Any]:
    """One audit-trail record (time in UTC, AI value against the corrected value)."""
    return {"time": _now_iso(), "level": level, "field": field_name,
            "ai_value": _plain(ai_value), "new_value": _plain(new_value), "comment": comment}


def _vertebra(result: StudyResult, level: str) -> VertebraResult:
    v = result.vertebra(level)
    if v is None:
        raise KeyError(f"no vertebra {level!r} in this result")
    return v


def default_remeasure(result: StudyResult) -> None:
    """Recompute measurements and Genant calls with ``core.pipeline.remeasure``."""
    from spineviewer.core.pipeline import remeasure

    remeasure(result)


# ---- edit operations (pure on the result; no history) -------------------------------------
def move_corner(result: StudyResult, level: str, corner: str, rc: tuple[float, float],
                remeasure: Remeasure = default_remeasure) -> dict[str, Any]:
    """Move one corner of ``level`` to ``rc`` (source-slice pixels) and remeasure.

    Returns
    -------
    dict
        The audit entry appended to ``result.edits``.
    """
    if corner not in CORNER_NAMES:
        raise ValueError(f"corner must be one of {CORNER_NAMES}, got {corner!r}")
    v = _vertebra(result, level)
    remember_ai(v)
    new_rc = (float(rc[0]), float(rc[1]))
    v.corners_rc = {**v.corners_rc, corner: new_rc}
    remeasure(result)
    entry = audit_entry(level, f"corner_{corner}", v.ai["corners_rc"].get(corner), new_rc)
    result.edits.append(entry)
    return entry


def preview_move_corner(result: StudyResult, level: str, corner: str, rc: tuple[float, float],
                        remeasure: Remeasure = default_remeasure) -> StudyResult:
    """A remeasured copy of ``result`` with one corner moved; ``result`` is left untouched.

    For live feedback while a corner is being dragged; nothing is recorded.
    """
    if corner not in CORNER_NAMES:
        raise ValueError(f"corner must be one of {CORNER_NAMES}, got {corner!r}")
    preview = copy.deepcopy(result)
    v = _vertebra(preview, level)
    v.corners_rc = {**v.corners_rc, corner: (float(rc[0]), float(rc[1]))}
    remeasure(preview)
    return preview


def override_call(result: StudyResult, level: str, fracture: bool | None,
                  comment: str = "", *, deformity: str | None = None, grade: int | None = None,
                  age: str | None = None) -> dict[str, Any]:
    """Override the fracture call of ``level`` (``None`` removes the override).

    For a fracture the reader may record its type (``calls.READER_TYPES``), Genant grade
    (1-3) and age (acute, chronic, indeterminate); each is kept in ``override`` only when
    given, and the audit entry holds the reader's call in words (``reader_call``).
    """
    v = _vertebra(result, level)
    if fracture:
        if deformity is not None and deformity not in calls.READER_TYPES:
            raise ValueError(f"type must be one of {calls.READER_TYPES}, got {deformity!r}")
        if grade is not None and grade not in calls.READER_GRADES:
            raise ValueError(f"Genant grade of a fracture must be 1, 2 or 3, got {grade!r}")
        if age is not None and age not in calls.READER_AGES:
            raise ValueError(f"age must be one of {calls.READER_AGES}, got {age!r}")
    remember_ai(v)
    if fracture is None:
        v.override = None
    else:
        v.override = {"fracture": bool(fracture), "comment": comment}
        if fracture:
            extra = {"deformity": deformity, "grade": grade, "age": age}
            v.override.update({k: x for k, x in extra.items() if x is not None})
    entry = audit_entry(level, "fracture", bool(v.ai["fracture"]),
                        None if fracture is None else bool(fracture), comment)
    entry["reader_call"] = calls.reader_call(v)
    result.edits.append(entry)
    return entry


def shifted_level(level: str, steps: int) -> str:
    """The level ``steps`` positions caudal (positive) or cranial (negative) of ``level``."""
    if level not in LEVEL_SEQUENCE:
        raise ValueError(f"cannot shift unknown level {level!r}")
    i = LEVEL_SEQUENCE.index(level) + steps
    if not 0 <= i < len(LEVEL_SEQUENCE):
        raise ValueError(f"cannot shift {level} by {steps}: outside {LEVEL_SEQUENCE[0]}.."
                         f"{LEVEL_SEQUENCE[-1]}")
    return LEVEL_SEQUENCE[i]


def shift_levels(result: StudyResult, steps: int, comment: str = "",
                 remeasure: Remeasure = default_remeasure) -> dict[str, Any]:
    """Rename every vertebra ``steps`` levels caudal (+1: L4 -> L5) or cranial (-1: L5 -> L4).

    For transitional anatomy (lumbarised S1, sacralised L5) where the network counted from the
    wrong anchor. Measurements are recomputed because reference ratios are per level.
    """
    if steps == 0:
        raise ValueError("shift must be non-zero")
    old = [v.level for v in result.vertebrae]
    new = [shifted_level(lv, steps) for lv in old]  # validates before anything changes
    for v, name in zip(result.vertebrae, new):
        remember_ai(v)
        v.level = name
    remeasure(result)
    ai_levels = [v.ai["level"] for v in result.vertebrae]
    entry = audit_entry("all", "levels", ai_levels, new, comment)
    result.edits.append(entry)
    return entry


# ---- undo / redo --------------------------------------------------------------------------
class ReviewSession:
    """Edits on one result with undo/redo (snapshots) and an optional autosave after each.

    Parameters
    ----------
    result : StudyResult
        Edited in place; views may keep a reference to it.
    remeasure : callable, optional
        ``remeasure(result)``; defaults to ``core.pipeline.remeasure``.
    autosave : bool
        Write the autosave file after every edit, undo and redo.
    """

    def __init__(self, result: StudyResult, remeasure: Remeasure = default_remeasure,
                 autosave: bool = True) -> None:
        self.result = result
        self._remeasure = remeasure
        self._autosave = autosave
        self._undo: list[dict[str, Any]] = []
        self._redo: list[dict[str, Any]] = []
        self.last_autosave_path: Path | None = None
        #: Calls changed by the last edit, undo or redo (``calls.changes`` records).
        self.last_call_changes: list[dict[str, str]] = []
        self.last_save: autosave_mod.Saved | None = None
        #: Why the last autosave failed ("" when it succeeded): the edit is in force, unsaved.
        self.save_error = ""

    @property
    def can_undo(self) -> bool:
        """True when an edit can be undone."""
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        """True when an undone edit can be redone."""
        return bool(self._redo)

    def _apply(self, edit: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        if self.result.preliminary:  # the full analysis replaces it: a correction would be lost
            raise SpineViewerError("the preliminary (centre-slice) result cannot be corrected; "
                                   "wait for the full analysis")
        before = self._snapshot()
        calls_before = calls.snapshot(self.result)
        try:
            entry = edit()
        except Exception:
            self._restore(before)  # an edit that fails leaves nothing half-done
            raise
        self.last_call_changes = calls.changes(calls_before, calls.snapshot(self.result))
        if self.last_call_changes:  # the audit trail says which calls this edit changed
            entry["call_changes"] = [calls.change_text(c) for c in self.last_call_changes]
        self._undo.append(before)
        self._redo.clear()
        self._save()
        return entry

    def move_corner(self, level: str, corner: str, rc: tuple[float, float]) -> dict[str, Any]:
        """Move a corner (see :func:`move_corner`), undoable."""
        return self._apply(lambda: move_corner(self.result, level, corner, rc, self._remeasure))

    def override_call(self, level: str, fracture: bool | None, comment: str = "",
                      **reader: Any) -> dict:
        """Override a fracture call (see :func:`override_call`; ``reader``: deformity, grade,
        age), undoable."""
        return self._apply(lambda: override_call(self.result, level, fracture, comment,
                                                 **reader))

    def shift_levels(self, steps: int, comment: str = "") -> dict[str, Any]:
        """Shift all level names (see :func:`shift_levels`), undoable."""
        return self._apply(lambda: shift_levels(self.result, steps, comment, self._remeasure))

    def undo(self) -> bool:
        """Return to the state before the last edit; False when there is nothing to undo."""
        return self._step(self._undo, self._redo)

    def redo(self) -> bool:
        """Re-apply the last undone edit; False when there is nothing to redo."""
        return self._step(self._redo, self._undo)

    def _step(self, source: list, target: list) -> bool:
        if not source:
            return False
        target.append(self._snapshot())
        calls_before = calls.snapshot(self.result)
        self._restore(source.pop())
        self.last_call_changes = calls.changes(calls_before, calls.snapshot(self.result))
        self._save()
        return True

    def _snapshot(self) -> dict[str, Any]:
        # StudyResult.to_dict shares lists (edits, flags) with the live result: copy them;
        # the vertebra dicts are fresh copies already (VertebraResult.to_dict), and copying
        # their long outlines again made every correction stall the GUI.
        d = self.result.to_dict()
        return {k: v if k == "vertebrae" else copy.deepcopy(v) for k, v in d.items()}

    def _restore(self, snapshot: dict[str, Any]) -> None:
        # Copy fields into the existing object so views holding ``self.result`` stay valid.
        restored = StudyResult.from_dict(snapshot)
        for name in vars(restored):
            setattr(self.result, name, getattr(restored, name))

    def _save(self) -> None:
        """Autosave; a failure leaves the edit in force and is kept in ``save_error``."""
        if not self._autosave:
            return
        try:
            self.last_save = autosave_mod.save(self.result)
        except autosave_mod.AutosaveError as exc:
            self.last_save, self.last_autosave_path, self.save_error = None, None, str(exc)
            return
        self.last_autosave_path, self.save_error = self.last_save.path, ""


# ---- autosave (spineviewer.core.autosave; these names stay for callers) -----------------
study_folder = autosave_mod.study_folder
fallback_autosave_dir = autosave_mod.fallback_autosave_dir
autosave_candidates = autosave_mod.autosave_candidates


def autosave(result: StudyResult) -> Path:
    """Write ``result`` beside the study (or in the per-user folder); the file written.

    Raises `autosave.AutosaveError` when it can be written nowhere.
    """
    return autosave_mod.save(result).path


def restore(folder: str | Path, series_uid: str) -> StudyResult | None:
    """The newest valid autosaved result of ``series_uid`` opened from ``folder``, or None.

    Invalid files are kept aside (see `autosave.load`, which also returns the problems).
    """
    return autosave_mod.load(folder, series_uid).result


def discard_autosave(folder: str | Path, series_uid: str) -> int:
    """Delete the autosaves of ``series_uid``; returns how many files were removed."""
    return autosave_mod.discard(folder, series_uid)


def edited_levels(result: StudyResult) -> set[str]:
    """Levels with at least one correction in force."""
    return {v.level for v in result.vertebrae if v.ai is not None}


# ---- geometry shown to the reviewer -------------------------------------------------------
def endplate_depth_points(corners_rc: dict[str, Any], outline_rc: Any
                          ) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
    """Deepest endplate point and its foot on the corner chord, for the SC/IC markers.

    Parameters
    ----------
    corners_rc : dict
        AS/AI/PS/PI as (row, col) source pixels.
    outline_rc : (N, 2) array-like
        Closed body border in the same frame.

    Returns
    -------
    dict
        ``{"SC": (deepest_rc, foot_rc), "IC": (...)}``; an endplate whose outline never dips
        into the body below its chord is left out.

    Notes
    -----
    Mirrors the SC/IC definition of ``core.morphometry`` (largest perpendicular distance into
    the body from the chord to the outline between the two corners) for display only.
    """
    pts = np.asarray(outline_rc, dtype=float).reshape(-1, 2)
    if len(pts) < 4 or any(k not in corners_rc for k in CORNER_NAMES):
        return {}
    c = {k: np.asarray(corners_rc[k], dtype=float) for k in CORNER_NAMES}
    centre = np.mean(list(c.values()), axis=0)
    out = {}
    for name, (a, b) in {"SC": ("AS", "PS"), "IC": ("AI", "PI")}.items():
        arc = _arc_between(pts, c[a], c[b], avoid=c["AI" if name == "SC" else "AS"])
        chord = c[b] - c[a]
        length = float(np.hypot(*chord))
        if length == 0 or len(arc) == 0:
            continue
        normal = np.array([-chord[1], chord[0]]) / length
        if np.dot(centre - c[a], normal) < 0:
            normal = -normal  # point into the body
        depth = (arc - c[a]) @ normal
        t = ((arc - c[a]) @ chord) / length**2
        depth[(t <= 0) | (t >= 1)] = -np.inf
        i = int(np.argmax(depth))
        if not np.isfinite(depth[i]) or depth[i] <= 0:
            continue
        foot = c[a] + t[i] * chord
        out[name] = (tuple(map(float, arc[i])), tuple(map(float, foot)))
    return out


def _arc_between(pts: np.ndarray, a: np.ndarray, b: np.ndarray, avoid: np.ndarray) -> np.ndarray:
    """Outline points between the points nearest ``a`` and ``b``, on the side not passing
    nearest ``avoid`` (the opposite endplate's corner)."""
    ia, ib, iv = (int(np.argmin(np.hypot(*(pts - p).T))) for p in (a, b, avoid))
    lo, hi = sorted((ia, ib))
    inner = pts[lo:hi + 1]
    outer = np.concatenate([pts[hi:], pts[:lo + 1]])
    return outer if lo <= iv <= hi else inner
