"""Corrections of the main window: corner drags with live preview, overrides, level shifts,
undo/redo and autosave messages; the logic itself is ``core.review``.

A mixin of :class:`~spineviewer.gui.main_window.MainWindow`; handlers here carry no
``@QtCore.Slot`` decorator, because a decorated mixin method loses ``sender()``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6 import QtCore

from spineviewer.core import calls, review

logger = logging.getLogger(__name__)


class CorrectionsMixin:
    """Reader corrections through :class:`core.review.ReviewSession`."""

    session: review.ReviewSession | None

    def _refresh(self) -> None:
        self._apply_binding()

    def _on_corner_dragging(self, level: str, corner: str, row: float, col: float) -> None:
        # Live table values while dragging, at most every 40 ms (remeasure takes ~10 ms).
        self._pending_preview = (level, corner, (row, col))
        if not self._preview_timer.isActive():
            self._preview_timer.start()

    def _show_preview(self) -> None:
        if self.session is None or self._pending_preview is None:
            return
        level, corner, rc = self._pending_preview
        try:
            preview = review.preview_move_corner(self.session.result, level, corner, rc,
                                                 self._remeasure)
        except Exception:
            logger.debug("preview failed", exc_info=True)
            return
        self.results.set_result(preview)

    def _on_corner_moved(self, level: str, corner: str, row: float, col: float) -> None:
        # Deferred: the handle that emitted this is replaced when the overlays are redrawn.
        self._preview_timer.stop()
        self._pending_preview = None
        QtCore.QTimer.singleShot(0, lambda: self.move_corner(level, corner, (row, col)))

    def move_corner(self, level: str, corner: str, rc: tuple[float, float]) -> None:
        """Move a corner of ``level`` (undoable, autosaved)."""
        self._edit(lambda s: s.move_corner(level, corner, rc))

    def override_call(self, level: str, fracture: bool | None, comment: str = "",
                      **reader: Any) -> None:
        """Override the fracture call of ``level`` (None removes the override); ``reader``:
        deformity, grade, age of a fracture (``core.review.override_call``)."""
        self._edit(lambda s: s.override_call(level, fracture, comment, **reader))

    def shift_levels(self, steps: int) -> None:
        """Rename all levels ``steps`` down (+) or up (-)."""
        self._edit(lambda s: s.shift_levels(steps))

    def _edit(self, fn: Callable[[review.ReviewSession], Any]) -> None:
        if self.session is None:
            return
        if not self.binding.bound:
            self._error("Correction not applied: the result is not the series shown.")
            return
        if self.binding.preliminary:
            self._error("Correction not applied: this is the preliminary (centre-slice) "
                        "result; wait for the full analysis.")
            return
        try:
            fn(self.session)
        except Exception as exc:
            logger.exception("edit failed")
            self._error(f"Correction not applied: {exc}")
        else:
            self._report_autosave()
            self._announce_calls("" if self.session.save_error else self._autosave_message())
        self._refresh()

    def _report_autosave(self) -> None:
        """After an edit that is in force: where it was saved, or that it was not."""
        if self.session.save_error:
            self._error(f"Correction applied but NOT saved: {self.session.save_error}. "
                        "Export the results before closing.")
            return
        self.statusBar().showMessage(self._autosave_message(), 8000)
        saved = self.session.last_save
        if saved is not None and saved.fallback:
            self._error(f"The study folder cannot be written ({saved.reason}): corrections "
                        f"are saved in {saved.path.parent}")

    def _announce_calls(self, prefix: str = "") -> None:
        """Say which calls the last correction, undo or redo changed (status line + signal);
        the audit entry already holds them (``ReviewSession``)."""
        changes = self.session.last_call_changes if self.session else []
        if not changes:
            return
        lines = [calls.change_text(c) for c in changes]
        self.last_announcement = "Call changed: " + "; ".join(lines)
        text = f"{prefix}. {self.last_announcement}" if prefix else self.last_announcement
        self.statusBar().showMessage(text, 15000)
        self.callsChanged.emit(lines)

    def _autosave_message(self) -> str:
        saved = self.session.last_save if self.session else None
        if saved is None:
            return ""
        n = len(self.session.result.edits)
        place = (f"in {saved.path.parent} (study folder not writable)" if saved.fallback
                 else "beside the study")
        return f"{n} correction(s) autosaved {place}"

    def undo(self) -> None:
        """Undo the last correction."""
        if self.session and self.session.undo():
            self._report_autosave()
            self._announce_calls()
            self._refresh()

    def redo(self) -> None:
        """Redo the last undone correction."""
        if self.session and self.session.redo():
            self._report_autosave()
            self._announce_calls()
            self._refresh()

    def step_vertebra(self, step: int) -> None:
        """Select the next (+1) or previous (-1) vertebra."""
        levels = self.results.levels()
        if not levels:
            return
        cur = self.results.selected_level()
        i = (levels.index(cur) + step) % len(levels) if cur in levels else 0
        self.results.select_level(levels[i])
