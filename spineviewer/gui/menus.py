"""Actions, menus, toolbar and status bar of the main window (built here, wired to its slots)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6 import QtCore, QtGui, QtWidgets

import spineviewer
from spineviewer.gui import style
from spineviewer.gui.about import show_about
from spineviewer.gui.canvas import WL_PRESETS
from spineviewer.gui.overlays import OVERLAYS
from spineviewer.gui.shortcuts import SHORTCUTS


def action(
    win: QtWidgets.QMainWindow,
    text: str,
    slot: Callable,
    key: str = "",
    tip: str = "",
    checkable: bool = False,
) -> QtGui.QAction:
    """A window-wide action; its shortcut is shown in the tooltip."""
    act = QtGui.QAction(text, win)
    if key:
        act.setShortcut(QtGui.QKeySequence(key))
    act.setToolTip(f"{tip or text} ({key})" if key else (tip or text))
    act.setCheckable(checkable)
    (act.toggled if checkable else act.triggered).connect(slot)
    win.addAction(act)
    return act


def build_actions(win: Any) -> None:
    """Actions, menus and the toolbar of the main window ``win``."""
    k = SHORTCUTS
    win.act_open = action(win, "&Open folder\u2026", win.choose_folder, k["open"])
    win.act_analyse = action(
        win, "&Analyse", win.analyse_shown_series, k["analyse"], "Analyse the series shown"
    )
    win.act_cancel = action(
        win, "&Cancel", win.cancel_analysis, k["cancel"], "Cancel the running analysis"
    )
    win.act_reanalyse = action(win, "Discard corrections and re-analyse", win.discard_and_reanalyse)
    win.act_export = action(win, "&Export", win.export_panel.export, k["export"])
    win.act_quit = action(win, "&Quit", win.close, k["quit"])
    win.act_undo = action(win, "&Undo", win.undo, k["undo"])
    win.act_redo = action(win, "&Redo", win.redo, k["redo"])
    win.act_redo.setShortcuts([QtGui.QKeySequence(k["redo"]), QtGui.QKeySequence(k["redo_alt"])])
    # keyboard reach of the correction and export controls
    win.act_comment = action(win, "Comment / override controls",
                             lambda: win.results.comment.setFocus(), k["comment"])
    win.act_export_options = action(win, "Export options",
                                    lambda: win.export_panel.pdf.setFocus(), k["export_options"])
    win.act_fracture = action(
        win, "Mark &fracture", lambda: win.results.request_override(True), k["fracture"]
    )
    win.act_no_fracture = action(
        win, "Mark &no fracture", lambda: win.results.request_override(False), k["no_fracture"]
    )
    win.act_up = action(win, "Shift levels up", lambda: win.shift_levels(-1), k["shift_up"])
    win.act_down = action(win, "Shift levels down", lambda: win.shift_levels(+1), k["shift_down"])
    win.act_next = action(win, "Next vertebra", lambda: win.step_vertebra(1), k["next"])
    win.act_prev = action(win, "Previous vertebra", lambda: win.step_vertebra(-1), k["previous"])
    win.act_fit = action(win, "&Fit to window", win.canvas.fit, k["fit"])
    win.act_dark = action(win, "Dark theme", win.set_dark, checkable=True)
    win.act_about = action(
        win,
        "&About SpineViewer",
        lambda: show_about(win, win.session.result.model if win.session else None),
    )
    win.act_keys = action(win, "Keyboard shortcuts", win.show_shortcuts)

    bar = win.menuBar()
    m = bar.addMenu("&File")
    m.addAction(win.act_open)
    win.recent_menu = m.addMenu("Open &recent")
    win.rebuild_recent()
    m.addAction(win.act_export)
    m.addSeparator()
    m.addAction(win.act_quit)
    m = bar.addMenu("&Edit")
    for a in (
        win.act_undo,
        win.act_redo,
        None,
        win.act_fracture,
        win.act_no_fracture,
        win.act_up,
        win.act_down,
        None,
        win.act_comment,
        win.act_export_options,
    ):
        m.addSeparator() if a is None else m.addAction(a)
    m = bar.addMenu("&View")
    m.addAction(win.act_fit)
    wl = m.addMenu("Window / level")
    for i, name in enumerate(["DICOM", *WL_PRESETS]):
        wl.addAction(
            action(win, name, lambda _=False, n=name: win.apply_wl_preset(n), f"Ctrl+{i + 1}")
        )
    ov = m.addMenu("Overlays")
    win.overlay_actions = {}
    for name, text in OVERLAYS.items():
        act = action(
            win, text, lambda on, n=name: win.canvas.set_overlay_visible(n, on), checkable=True
        )
        act.setChecked(True)
        ov.addAction(act)
        win.overlay_actions[name] = act
    win.overlay_actions["corners"].setShortcut(QtGui.QKeySequence(k["toggle_overlays"]))
    m.addAction(win.act_next)
    m.addAction(win.act_prev)
    m.addSeparator()
    m.addAction(win.act_dark)
    m = bar.addMenu("&Analysis")
    for a in (win.act_analyse, win.act_cancel, win.act_reanalyse):
        m.addAction(a)
    m = bar.addMenu("&Help")
    m.addAction(win.act_keys)
    m.addAction(win.act_about)

    tb = win.addToolBar("Main")
    tb.setObjectName("main toolbar")
    tb.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextOnly)
    for a in (
        win.act_open,
        win.act_analyse,
        win.act_cancel,
        None,
        win.act_undo,
        win.act_redo,
        None,
        win.act_fit,
    ):
        tb.addSeparator() if a is None else tb.addAction(a)
    win.wl_combo = QtWidgets.QComboBox()
    win.wl_combo.addItems(["DICOM", *WL_PRESETS])
    win.wl_combo.setToolTip("Window/level preset (drag with the left mouse button to adjust)")
    win.wl_combo.textActivated.connect(win.canvas.apply_preset)
    tb.addWidget(QtWidgets.QLabel(" W/L "))
    tb.addWidget(win.wl_combo)
    win.main_toolbar = tb
    # the overlay toggles have their own toolbar: on a narrow window it moves to a second row
    # (MainWindow.wrap_toolbars) instead of hiding behind the toolbar's overflow button
    otb = win.addToolBar("Overlays")
    otb.setObjectName("overlay toolbar")
    otb.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextOnly)
    for name in ("masks", "corners", "heights", "depths", "endplates", "labels"):
        otb.addAction(win.overlay_actions[name])
    win.overlay_toolbar = otb


def build_status_bar(win: Any) -> None:
    """Progress, model, timings and the research-use disclaimer in the status bar."""
    sb = win.statusBar()
    win.progress = QtWidgets.QProgressBar()
    win.progress.setRange(0, 1000)
    win.progress.setMaximumWidth(220)
    win.progress.hide()
    win.model_label = QtWidgets.QLabel("Model: -")
    win.timing_label = QtWidgets.QLabel("")
    win.disclaimer = QtWidgets.QLabel(f"\u26a0 {spineviewer.DISCLAIMER}")
    # black on amber reads the same in the light and the dark theme
    win.disclaimer.setStyleSheet(
        f"QLabel{{background:{style.DISCLAIMER_COLOUR};"
        "color:#000;font-weight:bold;padding:1px 6px;}"
    )
    win.disclaimer.setToolTip(spineviewer.DISCLAIMER)
    for w in (win.progress, win.model_label, win.timing_label, win.disclaimer):
        sb.addPermanentWidget(w)
    win.canvas.cursorInfoChanged.connect(lambda t: sb.showMessage(t.strip(), 4000))
