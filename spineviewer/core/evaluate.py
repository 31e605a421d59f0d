"""Agreement statistics of the app against readers: ICC, Bland-Altman, kappa, sens/spec.

Pure statistics and joining; no plotting (see ``spineviewer.io.evaluation_report``); the formulas
themselves are in ``spineviewer.core.agreement``.

Inputs are two CSV files of the core contract (``results.CSV_COLUMNS``), joined on
(``study_uid``, ``level``):

* the *results* file holds the app's values (one row per vertebra);
* the *reference* file holds the readers' values. It may have a ``reader`` column with several
  rows per vertebra. Measurements are averaged over the readers (the paper compares the
  network with the readers' mean). The reference fracture call is, in order of preference:
  the row whose reader is ``consensus`` (the paper's third radiologist who resolved
  disagreements), else the majority of the readers, and a tie counts as fracture (a vertebra
  that half of the readers call fractured is treated as positive; ties are counted in the
  notes). A consensus row never enters the measurement mean unless it is the only row.

Any further column on either file (vendor, field_strength, institution, ...) is a subgroup
and yields a ``by_<column>`` group in the fracture statistics. Identifier-like columns
(``*_uid``, ``*_id``, ``reader``, ``comment``) and columns with more than
``MAX_SUBGROUP_VALUES`` values are not treated as subgroups.

Statistics (shared ``MORPHOMETRY.md``, checked against the paper's Table 4): exact
Clopper-Pearson 95% intervals; Cohen's kappa; ICC(2,1) (two-way random, absolute agreement,
single rater) with the McGraw & Wong (1996) / Shrout & Fleiss (1979) F-based interval and
ICC(3,1) (consistency) beside it; Bland-Altman bias and bias +- 1.96 SD (ddof = 1). Because
the vertebrae of one patient are not independent, sensitivity, specificity and accuracy also
get a bootstrap interval that resamples whole studies (or patients, when a ``patient_id``
column is present).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spineviewer.core.agreement import (
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    bland_altman,
    cohen_kappa,
    confusion_counts,
    fracture_group,
    icc,
    non_overlapping_pairs,
)
from spineviewer.core.errors import SpineViewerError
from spineviewer.core.results import CSV_COLUMNS, read_csv_rows

log = logging.getLogger(__name__)

MEASUREMENTS = ("AH_mm", "PH_mm", "MH_mm", "SC_mm", "IC_mm", "VA_deg")
LEVEL_ORDER = ("T11", "T12", "L1", "L2", "L3", "L4", "L5", "L6", "S1")
CONSENSUS_READER = "consensus"
MAX_SUBGROUP_VALUES = 20
_NOT_SUBGROUPS = {"reader", "comment", "comments", "note", "notes", "patient_name"}


class EvaluationInputError(SpineViewerError):
    """The reference or results file cannot be evaluated (missing, malformed, no overlap)."""


# ---- reading and joining --------------------------------------------------------------------
@dataclass
class JoinedData:
    """App and reference values per vertebra, joined on (study_uid, level).

    ``records`` holds one dict per joined vertebra: ``study_uid``, ``level``, ``cluster``
    (bootstrap unit), ``app`` and ``ref`` (measurement name or ``"fracture"`` -> value or
    None) and ``groups`` (subgroup column -> value). ``reader_values`` keeps each reader's own
    row per vertebra for reader-vs-reader statistics.
    """

    records: list[dict[str, Any]]
    subgroup_columns: tuple[str, ...] = ()
    readers: tuple[str, ...] = ()
    reader_values: dict[tuple[str, str], dict[str, dict[str, Any]]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unmatched_reference: int = 0
    unmatched_results: int = 0


def read_table(path: str | Path, role: str) -> list[dict[str, Any]]:
    """Read one input CSV (contract types) or raise ``EvaluationInputError`` with one line."""
    p = Path(path)
    if not p.is_file():
        raise EvaluationInputError(f"{role} file not found: {p}")
    try:
        rows = read_csv_rows(p)
    except (ValueError, OverflowError, UnicodeDecodeError, OSError) as exc:
        raise EvaluationInputError(f"{role} file {p.name} is not a readable CSV of the "
                                   f"SpineViewer columns: {exc}") from None
    rows = [{str(k).lstrip("\ufeff").strip(): v for k, v in r.items() if k is not None}
            for r in rows]
    if not rows:
        raise EvaluationInputError(f"{role} file {p.name} has no rows")
    for i, row in enumerate(rows, start=2):
        for k, v in row.items():
            if isinstance(v, float) and not math.isfinite(v):
                raise EvaluationInputError(f"{role} file {p.name} line {i}: {k} is {v}; only "
                                           "finite numbers can be evaluated")
    missing = [c for c in ("study_uid", "level") if c not in rows[0]]
    if missing:
        raise EvaluationInputError(f"{role} file {p.name} lacks column(s) {', '.join(missing)}")
    if "fracture" not in rows[0] and not any(m in rows[0] for m in MEASUREMENTS):
        raise EvaluationInputError(f"{role} file {p.name} has neither a fracture column nor "
                                   f"any of {', '.join(MEASUREMENTS)}")
    return rows


def load_joined(reference_path: str | Path, results_path: str | Path) -> JoinedData:
    """Read both CSV files and join them; see ``join_rows``."""
    return join_rows(read_table(reference_path, "reference"), read_table(results_path, "results"))


def _key(row: dict[str, Any]) -> tuple[str, str]:
    return str(row.get("study_uid") or "").strip(), str(row.get("level") or "").strip().upper()


def _subgroup_columns(rows: list[dict[str, Any]]) -> list[str]:
    cols = [c for c in (rows[0] if rows else {}) if c not in CSV_COLUMNS
            and c.lower() not in _NOT_SUBGROUPS and not c.lower().endswith(("_uid", "_id"))]
    keep = []
    for c in cols:
        values = {str(r.get(c) or "").strip() for r in rows} - {""}
        if 1 <= len(values) <= MAX_SUBGROUP_VALUES:
            keep.append(c)
    return keep


def _is_consensus(row: dict[str, Any]) -> bool:
    return str(row.get("reader") or "").strip().lower() == CONSENSUS_READER


def _reference_value(rows: list[dict[str, Any]], name: str, tally: dict[str, int]) -> Any:
    """Readers' value of one vertebra: mean of measurements; consensus/majority fracture."""
    consensus = [r for r in rows if _is_consensus(r)]
    readers = [r for r in rows if not _is_consensus(r)] or consensus
    if name != "fracture":
        vals = [r.get(name) for r in readers if r.get(name) is not None]
        return float(np.mean(vals)) if vals else None
    calls = [int(r["fracture"]) for r in readers if r.get("fracture") not in (None, "")]
    cons = [int(r["fracture"]) for r in consensus if r.get("fracture") not in (None, "")]
    if len(set(calls)) > 1:
        tally["disagreements"] += 1
    if cons:
        return int(cons[0] > 0)
    if not calls:
        return None
    positive = sum(c > 0 for c in calls)
    if 2 * positive == len(calls):
        tally["ties"] += 1
    return int(2 * positive >= len(calls))


