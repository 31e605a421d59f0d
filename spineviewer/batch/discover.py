"""Find the studies under an archive root: stream its files, group them by StudyInstanceUID.

A folder may hold several studies and a study may span folders, so grouping is by the UID in
each file's header (`core.dicom.index.probe_file`), not by folder. Header probes are cached by
(path, size, mtime_ns), so a re-run only stats the files. A folder whose DICOM-looking files
are all unreadable becomes a failure with the reason, never an exception.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from spineviewer.core.dicom.index import probe_file

#: Name endings of files meant to be DICOM; other non-DICOM files (notes, JSON, images) are
#: ignored, while these make a folder without any readable image a failure.
DICOM_SUFFIXES = frozenset({"", ".dcm", ".dicom", ".ima", ".img"})
#: Skip reasons that mean "a DICOM object, but not an image to analyse" (not a failure).
_HARMLESS = ("DICOMDIR", "not an image")


@dataclass(frozen=True)
class FileStat:
    """One file with the size and modification time that fingerprint it."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class StudyJob:
    """The files of one study: its images and the unreadable files beside them.

    Notes
    -----
    ``companions`` are files in the study's folders that are not readable images; the
    pipeline reports them as skipped, exactly as ``analyze`` on that folder would.
    """

    study_uid: str
    files: list[FileStat] = field(default_factory=list)
    companions: list[FileStat] = field(default_factory=list)

    @property
    def folder(self) -> str:
        """The deepest folder holding all the study's images."""
        return os.path.commonpath([os.path.dirname(f.path) for f in self.files])

    def all_paths(self) -> list[str]:
        return sorted(f.path for f in (*self.files, *self.companions))


@dataclass(frozen=True)
class Failure:
    """A row of failures.csv."""

    path: str
    study_uid: str
    reason: str


@dataclass
class Discovery:
    """What `discover` found: studies by UID, broken folders, the updated probe cache."""

    studies: dict[str, StudyJob]
    failures: list[Failure]
    probes: dict[str, list]
    n_files: int = 0


def discover(root: str | os.PathLike, *, exclude: Iterable[str | os.PathLike] = (),
             cache: dict[str, list] | None = None,
             progress: Callable[[int], None] | None = None) -> Discovery:
    """Group every DICOM image under ``root`` by StudyInstanceUID.

    Parameters
    ----------
    root : archive folder, walked recursively in sorted order (hidden names skipped).
    exclude : folders not to enter (the batch output folder).
    cache : ``{path: [size, mtime_ns, study_uid, reason]}`` from an earlier run; entries whose
        size and mtime still match are not probed again.
    progress : called with the number of files seen so far, every 500 files.

    Returns
    -------
    Discovery; ``probes`` holds only the files seen now (vanished files drop out).
    """
    cache = cache or {}
    skip_dirs = {os.path.realpath(p) for p in exclude}
    studies: dict[str, StudyJob] = {}
    failures: list[Failure] = []
    probes: dict[str, list] = {}
    n = 0
    for folder, names in _walk_sorted(Path(root), skip_dirs):
        images: list[tuple[str, FileStat]] = []
        others: list[tuple[FileStat, str]] = []
        for name in names:
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError as exc:
                others.append((FileStat(path, -1, -1), f"unreadable: {exc.strerror}"))
                continue
            fs = FileStat(path, st.st_size, st.st_mtime_ns)
            uid, reason = _probe_cached(fs, cache, probes)
            if reason is None:
                images.append((uid or f"(no StudyInstanceUID) {folder}", fs))
            else:
                others.append((fs, reason))
            n += 1
            if progress is not None and n % 500 == 0:
                progress(n)
        _assign(folder, images, others, studies, failures)
    return Discovery(studies, failures, probes, n)


def _walk_sorted(root: Path, skip_dirs: set[str]) -> Iterable[tuple[str, list[str]]]:
    if root.is_file():
        yield str(root.parent), [root.name]
        return
    for folder, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and os.path.realpath(os.path.join(folder, d)) not in skip_dirs)
        yield folder, sorted(f for f in filenames if not f.startswith("."))


def _probe_cached(fs: FileStat, cache: dict[str, list], probes: dict[str, list]):
    hit = cache.get(fs.path)
    if hit is not None and hit[0] == fs.size and hit[1] == fs.mtime_ns:
        uid, reason = hit[2], hit[3]
    else:
        uid, reason = probe_file(fs.path)
    probes[fs.path] = [fs.size, fs.mtime_ns, uid, reason]
    return uid, reason


def _assign(folder: str, images, others, studies: dict[str, StudyJob],
            failures: list[Failure]) -> None:
    """Add one folder's files to their studies, or record the folder as a failure."""
    broken = [(fs, why) for fs, why in others if _is_broken(fs.path, why)]
    if images:
        uids = set()
        for uid, fs in images:
            studies.setdefault(uid, StudyJob(uid)).files.append(fs)
            uids.add(uid)
        for uid in uids:
            studies[uid].companions.extend(fs for fs, _ in broken)
    elif broken:
        counts = Counter(why.split(":")[0] for _, why in broken)
        detail = ", ".join(f"{k} {why}" for why, k in counts.most_common(3))
        failures.append(Failure(folder, "", f"no readable DICOM image ({detail})"))


def _is_broken(path: str, reason: str) -> bool:
    if reason.startswith(_HARMLESS):
        return False
    if reason == "not DICOM":
        return Path(path).suffix.lower() in DICOM_SUFFIXES
    return True


def study_key(study_uid: str) -> str:
    """A file-name-safe, unique name for a study (its UID when that is already safe)."""
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in study_uid)[:100]
    if safe != study_uid or not safe or safe.startswith("."):
        safe = f"{safe.strip('.')[:80]}_{hashlib.sha1(study_uid.encode()).hexdigest()[:12]}"
    return safe
