"""The referrer's PDF report (reportlab platypus): findings first, then numbers, then method.

Page 1: patient and study header, a one-look summary box (fracture suspected at ... / no
vertebral fracture detected), the analysed slice with outlines, labels and AH/PH lines, and
the per-vertebra table. Then the clinician's corrections, the method and the provenance
(model, sha256, reference table, thresholds). The research-use disclaimer is in the header
and on every page's footer.
"""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path
from typing import Any

from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4, LETTER
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.platypus import (
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)

import spineviewer
from spineviewer.core import calls
from spineviewer.core.errors import SpineViewerError
from spineviewer.core.results import (
    MEASUREMENT_FIELDS,
    StudyResult,
    VertebraResult,
    atomic_write_bytes,
)
from spineviewer.io.palette import TINTS
from spineviewer.io.report_figure import COLOUR, render_slice_png, vertebra_status
from spineviewer.io.report_text import (
    corrections,
    fmt_date,
    fmt_person,
    method_lines,
    series_text,
    summary_lines,
)

PAPER_SIZES = {"A4": A4, "LETTER": LETTER}
MARGIN = 14 * mm
#: More corrections than this go below the table (a table cell cannot break across pages).
MAX_INLINE_CORRECTIONS = 6
_GREY = colors.HexColor("#555555")
_FX_BG = colors.HexColor(TINTS["fracture"])
_REVIEW_BG = colors.HexColor(TINTS["review"])
_OK_BG = colors.HexColor(TINTS["normal"])


def _styles() -> dict[str, ParagraphStyle]:
    base = getSampleStyleSheet()
    s = {
        "title": ParagraphStyle("title", parent=base["Title"], fontSize=15, leading=18,
                                alignment=TA_LEFT, spaceAfter=1),
        "sub": ParagraphStyle("sub", parent=base["Normal"], fontSize=8, textColor=_GREY),
        "h2": ParagraphStyle("h2", parent=base["Heading2"], fontSize=10.5, leading=13,
                             spaceBefore=6, spaceAfter=3, keepWithNext=1),
        "body": ParagraphStyle("body", parent=base["Normal"], fontSize=8.5, leading=10.5),
        "small": ParagraphStyle("small", parent=base["Normal"], fontSize=7.5, leading=9,
                                textColor=_GREY),
        "cell": ParagraphStyle("cell", parent=base["Normal"], fontSize=7.5, leading=8.8),
        "summary": ParagraphStyle("summary", parent=base["Normal"], fontSize=10.5, leading=13.5,
                                  spaceAfter=3),
    }
    return s


def _esc(text: Any) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def _header(result: StudyResult, st: dict[str, ParagraphStyle], width: float) -> list:
    p = result.patient or {}
    generated = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    rows = [
        ["Patient", fmt_person(p.get("name")) or "(not recorded)", "Patient ID",
         p.get("id") or "-", "Birth date / sex",
         f"{fmt_date(p.get('birth_date')) or '-'} / {p.get('sex') or '-'}"],
        ["Study date", fmt_date(p.get("study_date")) or "-", "Series used",
         series_text(result), "Report created", generated],
    ]
    rows = [[Paragraph(f"<b>{_esc(c)}</b>" if i % 2 == 0 else _esc(c), st["cell"])
             for i, c in enumerate(r)] for r in rows]
    cw = [0.11, 0.22, 0.11, 0.25, 0.13, 0.18]
    t = Table(rows, colWidths=[w * width for w in cw])
    t.setStyle(TableStyle([
        ("BACKGROUND", (0, 0), (-1, -1), colors.HexColor("#F2F2F2")),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LINEBELOW", (0, -1), (-1, -1), 0.8, colors.HexColor("#999999")),
        ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]))
    return [
        Paragraph("Lumbar spine MRI: vertebral morphometry and fracture screening", st["title"]),
        Paragraph(f"SpineViewer {spineviewer.__version__} automated analysis. "
                  f"<b>{_esc(spineviewer.DISCLAIMER)}</b>", st["sub"]),
        Spacer(1, 4), t, Spacer(1, 6),
    ]


