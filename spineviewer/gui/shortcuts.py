"""Keyboard shortcuts in one place (shown in Help > Keyboard shortcuts)."""

from __future__ import annotations

import html

#: action -> key sequence (Qt portable text)
SHORTCUTS = {
    "open": "Ctrl+O", "analyse": "Ctrl+R", "cancel": "Esc", "export": "Ctrl+E",
    "quit": "Ctrl+Q", "undo": "Ctrl+Z", "redo": "Ctrl+Shift+Z", "fracture": "F2",
    "no_fracture": "F3", "shift_up": "Alt+Up", "shift_down": "Alt+Down", "next": "N",
    "previous": "P", "fit": "F", "toggle_overlays": "O", "redo_alt": "Ctrl+Y",
    "comment": "Ctrl+M", "export_options": "Ctrl+Shift+E",
}
#: reading tools (gui.reading_tools) -> key sequences; the first is shown in menus
READING_SHORTCUTS = {
    "ruler": ("D",), "clear_rulers": ("Shift+D",), "autozoom": ("Z",), "linked_view": ("V",),
    "study_panel": ("F9",), "results_panel": ("F10",), "reading_mode": ("F11",),
    "shortcut_list": ("F1", "Ctrl+/"),
}
#: mouse and keys handled by the canvas itself
CANVAS_BINDINGS = [
    ("Left drag", "window / level (horizontal: width, vertical: level)"),
    ("Middle drag or Shift + left drag", "pan"),
    ("Right drag or Ctrl + wheel", "zoom"),
    ("Wheel, Up / Down, PgUp / PgDn, Home / End", "change slice"),
    ("Drag a corner point", "correct a corner; measurements recompute at once"),
    ("Ctrl+1 .. Ctrl+4", "window presets: DICOM, Auto, High contrast, Full range"),
    ("Left drag with the ruler on (D)", "measure a distance in mm; drag its ends to adjust"),
    ("Click a mark above the slider", "go to the slice a vertebra was measured on"),
]
_TEXT = {
    "open": "Open a study folder", "analyse": "Analyse", "cancel": "Cancel analysis",
    "export": "Export", "quit": "Quit", "undo": "Undo correction", "redo": "Redo correction",
    "fracture": "Mark selected vertebra: fracture", "no_fracture": "Mark: no fracture",
    "shift_up": "Shift level names up (L5 -> L4)", "shift_down": "Shift level names down",
    "next": "Next vertebra", "previous": "Previous vertebra", "fit": "Fit image to window",
    "toggle_overlays": "Show / hide corner points", "redo_alt": "Redo correction",
    "comment": "Go to the comment box and the override controls",
    "export_options": "Go to the export options",
}


def shortcuts_html() -> str:
    """A two-column table of every shortcut and mouse binding."""
    rows = [(SHORTCUTS[k], _TEXT[k]) for k in SHORTCUTS] + CANVAS_BINDINGS
    body = "".join(f"<tr><td><b>{html.escape(a)}</b>&nbsp;&nbsp;</td><td>{html.escape(b)}</td></tr>"
                   for a, b in rows)
    return f"<table>{body}</table>"
