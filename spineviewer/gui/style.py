"""Colours, themes and the status of a vertebra as the viewer colours it.

Overlay colours come from the Okabe-Ito palette (readable with red-green colour blindness)
and are drawn on the dark MR image, so they do not depend on the widget theme. Table row tints
are translucent, so text keeps the theme's own colour in light and dark mode.
"""

from __future__ import annotations

from PySide6 import QtGui, QtWidgets

from spineviewer.core.results import VertebraResult

# the one colour scheme of app and report lives in io.palette (re-exported here)
from spineviewer.io.palette import (  # noqa: F401
    ANALYSED_SLICE_COLOUR,
    DISCLAIMER_COLOUR,
    SELECTED_COLOUR,
    STATUS_COLOURS,
    call_status,
    vertebra_status,
)


def status_colour(v: VertebraResult, alpha: int = 255) -> QtGui.QColor:
    """Overlay colour of ``v`` (by its call) with the given alpha (0..255)."""
    c = QtGui.QColor(STATUS_COLOURS[call_status(v)][0])
    c.setAlpha(alpha)
    return c


def row_tint(v: VertebraResult) -> QtGui.QColor | None:
    """Translucent table-row background for flagged vertebrae (None for normal ones)."""
    status = vertebra_status(v)
    if status == "normal":
        return None
    c = QtGui.QColor(STATUS_COLOURS[status][0])
    c.setAlpha(90 if status == "fracture" else 40)  # a fracture must stand out among reviews
    return c


def legend_html() -> str:
    """Small HTML legend of the overlay colours and marks."""
    items = "".join(
        f"<span style='color:{STATUS_COLOURS[k][0]}'>&#9632;</span>&nbsp;{STATUS_COLOURS[k][1]}"
        "&nbsp;&nbsp; " for k in ("normal", "fracture", "schmorl"))
    review = STATUS_COLOURS["review"][0]
    return (items + f"<b style='color:{review}'>?</b>&nbsp;needs review&nbsp;&nbsp; "
            "<span style='color:#fff'>&#9998; corrected</span>")


def dark_palette() -> QtGui.QPalette:
    """A neutral dark palette like radiology viewers use (images read best on dark grey)."""
    p = QtGui.QPalette()
    roles = QtGui.QPalette.ColorRole
    for role, colour in [
        (roles.Window, "#2b2b2b"), (roles.WindowText, "#e6e6e6"), (roles.Base, "#1f1f1f"),
        (roles.AlternateBase, "#2a2a2a"), (roles.ToolTipBase, "#3a3a3a"),
        (roles.ToolTipText, "#f0f0f0"), (roles.Text, "#e6e6e6"), (roles.Button, "#353535"),
        (roles.ButtonText, "#e6e6e6"), (roles.BrightText, "#ff6060"), (roles.Link, "#56B4E9"),
        (roles.Highlight, "#2f6f9f"), (roles.HighlightedText, "#ffffff"),
        (roles.PlaceholderText, "#8a8a8a"),
    ]:
        p.setColor(role, QtGui.QColor(colour))
    disabled = QtGui.QPalette.ColorGroup.Disabled
    for role in (roles.Text, roles.ButtonText, roles.WindowText):
        p.setColor(disabled, role, QtGui.QColor("#777777"))
    return p


def apply_theme(app: QtWidgets.QApplication, dark: bool) -> None:
    """Fusion style with a dark palette, or the platform's light palette."""
    app.setStyle("Fusion")
    app.setPalette(dark_palette() if dark else app.style().standardPalette())