def join_rows(reference_rows: list[dict[str, Any]],
              result_rows: list[dict[str, Any]]) -> JoinedData:
    """Join reader rows and app rows on (study_uid, level).

    Parameters
    ----------
    reference_rows, result_rows : list of dict
        Rows as read by ``results.read_csv_rows`` (measurements float or None, fracture int).

    Returns
    -------
    JoinedData

    Raises
    ------
    EvaluationInputError
        When no vertebra is in both inputs or the results file repeats a vertebra.
    """
    ref_by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in reference_rows:
        ref_by_key.setdefault(_key(r), []).append(r)
    app_by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for r in result_rows:
        k = _key(r)
        if k in app_by_key:
            raise EvaluationInputError(f"results file lists study {k[0]} level {k[1]} twice")
        app_by_key[k] = r
    keys = [k for k in app_by_key if k in ref_by_key]
    if not keys:
        raise EvaluationInputError(
            f"no vertebra is in both files (reference {len(ref_by_key)}, results "
            f"{len(app_by_key)} vertebrae): check study_uid and level values")
    readers = sorted({str(r.get("reader", "")).strip() for r in reference_rows} - {""})
    groups = list(dict.fromkeys(_subgroup_columns(result_rows) + _subgroup_columns(reference_rows)))
    patient_col = "patient_id" if any(r.get("patient_id") for r in reference_rows + result_rows) \
        else None
    tally = {"disagreements": 0, "ties": 0}
    records, reader_values = [], {}
    for k in sorted(keys, key=lambda k: (k[0], _level_rank(k[1]))):
        records.append(_record(k, app_by_key[k], ref_by_key[k], groups, patient_col, tally))
        if readers:
            reader_values[k] = {str(r.get("reader", "")).strip(): r for r in ref_by_key[k]}
    notes = _join_notes(readers, tally, len(ref_by_key) - len(keys), len(app_by_key) - len(keys))
    return JoinedData(records, tuple(groups), tuple(readers), reader_values, notes,
                      len(ref_by_key) - len(keys), len(app_by_key) - len(keys))


