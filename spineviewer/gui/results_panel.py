"""Results panel: one table row per vertebra, the "why" view of the selected one, and the
correction controls (override the call with a comment, shift level names)."""

from __future__ import annotations

import html
import itertools

from PySide6 import QtCore, QtGui, QtWidgets

from spineviewer.core import calls
from spineviewer.core.dicom.select import UNSUITABLE_FLAG
from spineviewer.core.results import StudyResult, VertebraResult
from spineviewer.gui import style
from spineviewer.io.report_text import edit_text, study_flag_text, unsuitable_series_line

#: (header, attribute or callable, tooltip)
COLUMNS = [
    ("Level", "level", ("Vertebral level (T12, L1..L5), counted up from the sacrum with five "
                        "lumbar vertebrae assumed: with transitional anatomy (four or six "
                        "lumbar-type vertebrae) that no cue on the image shows, every name is "
                        "off by one - confirm the count, Levels \u2191/\u2193 rename them all; "
                        "pencil = corrected")),
    ("AH", "AH_mm", "Anterior height, mm"),
    ("PH", "PH_mm", "Posterior height, mm"),
    ("MH", "MH_mm", "Middle height, mm"),
    ("SC", "SC_mm", "Superior endplate concavity depth, mm"),
    ("IC", "IC_mm", "Inferior endplate concavity depth, mm"),
    ("VA", "VA_deg", "Vertebral angle, degrees (positive: anterior wedging)"),
    ("AH/PH", "wedge_ratio", "Wedge ratio"),
    ("MH/PH", "biconcavity_ratio", "Biconcavity ratio"),
    ("Crush", "crush_ratio", "PH against the mean PH of the neighbours"),
    ("Fracture", "final_fracture", "Final call (after any override)"),
    ("Deformity", "deformity", "Genant deformity type"),
    ("Grade", "genant_grade", "Genant semi-quantitative grade 0-3"),
    ("Flags", "flags", "schmorl_node, needs_review, ..."),
]
#: short table text of common flags (the why view spells them out)
FLAG_SHORT = {"needs_review": "review", "schmorl_node": "Schmorl", "label_uncertain": "label?",
              "transitional_anatomy": "LSTV?", "mild_deformity": "mild", "partial_body": "partial",
              "corners_failed": "corners?", "sacrum_not_visible": "no S1",
              "endplate_from_mask": "endplate?", "endplate_fold": "fold?"}
#: Columns hidden, in this order, while the table is too narrow for all of them (no horizontal
#: scrolling at 1024 x 700); the "why" view of the selected vertebra lists every value.
OPTIONAL_COLUMNS = ("crush_ratio", "IC_mm", "SC_mm", "VA_deg", "biconcavity_ratio", "wedge_ratio",
                    "MH_mm")
#: Width left for the flags column before optional columns are hidden.
MIN_FLAGS_PX = 60
#: Table rows always visible (the results dock scrolls vertically on a short screen).
MIN_TABLE_ROWS = 5.5
#: Text lines of the "why" view always visible: the call, the values and the first reasons
#: (at 1024 x 700 it had shrunk to three lines, its flags out of sight).
MIN_WHY_LINES = 8
_DECIMALS = {"VA_deg": 1, "wedge_ratio": 2, "biconcavity_ratio": 2, "crush_ratio": 2}


def cell_text(v: VertebraResult, attr: str) -> str:
    """Text of one table cell."""
    value = getattr(v, attr)
    if attr == "level":
        return v.level + (" \u270e" if v.ai is not None else "")
    if attr == "final_fracture":
        if v.AH_mm is None and not v.override:
            return "-"  # not measured (e.g. a body cut by the field of view): no call
        text = "yes" if value else "no"
        return text + (" (override)" if v.override else "")
    if attr == "flags":
        return ", ".join(FLAG_SHORT.get(f, f.replace("_", " ")) for f in value)
    reader = calls.has_override(v) and v.override["fracture"]
    if attr == "deformity" and reader and v.override.get("deformity"):
        return f"{v.override['deformity']} (reader)"
    if attr == "genant_grade" and reader and v.override.get("grade"):
        return f"{v.override['grade']} (reader)"
    if attr == "genant_grade" and v.fracture and not v.genant_grade and not calls.has_override(v):
        return "mild"  # rule-positive, height loss below 20%: never "fracture, grade 0"
    if attr in ("deformity", "genant_grade") and v.override and v.final_fracture != v.fracture:
        return f"{value} (AI)"  # the measured pattern stands; the reader's call differs
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{_DECIMALS.get(attr, 1)}f}"
    return str(value)


