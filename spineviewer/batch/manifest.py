"""The batch manifest under ``OUT/manifest/``: what was finished, from which inputs.

One JSON record per finished (or failed) study, written atomically when its outputs are on
disk: the record is the commit point, so a killed run leaves only whole records and the next
run redoes exactly the studies without one. A record holds the study's input fingerprint
(sorted file paths, sizes and mtimes, the model's name, version and sha256, the software
version, the result JSON schema and CSV columns, and the output options): when any of them
changes the study is analysed again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from spineviewer import __version__
from spineviewer.batch.discover import StudyJob
from spineviewer.core import results
from spineviewer.core.results import atomic_write_text

SCHEMA = "spineviewer.batch-record/1"
PROBES_NAME = "probes.json"


class Manifest:
    """Records of one output folder (``out_dir/manifest``)."""

    def __init__(self, out_dir: str | os.PathLike):
        self.dir = Path(out_dir) / "manifest"
        self.studies_dir = self.dir / "studies"

    def load_probes(self) -> dict[str, list]:
        """The header-probe cache of the last run ({} when missing or damaged)."""
        data = _read_json(self.dir / PROBES_NAME)
        return data.get("probes", {}) if isinstance(data, dict) else {}

    def save_probes(self, probes: dict[str, list]) -> None:
        atomic_write_text(self.dir / PROBES_NAME,
                          json.dumps({"schema": SCHEMA, "probes": probes}, separators=(",", ":")))

    def record(self, key: str) -> dict[str, Any] | None:
        """The finished record of study ``key``, or None."""
        data = _read_json(self.studies_dir / f"{key}.json")
        return data if isinstance(data, dict) and data.get("schema") == SCHEMA else None

    def save_record(self, key: str, record: dict[str, Any]) -> None:
        atomic_write_text(self.studies_dir / f"{key}.json",
                          json.dumps({**record, "schema": SCHEMA}, indent=1, sort_keys=True))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def model_identity(model_path: str | os.PathLike | None = None) -> dict[str, str]:
    """Name, version and sha256 of the model a worker will load (from its card, cheaply)."""
    from spineviewer.core.segment import default_model_path, file_sha256, read_card

    path = Path(model_path) if model_path else default_model_path()
    card = read_card(path)
    return {"name": str(card.get("name", path.stem)), "version": str(card.get("version", "")),
            "sha256": str(card.get("sha256") or file_sha256(path))}


def fingerprint(job: StudyJob, model: dict[str, str], options: dict[str, Any]) -> str:
    """sha256 over the study's files (path, size, mtime_ns), the model, the software version
    and result contract (JSON schema, CSV columns) and the output options."""
    files = sorted((f.path, f.size, f.mtime_ns) for f in (*job.files, *job.companions))
    # the output contract too: a record made under other CSV columns must not be reused
    software = [__version__, results.SCHEMA, *results.CSV_COLUMNS]
    payload = json.dumps({"files": files, "model": model, "software": software,
                          "options": options}, sort_keys=True)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def is_current(record: dict[str, Any] | None, fp: str, out_dir: str | os.PathLike) -> bool:
    """True when ``record`` was made from the same fingerprint and its outputs (paths
    relative to ``out_dir``) still exist."""
    if record is None or record.get("fingerprint") != fp:
        return False
    return all(os.path.exists(os.path.join(out_dir, p)) for p in record.get("outputs", []))
