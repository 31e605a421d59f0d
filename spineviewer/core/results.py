"""The one result type: what the GUI shows, reports print, CSV/JSON hold and users edit.

All coordinates are (row, col) pixels of the analysed *source* slice; measurements are in
millimetres and degrees. JSON schema ``spineviewer.result/1`` and the CSV columns below are
contracts that other tools parse: keep the names exactly.
"""

from __future__ import annotations

import copy
import csv
import io
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

SCHEMA = "spineviewer.result/1"
CORNER_NAMES = ("AS", "AI", "PS", "PI")
MEASUREMENT_FIELDS = (
    "AH_mm", "PH_mm", "MH_mm", "SC_mm", "IC_mm", "VA_deg",
    "wedge_ratio", "biconcavity_ratio", "crush_ratio",
)
#: ``fracture`` is the call in force (after any reader override); ``algorithm_fracture``
#: the algorithm's; the ``reader_*`` columns hold the override (empty without one);
#: ``study_flags`` the study-level flags (e.g. ``unsuitable_series``), repeated on every row.
CSV_COLUMNS = (
    "study_uid", "series_uid", "level", *MEASUREMENT_FIELDS,
    "fracture", "deformity", "genant_grade", "flags",
    "measurement_slice", "measurement_sop_uid", "most_deformed_slice", "most_deformed_call",
    "qc_reasons",
    "algorithm_fracture", "reader_override", "reader_type", "reader_grade", "reader_age",
    "reader_comment", "study_flags",
)
DEFORMITIES = ("none", "wedge", "biconcave", "crush")
#: Study-level flags about the input (set by `core.dicom.checks`), repeated in every CSV row.
INPUT_FLAG_NAMES = ("slice_missing", "few_slices", "eight_bit", "lossy_compression",
                    "not_monochrome2", "mixed_geometry")