def why_html(v: VertebraResult, result: StudyResult) -> str:
    """The reasons behind the call of ``v``: each rule with its value and threshold."""
    e = html.escape
    colour = style.status_colour(v).name()
    parts = [(f"<h3 style='margin:0'>{e(v.level)}: <span style='color:{colour}'>"
              f"{e(calls.final_call(v))}</span></h3>")]
    values = [f"{h} {cell_text(v, a)}" for h, a, _ in COLUMNS[1:10] if getattr(v, a) is not None]
    if values:  # every measurement, also those the narrow table hides
        parts.append(f"<p>{e(', '.join(values))}</p>")
    if v.flags:  # before the reasons: in sight without scrolling on a small screen
        parts.append("<p><b>Flags:</b> " + e(", ".join(v.flags)) + "</p>")
    if calls.has_override(v):
        comment = e(v.override.get("comment") or "no comment")
        parts.append(f"<p><b>Reader's call:</b> {e(calls.reader_call(v))}<br>"
                     f"<b>Algorithm's call:</b> {e(calls.algorithm_call(v))}<br>"
                     f"Comment: {comment}</p>")
    if v.reasons and v.override:
        parts.append("<p><b>AI reasons</b></p>")
    if v.reasons:
        parts.append("<ul>" + "".join(f"<li>{e(r)}</li>" for r in v.reasons) + "</ul>")
    else:
        parts.append("<p>No rule fired.</p>")
    if v.corner_strategy or v.corner_overlap is not None:
        ov = "-" if v.corner_overlap is None else f"{v.corner_overlap:.2f}"
        how = {"median": "median of the three strategies"}.get(v.corner_strategy,
                                                              v.corner_strategy or "?")
        parts.append(f"<p>Corners: {e(how)}, overlap {ov}</p>")
    edits = [x for x in result.edits if x.get("level") in (v.level, "all")]
    if edits:
        spacing = getattr(result, "pixel_spacing_mm", None)
        rows = "".join(f"<li>{e(edit_text(x, spacing)).replace(' -&gt; ', ' &rarr; ')}"
                       + "".join(f"<br>call {e(c)}" for c in x.get("call_changes", []))
                       + "</li>" for x in edits[-6:])
        parts.append(f"<p><b>Corrections</b></p><ul>{rows}</ul>")
    return "".join(parts)


