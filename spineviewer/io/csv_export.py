"""CSV of the core contract, optionally de-identified (no names, IDs or dates; hashed UIDs).

The columns are `spineviewer.core.results.CSV_COLUMNS`. De-identification keeps the
measurements and calls, replaces study/series/instance UIDs with stable hashes and drops the
patient block, dates, user names, file paths and free-text comments from a result copy.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import re
from pathlib import Path

from spineviewer.core.results import StudyResult, atomic_write_text

#: Root of UUID-derived UIDs (ISO/IEC 9834-8, DICOM PS3.5 B.2): "2.25." + a 128-bit integer.
UUID_UID_ROOT = "2.25."
#: Keys of an edit (audit trail entry, see `spineviewer.core.review`) kept by
#: `deidentify_result`; everything else (time, comment, user) may identify someone.
_EDIT_KEYS_KEPT = ("level", "field", "ai_value", "new_value")


def hash_uid(uid: str, salt: str = "") -> str:
    """A stable replacement UID: ``2.25.`` + the first 128 bits of SHA-256(salt + uid).

    Parameters
    ----------
    uid : str
        The original UID (any string).
    salt : str, optional
        Project-specific secret. Without it (the default) the mapping is the same on every
        machine and every run, so separately exported tables still join, but anyone holding
        the original UID can recompute the hash: use a salt for data that leaves the site.

    Returns
    -------
    str
        A valid DICOM UID (at most 44 characters), equal for equal inputs.
    """
    if not uid:
        return ""
    digest = hashlib.sha256((salt + str(uid)).encode("utf-8")).hexdigest()
    return UUID_UID_ROOT + str(int(digest[:32], 16))


def deidentify_result(result: StudyResult, salt: str = "") -> StudyResult:
    """A copy of ``result`` without names, IDs, dates, paths or comments; UIDs hashed.

    Parameters
    ----------
    result : StudyResult
    salt : str, optional
        Passed to `hash_uid`.

    Returns
    -------
    StudyResult
        Measurements, geometry, calls, flags, reasons and model data unchanged.
    """
    out = copy.deepcopy(result)
    out.study_uid = hash_uid(result.study_uid, salt)
    out.series_uid = hash_uid(result.series_uid, salt)
    out.sop_instance_uid = hash_uid(result.sop_instance_uid, salt)
    out.patient = {}
    out.series_choice = {k: v for k, v in result.series_choice.items()
                         if k in ("reason", "series_description", "series_number")}
    out.edits = [{k: e[k] for k in _EDIT_KEYS_KEPT if k in e} for e in result.edits]
    out.source_path = ""
    out.source_slice_file = ""
    for v in out.vertebrae:
        if v.override is not None:
            v.override = {k: val for k, val in v.override.items() if k != "comment"}
    return out


#: Columns whose values are UIDs (hashed) or identifying (dropped) in `deidentify_csv_text`.
_UID_COLUMN = re.compile(r"(^|_)uid$", re.IGNORECASE)
_PHI_COLUMN = re.compile(r"(name|patient|birth|date|time|accession|(^|_)id$|comment|user|path|"
                         r"file|institution|physician|operator)", re.IGNORECASE)


def deidentify_csv_text(text: str, salt: str = "") -> str:
    """De-identify any CSV text: UID columns hashed, name/ID/date-like columns dropped.

    Parameters
    ----------
    text : str
        CSV with a header row (e.g. the core contract, or a table with extra columns).
    salt : str, optional
        Passed to `hash_uid`.

    Returns
    -------
    str
        Same rows; columns ending in ``uid`` hold `hash_uid` values, columns whose names
        look identifying (name, patient, birth, date, time, accession, ``*_id``, comment,
        user, path, file, institution, physician, operator) are removed.
    """
    reader = csv.DictReader(io.StringIO(text))
    columns = [c for c in (reader.fieldnames or [])
               if _UID_COLUMN.search(c) or not _PHI_COLUMN.search(c)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in reader:
        writer.writerow({c: hash_uid(row[c], salt) if _UID_COLUMN.search(c) else row[c]
                         for c in columns})
    return buf.getvalue()


def result_csv(result: StudyResult, *, deidentify: bool = False, salt: str = "") -> str:
    """The CSV contract text for ``result`` (de-identified on request).

    Parameters
    ----------
    result : StudyResult
    deidentify : bool
        Replace the study and series UIDs with `hash_uid` values and drop the identifying
        columns (``reader_comment``), as `deidentify_csv_text` does.
    salt : str, optional
        Passed to `hash_uid`.

    Returns
    -------
    str
        Header plus one row per vertebra; the fracture column is the final (overridden) call.
    """
    if deidentify:
        return deidentify_csv_text(result.to_csv(), salt)
    return result.to_csv()


def write_csv(result: StudyResult, path: str | Path, *, deidentify: bool = False,
              salt: str = "") -> Path:
    """Write `result_csv` atomically to ``path`` and return the path."""
    path = Path(path)
    atomic_write_text(path, result_csv(result, deidentify=deidentify, salt=salt))
    return path