def _record(key: tuple[str, str], app: dict[str, Any], refs: list[dict[str, Any]],
            groups: list[str], patient_col: str | None, tally: dict[str, int]) -> dict[str, Any]:
    """One joined vertebra: app values, readers' values, subgroup values, bootstrap cluster."""
    both = [app, *refs]
    cluster = next((str(r[patient_col]) for r in both if patient_col and r.get(patient_col)),
                   key[0])
    names = (*MEASUREMENTS, "fracture")
    rec = {"study_uid": key[0], "level": key[1], "cluster": cluster,
           "app": {n: app.get(n) for n in names},
           "ref": {n: _reference_value(refs, n, tally) for n in names},
           "groups": {c: next((str(r[c]).strip() for r in both if str(r.get(c) or "").strip()),
                              None) for c in groups}}
    if rec["app"]["fracture"] is not None:
        rec["app"]["fracture"] = int(int(rec["app"]["fracture"]) > 0)
    return rec


def _join_notes(readers: list[str], tally: dict[str, int], n_ref_only: int,
                n_app_only: int) -> list[str]:
    notes = []
    if readers:
        notes.append(f"reference readers: {', '.join(readers)}; measurements are the mean of the "
                     f"readers (consensus row excluded); the fracture reference is the "
                     f"'{CONSENSUS_READER}' row when present, else the majority (tie = fracture)")
    if tally["disagreements"]:
        notes.append(f"readers disagreed on {tally['disagreements']} vertebrae "
                     f"({tally['ties']} ties without a consensus row counted as fracture)")
    if n_ref_only:
        notes.append(f"{n_ref_only} reference vertebrae have no app result (not evaluated)")
    if n_app_only:
        notes.append(f"{n_app_only} app vertebrae have no reference (not evaluated)")
    return notes


def _level_rank(level: str) -> tuple[int, str]:
    return (LEVEL_ORDER.index(level) if level in LEVEL_ORDER else len(LEVEL_ORDER), level)


# ---- the evaluation -------------------------------------------------------------------------
def measurement_pairs(joined: JoinedData, name: str) -> tuple[np.ndarray, np.ndarray]:
    """App values and readers' means of one measurement where both exist: (app, reference)."""
    pairs = [(r["app"][name], r["ref"][name]) for r in joined.records
             if r["app"].get(name) is not None and r["ref"].get(name) is not None]
    arr = np.asarray(pairs, dtype=float).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def measurement_statistics(joined: JoinedData) -> dict[str, dict[str, Any]]:
    """Per measurement: n, ICC(2,1) with CI, ICC(3,1) with CI, Bland-Altman bias and limits."""
    out = {}
    for name in MEASUREMENTS:
        app, ref = measurement_pairs(joined, name)
        m: dict[str, Any] = {"n": int(app.size), "icc": None, "icc_ci": [None, None],
                             "icc3": None, "icc3_ci": [None, None], "bias": None,
                             "sd_diff": None, "loa_low": None, "loa_high": None}
        if app.size >= 2:
            m.update(bland_altman(app, ref))
            if np.ptp(np.concatenate([app, ref])) > 0:
                res = icc(np.column_stack([app, ref]))
                m.update(icc=res.icc2_1, icc_ci=list(res.icc2_1_ci), icc3=res.icc3_1,
                         icc3_ci=list(res.icc3_1_ci))
        out[name] = m
    return out


