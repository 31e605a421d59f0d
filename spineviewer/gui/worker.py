"""Background workers: analysis, folder indexing and series loading off the GUI thread.

Each worker is a ``QObject`` moved to its own ``QThread`` (see :func:`start`); it reports
progress through signals, checks a thread-safe cancel flag, and ends with exactly one of
finished / failed / cancelled followed by ``done``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore

from spineviewer.core.errors import Cancelled, SpineViewerError

logger = logging.getLogger(__name__)


def _message(exc: BaseException, what: str) -> str:
    """One readable line for a failure; programming errors keep their type for bug reports."""
    if isinstance(exc, SpineViewerError):
        return str(exc)
    logger.exception("%s failed", what)
    return f"{what} failed: {type(exc).__name__}: {exc}"


class AnalysisWorker(QtCore.QObject):
    """Runs ``core.pipeline.analyze_study`` in a worker thread.

    Parameters
    ----------
    path : str
        Study folder or file.
    series_uid, provider, threads : passed to ``analyze_study``.
    force_series : passed only when True (analyse a series that is not a sagittal T2).
    index, volume : the folder's index and the series already loaded by the viewer, passed
        on only when given (``analyze_study`` then neither walks the folder nor reads the
        series again).
    analyze : callable, optional
        Replacement for ``analyze_study`` (same keyword arguments), e.g. with
        ``masks_override`` bound; defaults to the real pipeline.
    preliminary : bool
        Ask ``analyze`` for its early centre-slice result (``analyze_study(preliminary=)``):
        it arrives as ``preliminaryReady`` before ``analysisFinished``.
    """

    progressChanged = QtCore.Signal(str, float)
    #: the early result (``StudyResult.preliminary``), while the full analysis still runs
    preliminaryReady = QtCore.Signal(object)
    analysisFinished = QtCore.Signal(object)
    analysisFailed = QtCore.Signal(str)
    analysisCancelled = QtCore.Signal()
    done = QtCore.Signal()

    def __init__(self, path: str, *, series_uid: str | None = None, provider: str = "auto",
                 threads: int | None = None, analyze: Callable[..., Any] | None = None,
                 force_series: bool = False, index: Any = None, volume: Any = None,
                 preliminary: bool = False) -> None:
        super().__init__()
        self.path = str(path)
        self.kwargs: dict[str, Any] = {"series_uid": series_uid, "provider": provider,
                                       "threads": threads}
        if force_series:
            self.kwargs["force_series"] = True
        if preliminary:
            self.kwargs["preliminary"] = self._preliminary
        for key, value in (("index", index), ("volume", volume)):
            if value is not None:
                self.kwargs[key] = value
        self._analyze = analyze
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the pipeline to stop at the next stage boundary (thread-safe)."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        """True once cancel() was called."""
        return self._cancel.is_set()

    def _preliminary(self, result: Any) -> None:
        if not self._cancel.is_set():
            self.preliminaryReady.emit(result)

    @QtCore.Slot()
    def run(self) -> None:
        """Run the job (in the worker thread); ends with ``done``."""
        try:
            analyze = self._analyze
            if analyze is None:
                from spineviewer.core.pipeline import analyze_study as analyze
            result = analyze(self.path, progress=self.progressChanged.emit,
                             cancel=self._cancel.is_set, **self.kwargs)
            if self._cancel.is_set():
                raise Cancelled("analysis cancelled")
        except Cancelled:
            self.analysisCancelled.emit()
        except Exception as exc:  # noqa: BLE001 - every failure becomes a readable message
            self.analysisFailed.emit(_message(exc, "Analysis"))
        else:
            self.analysisFinished.emit(result)
        finally:
            self.done.emit()


class TaskWorker(QtCore.QObject):
    """Runs ``fn(*args, progress=..., cancel=...)`` (or ``fn(*args)``) in a worker thread."""

    progressChanged = QtCore.Signal(str, float)
    succeeded = QtCore.Signal(object)
    failed = QtCore.Signal(str)
    cancelled = QtCore.Signal()
    done = QtCore.Signal()

    def __init__(self, fn: Callable[..., Any], *args: Any, what: str = "Task",
                 with_progress: bool = True) -> None:
        super().__init__()
        self._fn, self._args, self.what = fn, args, what
        self._with_progress = with_progress
        self._cancel = threading.Event()

    def cancel(self) -> None:
        """Ask the job to stop at its next check (thread-safe)."""
        self._cancel.set()

    @QtCore.Slot()
    def run(self) -> None:
        """Run the job (in the worker thread); ends with ``done``."""
        try:
            if self._with_progress:
                out = self._fn(*self._args, progress=self.progressChanged.emit,
                               cancel=self._cancel.is_set)
            else:
                out = self._fn(*self._args)
            if self._cancel.is_set():
                raise Cancelled(f"{self.what} cancelled")
        except Cancelled:
            self.cancelled.emit()
        except Exception as exc:  # noqa: BLE001
            self.failed.emit(_message(exc, self.what))
        else:
            self.succeeded.emit(out)
        finally:
            self.done.emit()


def start(worker: QtCore.QObject, parent: QtCore.QObject | None = None,
          on_finished: Callable[[], Any] | None = None) -> QtCore.QThread:
    """Move ``worker`` to a new thread and start it; the thread quits when the worker is done.

    ``on_finished`` is connected to ``thread.finished`` *before* the thread starts: a quick
    job (an empty folder) can end before ``start`` returns, and a connection made after that
    would never fire. The caller keeps references to both until ``thread.finished`` (Python
    owns them).
    """
    thread = QtCore.QThread(parent)
    worker.moveToThread(thread)
    thread.started.connect(worker.run)
    # Direct: quit() is thread-safe, and the thread ends even while the GUI thread waits on it.
    worker.done.connect(thread.quit, QtCore.Qt.ConnectionType.DirectConnection)
    if on_finished is not None:
        thread.finished.connect(on_finished)
    thread.start()
    return thread


def stop(worker: QtCore.QObject | None, thread: QtCore.QThread | None,
         timeout_ms: int = 10000) -> bool:
    """Cancel ``worker`` and wait for its thread; True when the thread has ended."""
    if worker is not None and hasattr(worker, "cancel"):
        worker.cancel()
    if thread is None:
        return True
    try:
        if not thread.isRunning():
            return True
        thread.quit()
        return bool(thread.wait(timeout_ms))
    except RuntimeError:  # the C++ object is already gone
        return True
