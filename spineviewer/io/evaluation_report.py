"""The evaluation PDF: fracture and agreement tables plus one Bland-Altman plot per measurement.

Renders the summary of ``spineviewer.core.evaluate.evaluate`` with matplotlib (Agg, no
pyplot state), A4 portrait.
"""

from __future__ import annotations

import io
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_pdf import PdfPages
from matplotlib.figure import Figure

from spineviewer.core.evaluate import MEASUREMENTS, JoinedData, measurement_pairs
from spineviewer.core.results import atomic_write_bytes

A4_IN = (8.27, 11.69)
_RATES = ("sensitivity", "specificity", "accuracy")
_HEADER = ("group", "n", "TP", "FP", "TN", "FN", "sensitivity", "specificity", "accuracy",
           "kappa")


def _fmt(x: Any, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _rate_cell(p: dict[str, Any]) -> str:
    """'0.941 (0.903-0.968)' with the study-bootstrap interval in brackets below."""
    if p.get("value") is None:
        return "-"
    text = f"{p['value']:.3f} ({p['ci_low']:.3f}-{p['ci_high']:.3f})"
    if p.get("cluster_ci_low") is not None:
        text += f"\n[{p['cluster_ci_low']:.3f}-{p['cluster_ci_high']:.3f}]"
    return text


def fracture_table_rows(groups: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Table rows (one per group) of fracture statistics ``G`` as printed strings."""
    return [[name, str(g["n"]), str(g["tp"]), str(g["fp"]), str(g["tn"]), str(g["fn"]),
             *[_rate_cell(g[r]) for r in _RATES], _fmt(g["kappa"])]
            for name, g in groups.items()]


def measurement_table_rows(measurements: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Rows: measurement, n, ICC(2,1) (CI), ICC(3,1) (CI), bias, limits of agreement."""
    rows = []
    for name, m in measurements.items():
        icc2 = "-" if m["icc"] is None else \
            f"{m['icc']:.3f} ({m['icc_ci'][0]:.3f}-{m['icc_ci'][1]:.3f})"
        icc3 = "-" if m.get("icc3") is None else \
            f"{m['icc3']:.3f} ({m['icc3_ci'][0]:.3f}-{m['icc3_ci'][1]:.3f})"
        loa = "-" if m["loa_low"] is None else f"{m['loa_low']:.2f} to {m['loa_high']:.2f}"
        rows.append([name, str(m["n"]), icc2, icc3, _fmt(m["bias"], 2), loa])
    return rows


def _draw_table(fig: Figure, top: float, title: str, header: tuple[str, ...],
                rows: list[list[str]], widths: tuple[float, ...], fontsize: float = 7.0) -> float:
    """Draw a titled table whose top edge is at figure fraction ``top``; return its bottom."""
    line_h = 0.0125
    n_lines = [max(c.count("\n") + 1 for c in row) for row in rows]
    height = line_h * (1.3 + sum(n + 0.3 for n in n_lines))
    fig.text(0.06, top, title, fontsize=10, weight="bold", va="top")
    ax = fig.add_axes((0.06, top - 0.02 - height, 0.88, height))
    ax.axis("off")
    table = ax.table(cellText=rows, colLabels=list(header), colWidths=list(widths),
                     loc="upper center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(fontsize)
    heights = [1.3, *[n + 0.3 for n in n_lines]]
    total = sum(heights)
    for (r, _c), cell in table.get_celld().items():
        cell.set_height(heights[r] / total)
        cell.set_linewidth(0.3)
        if r == 0:
            cell.set_facecolor("#e8edf3")
            cell.set_text_props(weight="bold")
    return top - 0.045 - height


def _fracture_section(fig: Figure, top: float, title: str,
                      groups: dict[str, dict[str, Any]]) -> float:
    widths = (0.11, 0.06, 0.055, 0.055, 0.055, 0.055, 0.19, 0.19, 0.19, 0.07)
    return _draw_table(fig, top, title, _HEADER, fracture_table_rows(groups), widths)


def _notes(fig: Figure, top: float, lines: list[str], width_chars: int = 140) -> float:
    import textwrap

    y = top
    for line in lines:
        for part in textwrap.wrap(line, width_chars) or [""]:
            fig.text(0.06, y, part, fontsize=6.5, va="top")
            y -= 0.0115
        y -= 0.003
    return y


def bland_altman_axes(ax: Axes, app: np.ndarray, reference: np.ndarray, name: str,
                      stats: dict[str, Any]) -> None:
    """Draw one Bland-Altman plot: difference (app - readers' mean) against their mean."""
    unit = name.rsplit("_", 1)[-1]
    label = name.rsplit("_", 1)[0]
    ax.set_title(f"{label} ({unit}), n = {app.size}", fontsize=9)
    ax.set_xlabel(f"mean of app and reference ({unit})", fontsize=7)
    ax.set_ylabel(f"app - reference ({unit})", fontsize=7)
    ax.tick_params(labelsize=7)
    if app.size == 0:
        ax.text(0.5, 0.5, "no paired values", ha="center", va="center", transform=ax.transAxes)
        return
    mean, diff = (app + reference) / 2, app - reference
    ax.scatter(mean, diff, s=6, alpha=0.6, color="#1f5a96", linewidths=0)
    lines = ((stats.get("bias"), "-", "bias"), (stats.get("loa_low"), "--", "-1.96 SD"),
             (stats.get("loa_high"), "--", "+1.96 SD"))
    for value, style, text in lines:
        if value is None:
            continue
        ax.axhline(value, color="#b22222", linestyle=style, linewidth=0.9)
        ax.annotate(f"{text} {value:.2f}", (1.0, value), xycoords=("axes fraction", "data"),
                    xytext=(-2, 2), textcoords="offset points", ha="right", fontsize=6,
                    color="#b22222")
    ax.axhline(0.0, color="0.6", linewidth=0.5)


def _bland_altman_page(summary: dict[str, Any], joined: JoinedData) -> Figure:
    fig = Figure(figsize=A4_IN)
    fig.suptitle("Bland-Altman: app against the readers' mean", fontsize=12, y=0.97)
    axes = fig.subplots(3, 2, gridspec_kw={"hspace": 0.45, "wspace": 0.3, "top": 0.92,
                                           "bottom": 0.06, "left": 0.1, "right": 0.95})
    for ax, name in zip(axes.ravel(), MEASUREMENTS):
        app, ref = measurement_pairs(joined, name)
        bland_altman_axes(ax, app, ref, name, summary["measurements"].get(name, {}))
    return fig


def _first_page(summary: dict[str, Any], title: str, inputs: dict[str, str]) -> Figure:
    fig = Figure(figsize=A4_IN)
    fig.text(0.06, 0.965, title, fontsize=14, weight="bold", va="top")
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    info = [f"{k}: {v}" for k, v in inputs.items()]
    info.append(f"{summary['n_vertebrae']} vertebrae in {summary['n_studies']} studies joined; "
                f"{summary['unmatched_reference']} reference and {summary['unmatched_results']} "
                f"app vertebrae without a partner; generated {stamp}")
    y = _notes(fig, 0.935, info)
    fr = summary["fracture"]
    if fr:
        y = _fracture_section(fig, y - 0.01, "Fracture calls: all vertebrae and by level",
                              {"all": fr["all"], **fr["by_level"]})
        y = _notes(fig, y, [("Rates with exact Clopper-Pearson 95% CI; [ ] study-level "
                             "bootstrap 95% CI (vertebrae of one patient are not independent).")])
    rows = measurement_table_rows(summary["measurements"])
    y = _draw_table(fig, y - 0.015, "Measurements: agreement with the readers' mean",
                    ("measurement", "n", "ICC(2,1) (95% CI)", "ICC(3,1) (95% CI)", "bias",
                     "95% limits of agreement"), rows, (0.13, 0.06, 0.24, 0.24, 0.09, 0.2))
    _notes(fig, y, [("ICC(2,1): two-way random, absolute agreement, single rater (main "
                     "value); ICC(3,1): consistency. Bias = mean(app - readers' mean); limits = "
                     "bias +- 1.96 SD.")])
    return fig


def _subgroup_pages(summary: dict[str, Any]) -> list[Figure]:
    """Subgroup tables, reader agreement and notes; a new page whenever one fills up."""
    fr = summary["fracture"]
    families = [k for k in fr if k.startswith("by_") and k != "by_level"]
    figs = [Figure(figsize=A4_IN)]
    figs[0].text(0.06, 0.965, "Fracture calls by subgroup", fontsize=12, weight="bold",
                 va="top")
    y = 0.925
    for fam in families:
        if y - 0.03 * (len(fr[fam]) + 2) < 0.05:
            figs.append(Figure(figsize=A4_IN))
            y = 0.965
        y = _fracture_section(figs[-1], y, fam[3:].replace("_", " "), fr[fam])
    ra = summary.get("reader_agreement") or {}
    lines = []
    if ra.get("kappa"):
        lines.append("Pairwise agreement (Cohen's kappa for fracture; ICC(2,1) per measurement): "
                     + "; ".join(f"{p} {_fmt(k)}" for p, k in ra["kappa"].items()))
        lines += [f"{n}: " + "; ".join(f"{p} {_fmt(v)}" for p, v in d.items())
                  for n, d in ra["icc"].items() if d]
    lines += summary["notes"]
    if y - 0.025 * len(lines) < 0.05:
        figs.append(Figure(figsize=A4_IN))
        y = 0.965
    figs[-1].text(0.06, y - 0.01, "Notes", fontsize=10, weight="bold", va="top")
    _notes(figs[-1], y - 0.035, lines)
    return figs


def render_evaluation_pdf(summary: dict[str, Any], joined: JoinedData, *,
                          title: str = "SpineViewer validation: agreement with the readers",
                          inputs: dict[str, str] | None = None) -> bytes:
    """Render the evaluation report and return the PDF bytes.

    Parameters
    ----------
    summary : dict
        Output of ``spineviewer.core.evaluate.evaluate``.
    joined : JoinedData
        The joined table the summary came from (for the Bland-Altman scatter).
    title : str
        Heading of page 1.
    inputs : dict, optional
        Lines such as ``{"reference": "readers.csv"}`` printed under the heading.
    """
    buf = io.BytesIO()
    with PdfPages(buf) as pdf:
        pdf.savefig(_first_page(summary, title, inputs or {}))
        for fig in _subgroup_pages(summary):
            pdf.savefig(fig)
        pdf.savefig(_bland_altman_page(summary, joined))
        meta = pdf.infodict()
        meta["Title"] = title
        meta["Creator"] = "SpineViewer evaluate"
    return buf.getvalue()


def write_evaluation_pdf(summary: dict[str, Any], joined: JoinedData, path: str | Path,
                         **kwargs: Any) -> Path:
    """Render the report (see ``render_evaluation_pdf``) and write it atomically to ``path``."""
    atomic_write_bytes(path, render_evaluation_pdf(summary, joined, **kwargs))
    return Path(path)