def _summary_box(result: StudyResult, st: dict[str, ParagraphStyle], width: float) -> Table:
    lines = summary_lines(result)
    any_fx = any(v.final_fracture for v in result.vertebrae)
    any_review = any(vertebra_status(v) in ("review", "schmorl") for v in result.vertebrae)
    bg = _FX_BG if any_fx else (_REVIEW_BG if any_review else _OK_BG)
    edge = colors.HexColor(COLOUR["fracture" if any_fx else ("review" if any_review else "normal")])
    paras = [Paragraph("<b>Summary</b>", st["h2"])]
    paras += [Paragraph(("&#8226; " if i else "") + _esc(line) if i else f"<b>{_esc(line)}</b>",
                        st["summary"]) for i, line in enumerate(lines)]
    t = Table([[paras]], colWidths=[width])
    t.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), bg),
                           ("BOX", (0, 0), (-1, -1), 1.5, edge),
                           ("LEFTPADDING", (0, 0), (-1, -1), 6),
                           ("RIGHTPADDING", (0, 0), (-1, -1), 6)]))
    return t


def _legend(st: dict[str, ParagraphStyle]) -> Paragraph:
    items = [(COLOUR["fracture"], "fracture suspected"), (COLOUR["review"], "needs review"),
             (COLOUR["schmorl"], "Schmorl node"), (COLOUR["normal"], "no deformity")]
    txt = "  ".join(f'<font color="{c}">&#9632;</font> {t}' for c, t in items)
    return Paragraph(f"{txt}<br/>White line: anterior height (AH); green line: posterior "
                     "height (PH). Anterior is where the level labels sit.", st["small"])


def _num(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _bold_if(text: str, bold: bool) -> str:
    return f"<b>{_esc(text)}</b>" if bold else _esc(text)


def _corrected_fields(v: VertebraResult) -> set[str]:
    ai = v.ai or {}
    return {k for k in MEASUREMENT_FIELDS
            if ai.get(k) is not None and getattr(v, k) is not None
            and abs(float(ai[k]) - float(getattr(v, k))) > 1e-6}


def _vertebra_table(result: StudyResult, st: dict[str, ParagraphStyle], width: float) -> Table:
    head = ["Level", "AH\nmm", "PH\nmm", "MH\nmm", "SC\nmm", "IC\nmm", "VA\ndeg", "AH/PH",
            "MH/PH", "Crush", "Algorithm\ncall", "Reader\ncall", "Flags"]
    rows: list[list[Any]] = [head]
    style = [("FONT", (0, 0), (-1, 0), "Helvetica-Bold", 7.5),
             ("FONT", (0, 1), (-1, -1), "Helvetica", 8),
             ("FONT", (0, 1), (0, -1), "Helvetica-Bold", 8.5),
             ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#DDDDDD")),
             ("ALIGN", (1, 0), (-3, -1), "CENTER"), ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
             ("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#AAAAAA")),
             ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    for i, v in enumerate(result.vertebrae, start=1):
        fixed = _corrected_fields(v)
        cells = [v.level]
        for name, fmt in (("AH_mm", ".1f"), ("PH_mm", ".1f"), ("MH_mm", ".1f"), ("SC_mm", ".1f"),
                          ("IC_mm", ".1f"), ("VA_deg", ".1f"), ("wedge_ratio", ".2f"),
                          ("biconcavity_ratio", ".2f"), ("crush_ratio", ".2f")):
            cells.append(_num(getattr(v, name), fmt) + ("*" if name in fixed else ""))
        # Paragraphs wrap inside their column (plain strings overflowed into the next cells)
        reader = calls.has_override(v)
        cells += [Paragraph(_bold_if(calls.algorithm_short(v), v.fracture and not reader),
                            st["cell"]),
                  Paragraph(_bold_if(calls.reader_short(v) or "-", v.final_fracture and reader),
                            st["cell"]),
                  Paragraph(_esc(", ".join(f.replace("_", " ") for f in v.flags) or "-"),
                            st["cell"])]
        rows.append(cells)
        status = vertebra_status(v)
        if status != "normal":
            style.append(("BACKGROUND", (0, i), (-1, i),
                          colors.HexColor(TINTS[status])))
    frac = [0.055, 0.055, 0.055, 0.055, 0.05, 0.05, 0.055, 0.06, 0.06, 0.055, 0.1, 0.12, 0.23]
    t = Table(rows, colWidths=[f * width for f in frac], repeatRows=1)
    t.setStyle(TableStyle(style))
    return t


def _bullets(lines: list[str], st: ParagraphStyle) -> list[Paragraph]:
    return [Paragraph("&#8226; " + _esc(x), st) for x in lines]


def _top_block(result: StudyResult, st: dict[str, ParagraphStyle], width: float, image,
               fixes: list[str] | None) -> Table:
    """Image on the left; summary, legend and (short) corrections on the right."""
    img_w = 0.40 * width
    png, aspect = render_slice_png(result, image, width_in=img_w / 72.0)
    img = Image(io.BytesIO(png), width=img_w, height=img_w * aspect)
    right = [_summary_box(result, st, width - img_w - 8), Spacer(1, 6), _legend(st)]
    if fixes is not None:
        right.append(Paragraph("Corrections by a clinician", st["h2"]))
        right += (_bullets(fixes, st["body"]) if fixes
                  else [Paragraph("None: all values are the algorithm's.", st["body"])])
    top = Table([[img, right]], colWidths=[img_w + 8, width - img_w - 8])
    top.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"),
                             ("LEFTPADDING", (0, 0), (-1, -1), 0),
                             ("RIGHTPADDING", (0, 0), (0, 0), 8),
                             ("RIGHTPADDING", (1, 0), (1, 0), 0)]))
    return top


