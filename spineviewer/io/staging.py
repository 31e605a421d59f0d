"""All-or-nothing writing of a set of output files (the one way out, used by `io.export`).

Every file is first written into a staging folder (``.spineviewer-staging-*``) inside its
target folder, so that the final move is an atomic rename on the same file system. Only when
every file of the set is written are they moved into place; when anything fails, files
already moved are taken back, replaced files are restored (from a hard link or copy kept in
the staging folder) and the staging folders removed: the output folders hold either the
whole new set or what they held before. A target path is never missing, even during a crash.

Targets are checked first: two outputs with the same path, a folder, a special file (FIFO,
device, socket) or a path below a file are refused; an existing regular file is refused
unless ``overwrite``. A special file is never replaced, not even with ``overwrite``.
Files are created with mode 0666 minus the umask, like any program's output.
Any `OSError` becomes an `OutputError` with one line naming the path.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tempfile
from pathlib import Path

from spineviewer.core.errors import SpineViewerError

STAGING_PREFIX = ".spineviewer-staging-"


class OutputError(SpineViewerError):
    """An output cannot be written; nothing of the set was written."""


class ExportExists(OutputError):
    """An output file exists and overwriting was not allowed."""


def describe_os_error(exc: OSError, path: str | Path) -> str:
    """One line for a failed write: what failed, where, and the system's reason."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    hints = {errno.EROFS: "read-only file system", errno.ENOSPC: "disk full",
             errno.EFBIG: "file too large for this file system or the file size limit",
             errno.ENAMETOOLONG: "file name too long", errno.EDQUOT: "disk quota exceeded"}
    hint = hints.get(exc.errno or 0)
    if hint and hint.lower() not in reason.lower():
        reason = f"{reason} ({hint})"
    return f"cannot write {path}: {reason}"


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def check_target(path: str | Path, overwrite: bool = False) -> None:
    """Refuse a path that cannot take a new regular file.

    Raises
    ------
    OutputError
        ``path`` is a folder or a special file, or a component of its folder is a file.
    ExportExists
        ``path`` is an existing regular file and ``overwrite`` is False.
    """
    p = Path(path)
    if p.name in ("", ".", ".."):
        raise OutputError(f"{path} is not a file name")
    try:
        st = os.stat(p)
    except (FileNotFoundError, NotADirectoryError):
        _check_folder(p.parent)
        return
    except OSError as exc:
        raise OutputError(f"cannot use {p} as an output: {exc.strerror or exc}") from None
    if stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{p} is a folder; give a file name for this output")
    if not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{p} is {_kind(st.st_mode)}, not a regular file; it is never "
                          "replaced by an output")
    if not overwrite:
        raise ExportExists(f"{p} already exists; choose another name or allow overwriting "
                           "(--force)")


def _check_folder(folder: Path) -> None:
    """The nearest existing ancestor of ``folder`` must be a folder (not a file)."""
    for parent in (folder, *folder.parents):
        try:
            st = os.stat(parent)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as exc:
            raise OutputError(f"cannot use {parent}: {exc.strerror or exc}") from None
        if not stat.S_ISDIR(st.st_mode):
            raise OutputError(f"{parent} is not a folder; outputs cannot be written below it")
        return


def check_targets(paths: list[Path], overwrite: bool = False) -> None:
    """`check_target` for each path, and no two outputs with the same path."""
    seen: dict[str, Path] = {}
    for p in paths:
        key = os.path.normcase(str(Path(p).expanduser().resolve()))
        if key in seen:
            raise OutputError(f"two outputs would be written to the same file {p}; give "
                              "each output its own name")
        seen[key] = Path(p)
    for p in paths:
        check_target(p, overwrite)


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                 0o666)  # the umask applies, as for any program's output
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _make_folder(folder: Path, created: list[Path]) -> None:
    """Create ``folder`` and its missing parents, remembering each one created."""
    missing = []
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        missing.append(parent)
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            if not d.is_dir():
                raise
            continue
        created.append(d)


def write_all(contents: dict[Path, bytes | str], *, overwrite: bool = False) -> list[Path]:
    """Write every file of ``contents``, or none of them.

    Parameters
    ----------
    contents : dict of Path -> bytes or str
        Text is written as UTF-8. Missing folders are created (and removed again on failure).
    overwrite : bool
        Replace existing regular files; otherwise an existing file raises `ExportExists`
        before anything is written.

    Returns
    -------
    list of Path
        The paths, in the order of ``contents``.

    Raises
    ------
    OutputError
        A refused target or a failed write (one line); the targets are as before the call.
    """
    paths = [Path(p) for p in contents]
    check_targets(paths, overwrite)
    created: list[Path] = []
    stages: dict[Path, Path] = {}
    staged: list[tuple[Path, Path]] = []
    placed: list[tuple[Path, Path | None, bool]] = []  # target, backup of the old file, moved
    current = paths[0] if paths else Path(".")
    try:
        for i, p in enumerate(paths):
            current = p
            parent = p.parent
            if parent not in stages:
                _make_folder(parent, created)
                stages[parent] = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=parent))
            data = contents[p]
            tmp = stages[parent] / f"{i}.new"
            _write_new(tmp, data.encode("utf-8") if isinstance(data, str) else data)
            staged.append((p, tmp))
        check_targets(paths, overwrite)  # again: something may have appeared meanwhile
        for p, tmp in staged:
            current = p
            backup = None
            if os.path.lexists(p):  # keep the old file for a rollback; p is never missing
                backup = tmp.with_suffix(".old")
                try:
                    os.link(p, backup)
                except OSError:
                    shutil.copy2(p, backup)
            placed.append((p, backup, False))
            os.replace(tmp, p)  # atomic: p is the old or the new file, whatever happens
            placed[-1] = (p, backup, True)
    except BaseException as exc:
        _rollback(placed)
        _remove(stages.values(), created)
        if isinstance(exc, OutputError):
            raise
        if isinstance(exc, OSError):
            raise OutputError(describe_os_error(exc, current)) from None
        raise
    _remove(stages.values(), [])
    return paths


def _rollback(placed: list[tuple[Path, Path | None, bool]]) -> None:
    for target, backup, moved in reversed(placed):
        if not moved:
            continue  # the old file (if any) is still in place
        try:
            if backup is not None:
                os.replace(backup, target)
            else:
                os.unlink(target)
        except OSError:
            pass


def _remove(stages, created: list[Path]) -> None:
    for d in stages:
        shutil.rmtree(d, ignore_errors=True)
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            pass


def remove_leftovers(folder: str | Path) -> int:
    """Remove staging folders under ``folder`` left by a killed process; how many."""
    n = 0
    for d in sorted(Path(folder).rglob(f"{STAGING_PREFIX}*"), reverse=True):
        if d.is_dir() and not d.is_symlink():
            shutil.rmtree(d, ignore_errors=True)
            n += 1
    return n
