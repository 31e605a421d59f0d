"""The shortcut list (F1, Ctrl+/): every key bound to an action of the window, read from the
actions themselves so that it never goes stale, plus the canvas' mouse and key bindings."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from spineviewer.gui.shortcuts import CANVAS_BINDINGS


def action_rows(window: QtWidgets.QWidget) -> list[tuple[str, str]]:
    """(keys, what) for every action of ``window`` (and its menus) that has a shortcut."""
    rows, seen = [], set()
    for act in window.findChildren(QtGui.QAction):
        keys = [k.toString(QtGui.QKeySequence.SequenceFormat.NativeText) for k in act.shortcuts()]
        keys = [k for k in keys if k]
        if not keys or id(act) in seen:
            continue
        seen.add(id(act))
        text = act.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
        rows.append((" or ".join(keys), text.rstrip("\u2026.")))
    return sorted(rows, key=lambda r: r[1].lower())


class ShortcutDialog(QtWidgets.QDialog):
    """A filterable two-column table of shortcuts."""

    def __init__(self, window: QtWidgets.QWidget) -> None:
        super().__init__(window)
        self.setWindowTitle("Keyboard shortcuts")
        self.rows = action_rows(window) + list(CANVAS_BINDINGS)
        self.filter = QtWidgets.QLineEdit()
        self.filter.setPlaceholderText("Filter\u2026")
        self.filter.setClearButtonEnabled(True)
        self.table = QtWidgets.QTableWidget(len(self.rows), 2)
        self.table.setHorizontalHeaderLabels(["Keys / mouse", "Does"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        for i, (keys, what) in enumerate(self.rows):
            self.table.setItem(i, 0, QtWidgets.QTableWidgetItem(keys))
            self.table.setItem(i, 1, QtWidgets.QTableWidgetItem(what))
        self.table.resizeColumnToContents(0)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.filter.textChanged.connect(self._apply_filter)
        buttons = QtWidgets.QDialogButtonBox(QtWidgets.QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay = QtWidgets.QVBoxLayout(self)
        lay.addWidget(self.filter)
        lay.addWidget(self.table, 1)
        lay.addWidget(buttons)
        self.resize(620, 560)
        self.filter.setFocus()

    def texts(self) -> list[str]:
        """Every row as "keys: what" (visible rows only)."""
        return [f"{self.table.item(i, 0).text()}: {self.table.item(i, 1).text()}"
                for i in range(self.table.rowCount()) if not self.table.isRowHidden(i)]

    def _apply_filter(self, text: str) -> None:
        t = text.lower().strip()
        for i, (keys, what) in enumerate(self.rows):
            self.table.setRowHidden(i, bool(t) and t not in f"{keys} {what}".lower())


def show_shortcuts(window: QtWidgets.QWidget) -> ShortcutDialog:
    """Open the shortcut list (non-modal) and return it."""
    dlg = ShortcutDialog(window)
    dlg.setAttribute(QtCore.Qt.WidgetAttribute.WA_DeleteOnClose)
    dlg.show()
    return dlg