def fracture_statistics(joined: JoinedData, *, n_boot: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """``{"all": G, "by_level": {...}, "by_<column>": {...}}`` over vertebrae with both calls."""
    recs = [r for r in joined.records
            if r["app"]["fracture"] is not None and r["ref"]["fracture"] is not None]
    if not recs:
        return {}

    def group(subset: list[dict[str, Any]]) -> dict[str, Any]:
        return fracture_group(np.array([r["app"]["fracture"] for r in subset], dtype=bool),
                              np.array([r["ref"]["fracture"] for r in subset], dtype=bool),
                              np.array([r["cluster"] for r in subset]), n_boot=n_boot, seed=seed)

    out: dict[str, Any] = {"all": group(recs)}
    levels = sorted({r["level"] for r in recs}, key=_level_rank)
    out["by_level"] = {lv: group([r for r in recs if r["level"] == lv]) for lv in levels}
    for col in joined.subgroup_columns:
        values = sorted({r["groups"][col] for r in recs if r["groups"].get(col)})
        out[f"by_{col}"] = {v: group([r for r in recs if r["groups"].get(col) == v])
                            for v in values}
    return out


def reader_statistics(joined: JoinedData) -> dict[str, Any]:
    """Pairwise agreement among the readers and the app, as the paper's R1/R2/DCNN columns.

    Returns ``{}`` unless the reference has at least two readers besides a consensus row.
    """
    names = [r for r in joined.readers if r.lower() != CONSENSUS_READER]
    if len(names) < 2:
        return {}
    raters = [*names, "app"]
    out: dict[str, Any] = {"readers": names, "kappa": {}, "icc": {n: {} for n in MEASUREMENTS}}

    def value(rec: dict[str, Any], rater: str, name: str) -> Any:
        if rater == "app":
            return rec["app"].get(name)
        row = joined.reader_values.get((rec["study_uid"], rec["level"]), {}).get(rater)
        return None if row is None else row.get(name)

    for i, a in enumerate(raters):
        for b in raters[i + 1:]:
            pair = f"{a} vs {b}"
            calls = [(value(r, a, "fracture"), value(r, b, "fracture")) for r in joined.records]
            calls = [(int(x) > 0, int(y) > 0) for x, y in calls if x is not None and y is not None]
            if calls:
                c = confusion_counts(*np.array(calls, dtype=bool).T)
                out["kappa"][pair] = cohen_kappa(c["tp"], c["fp"], c["tn"], c["fn"])
            for name in MEASUREMENTS:
                vals = [(value(r, a, name), value(r, b, name)) for r in joined.records]
                vals = np.array([v for v in vals if None not in v], dtype=float).reshape(-1, 2)
                if len(vals) >= 2 and np.ptp(vals) > 0:
                    out["icc"][name][pair] = icc(vals).icc2_1
    return out


def evaluate(joined: JoinedData, *, n_boot: int = BOOTSTRAP_RESAMPLES,
             seed: int = BOOTSTRAP_SEED) -> dict[str, Any]:
    """All statistics of one evaluation as a JSON-ready dict (contract of ``spineviewer evaluate``).

    Parameters
    ----------
    joined : JoinedData
        From ``load_joined`` or ``join_rows``.
    n_boot, seed : int
        Study-level bootstrap resamples (0 disables) and its fixed seed.

    Returns
    -------
    dict
        ``{"fracture": {"all": G, "by_level": {...}, "by_<column>": {...}},
        "measurements": {"AH_mm": {"n", "icc", "icc_ci", "bias", "loa_low", "loa_high",
        ...}, ...}, "reader_agreement", "significant_differences", "notes", ...}``.
    """
    fracture = fracture_statistics(joined, n_boot=n_boot, seed=seed)
    significant = [p for fam, groups in fracture.items() if fam != "all"
                   for p in non_overlapping_pairs(groups, fam)]
    notes = list(joined.notes)
    notes.append("sensitivity/specificity/accuracy CIs are exact Clopper-Pearson 95% intervals; "
                 f"cluster_ci_* are percentile bootstrap intervals resampling whole "
                 f"{'patients' if _has_patient_ids(joined) else 'studies'} "
                 f"({n_boot} resamples, seed {seed})")
    notes += [p["text"] for p in significant] or \
        ["no two subgroups have non-overlapping 95% CIs (the paper's significance criterion)"]
    return {"schema": "spineviewer.evaluation/1",
            "n_vertebrae": len(joined.records),
            "n_studies": len({r["study_uid"] for r in joined.records}),
            "unmatched_reference": joined.unmatched_reference,
            "unmatched_results": joined.unmatched_results,
            "fracture": fracture,
            "measurements": measurement_statistics(joined),
            "reader_agreement": reader_statistics(joined),
            "significant_differences": significant,
            "notes": notes}


def _has_patient_ids(joined: JoinedData) -> bool:
    return any(r["cluster"] != r["study_uid"] for r in joined.records)


def evaluate_files(reference_path: str | Path, results_path: str | Path, *,
                   n_boot: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
                   ) -> tuple[dict[str, Any], JoinedData]:
    """Read, join and evaluate two CSV files; returns the summary and the joined data."""
    joined = load_joined(reference_path, results_path)
    return evaluate(joined, n_boot=n_boot, seed=seed), joined


def summary_to_json(summary: dict[str, Any], indent: int | None = 1) -> str:
    """The summary as strict JSON: non-finite numbers become null, numpy scalars plain."""

    def clean(o: Any) -> Any:
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, np.generic):
            o = o.item()
        if isinstance(o, float) and not np.isfinite(o):
            return None
        return o

    return json.dumps(clean(summary), indent=indent, allow_nan=False)