@dataclass
class VertebraResult:
    """One vertebral body: geometry, measurements, Genant call and why.

    Notes
    -----
    ``corners_rc`` maps AS/AI/PS/PI (anterior/posterior, superior/inferior) to (row, col)
    source-slice pixels; ``outline_rc`` is the closed body border in the same frame.
    ``ai`` holds the network's original values once a user has edited the vertebra.
    """

    level: str
    corners_rc: dict[str, tuple[float, float]] = field(default_factory=dict)
    outline_rc: list[tuple[float, float]] = field(default_factory=list)
    AH_mm: float | None = None
    PH_mm: float | None = None
    MH_mm: float | None = None
    SC_mm: float | None = None
    IC_mm: float | None = None
    VA_deg: float | None = None
    wedge_ratio: float | None = None
    biconcavity_ratio: float | None = None
    crush_ratio: float | None = None
    fracture: bool = False
    deformity: str = "none"
    genant_grade: int = 0
    flags: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    corner_strategy: str = ""
    corner_overlap: float | None = None
    override: dict[str, Any] | None = None  # {"fracture": bool, "comment": str}
    ai: dict[str, Any] | None = None  # AI values before the first user edit
    measurement_slice: int | None = None  # series slice index (0-based) it was measured on
    measurement_sop_uid: str = ""  # SOPInstanceUID of that slice
    most_deformed_slice: int | None = None  # slice of its lowest height ratio
    most_deformed_call: str = ""  # Genant call on that slice, e.g. "wedge grade 2"
    qc_reasons: list[str] = field(default_factory=list)  # failed segmentation checks
    #: How far the mask's outline runs back along an endplate chord (mm, the larger of the
    #: two; ``core.morphometry.endplate_folds_mm``); above ``pipeline.ENDPLATE_FOLD_MM`` the
    #: vertebra is flagged ``endplate_fold``.
    endplate_fold_mm: float | None = None
    #: Share of the intensity profiles on which the image showed a clear cortical edge, per
    #: endplate (``superior``, ``inferior``; ``core.endplates``); empty when not refined.
    endplate_edge: dict[str, float] = field(default_factory=dict)

    @property
    def final_fracture(self) -> bool:
        """The fracture call after any user override."""
        if self.override is not None and "fracture" in self.override:
            return bool(self.override["fracture"])
        return self.fracture

    def to_dict(self) -> dict[str, Any]:
        # As dataclasses.asdict, without its recursive copy of the long outline (asdict took
        # ~10 ms per vertebra: every correction's snapshot and autosave stalled the GUI).
        d: dict[str, Any] = {}
        for f in fields(self):
            if f.name in ("corners_rc", "outline_rc"):
                continue
            value = getattr(self, f.name)
            d[f.name] = copy.deepcopy(value) if isinstance(value, (dict, list)) else value
        d["corners_rc"] = {k: [float(v[0]), float(v[1])] for k, v in self.corners_rc.items()}
        d["outline_rc"] = [[round(float(r), 3), round(float(c), 3)] for r, c in self.outline_rc]
        return {f.name: d[f.name] for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VertebraResult:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["corners_rc"] = {k: (float(v[0]), float(v[1])) for k, v in d.get("corners_rc", {}).items()}
        kw["outline_rc"] = [(float(r), float(c)) for r, c in d.get("outline_rc", [])]
        kw["flags"] = list(d.get("flags", []))
        kw["reasons"] = list(d.get("reasons", []))
        kw["qc_reasons"] = list(d.get("qc_reasons", []))
        kw["fracture"] = bool(d.get("fracture", False))
        return cls(**kw)


@dataclass
class StudyResult:
    """The analysis of one study: chosen series, analysed slice and its vertebrae."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    slice_index: int
    pixel_spacing_mm: tuple[float, float]
    model: dict[str, Any] = field(default_factory=dict)  # name, sha256, version, provider
    series_choice: dict[str, Any] = field(default_factory=dict)
    vertebrae: list[VertebraResult] = field(default_factory=list)
    patient: dict[str, Any] = field(default_factory=dict)  # name, id, birth_date, sex, study_date
    parameters: dict[str, Any] = field(default_factory=dict)  # thresholds, reference table
    warnings: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # study-level, e.g. transitional_anatomy
    timings_s: dict[str, float] = field(default_factory=dict)
    edits: list[dict[str, Any]] = field(default_factory=list)  # audit trail
    source_path: str = ""  # the folder or file the user opened
    source_slice_file: str = ""  # the DICOM file of the analysed slice
    software: dict[str, Any] = field(default_factory=dict)
    image_shape: tuple[int, int] = (0, 0)

    @property
    def preliminary(self) -> bool:
        """True for the early centre-slice result shown while the full analysis runs
        (``core.pipeline.mark_preliminary``): never exported nor corrected."""
        return bool(self.parameters.get("preliminary"))

    def vertebra(self, level: str) -> VertebraResult | None:
        return next((v for v in self.vertebrae if v.level == level), None)

    def slice_of(self, v: VertebraResult) -> int:
        """Series slice (0-based) that ``v``'s outline, corners and heights belong to: its
        measurement slice, or the analysed slice when it names none (centre mode, older
        results)."""
        return int(self.slice_index if v.measurement_slice is None else v.measurement_slice)

    # ---- JSON ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {"schema": SCHEMA}
        for f in fields(self):
            if f.name == "vertebrae":
                d["vertebrae"] = [v.to_dict() for v in self.vertebrae]
            else:
                d[f.name] = getattr(self, f.name)
        d["pixel_spacing_mm"] = [float(x) for x in self.pixel_spacing_mm]
        d["image_shape"] = [int(x) for x in self.image_shape]
        return d

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=_json_default)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudyResult:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"not a SpineViewer result (schema {d.get('schema')!r}, want {SCHEMA!r})")
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        kw["vertebrae"] = [VertebraResult.from_dict(v) for v in d.get("vertebrae", [])]
        kw["pixel_spacing_mm"] = tuple(float(x) for x in d["pixel_spacing_mm"])
        kw["image_shape"] = tuple(int(x) for x in d.get("image_shape", (0, 0)))
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> StudyResult:
        return cls.from_dict(json.loads(text))

    # ---- CSV -----------------------------------------------------------------
    def csv_rows(self) -> list[dict[str, Any]]:
        """Rows of the CSV contract; the fracture column is the final (overridden) call."""
        rows = []
        for v in self.vertebrae:
            row: dict[str, Any] = {"study_uid": self.study_uid, "series_uid": self.series_uid,
                                   "level": v.level}
            for name in MEASUREMENT_FIELDS:
                val = getattr(v, name)
                row[name] = "" if val is None else f"{val:.3f}"
            row["fracture"] = int(v.final_fracture)
            row["deformity"] = v.deformity
            row["genant_grade"] = v.genant_grade
            # study-level input flags (missing slice, 8-bit, lossy ...) on every row
            row["flags"] = ";".join([*v.flags, *(f for f in self.flags
                                                 if f in INPUT_FLAG_NAMES and f not in v.flags)])
            row["measurement_slice"] = "" if v.measurement_slice is None else v.measurement_slice
            row["measurement_sop_uid"] = v.measurement_sop_uid
            row["most_deformed_slice"] = ("" if v.most_deformed_slice is None
                                          else v.most_deformed_slice)
            row["most_deformed_call"] = v.most_deformed_call
            row["qc_reasons"] = ";".join(v.qc_reasons)
            o = v.override if v.override and "fracture" in v.override else {}
            row["algorithm_fracture"] = int(bool(v.fracture))
            row["reader_override"] = "" if not o else int(bool(o["fracture"]))
            row["reader_type"] = o.get("deformity") or ""
            row["reader_grade"] = "" if o.get("grade") is None else int(o["grade"])
            row["reader_age"] = o.get("age") or ""
            row["reader_comment"] = o.get("comment") or ""
            row["study_flags"] = ";".join(self.flags)
            rows.append(row)
        return rows

    def to_csv(self) -> str:
        return rows_to_csv(self.csv_rows())


def rows_to_csv(rows: list[dict[str, Any]], columns: tuple[str, ...] = CSV_COLUMNS) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def read_csv_rows(path: str | Path) -> list[dict[str, Any]]:
    """Read a CSV of the contract back; numbers become floats, empty cells None."""
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            row: dict[str, Any] = dict(r)
            for name in MEASUREMENT_FIELDS:
                if name in row:
                    row[name] = float(row[name]) if row[name] not in ("", None) else None
            if "fracture" in row and row["fracture"] not in ("", None):
                row["fracture"] = int(float(row["fracture"]))
            for name in ("genant_grade", "algorithm_fracture", "reader_override",
                         "reader_grade", "measurement_slice", "most_deformed_slice"):
                if name in row and row[name] not in ("", None):
                    row[name] = int(float(row[name]))
            for key in ("flags", "qc_reasons", "study_flags"):
                if key in row:
                    row[key] = [f for f in (row[key] or "").split(";") if f]
            out.append(row)
    return out


def save_json(result: StudyResult, path: str | Path) -> None:
    atomic_write_text(path, result.to_json())


def load_json(path: str | Path) -> StudyResult:
    return StudyResult.from_json(Path(path).read_text(encoding="utf-8"))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write via a temporary file in the same folder, then rename: never a half file."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write via a temporary file in the same folder, then rename; mode 0666 minus the umask."""
    import os
    import secrets

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{secrets.token_hex(6)}.tmp"  # short: works for any valid name
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