class ResultsPanel(QtWidgets.QWidget):
    """Table of vertebrae, "why" view and correction controls."""

    levelSelected = QtCore.Signal(str)
    # level, call (1 fracture, 0 no fracture, -1 remove the override), comment. An int, not
    # an object: PySide6 6.12 loses a reference when a bool travels as `object`.
    overrideRequested = QtCore.Signal(str, int, str)
    shiftRequested = QtCore.Signal(int)  # +1 caudal (L4 -> L5), -1 cranial

    def __init__(self, parent: QtWidgets.QWidget | None = None) -> None:
        super().__init__(parent)
        self.result: StudyResult | None = None
        self.pending_details: dict = {}
        self.table = QtWidgets.QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels([c[0] for c in COLUMNS])
        for i, (_, _, tip) in enumerate(COLUMNS):
            self.table.horizontalHeaderItem(i).setToolTip(tip)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(
            QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(
            len(COLUMNS) - 1, QtWidgets.QHeaderView.ResizeMode.Stretch)  # flags: elided
        self.table.setWordWrap(False)
        self.table.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.itemSelectionChanged.connect(self._on_selection)
        self.why = QtWidgets.QTextBrowser()
        self.why.setPlaceholderText("Select a vertebra to see why it was called.")
        self.why.setMinimumHeight(int(MIN_WHY_LINES * self.why.fontMetrics().lineSpacing())
                                  + 2 * self.why.frameWidth()
                                  + int(2 * self.why.document().documentMargin()))
        self.summary = QtWidgets.QLabel("No analysis yet.")
        self.summary.setWordWrap(True)
        #: whose result this is (patient and series), or where the result on hold belongs
        self.header = QtWidgets.QLabel("")
        self.header.setWordWrap(True)
        self.header.setTextFormat(QtCore.Qt.TextFormat.RichText)
        lay = QtWidgets.QVBoxLayout(self)
        lay.setContentsMargins(4, 4, 4, 4)
        lay.addWidget(self.header)
        lay.addWidget(self.summary)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        split.addWidget(self.table)
        split.addWidget(self.why)
        split.setSizes([260, 160])
        split.setStretchFactor(0, 3)  # on a short screen the table keeps most of the height
        split.setStretchFactor(1, 1)
        split.setCollapsible(0, False)
        split.setCollapsible(1, False)
        # a lumbar study's T12..L5 (about five rows) stay readable: the dock scrolls instead
        rows = self.table.verticalHeader().defaultSectionSize()
        self.table.setMinimumHeight(self.table.horizontalHeader().sizeHint().height()
                                    + int(MIN_TABLE_ROWS * rows) + 2 * self.table.frameWidth())
        # the table and the "why" view both keep their minimum (a squeezed splitter drew the
        # table over the top of the "why" view at 1024 x 700)
        split.setMinimumHeight(self.table.minimumHeight() + self.why.minimumHeight()
                               + split.handleWidth())
        lay.addWidget(split, 1)
        lay.addWidget(self._correction_box())
        self._set_enabled(False)

    def resizeEvent(self, ev: QtGui.QResizeEvent) -> None:
        super().resizeEvent(ev)
        self.fit_columns()
        self.fit_height()

    def fit_height(self) -> None:
        """Keep the panel as tall as its parts need at its width (the dock scrolls instead).

        The header and summary wrap, and a minimum counted without that let the correction
        box and the table overlap the "why" view at 1024 x 700.
        """
        lay = self.layout()
        m = lay.contentsMargins()
        width = self.width() - m.left() - m.right()
        parts = [lay.itemAt(i).widget() for i in range(lay.count())]
        parts = [w for w in parts if w is not None and not w.isHidden()]
        need = m.top() + m.bottom() + lay.spacing() * max(len(parts) - 1, 0)
        for w in parts:
            hfw = w.heightForWidth(width) if w.hasHeightForWidth() else -1
            need += max(hfw, w.minimumSizeHint().height(), w.minimumHeight())
        if need != self.minimumHeight():
            self.setMinimumHeight(need)

    def fit_columns(self) -> None:
        """Hide optional columns while the table is too narrow (never a horizontal scroll)."""
        attrs = [c[1] for c in COLUMNS]
        header = self.table.horizontalHeader()
        for name in OPTIONAL_COLUMNS:
            self.table.setColumnHidden(attrs.index(name), False)
        self.table.resizeColumnsToContents()
        avail = self.table.viewport().width()
        need = sum(header.sectionSize(i) for i in range(len(COLUMNS) - 1)
                   if not self.table.isColumnHidden(i)) + MIN_FLAGS_PX
        for name in OPTIONAL_COLUMNS:
            if need <= avail:
                break
            col = attrs.index(name)
            need -= header.sectionSize(col)
            self.table.setColumnHidden(col, True)

    def set_header(self, text: str, warn: bool = False) -> None:
        """The line above the summary: owner of the result, or a warning that it is elsewhere."""
        colour = style.STATUS_COLOURS["fracture"][0]
        self.header.setText(f"<b style='color:{colour}'>{text}</b>" if warn else f"<b>{text}</b>")
        self.header.setVisible(bool(text))
        self.fit_height()

    def _correction_box(self) -> QtWidgets.QGroupBox:
        box = QtWidgets.QGroupBox("Correct the selected vertebra")
        self.comment = QtWidgets.QLineEdit()
        self.comment.setPlaceholderText("Comment (optional), e.g. 'old fracture, seen on STIR'")
        # what the reader records with a fracture override ("-": not recorded)
        self.reader_type = QtWidgets.QComboBox()
        self.reader_type.addItems(["type -", *calls.READER_TYPES])
        self.reader_type.setToolTip("Deformity type of the reader's fracture")
        self.reader_grade = QtWidgets.QComboBox()
        self.reader_grade.addItems(["grade -", *(f"grade {g}" for g in calls.READER_GRADES)])
        self.reader_grade.setToolTip("Genant grade of the reader's fracture")
        self.reader_age = QtWidgets.QComboBox()
        self.reader_age.addItems(["age -", *calls.READER_AGES])
        self.reader_age.setToolTip("Acute (oedema on STIR), chronic or indeterminate")
        self.btn_fracture = QtWidgets.QPushButton("Fracture")
        self.btn_fracture.setToolTip("Override: fracture (F2)")
        self.btn_no_fracture = QtWidgets.QPushButton("No fracture")
        self.btn_no_fracture.setToolTip("Override: no fracture (F3)")
        self.btn_clear = QtWidgets.QPushButton("AI call")
        self.btn_clear.setToolTip("Remove the override and keep the AI call")
        self.btn_up = QtWidgets.QPushButton("Levels \u2191")
        self.btn_up.setToolTip("Rename every vertebra one level up (L5 \u2192 L4) "
                               "for transitional anatomy")
        self.btn_down = QtWidgets.QPushButton("Levels \u2193")
        self.btn_down.setToolTip("Rename every vertebra one level down (L4 \u2192 L5)")
        self.btn_fracture.clicked.connect(lambda: self.request_override(True))
        self.btn_no_fracture.clicked.connect(lambda: self.request_override(False))
        self.btn_clear.clicked.connect(lambda: self.request_override(None))
        self.btn_up.clicked.connect(lambda: self.shiftRequested.emit(-1))
        self.btn_down.clicked.connect(lambda: self.shiftRequested.emit(+1))
        # three columns, the level shift on its own row: fits a 1024 x 700 screen's dock
        grid = QtWidgets.QGridLayout(box)
        label = QtWidgets.QLabel("Co&mment")
        label.setBuddy(self.comment)  # Alt+M reaches the comment box
        grid.addWidget(label, 0, 0)
        grid.addWidget(self.comment, 0, 1, 1, 2)
        for row, widgets in enumerate(((self.reader_type, self.reader_grade, self.reader_age),
                                       (self.btn_fracture, self.btn_no_fracture, self.btn_clear),
                                       (self.btn_up, self.btn_down)), start=1):
            for col, w in enumerate(widgets):
                grid.addWidget(w, row, col)
        order = (self.comment, self.reader_type, self.reader_grade, self.reader_age,
                 self.btn_fracture, self.btn_no_fracture, self.btn_clear, self.btn_up,
                 self.btn_down)
        for a, b in itertools.pairwise(order):
            QtWidgets.QWidget.setTabOrder(a, b)
        return box

    def reader_details(self) -> dict:
        """Type, grade and age chosen for a fracture override (only those recorded)."""
        out: dict = {}
        if self.reader_type.currentIndex() > 0:
            out["deformity"] = self.reader_type.currentText()
        if self.reader_grade.currentIndex() > 0:
            out["grade"] = calls.READER_GRADES[self.reader_grade.currentIndex() - 1]
        if self.reader_age.currentIndex() > 0:
            out["age"] = self.reader_age.currentText()
        return out

    def _set_enabled(self, on: bool) -> None:
        on = on and not (self.result is not None and self.result.preliminary)  # never corrected
        for b in (self.btn_fracture, self.btn_no_fracture, self.btn_clear, self.comment,
                  self.reader_type, self.reader_grade, self.reader_age):
            b.setEnabled(on and bool(self.selected_level()))
        for b in (self.btn_up, self.btn_down):
            b.setEnabled(on)

    # ---- content --------------------------------------------------------------------------
    def set_result(self, result: StudyResult | None) -> None:
        """Fill the table (keeps the selected level when it still exists)."""
        keep = self.selected_level()
        self.result = result
        self.table.blockSignals(True)
        self.table.setRowCount(0)
        verts = result.vertebrae if result else []
        self.table.setRowCount(len(verts))
        for row, v in enumerate(verts):
            tint = style.row_tint(v)
            for col, (_, attr, _) in enumerate(COLUMNS):
                item = QtWidgets.QTableWidgetItem(cell_text(v, attr))
                item.setData(QtCore.Qt.ItemDataRole.UserRole, v.level)
                if attr == "flags" and v.flags:
                    item.setToolTip("\n".join(v.flags))
                if col > 0 and attr not in ("deformity", "flags", "final_fracture"):
                    item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight
                                          | QtCore.Qt.AlignmentFlag.AlignVCenter)
                if tint is not None:
                    item.setBackground(QtGui.QBrush(tint))
                if attr == "final_fracture" and v.final_fracture:
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
                self.table.setItem(row, col, item)
        self.table.blockSignals(False)
        self.summary.setText(self._summary(result))
        self.summary.setToolTip("\n".join(result.warnings) if result else "")
        if keep and result and result.vertebra(keep):
            self.select_level(keep, emit=False)
        self._set_enabled(result is not None)
        self.fit_columns()
        self.fit_height()
        self._update_why()

    @classmethod
    def _summary(cls, result: StudyResult | None) -> str:
        text = cls._summary_body(result)
        warning = unsuitable_series_line(result) if result is not None else ""
        if warning:  # an "analyse anyway" result says so first
            text = (f"<b style='color:{style.STATUS_COLOURS['fracture'][0]}'>"
                    f"{html.escape(warning)}</b><br>" + text)
        return text

    @staticmethod
    def _summary_body(result: StudyResult | None) -> str:
        if result is None:
            return "No analysis yet."
        if not result.vertebrae:
            why = "; ".join(result.warnings[:2])
            head = "<b>No vertebral body found on the analysed slice.</b>"
            return f"{head} {why}" if why else head
        frac = [v for v in result.vertebrae if v.final_fracture]
        overruled = [v.level for v in result.vertebrae if v.fracture and not v.final_fracture]
        review = [v.level for v in result.vertebrae if "needs_review" in v.flags]
        none = (f"no fracture after review (algorithm's call overruled at {', '.join(overruled)})"
                if overruled else "no fracture")
        text = (f"{len(result.vertebrae)} vertebrae; "
                + (f"<b style='color:{style.STATUS_COLOURS['fracture'][0]}'>fracture suspected at "
                   + ", ".join(f"{v.level} ({html.escape(calls.final_call(v))}"
                               + (", reader" if calls.has_override(v) else "") + ")"
                               for v in frac) + "</b>" if frac else none))
        if review and len(review) == len(result.vertebrae) > 2:
            text += "; every level needs review"
        elif review:
            text += f"; review {', '.join(review)}"
        flags = [f for f in result.flags if f != UNSUITABLE_FLAG]
        if flags:
            text += "<br>" + " ".join(html.escape(study_flag_text(f)) for f in flags)
        if result.edits:
            text += f"; {len(result.edits)} correction(s)"
        return text

    def selected_level(self) -> str:
        """Level of the selected row ("" when none)."""
        items = self.table.selectedItems()
        return items[0].data(QtCore.Qt.ItemDataRole.UserRole) if items else ""

    def select_level(self, level: str, emit: bool = True) -> None:
        """Select the row of ``level`` (emits ``levelSelected`` unless ``emit`` is False)."""
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(QtCore.Qt.ItemDataRole.UserRole) == level:
                self.table.blockSignals(not emit)
                self.table.selectRow(row)
                self.table.blockSignals(False)
                self._update_why()
                self._set_enabled(True)
                return

    def levels(self) -> list[str]:
        """Levels in table order."""
        return [self.table.item(r, 0).data(QtCore.Qt.ItemDataRole.UserRole)
                for r in range(self.table.rowCount())]

    def _on_selection(self) -> None:
        self._update_why()
        self._set_enabled(self.result is not None)
        level = self.selected_level()
        if level:
            self.levelSelected.emit(level)

    def _update_why(self) -> None:
        level = self.selected_level()
        v = self.result.vertebra(level) if self.result and level else None
        self.why.setHtml(why_html(v, self.result) if v else "")

    def request_override(self, fracture: bool | None) -> None:
        """Ask for an override of the selected vertebra with the typed comment."""
        level = self.selected_level()
        if level:
            code = -1 if fracture is None else int(bool(fracture))
            #: read by the receiver of overrideRequested (type, grade, age of a fracture)
            self.pending_details = self.reader_details() if fracture else {}
            self.overrideRequested.emit(level, code, self.comment.text().strip())
            self.comment.clear()
            for c in (self.reader_type, self.reader_grade, self.reader_age):
                c.setCurrentIndex(0)
