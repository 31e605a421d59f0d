"""The reading room's one rule, in one place: the results shown, exported and sent belong to
the series on the canvas.

`ResultBinding.apply` runs after every change of the canvas (series shown, open, failed open)
and of the result (analysis finished, restored, corrected). When the result belongs to the
series on the canvas, the results panel, overlays and Export show it under a header naming
patient and series. Otherwise the table and overlays are cleared, the header says where the
result belongs, and Export, overrides and level shifts are disabled.

A preliminary result (the centre slice's, shown while the full analysis runs:
``StudyResult.preliminary``) is shown under a header that says so, and is never exported or
corrected: Export, overrides, level shifts and corner drags stay disabled until the full
result replaces it.
"""

from __future__ import annotations

import html
from typing import Any

from spineviewer.core import review
from spineviewer.core.results import StudyResult
from spineviewer.io.report_text import fmt_date, fmt_person

#: The results header above a preliminary result.
PRELIMINARY_HEADER = "Preliminary (centre slice) \u2014 full analysis running\u2026"


def owner_text(result: StudyResult) -> str:
    """``"Muster, Erika [PID-4711], 2024-01-02, t2_tse_sag (series 3)"`` of a result."""
    p = result.patient or {}
    who = fmt_person(p.get("name")) or "(no name)"
    if p.get("id"):
        who += f" [{p['id']}]"
    sc = result.series_choice or {}
    series = sc.get("series_description") or sc.get("description") or "series"
    if sc.get("series_number") not in (None, ""):
        series += f" (series {sc['series_number']})"
    date = fmt_date(p.get("study_date"))
    return ", ".join(x for x in (who, date, series) if x)


class ResultBinding:
    """Keeps the results panel, canvas overlays, export panel and actions of ``window`` bound
    to the series on its canvas."""

    def __init__(self, window: Any) -> None:
        self.window = window
        #: True when the current result belongs to the series on the canvas
        self.bound = False

    @property
    def preliminary(self) -> bool:
        """True while the result is the early one of a running analysis (never exported)."""
        r = self.result()
        return r is not None and r.preliminary

    @property
    def final(self) -> bool:
        """True when a result for the canvas may be exported and corrected."""
        return self.bound and not self.preliminary

    def result(self) -> StudyResult | None:
        s = self.window.session
        return s.result if s is not None else None

    def apply(self) -> bool:
        """Show, mark or clear the result for the canvas; returns ``bound``."""
        w = self.window
        r = self.result()
        shown_uid = w.canvas.series_uid
        self.bound = r is not None and bool(shown_uid) and shown_uid == r.series_uid
        if r is None:
            w.results.set_header("")
            w.results.set_result(None)
        elif self.bound and r.preliminary:
            w.results.set_header(f"{PRELIMINARY_HEADER}<br>Results: "
                                 f"{html.escape(owner_text(r))}", warn=True)
            w.results.set_result(r)
        elif self.bound:
            w.results.set_header(f"Results: {html.escape(owner_text(r))}")
            w.results.set_result(r)
        else:
            w.results.set_result(None)
            w.results.summary.setText("The table is hidden: it is not the image shown.")
            w.results.set_header(
                f"\u26a0 The analysis belongs to {html.escape(owner_text(r))}, not to the "
                "series shown. Show that series to review or export it, or analyse this one.",
                warn=True)
        w.canvas.set_result(r if self.bound else None)
        w.canvas.set_editable(not self.preliminary)
        default = str(review.study_folder(r).parent / "spineviewer-export") if r else ""
        w.export_panel.set_result(r if self.bound and not self.preliminary else None, default)
        if r is not None:
            w.browser.mark_analysed(r.series_uid)
        w._update_actions()
        return self.bound
