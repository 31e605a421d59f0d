"""Per-study export folders and file names, so one patient's export never replaces another's.

``<base>/<stem>/<stem>_report.pdf``, ``<stem>_results.csv``, ... where the stem is
``Family_Given_ID_YYYY-MM-DD`` from the patient block of the result, or ``anon-<hash>`` (of
the keyed UID pseudonyms, see `io.deidentify`) when the export is de-identified.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

#: Characters kept in a stem; everything else becomes "_".
_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
MAX_PART = 40


def _clean(text: Any) -> str:
    s = _UNSAFE.sub("_", str(text or "").strip()).strip("._")
    return s[:MAX_PART]


def export_stem(result: Any, *, deidentify: bool = False, pseudonymizer: Any = None) -> str:
    """The stem of a study's export folder and files.

    Parameters
    ----------
    result : StudyResult
    deidentify : bool
        ``anon-`` plus 12 hex digits of the keyed pseudonyms of the study and series UIDs
        (no name, ID or date; not recomputable from the UIDs without the key).
    pseudonymizer : io.deidentify.Pseudonymizer, optional
        Default: this run's key (`deidentify.ensure_run_key`), so one study keeps one
        folder within a session.

    Returns
    -------
    str
        E.g. ``Muster_Erika_PID-4711_2024-01-02``; ``study-<hash>`` when the result holds no
        patient name, ID or date. Only letters, digits, ``.``, ``-`` and ``_``.
    """
    if deidentify:
        from spineviewer.io.deidentify import ensure_run_key

        p = pseudonymizer or ensure_run_key()
        key = f"{p.uid(result.study_uid)}|{p.uid(result.series_uid)}".encode()
        return f"anon-{hashlib.sha256(key).hexdigest()[:12]}"
    key = f"{result.study_uid}|{result.series_uid}".encode()
    digest = hashlib.sha256(key).hexdigest()[:12]
    p = result.patient or {}
    name = "_".join(_clean(x) for x in str(p.get("name") or "").split("=")[0].split("^")[:2]
                    if _clean(x))
    date = str(p.get("study_date") or "").strip()
    if re.fullmatch(r"\d{8}", date):
        date = f"{date[:4]}-{date[4:6]}-{date[6:]}"
    parts = [x for x in (name, _clean(p.get("id")), _clean(date)) if x]
    return "_".join(parts) if parts else f"study-{digest}"


def study_export_dir(base: str | Path, result: Any, *, deidentify: bool = False) -> Path:
    """``<base>/<stem>``: the folder of this study's export."""
    return Path(base) / export_stem(result, deidentify=deidentify)
