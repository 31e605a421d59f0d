"""De-identification of every output that can be de-identified (PDF, CSV, JSON).

A de-identified result has no patient block (name, ID, birth date, sex), no dates or times of
edits, no user names or comments, no file or folder paths, and its study, series and instance
UIDs replaced by pseudonyms. Any other text of the result (warnings, flags, reasons) that
quotes the patient's name or ID, a date of birth or a source path is redacted.

Pseudonyms are keyed: ``2.25.`` + the first 128 bits of HMAC-SHA256(key, UID), so nobody
without the key can recompute them from a UID. The key comes from ``--pseudonym-key-file``
or the environment variable ``SPINEVIEWER_PSEUDONYM_KEY`` (at least 16 bytes; the same key
gives the same pseudonyms, so exports of a research project join), otherwise a random key is
made for the export, noted in its JSON, and thrown away (pseudonyms then match nothing else).
DICOM objects go into the patient's study (for PACS) and cannot be de-identified: see
`io.export`.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import hmac
import io
import os
import re
import secrets
from pathlib import Path
from typing import Any

from spineviewer.core.errors import SpineViewerError
from spineviewer.core.results import StudyResult

KEY_ENV = "SPINEVIEWER_PSEUDONYM_KEY"
#: Set beside `KEY_ENV` when a run made its own random key (`ensure_run_key`).
KEY_ORIGIN_ENV = "SPINEVIEWER_PSEUDONYM_KEY_ORIGIN"
MIN_KEY_BYTES = 16
#: Root of UUID-derived UIDs (ISO/IEC 9834-8, DICOM PS3.5 B.2): "2.25." + a 128-bit integer.
UUID_UID_ROOT = "2.25."
REDACTED = "[removed]"
#: Keys of an edit (audit trail entry, see `spineviewer.core.review`) that are kept;
#: everything else (time, comment, user) may identify someone.
_EDIT_KEYS_KEPT = ("level", "field", "ai_value", "new_value")
_SERIES_CHOICE_KEPT = ("reason", "series_description", "series_number")


class PseudonymKeyError(SpineViewerError):
    """The pseudonymisation key is missing, unreadable or too short."""


class Pseudonymizer:
    """Keyed UID pseudonyms (HMAC-SHA256).

    Parameters
    ----------
    key : bytes
        At least `MIN_KEY_BYTES` bytes.
    origin : str
        Where the key came from, for the export's note.
    random : bool
        A key made for this export only.
    """

    def __init__(self, key: bytes, origin: str, random: bool = False) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise PseudonymKeyError(f"the pseudonym key from {origin} has {len(key)} bytes; "
                                    f"at least {MIN_KEY_BYTES} are needed")
        self._key = bytes(key)
        self.origin = origin
        self.random = random

    @classmethod
    def random_key(cls) -> Pseudonymizer:
        """A fresh random key (32 bytes) for one export."""
        return cls(secrets.token_bytes(32), "a random key made for this export", random=True)

    @classmethod
    def from_key_file(cls, path: str | Path) -> Pseudonymizer:
        """The key in a file (its bytes, without a trailing line break)."""
        p = Path(path)
        try:
            key = p.read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise PseudonymKeyError(f"cannot read the pseudonym key file {p}: "
                                    f"{exc.strerror or exc}") from None
        return cls(key, f"key file {p.name}")

    @classmethod
    def from_environment(cls) -> Pseudonymizer | None:
        """The key in ``SPINEVIEWER_PSEUDONYM_KEY``, or None when it is not set."""
        value = os.environ.get(KEY_ENV)
        if not value:
            return None
        origin = os.environ.get(KEY_ORIGIN_ENV)
        return cls(value.encode("utf-8"), origin or KEY_ENV, random=bool(origin))

    @classmethod
    def for_export(cls, key_file: str | Path | None = None) -> Pseudonymizer:
        """The key file if given, else the environment's key, else a random key."""
        if key_file:
            return cls.from_key_file(key_file)
        return cls.from_environment() or cls.random_key()

    def uid(self, uid: str) -> str:
        """The pseudonym of ``uid``: a valid DICOM UID (at most 44 characters); "" for ""."""
        if not uid:
            return ""
        digest = hmac.new(self._key, str(uid).encode("utf-8"), hashlib.sha256).digest()
        return UUID_UID_ROOT + str(int.from_bytes(digest[:16], "big"))

    def fingerprint(self) -> str:
        """A short tag that tells keys apart without revealing them."""
        return hmac.new(self._key, b"spineviewer key fingerprint", hashlib.sha256).hexdigest()[:8]

    def note(self) -> str:
        """One line for the export: how the UIDs were pseudonymised."""
        if self.random:
            return ("UIDs pseudonymised with HMAC-SHA256 under a random key made for this "
                    "export and not kept: they match no other export")
        return (f"UIDs pseudonymised with HMAC-SHA256 under the project key from {self.origin} "
                f"(fingerprint {self.fingerprint()})")


