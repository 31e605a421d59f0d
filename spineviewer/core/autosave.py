"""Autosave of a reviewed result: nothing lost on a crash, never a crash from a bad file (no Qt).

The autosave of series ``S`` lives at ``<study folder>/.spineviewer/S.autosave.json``. When
the study folder cannot be written (read-only share, CD, permissions) it goes to the per-user
data folder (``platformdirs.user_data_dir``, e.g. ``~/.local/share/spineviewer/autosave/<hash
of the study folder>/``) and `save` says so. When neither can be written, `save` raises
`AutosaveError`: the correction stays in force in memory, but is not saved.

`load` validates a file before use. A file that is not a complete, well-formed result of the
series (truncated, ``null``, ``[]``, malformed vertebrae, another series) is never used and
never deleted: it is renamed to ``<name>.corrupt-<UTC time>.json`` beside itself and reported
in `Loaded.problems`, so that the user can be told and the corrections recovered by hand.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from spineviewer.core.errors import SpineViewerError
from spineviewer.core.results import CORNER_NAMES, MEASUREMENT_FIELDS, StudyResult, save_json

logger = logging.getLogger(__name__)

AUTOSAVE_DIR = ".spineviewer"
AUTOSAVE_SUFFIX = ".autosave.json"


class AutosaveError(SpineViewerError):
    """The autosave could be written nowhere (study folder and per-user folder)."""


class InvalidAutosave(ValueError):
    """An autosave file is not a usable result of its series."""


@dataclass
class Saved:
    """Where `save` wrote the result; ``fallback`` when not beside the study."""

    path: Path
    fallback: bool
    reason: str = ""  # why the study folder was not used


@dataclass
class Loaded:
    """What `load` found: the newest valid result (or None) and problems to tell the user."""

    result: StudyResult | None = None
    path: Path | None = None
    problems: list[str] = field(default_factory=list)


def study_folder(result: StudyResult) -> Path:
    """The folder the user opened (the parent when a single file was opened)."""
    p = Path(result.source_path or ".").expanduser().resolve()
    return p.parent if p.is_file() else p


def user_autosave_root() -> Path:
    """The per-user autosave folder (the platform's user data folder)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("spineviewer", appauthor=False)) / "autosave"


def fallback_autosave_dir(folder: Path) -> Path:
    """Per-user autosave folder for the study folder ``folder``."""
    key = hashlib.sha256(str(folder).encode("utf-8")).hexdigest()[:16]
    return user_autosave_root() / key


def autosave_candidates(folder: str | Path, series_uid: str) -> list[Path]:
    """Where an autosave of ``series_uid`` may be, in order of preference."""
    folder = Path(folder).expanduser().resolve()
    name = f"{series_uid}{AUTOSAVE_SUFFIX}"
    return [folder / AUTOSAVE_DIR / name, fallback_autosave_dir(folder) / name]


def save(result: StudyResult) -> Saved:
    """Write ``result`` atomically beside the study, or in the per-user folder.

    Raises
    ------
    AutosaveError
        Neither place can be written (one line naming both reasons).
    """
    folder = study_folder(result)
    primary, fallback = autosave_candidates(folder, result.series_uid)
    try:
        save_json(result, primary)
        return Saved(primary, False)
    except OSError as exc:
        reason = exc.strerror or str(exc)
    try:
        save_json(result, fallback)
    except OSError as exc:
        raise AutosaveError(f"the corrections could not be saved: study folder {folder}: "
                            f"{reason}; per-user folder {fallback.parent}: "
                            f"{exc.strerror or exc}") from None
    logger.warning("study folder %s not writable (%s); autosave kept in %s", folder, reason,
                   fallback.parent)
    return Saved(fallback, True, reason)


def load(folder: str | Path, series_uid: str) -> Loaded:
    """The newest valid autosave of ``series_uid`` opened from ``folder``.

    Invalid files are moved aside (`set_aside`) and described in ``problems``; this
    never raises for a bad file.
    """
    out = Loaded()
    found = []
    for p in autosave_candidates(folder, series_uid):
        try:
            if p.is_file():
                found.append((p.stat().st_mtime, p))
        except OSError:
            continue
    for _, path in sorted(found, reverse=True):
        try:
            result = read_valid(path, series_uid)
        except InvalidAutosave as exc:
            kept = set_aside(path)
            where = f"kept as {kept}" if kept else "left in place (it could not be renamed)"
            out.problems.append(f"The autosaved corrections in {path} could not be used "
                                f"({exc}); the file was {where}.")
            logger.warning("invalid autosave %s: %s", path, exc)
            continue
        if out.result is None:
            out.result, out.path = result, path
    return out


def read_valid(path: Path, series_uid: str) -> StudyResult:
    """Read and validate one autosave file, or raise `InvalidAutosave` (one line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidAutosave(f"unreadable: {exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InvalidAutosave(f"not complete JSON ({exc})") from None
    validate(data, series_uid)
    try:
        return StudyResult.from_dict(data)
    except Exception as exc:  # noqa: BLE001 - anything the schema check missed
        raise InvalidAutosave(f"not a SpineViewer result ({type(exc).__name__}: {exc})") from None


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def validate(data: Any, series_uid: str) -> None:
    """Check the structure `StudyResult.from_dict` and the GUI rely on."""
    if not isinstance(data, dict):
        raise InvalidAutosave(f"holds {type(data).__name__}, not a result")
    if data.get("series_uid") != series_uid:
        raise InvalidAutosave(f"belongs to series {data.get('series_uid')!r}")
    spacing = data.get("pixel_spacing_mm")
    if not (isinstance(spacing, list) and len(spacing) == 2 and all(_number(x) and x > 0
                                                                     for x in spacing)):
        raise InvalidAutosave("no valid pixel spacing")
    if not isinstance(data.get("slice_index"), int):
        raise InvalidAutosave("no slice index")
    vertebrae = data.get("vertebrae")
    if not isinstance(vertebrae, list):
        raise InvalidAutosave("no list of vertebrae")
    for i, v in enumerate(vertebrae):
        _validate_vertebra(v, i)
    for key in ("edits", "flags", "warnings"):
        if not isinstance(data.get(key, []), list):
            raise InvalidAutosave(f"{key} is not a list")
    for key in ("model", "series_choice", "patient", "parameters"):
        if not isinstance(data.get(key, {}), dict):
            raise InvalidAutosave(f"{key} is not a mapping")


def _validate_vertebra(v: Any, i: int) -> None:
    if not isinstance(v, dict) or not isinstance(v.get("level"), str) or not v["level"]:
        raise InvalidAutosave(f"vertebra {i + 1} is malformed")
    name = v["level"]
    corners = v.get("corners_rc", {})
    if not isinstance(corners, dict) or any(
            k not in CORNER_NAMES or not (isinstance(p, list) and len(p) == 2
                                          and all(_number(x) for x in p))
            for k, p in corners.items()):
        raise InvalidAutosave(f"vertebra {name} has malformed corners")
    outline = v.get("outline_rc", [])
    if not isinstance(outline, list) or any(
            not (isinstance(p, list) and len(p) == 2 and all(_number(x) for x in p))
            for p in outline):
        raise InvalidAutosave(f"vertebra {name} has a malformed outline")
    for f in MEASUREMENT_FIELDS:
        if v.get(f) is not None and not _number(v[f]):
            raise InvalidAutosave(f"vertebra {name} has a malformed {f}")
    for key in ("flags", "reasons"):
        if not isinstance(v.get(key, []), list):
            raise InvalidAutosave(f"vertebra {name}: {key} is not a list")
    for key in ("override", "ai"):
        if v.get(key) is not None and not isinstance(v[key], dict):
            raise InvalidAutosave(f"vertebra {name}: {key} is malformed")


def set_aside(path: Path) -> Path | None:
    """Rename a bad autosave to ``<name>.corrupt-<UTC>.json``; None when that fails."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    target = path.with_name(f"{path.name.removesuffix('.json')}.corrupt-{stamp}.json")
    try:
        os.replace(path, target)
    except OSError as exc:
        logger.warning("could not keep %s aside: %s", path, exc)
        return None
    return target


def discard(folder: str | Path, series_uid: str) -> int:
    """Delete the autosaves of ``series_uid``; returns how many files were removed."""
    n = 0
    for path in autosave_candidates(folder, series_uid):
        try:
            path.unlink()
            n += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            logger.warning("could not remove autosave %s: %s", path, exc)
    return n
