"""Background jobs of the main window: start, cancel, drop stale results, stop on close.

A mixin of :class:`~spineviewer.gui.main_window.MainWindow`; handlers here carry no
``@QtCore.Slot`` decorator, because a decorated mixin method loses ``sender()``.
"""

from __future__ import annotations

from typing import Any

from PySide6 import QtCore

from spineviewer.gui import worker as workers


class JobsMixin:
    """One live job per name (index, load, analysis); a newer job cancels the older one."""

    _jobs: dict[str, tuple[QtCore.QObject, QtCore.QThread]]
    export_panel: Any

    def _start_job(self, name: str, job: QtCore.QObject) -> None:
        self._cancel_job(name)
        # the end handler is connected before the thread starts: a quick job can end first
        thread = workers.start(job, self, on_finished=lambda n=name, j=job: self._job_ended(n, j))
        self._jobs[name] = (job, thread)
        self._update_actions()

    def _job_ended(self, name: str, job: QtCore.QObject) -> None:
        current = self._jobs.get(name)
        if current is not None and current[0] is job:
            del self._jobs[name]
        self._update_actions()

    def _cancel_job(self, name: str) -> None:
        current = self._jobs.get(name)
        if current is not None:
            current[0].cancel()

    def _is_current(self, name: str) -> bool:
        """True when the emitting worker is the live job ``name`` (stale results are dropped)."""
        current = self._jobs.get(name)
        return current is not None and self.sender() is current[0]

    def is_busy(self, name: str = "analysis") -> bool:
        """True while the job ``name`` (index, load, analysis) runs."""
        return name in self._jobs

    def shutdown(self, timeout_ms: int = 15000) -> None:
        """Cancel every background job and wait for its thread."""
        self.export_panel.shutdown()
        for job, thread in list(self._jobs.values()):
            workers.stop(job, thread, timeout_ms)
        self._jobs.clear()