def ensure_run_key() -> Pseudonymizer:
    """The environment's key; without one, a random key put into the environment.

    For a run whose parts must agree (a batch: folder names in the main process, CSVs in
    local worker processes, which inherit the environment).
    """
    found = Pseudonymizer.from_environment()
    if found is not None:
        return found
    os.environ[KEY_ENV] = secrets.token_hex(32)
    os.environ[KEY_ORIGIN_ENV] = "a random key made for this run"
    return Pseudonymizer.from_environment()


def _secrets(result: StudyResult) -> list[str]:
    """Strings that must not appear anywhere in a de-identified result, longest first."""
    found: set[str] = set()
    for path in (result.source_path, result.source_slice_file):
        if path:
            found.update((str(path), str(Path(path).parent)))
    if result.source_slice_file and len(Path(result.source_slice_file).name) >= 4:
        found.add(Path(result.source_slice_file).name)  # a file name, not the folder's
    for key in ("name", "id", "birth_date", "other_ids", "accession_number"):
        value = str((result.patient or {}).get(key) or "").strip()
        if len(value) >= 3:
            found.add(value)
            if key == "name":
                found.update(p for p in re.split(r"[\^ ]+", value) if len(p) >= 3)
                found.add(value.replace("^", " "))
            if key == "birth_date" and re.fullmatch(r"\d{8}", value):
                found.add(f"{value[:4]}-{value[4:6]}-{value[6:]}")
    found.discard(".")
    found.discard("/")
    return sorted(found, key=len, reverse=True)


def _redact(value: Any, words: list[str]) -> Any:
    if isinstance(value, str):
        for w in words:
            if w in value:
                value = value.replace(w, REDACTED)
        return value
    if isinstance(value, list):
        return [_redact(v, words) for v in value]
    if isinstance(value, tuple):
        return tuple(_redact(v, words) for v in value)
    if isinstance(value, dict):
        return {k: _redact(v, words) for k, v in value.items()}
    return value


def deidentify_result(result: StudyResult, pseudonymizer: Pseudonymizer) -> StudyResult:
    """A copy of ``result`` without names, IDs, dates, paths or comments; UIDs pseudonymised.

    Measurements, geometry, calls, reasons and model data are unchanged; the copy's
    ``parameters["deidentification"]`` notes how the UIDs were made.
    """
    words = _secrets(result)
    out = copy.deepcopy(result)
    out.study_uid = pseudonymizer.uid(result.study_uid)
    out.series_uid = pseudonymizer.uid(result.series_uid)
    out.sop_instance_uid = pseudonymizer.uid(result.sop_instance_uid)
    out.patient = {}
    out.series_choice = {k: v for k, v in result.series_choice.items()
                         if k in _SERIES_CHOICE_KEPT}
    out.edits = [{k: e[k] for k in _EDIT_KEYS_KEPT if k in e} for e in result.edits]
    out.source_path = ""
    out.source_slice_file = ""
    out.model = {k: v for k, v in (result.model or {}).items() if "path" not in k.lower()}
    for v in out.vertebrae:
        if v.override is not None:
            v.override = {k: val for k, val in v.override.items() if k != "comment"}
    for name in ("series_choice", "warnings", "flags", "parameters", "model"):
        setattr(out, name, _redact(getattr(out, name), words))
    for v in out.vertebrae:
        v.reasons = _redact(v.reasons, words)
        v.flags = _redact(v.flags, words)
    out.parameters = {**out.parameters, "deidentification": pseudonymizer.note()}
    return out


#: Columns whose values are UIDs (pseudonymised) or identifying (dropped).
_UID_COLUMN = re.compile(r"(^|_)uid$", re.IGNORECASE)
_PHI_COLUMN = re.compile(r"(name|patient|birth|date|time|accession|(^|_)id$|comment|user|path|"
                         r"file|institution|physician|operator)", re.IGNORECASE)


def deidentify_csv_text(text: str, pseudonymizer: Pseudonymizer) -> str:
    """De-identify any CSV text: UID columns pseudonymised, name/ID/date-like columns dropped.

    Columns ending in ``uid`` hold `Pseudonymizer.uid` values; columns whose names look
    identifying (name, patient, birth, date, time, accession, ``*_id``, comment, user, path,
    file, institution, physician, operator) are removed.
    """
    reader = csv.DictReader(io.StringIO(text))
    columns = [c for c in (reader.fieldnames or [])
               if _UID_COLUMN.search(c) or not _PHI_COLUMN.search(c)]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in reader:
        writer.writerow({c: pseudonymizer.uid(row[c]) if _UID_COLUMN.search(c) else row[c]
                         for c in columns})
    return buf.getvalue()