def _footer(canvas, doc) -> None:
    canvas.saveState()
    canvas.setFont("Helvetica", 7)
    canvas.setFillColor(_GREY)
    w, _ = doc.pagesize
    canvas.drawString(MARGIN, 8 * mm, spineviewer.DISCLAIMER)
    canvas.drawRightString(w - MARGIN, 8 * mm, f"page {doc.page}")
    canvas.restoreState()


def build_report_pdf(result: StudyResult, *, paper: str = "A4", image=None) -> bytes:
    """Render the referrer report for ``result`` as PDF bytes.

    Parameters
    ----------
    result : StudyResult
        The (possibly corrected) result; the final calls after overrides are reported.
    paper : {"A4", "Letter"}
    image : ndarray, optional
        The analysed slice; read from ``result.source_slice_file`` when None.

    Returns
    -------
    bytes
        A PDF document (one page for six vertebrae without long correction lists).
    """
    key = paper.upper()
    if key not in PAPER_SIZES:
        raise SpineViewerError(f"unknown paper size {paper!r}: use A4 or Letter")
    size = PAPER_SIZES[key]
    st = _styles()
    width = size[0] - 2 * MARGIN
    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=size, leftMargin=MARGIN, rightMargin=MARGIN,
                            topMargin=12 * mm, bottomMargin=15 * mm,
                            title="SpineViewer vertebral morphometry report",
                            author=f"SpineViewer {spineviewer.__version__}",
                            subject="Research use only")
    fixes = corrections(result)
    inline = len(fixes) <= MAX_INLINE_CORRECTIONS
    story: list = _header(result, st, width) + [_top_block(result, st, width, image,
                                                            fixes if inline else None)]
    story += [Spacer(1, 6), KeepTogether([
        Spacer(1, 2), Paragraph("Measurements per vertebra", st["h2"]),
        _vertebra_table(result, st, width),
        Paragraph("AH/PH/MH: anterior, posterior, middle height; SC/IC: superior/inferior "
                  "endplate concavity depth; VA: endplate angle, positive when the endplates "
                  "converge anteriorly; Crush: PH against the neighbours' PH. "
                  "* value corrected by a clinician.", st["small"])])]
    if not inline:
        story += [Paragraph("Corrections by a clinician", st["h2"]), *_bullets(fixes, st["body"])]
    story += [KeepTogether([Paragraph("Method and provenance", st["h2"]),
                            *_bullets(method_lines(result), st["small"])])]
    doc.build(story, onFirstPage=_footer, onLaterPages=_footer)
    return buf.getvalue()


def write_report_pdf(result: StudyResult, path: str | Path, *, paper: str = "A4") -> Path:
    """Write `build_report_pdf` atomically to ``path`` and return the path."""
    path = Path(path)
    atomic_write_bytes(path, build_report_pdf(result, paper=paper))
    return path


#: The name the command line uses.
write_report = write_report_pdf

__all__ = ["PAPER_SIZES", "build_report_pdf", "write_report", "write_report_pdf"]
