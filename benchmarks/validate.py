"""Validate SpineViewer on phantom cohorts from two independent renderers.

Generates a phantom cohort (``synth.write_cohort``: three vendors, 1.5 T / 3 T, every deformity
type and Genant grade, Schmorl nodes, osteophytes) once per renderer from the same seed (the
same anatomy, drawn by renderer A, the training renderer, and by renderer B,
``spineviewer.synth_b``, which training never sees), runs the whole app on every study and
compares it with the phantom truth using ``spineviewer.core.evaluate``, in two modes:

* ``onnx``: end to end, through the ONNX segmentation model (needs ``models/*.onnx``);
* ``masks``: the truth label map replaces the network (``masks_override``), so the numbers
  measure labelling, corners, endplate refinement, morphometry and the Genant rules alone.

Purpose (docs/VALIDATION.md holds the protocol):

* ``--purpose development`` (default): any seed; figures go to
  ``docs/VALIDATION-development.md`` and are development figures (the rules were tuned while
  looking at such cohorts);
* ``--purpose test``: once per release, after the rules are frozen, from a seed never used
  before: the seed is checked against ``docs/seeds.json`` (refused if listed) and recorded
  there before anything runs; figures go to ``docs/VALIDATION-test.md``.

Usage::

    python benchmarks/validate.py --purpose development --seed 777124 --n 60 --renderers a,b
                                  [--modes onnx,masks] [--endplates image,mask] [--site-n 0]

Outputs in ``--out``: ``<renderer>/reference.csv`` (truth), ``results_<run>.csv``,
``evaluation_<run>.json`` and ``evaluation_<run>.pdf``; the Markdown report goes to ``--doc``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from spineviewer.core.errors import ModelError, SpineViewerError
from spineviewer.core.evaluate import (
    MEASUREMENTS,
    evaluate_files,
    join_rows,
    measurement_statistics,
    read_table,
    summary_to_json,
)
from spineviewer.core.genant import TABLE_ENV
from spineviewer.core.results import CSV_COLUMNS, atomic_write_text, rows_to_csv

DEFAULT_DEV_SEED = 777124  # a development cohort (docs/seeds.json); never a test seed again
SEEDS_FILE = ROOT / "docs" / "seeds.json"
RENDERERS = {"a": "renderer A (training look)", "b": "renderer B (independent, validation only)"}
LEVELS = ("L1", "L2", "L3", "L4", "L5")
REF_COLUMNS = ("study_uid", "level", *MEASUREMENTS, "fracture", "vendor", "field_strength",
               "truth_type", "truth_grade", "schmorl_node", "osteophyte")
RESULT_COLUMNS = (*CSV_COLUMNS, "detected")
MISLABEL_MM = 5.0  # mean corner distance beyond which a level is counted as misplaced

# The paper's figures (shared docs PAPER.md): rates, and R-vs-DCNN agreement.
PAPER_RATES = {  # group -> (sensitivity, specificity, accuracy)
    "all": (0.941, 0.969, 0.962), "L1": (0.967, 0.954, 0.960), "L2": (0.942, 0.919, 0.925),
    "L3": (0.946, 0.988, 0.980), "L4": (0.906, 0.982, 0.970), "L5": (0.880, 0.989, 0.975),
    "siemens": (0.958, 0.966, 0.964), "ge": (0.980, 0.959, 0.964),
    "philips": (0.884, 0.981, 0.957), "1.5 T": (0.930, 0.978, 0.966),
    "3.0 T": (0.955, 0.958, 0.957),
}
PAPER_ICC_DCNN = {"AH_mm": "0.970 / 0.962", "PH_mm": "0.946 / 0.949", "SC_mm": "0.846 / 0.834",
                  "IC_mm": "0.792 / 0.788", "VA_deg": "0.944 / 0.941"}
PAPER_BA = {"AH_mm": "0.2 (+-2.9)", "PH_mm": "0.5 (+-1.5)", "SC_mm": "0 (+-2.7)",
            "IC_mm": "-0.2 (+-2.0)", "VA_deg": "0 (+-6.9)"}


# ---- cohort and runs ---------------------------------------------------------------------------
def make_cohort(out: Path, n: int, seed: int, reuse: bool, render: str = "a",
                bits: int = 16) -> list:
    """Write (or, with ``reuse``, reload) the phantom cohort under ``out/studies``; with
    ``bits`` 8, also its 8-bit export (``synth.eight_bit``) under ``out/studies8``, which is
    what the app then analyses."""
    from spineviewer.synth.study import load_truth, write_cohort

    studies = out / "studies"
    existing = sorted(studies.glob("study_*/truth.json")) if studies.is_dir() else []
    truths = None
    if reuse and len(existing) >= n:
        truths = [load_truth(p) for p in existing[:n]]
        if not all(t.renderer == render and t.seed for t in truths):
            truths = None
    if truths is None:
        truths = write_cohort(studies, n, seed, render=render)
    if bits == 8:
        from spineviewer.synth.eight_bit import export_study

        truths = [load_truth(export_study(t.out_dir, out / "studies8" / Path(t.out_dir).name)
                             / "truth.json") for t in truths]
    return truths


# ---- the seed registry --------------------------------------------------------------------------
def load_seeds(path: Path | None = None) -> dict[str, Any]:
    path = SEEDS_FILE if path is None else path
    if not path.exists():
        return {"schema": "spineviewer.validation-seeds/1", "seeds": []}
    return json.loads(path.read_text())


def used_seeds(registry: dict[str, Any]) -> set[int]:
    """Every seed in the registry, with its derived site-population seed (seed + 100000)."""
    out = set()
    for e in registry.get("seeds", []):
        out |= {int(e["seed"]), int(e["seed"]) + 100000}
    return out


def register_seed(seed: int, purpose: str, note: str, path: Path | None = None) -> None:
    """Record a cohort seed; a test seed may be recorded once only (ValueError otherwise)."""
    path = SEEDS_FILE if path is None else path
    reg = load_seeds(path)
    if purpose == "test" and seed in used_seeds(reg):
        raise ValueError(f"seed {seed} is already in {path.name}: a test cohort needs a seed "
                         "never used before (pick a new one)")
    if any(int(e["seed"]) == seed and e["purpose"] == purpose for e in reg["seeds"]):
        return
    reg["seeds"].append({"seed": int(seed), "purpose": purpose, "note": note,
                         "first_used": f"{datetime.now(timezone.utc):%Y-%m-%d}"})
    atomic_write_text(path, json.dumps(reg, indent=1) + "\n")


def reference_rows(truths: list) -> list[dict[str, Any]]:
    """The truth as a reference CSV (one 'reader'), with vertebra-level subgroup columns."""
    rows = []
    for t in truths:
        for v in t.vertebrae:
            row = {"study_uid": t.study_uid, "level": v.level, "fracture": int(v.fracture),
                   "vendor": t.vendor, "field_strength": f"{t.field_strength_T:.1f} T",
                   "truth_type": v.deformity, "truth_grade": str(v.genant_grade),
                   "schmorl_node": "yes" if v.schmorl else "no",
                   "osteophyte": "yes" if v.osteophyte else "no"}
            row.update({m: f"{getattr(v, m):.3f}" for m in MEASUREMENTS})
            rows.append(row)
    return rows


def _corner_distance_mm(got: dict, truth: dict, sp: np.ndarray) -> float:
    """Mean distance (mm) between two sets of named corners (row, col pixels)."""
    return float(np.mean([np.linalg.norm((np.asarray(got[k]) - np.asarray(truth[k])) * sp)
                          for k in truth]))


def corner_errors_mm(result, truth) -> dict[str, float]:
    """Mean distance (mm) of the app's four corners from the truth corners, per level."""
    sp = np.asarray(truth.pixel_spacing_mm, dtype=float)
    out = {}
    for v in truth.vertebrae:
        got = result.vertebra(v.level)
        if got is None or len(got.corners_rc) < 4:
            continue
        out[v.level] = _corner_distance_mm(got.corners_rc, v.corners_rc, sp)
    return out


def match_by_vertebra(result, truth) -> dict[str, str]:
    """Truth level -> the app's level name for the same physical vertebra.

    Each truth vertebra is paired with the app vertebra whose four corners lie closest (mean
    distance, mm), if that is within ``MISLABEL_MM``. This scores the fracture call of the right
    bone whatever name the app gave it; naming errors are counted separately.
    """
    sp = np.asarray(truth.pixel_spacing_mm, dtype=float)
    app = [v for v in result.vertebrae if len(v.corners_rc) == 4]
    out = {}
    for v in truth.vertebrae:
        best, best_d = None, np.inf
        for a in app:
            d = _corner_distance_mm(a.corners_rc, v.corners_rc, sp)
            if d < best_d:
                best, best_d = a.level, d
        if best is not None and best_d <= MISLABEL_MM:
            out[v.level] = best
    return out


#: A reported outline whose Dice with its truth body is below this is a failed mask: its call
#: must not stand unflagged (issue 13: never a confident call from a failed mask).
FAILED_MASK_DICE = 0.80
REVIEW_FLAGS = ("needs_review", "segmentation_uncertain", "label_uncertain")


def mask_quality_rows(result, truth, matched: dict[str, str] | None = None
                      ) -> list[dict[str, Any]]:
    """Dice of each reported outline with its truth body, where the app measured the body on
    the slice the truth map is drawn on (the centre slice), paired by vertebra as
    `match_by_vertebra` (``matched``, its result when the caller has it); with the app's call
    and whether it asked for review."""
    from spineviewer.core.calls import NOT_ASSESSABLE
    from spineviewer.core.qc import dice
    from spineviewer.io.dicom_common import outline_mask
    from spineviewer.synth.params import INSTANCE_IDS

    path = Path(truth.out_dir) / "truth_labels.npy"
    if not path.exists():
        return []
    inst = np.load(path)
    by_level = {v.level: v for v in result.vertebrae}
    rows = []
    if matched is None:
        matched = match_by_vertebra(result, truth)
    for truth_level, app_level in matched.items():
        v = by_level.get(app_level)
        k = INSTANCE_IDS.get(truth_level)
        if v is None or k is None or not v.outline_rc or v.measurement_slice != truth.slice_index:
            continue
        d = dice(outline_mask(v.outline_rc, inst.shape), inst == k)
        rows.append({"study": Path(truth.out_dir).name, "level": truth_level, "dice": d,
                     "fracture": bool(v.fracture), "call": f"{v.deformity} {v.genant_grade}",
                     "review": any(f in v.flags for f in REVIEW_FLAGS),
                     "not_assessable": v.deformity == NOT_ASSESSABLE})
    return rows


def mask_quality_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown: failed masks (Dice < FAILED_MASK_DICE) and whether their calls were flagged."""
    if not rows:
        return []
    d = np.array([r["dice"] for r in rows])
    bad = [r for r in rows if r["dice"] < FAILED_MASK_DICE]
    unflagged = [r for r in bad if not r["review"] and not r["not_assessable"]]
    confident = [r for r in unflagged if r["fracture"]]
    out = ["### Mask quality against the truth (the outline the call was made on)", "",
           (f"{len(rows)} vertebrae measured on the centre slice (the truth map's): outline Dice "
            f"median {np.median(d):.3f}, 5th percentile {np.percentile(d, 5):.3f}, min "
            f"{d.min():.3f}. Failed masks (Dice < {FAILED_MASK_DICE:.2f}): {len(bad)}; of these "
            f"flagged for review or not assessable {len(bad) - len(unflagged)}, unflagged "
            f"{len(unflagged)}; a fracture called from an unflagged failed mask: "
            f"{len(confident)}."), ""]
    out += [f"- unflagged failed mask: {r['study']} {r['level']} (Dice {r['dice']:.2f}, call "
            f"{r['call']})" for r in unflagged]
    return out + ([""] if unflagged else [])


def false_alarm_rows(result, truth, matched: dict[str, str]) -> list[dict[str, Any]]:
    """Fracture calls on healthy truth vertebrae, paired by vertebra as `match_by_vertebra`
    (``matched``), and whether each asked for review: a false alarm a reader is pointed to
    costs a look, an unflagged one a wrong report."""
    by_level = {v.level: v for v in result.vertebrae}
    rows = []
    for truth_level, app_level in matched.items():
        v = by_level.get(app_level)
        if v is None or not v.fracture or truth_level in truth.params.deformities:
            continue
        rows.append({"study": Path(truth.out_dir).name, "level": truth_level,
                     "call": f"{v.deformity} {v.genant_grade}",
                     "review": any(f in v.flags for f in REVIEW_FLAGS),
                     "flags": ", ".join(v.flags) or "none"})
    return rows


def false_alarm_lines(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown: the false alarms by vertebra, how many asked for review, the unflagged ones."""
    unflagged = [r for r in rows if not r["review"]]
    out = ["### False alarms and review flags (matched by vertebra)", "",
           (f"Fracture calls on healthy truth vertebrae: {len(rows)}; flagged for review "
            f"{len(rows) - len(unflagged)}, unflagged {len(unflagged)}."), ""]
    out += [f"- unflagged false alarm: {r['study']} {r['level']} ({r['call']}; flags "
            f"{r['flags']})" for r in unflagged]
    return out + ([""] if unflagged else [])


def run_mode(truths: list, mode: str, threads: int | None, provider: str,
             refine: bool = True) -> dict[str, Any]:
    """Analyse every study; truth vertebrae the app did not report become 'not detected' rows
    (no measurements, fracture 0), so a missed fracture counts as a false negative."""
    from spineviewer.core.pipeline import analyze_study

    rows, times, failures, corner_err, misplaced, off_studies = [], [], [], [], set(), []
    rows_vertebra, renamed, mask_rows, alarm_rows = [], [], [], []
    model: dict[str, Any] = {}
    for t in truths:
        masks = np.load(Path(t.out_dir) / "truth_labels.npy") if mode == "masks" else None
        t0 = time.perf_counter()
        try:
            res = analyze_study(t.dicom_dir, masks_override=masks, threads=threads,
                                provider=provider, refine_endplates=refine)
        except ModelError:
            raise
        except SpineViewerError as exc:
            failures.append(f"{Path(t.out_dir).name}: {exc}")
            res = None
        times.append(time.perf_counter() - t0)
        got, by_vertebra = {}, {}
        if res is not None:
            model = model or dict(res.model)
            for r in res.csv_rows():
                got[r["level"]] = {**r, "detected": "yes"}
            matched = match_by_vertebra(res, t)
            for truth_level, app_level in matched.items():
                by_vertebra[truth_level] = {**got[app_level], "level": truth_level}
                if app_level != truth_level:
                    renamed.append((t.study_uid, truth_level, app_level))
            mask_rows += mask_quality_rows(res, t, matched)
            alarm_rows += false_alarm_rows(res, t, matched)
            errs = corner_errors_mm(res, t)
            corner_err += list(errs.values())
            off = sorted(lv for lv, e in errs.items() if e > MISLABEL_MM)
            misplaced |= {(t.study_uid, lv) for lv in off}
            if off:
                off_studies.append(
                    f"{Path(t.out_dir).name} ({t.params.n_lumbar} lumbar; truth "
                    f"{'/'.join(v.level for v in t.vertebrae)}; app "
                    f"{'/'.join(v.level for v in res.vertebrae)}; flags "
                    f"{', '.join(res.flags) or 'none'}): {', '.join(off)}")
        for v in t.vertebrae:
            for table in (got, by_vertebra):
                table.setdefault(v.level, {"study_uid": t.study_uid, "level": v.level,
                                           "fracture": 0, "detected": "no"})
        rows += list(got.values())
        rows_vertebra += [by_vertebra[v.level] for v in t.vertebrae]
    n_truth = sum(len(t.vertebrae) for t in truths)
    missed = sum(r["detected"] == "no" for r in rows)
    return {"rows": rows, "rows_vertebra": rows_vertebra, "renamed": renamed,
            "times_s": times, "failures": failures, "model": model,
            "corner_err_mm": corner_err, "misplaced": misplaced, "off_studies": off_studies,
            "missed": missed, "mask_quality": mask_rows, "false_alarms": alarm_rows,
            "n_truth": n_truth}


def evaluate_run(args: argparse.Namespace, key: str, run: dict[str, Any],
                 ref_path: Path) -> dict[str, Any]:
    """Write results/evaluation files of one run and return the evaluation summary."""
    from spineviewer.io.evaluation_report import write_evaluation_pdf

    res_path = args.out / f"results_{key}.csv"
    atomic_write_text(res_path, rows_to_csv(run["rows"], RESULT_COLUMNS))
    summary, joined = evaluate_files(ref_path, res_path, n_boot=args.bootstrap)
    run["joined_ok"] = join_rows(
        read_table(ref_path, "reference"),
        [r for r in read_table(res_path, "results")
         if (r["study_uid"], r["level"]) not in run["misplaced"]])
    atomic_write_text(args.out / f"evaluation_{key}.json", summary_to_json(summary))
    vert_path = args.out / f"results_{key}_by_vertebra.csv"
    atomic_write_text(vert_path, rows_to_csv(run["rows_vertebra"], RESULT_COLUMNS))
    summary["by_vertebra"], _ = evaluate_files(ref_path, vert_path, n_boot=args.bootstrap)
    write_evaluation_pdf(summary, joined, args.out / f"evaluation_{key}.pdf",
                         title=f"SpineViewer phantom validation ({key})",
                         inputs={"reference": ref_path.name, "results": res_path.name})
    return summary


def derive_site_table(args: argparse.Namespace, mode: str, render: str = "a",
                      refine: bool = True) -> Path:
    """Derive a reference table from a separate phantom 'site population' measured by the app.

    The recipe is the shipped table's (per-level iterative 3 SD trimming of the app's own
    ratios, fractures included: the trimming is what removes them), applied to a population
    that shares the validation cohort's anatomy, as a site would do with its own patients.
    """
    from spineviewer.train.reference import bodies_from_rows, table_document

    seed = args.seed + 100000
    site = make_cohort(args.out / render / "site", args.site_n, seed, args.reuse, render)
    with reference_table(None):
        run = run_mode(site, mode, args.threads, args.provider, refine)
    rows = [r for r in run["rows"] if r.get("detected") == "yes"
            and (r["study_uid"], r["level"]) not in run["misplaced"]]
    doc = table_document(
        bodies_from_rows(rows),
        source=(f"SpineViewer site table derived from {len(site)} phantom studies "
                f"(seed {seed}) measured by the app in mode '{mode}'"),
        recipe={"data": f"phantom site population, seed {seed}, {len(site)} studies",
                "command": f"python benchmarks/validate.py --site-n {args.site_n}"})
    path = args.out / f"site_table_{render}-{mode}.json"
    atomic_write_text(path, json.dumps(doc, indent=1))
    return path


class reference_table:
    """Context manager: analyse with this reference table (None = the shipped one)."""

    def __init__(self, path: Path | None):
        self.path = path

    def __enter__(self):
        self.old = os.environ.pop(TABLE_ENV, None)
        if self.path is not None:
            os.environ[TABLE_ENV] = str(self.path)

    def __exit__(self, *exc):
        os.environ.pop(TABLE_ENV, None)
        if self.old is not None:
            os.environ[TABLE_ENV] = self.old


# ---- Markdown -----------------------------------------------------------------------------------
def _ci(p: dict[str, Any]) -> str:
    if p.get("value") is None:
        return "-"
    return f"{p['value']:.3f} ({p['ci_low']:.3f}-{p['ci_high']:.3f})"


def _paper(group: str, i: int) -> str:
    return f"{PAPER_RATES[group][i]:.3f}" if group in PAPER_RATES else "-"


def fracture_table(groups: dict[str, Any], title: str) -> list[str]:
    lines = [(f"| {title} | TP | FP | TN | FN | sensitivity (95% CI) | paper | specificity (95% CI) "
             "| paper | accuracy (95% CI) | paper | kappa |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, g in groups.items():
        k = "-" if g["kappa"] is None else f"{g['kappa']:.3f}"
        lines.append(f"| {name} | {g['tp']} | {g['fp']} | {g['tn']} | {g['fn']} | "
                     f"{_ci(g['sensitivity'])} | {_paper(name, 0)} | {_ci(g['specificity'])} | "
                     f"{_paper(name, 1)} | {_ci(g['accuracy'])} | {_paper(name, 2)} | {k} |")
    return lines


def cluster_line(g: dict[str, Any]) -> str:
    parts = []
    for rate in ("sensitivity", "specificity", "accuracy"):
        p = g[rate]
        if p.get("cluster_ci_low") is not None:
            parts.append(f"{rate} {p['cluster_ci_low']:.3f}-{p['cluster_ci_high']:.3f}")
    return ("Study-level bootstrap 95% CIs (all vertebrae): " + "; ".join(parts) + ".") \
        if parts else ""


def measurement_table(ms: dict[str, Any]) -> list[str]:
    lines = [("| measurement | n | ICC(2,1) (95% CI) | ICC(3,1) | bias | 95% LoA | paper ICC "
             "R1/R2 vs DCNN | paper bias (LoA) |"), "|---|---|---|---|---|---|---|---|"]
    for name, m in ms.items():
        icc = "-" if m["icc"] is None else f"{m['icc']:.3f} ({m['icc_ci'][0]:.3f}-{m['icc_ci'][1]:.3f})"
        icc3 = "-" if m["icc3"] is None else f"{m['icc3']:.3f}"
        bias = "-" if m["bias"] is None else f"{m['bias']:+.2f}"
        loa = "-" if m["loa_low"] is None else f"{m['loa_low']:.2f} to {m['loa_high']:.2f}"
        lines.append(f"| {name} | {m['n']} | {icc} | {icc3} | {bias} | {loa} | "
                     f"{PAPER_ICC_DCNN.get(name, '-')} | {PAPER_BA.get(name, '-')} |")
    return lines


def run_label(key: str, short: bool = False) -> str:
    """``b-onnx-maskedges+site`` -> a readable name of the run."""
    base, _, site = key.partition("+")
    render, mode, *rest = base.split("-")
    if short:
        text = f"{render.upper()}: " + {"onnx": "end to end", "masks": "truth masks"}[mode]
    else:
        text = RENDERERS[render] + ", " + {"onnx": "end to end through the ONNX model",
                                            "masks": "truth masks (segmentation bypassed)"}[mode]
    if rest:
        text += ", mask edges (no endplate refinement)"
    if site:
        text += ", site table"
    return text


def mode_section(mode: str, summary: dict[str, Any], run: dict[str, Any]) -> list[str]:
    title = run_label(mode)[0].upper() + run_label(mode)[1:]
    fr = summary["fracture"]
    t = np.asarray(run["times_s"])
    ce = np.asarray(run["corner_err_mm"]) if run["corner_err_mm"] else np.array([np.nan])
    out = [f"## {title}", "", f"Reference table: `{run.get('table', '')}`.", ""]
    model = run["model"]
    if model:
        out.append(f"Model: `{model.get('name', '?')}`"
                   + (f", sha256 `{str(model['sha256'])[:12]}`" if model.get("sha256") else "")
                   + (f", provider {model['provider']}" if model.get("provider") else "") + ".")
    out += [(f"Truth vertebrae {run['n_truth']}; not reported by the app {run['missed']} "
            f"(counted as 'no fracture'); corners more than {MISLABEL_MM:.0f} mm off "
            f"(misplaced or misnamed) {len(run['misplaced'])}; mean corner error median "
            f"{np.nanmedian(ce):.2f} mm, 95th percentile {np.nanpercentile(ce, 95):.2f} mm; "
            f"failed studies {len(run['failures'])}; analysis time per study median "
            f"{np.median(t):.2f} s (max {t.max():.2f} s) on this machine."), ""]
    out += [f"- failed: {f}" for f in run["failures"]]
    out += [f"- misplaced levels in {f}" for f in run["off_studies"]]
    out += [""] if run["failures"] or run["off_studies"] else []
    out += ["### Fracture detection (paper: Table 4 / PAPER.md contingency table)", ""]
    out += fracture_table({"all": fr["all"], **fr["by_level"]}, "level") + [""]
    out += [cluster_line(fr["all"]), ""]
    for col, label in (("vendor", "vendor"), ("field_strength", "field strength")):
        if f"by_{col}" in fr:
            out += fracture_table(fr[f"by_{col}"], label) + [""]
    if "by_vertebra" in summary:
        fv = summary["by_vertebra"]["fracture"]
        renamed = run.get("renamed", [])
        n_studies = len({u for u, _, _ in renamed})
        out += ["### The same, matched by vertebra (the call on the right bone, names aside)", "",
                ("Each truth vertebra is paired with the app's vertebra whose corners lie within "
                 f"{MISLABEL_MM:.0f} mm of its own, whatever the app named it. The table above "
                 "pairs by level name, so a fracture called on the right bone under the wrong name "
                 "counts there as a miss and, at the neighbour, as a false alarm. Here "
                 f"{len(renamed)} vertebrae in {n_studies} studies carry another name in the app "
                 "than in the truth (naming errors, counted in the table above and in the "
                 "misplaced list)."), ""]
        out += fracture_table({"all": fv["all"], **fv.get("by_truth_grade", {})},
                              "by vertebra / truth grade") + [""]
        out += [cluster_line(fv["all"]), ""]
    out += [("### By phantom finding (sensitivity by Genant grade and type; specificity where "
            "Schmorl nodes or osteophytes mimic deformity)"), ""]
    for col in ("truth_grade", "truth_type", "schmorl_node", "osteophyte"):
        if f"by_{col}" in fr:
            out += fracture_table(fr[f"by_{col}"], col.replace("_", " ")) + [""]
    out += ["### Measurements against the phantom truth", ""]
    out += measurement_table(summary["measurements"]) + [""]
    if run["misplaced"]:
        out += [(f"The same, leaving out the {len(run['misplaced'])} misplaced/misnamed "
                "vertebrae (morphometry of the right vertebra):"), ""]
        out += measurement_table(measurement_statistics(run["joined_ok"])) + [""]
    out += mask_quality_lines(run.get("mask_quality", []))
    if "false_alarms" in run:
        out += false_alarm_lines(run["false_alarms"])
    sig = summary["significant_differences"]
    out += ["Subgroup pairs with non-overlapping 95% CIs (the paper's criterion): "
            + ("; ".join(s["text"] for s in sig) if sig else "none") + ".", ""]
    return out


def headline_table(summaries: dict[str, dict[str, Any]]) -> list[str]:
    """Overall rates and ICCs of each mode beside the paper's."""
    modes = list(summaries)
    lines = ["| | " + " | ".join(run_label(m, short=True) for m in modes) + " | paper |",
             "|---|" + "---|" * (len(modes) + 1)]
    for i, rate in enumerate(("sensitivity", "specificity", "accuracy")):
        cells = [_ci(summaries[m]["fracture"]["all"][rate]) for m in modes]
        label = rate if rate == "accuracy" else f"{rate}, matched by level name"
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {PAPER_RATES['all'][i]:.3f} |")
    for i, rate in enumerate(("sensitivity", "specificity")):
        cells = [_ci(summaries[m]["by_vertebra"]["fracture"]["all"][rate])
                 if "by_vertebra" in summaries[m] else "-" for m in modes]
        lines.append(f"| {rate}, matched by vertebra (names aside) | " + " | ".join(cells)
                     + f" | {PAPER_RATES['all'][i]:.3f} |")
    kappas = [summaries[m]["fracture"]["all"]["kappa"] for m in modes]
    lines.append("| kappa | " + " | ".join("-" if k is None else f"{k:.3f}" for k in kappas)
                 + " | 0.907 / 0.894 |")
    for name in ("AH_mm", "PH_mm", "SC_mm", "IC_mm", "VA_deg"):
        vals = [summaries[m]["measurements"][name]["icc"] for m in modes]
        lines.append(f"| ICC(A,1) {name} | " + " | ".join(
            "-" if v is None else f"{v:.3f}" for v in vals) + f" | {PAPER_ICC_DCNN[name]} |")
    for name in ("AH_mm", "PH_mm", "MH_mm"):
        cells = []
        for m in modes:
            x = summaries[m]["measurements"].get(name, {})
            cells.append("-" if x.get("bias") is None else
                         f"{x['bias']:+.2f} ({x['loa_low']:+.2f} to {x['loa_high']:+.2f})")
        lines.append(f"| {name} bias (95% LoA) | " + " | ".join(cells)
                     + f" | {PAPER_BA.get(name, '-')} |")
    for label, key in (("biconcave grade 2-3: sensitivity by vertebra", "sens"),
                       ("biconcave grade 2-3: MH bias (mm)", "mh_bias")):
        cells = [summaries[m].get("biconcave", {}).get(key, "-") for m in modes]
        lines.append(f"| {label} | " + " | ".join(cells) + " | - |")
    return lines


def biconcave_stats(truths: list, run: dict[str, Any]) -> dict[str, str]:
    """Sensitivity (by vertebra) and MH bias on the biconcave grade 2-3 truth vertebrae."""
    rows = {(r["study_uid"], r["level"]): r for r in run["rows_vertebra"]}
    hits, n, diffs = 0, 0, []
    for t in truths:
        for v in t.vertebrae:
            if v.deformity != "biconcave" or v.genant_grade < 2:
                continue
            n += 1
            r = rows.get((t.study_uid, v.level), {})
            hits += str(r.get("fracture", 0)) in ("1", "True", "true")
            try:
                diffs.append(float(r["MH_mm"]) - v.MH_mm)
            except (KeyError, TypeError, ValueError):
                pass
    if n == 0:
        return {}
    d = np.asarray(diffs)
    return {"sens": f"{hits}/{n} = {hits / n:.3f}",
            "mh_bias": "-" if not len(d) else f"{d.mean():+.2f} (n {len(d)}, worst {d.max():+.1f})"}


def write_markdown(doc: Path, args: argparse.Namespace, truths: list,
                   sections: list[str], skipped: list[str],
                   summaries: dict[str, dict[str, Any]]) -> None:
    n_vert = sum(len(t.vertebrae) for t in truths)
    frac = [v for t in truths for v in t.vertebrae if v.fracture]
    kinds = sorted({(v.deformity, v.genant_grade) for v in frac})
    vendors = {v: sum(t.vendor == v for t in truths) for v in sorted({t.vendor for t in truths})}
    purpose = ("**Development figures.** The rules were tuned while looking at cohorts like "
               "this one; these numbers say how the app does on data it was developed against, "
               "not on unseen data (docs/VALIDATION.md)." if args.purpose == "development" else
               "**Test figures**: a cohort from a seed never used before, generated and "
               "evaluated once, after the rules were frozen (docs/VALIDATION.md).")
    lines = [
        f"# SpineViewer phantom validation ({args.purpose})", "", purpose, "",
        (f"Generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC by "
        f"`python benchmarks/validate.py --purpose {args.purpose} --n {args.n} --seed {args.seed} "
        f"--renderers {args.renderers} --modes {args.modes} --endplates {args.endplates} "
        f"--site-n {args.site_n}" + (f" --bits {args.bits}" if args.bits != 16 else "")
        + "`."), "",
        *([(f"Analysed: the cohort's {args.bits}-bit export (each slice through its display "
            "window to 0..255, as a PACS 8-bit export; synth/eight_bit.py)."), ""]
          if args.bits != 16 else []),
        f"Cohort per renderer: {len(truths)} phantom studies (seed {args.seed}, the same "
        "anatomy drawn by each renderer; no cohort seed is used in training), "
        f"{n_vert} vertebrae with truth, {len(frac)} fractured; vendors "
        + ", ".join(f"{k} {v}" for k, v in vendors.items())
        + f"; {sum(t.field_strength_T > 2 for t in truths)} at 3 T; deformity type/grade pairs "
        f"present: {len(kinds)} of 9; Schmorl nodes "
        f"{sum(v.schmorl for t in truths for v in t.vertebrae)}, osteophytes "
        f"{sum(v.osteophyte for t in truths for v in t.vertebrae)}.", "",
        ("The reference is the phantom's exact geometry (one 'reader' without error), so ICC "
        "and limits of agreement here measure the app against truth, while the paper's compare "
        "the network with two radiologists (their own disagreement is part of its numbers). "
        "Rates carry exact Clopper-Pearson 95% CIs as in the paper; the paper's columns are "
        "its printed values (PAPER.md; its L5 sensitivity upper bound 0.999 is a misprint "
        "for 0.975). A truth fracture is Genant grade >= 1."), ""]
    lines += [f"*Not run: {s}*" for s in skipped] + ([""] if skipped else [])
    if summaries:
        lines += [("## Summary, renderers side by side (all vertebrae; paper: DCNN against the "
                  "consensus reference, ICC R1/R2 vs DCNN)"), "",
                  ("ICC(A,1) is the two-way random, absolute-agreement, single-measure ICC "
                   "(ICC(2,1)). Heights are measured between the outer cortical margins of the "
                   "endplates (core.endplates), as the phantom truth defines them."), ""]
        lines += headline_table(summaries) + [""]
    lines += sections
    lines += spider_section(getattr(args, "spider_metrics", None))
    atomic_write_text(doc, "\n".join(lines))


def spider_section(m: dict[str, Any] | None) -> list[str]:
    """SPIDER val (real MRI, never trained on): segmentation and level naming only."""
    out = ["## Real MRI: SPIDER `val` (8 patients never trained on; segmentation and labelling)",
           ""]
    if not m:
        return out + ["*Not run: SPIDER data not found (pass `--spider PATH`).*", ""]
    out += ["| metric | value | target (issue 3) | paper |", "|---|---|---|---|",
            (f"| vertebral-body Dice, mean over {m['spider_val_slices']} slices | "
             f"{m['spider_val_body_dice_mean']:.3f} (median {m['spider_val_body_dice_median']:.3f},"
             f" min {m['spider_val_body_dice_min']:.3f}) | >= 0.92 | 0.964 (own test set) |")]
    if m.get("spider_val_naming_accuracy") is not None:
        out.append(f"| level naming, bodies with the sacrum in view "
                   f"({m['spider_val_naming_bodies']} bodies) | "
                   f"{m['spider_val_naming_accuracy']:.3f} | >= 0.95 | - |")
        if m.get("spider_val_naming_wrong_in_flagged_studies"):
            out.append("| misnamed bodies in slices flagged 'confirm the level names' | "
                       f"{m['spider_val_naming_wrong_in_flagged_studies']} | - | - |")
        if m.get("spider_val_naming_slices_flagged"):
            out.append("| slices carrying that flag at all (how selective it is) | "
                       f"{m['spider_val_naming_slices_flagged']} | - | - |")
        if m.get("spider_heldout_naming_accuracy") is not None:
            out.append(f"| level naming on the {len(m['spider_heldout_patients'])} train patients "
                       "the model's training withheld (also unseen) | "
                       f"{m['spider_heldout_naming_accuracy']:.3f} (misnamed slices flagged: "
                       f"{m['spider_heldout_misnamed_slices_flagged']}; correctly named slices "
                       f"flagged: {m['spider_heldout_correct_slices_flagged']}) | - | - |")
        out.append(f"| slices with every level named right ({m['spider_val_naming_slices']}) | "
                   f"{m['spider_val_naming_slices_all_correct']:.3f} | - | - |")
    out += ["", "Per patient body Dice: " + ", ".join(
        f"{k} {v:.3f}" for k, v in m["spider_val_body_dice_per_patient"].items()) + ".", ""]
    if m.get("spider_val_naming_per_patient"):
        out += ["Per patient naming: " + ", ".join(
            f"{k} {v:.3f}" for k, v in m["spider_val_naming_per_patient"].items()) + ".", ""]
    out += [
        f"Protocol: {m['spider_val_protocol']}. Naming: {m.get('spider_val_naming_protocol', '')}.",
        ""]
    agree = m.get("spider_val_measurement_agreement") or {}
    if agree.get("bodies", 0) >= 3:
        out += [("### Measurements on real MRI: the network's masks against the annotated masks "
                 f"({agree['bodies']} bodies)"), "",
                "| measurement | ICC(2,1) | bias | 95% LoA |", "|---|---|---|---|"]
        for name, a in agree.items():
            if isinstance(a, dict):
                icc_txt = "-" if a["icc2_1"] is None else f"{a['icc2_1']:.3f}"
                out.append(f"| {name} | {icc_txt} | {a['bias']:+.3f} | "
                           f"{a['loa'][0]:.3f} to {a['loa'][1]:.3f} |")
        vote = m.get("spider_val_measurement_agreement_corner_vote") or {}
        if vote.get("bodies", 0) >= 3:
            out += ["", ("The same with the paper's corner rule (the quadrilateral of best "
                         "overlap) instead of the per-corner median: ICC(2,1) " + ", ".join(
                             f"{k} {v['icc2_1']:.3f}" for k, v in vote.items()
                             if isinstance(v, dict) and v["icc2_1"] is not None) + ".")]
        out += ["", f"Protocol: {m.get('spider_val_measurement_protocol', '')}.", ""]
    return out


def spider_metrics(args: argparse.Namespace) -> dict[str, Any] | None:
    """Dice and naming on SPIDER val through the shipped ONNX model (None if no data/model)."""
    from spineviewer.core.segment import default_model_path

    if args.spider is None or not (args.spider / "manifest.csv").exists():
        return None
    try:
        model = default_model_path()
    except SpineViewerError:
        return None
    from spineviewer.train.evaluate import evaluate_model

    return evaluate_model(model, args.spider, n_phantoms=30, threads=args.threads or 2,
                          write_card=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--purpose", choices=("development", "test"), default="development",
                   help="development (any seed, development figures) or test (a never-used "
                        "seed, once per release after the rules are frozen)")
    p.add_argument("--n", type=int, default=60, help="studies per renderer (default 60)")
    p.add_argument("--seed", type=int, default=None,
                   help=f"cohort seed (development default {DEFAULT_DEV_SEED}; test: required, "
                        "never used before)")
    p.add_argument("--renderers", default="a,b", help="comma list of a, b")
    p.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "spineviewer-validate",
                   help="work folder for the cohort and outputs (keep it out of the repository)")
    p.add_argument("--doc", type=Path, default=None,
                   help="report (default docs/VALIDATION-<purpose>.md)")
    p.add_argument("--modes", default="onnx,masks", help="comma list of onnx, masks")
    p.add_argument("--endplates", default="image",
                   help="comma list of image (refined from the image, the app's default) and "
                        "mask (the mask's border; for comparison)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--provider", default="auto")
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--reuse", action="store_true", help="reuse a cohort already in --out")
    p.add_argument("--bits", type=int, choices=(16, 8), default=16,
                   help="8: analyse the cohort's 8-bit export (each slice through its window "
                        "to 0..255, as a PACS 8-bit export); default 16 (12-bit stored)")
    p.add_argument("--spider", type=Path, default=ROOT.parent / "shared" / "data" / "spider_t2space",
                   help="SPIDER folder for the real-MRI segmentation/labelling check")
    p.add_argument("--site-n", type=int, default=0,
                   help="studies of a separate 'site population' cohort (seed + 100000) from "
                        "which a site reference table is derived; 0 (default) to skip")
    args = p.parse_args(argv)
    renderers = [r.strip() for r in args.renderers.split(",") if r.strip()]
    edges = [e.strip() for e in args.endplates.split(",") if e.strip()]
    if not renderers or any(r not in RENDERERS for r in renderers):
        p.error(f"--renderers takes a comma list of {', '.join(RENDERERS)}")
    if not edges or any(e not in ("image", "mask") for e in edges):
        p.error("--endplates takes a comma list of image, mask")
    if args.purpose == "test":
        if args.seed is None:
            p.error("--purpose test needs --seed (one never used before; see docs/seeds.json)")
        if args.reuse:
            p.error("--purpose test generates its cohort afresh (no --reuse)")
        try:
            register_seed(args.seed, "test", f"test cohort, {args.n} studies per renderer "
                          f"({args.renderers})")
        except ValueError as exc:
            print(f"validate: {exc}", file=sys.stderr)
            return 2
    else:
        args.seed = DEFAULT_DEV_SEED if args.seed is None else args.seed
        if args.seed in {int(e["seed"]) for e in load_seeds().get("seeds", [])
                         if e["purpose"] == "test"}:
            print(f"validate: seed {args.seed} is a test seed; development runs must not look "
                  "at a test cohort", file=sys.stderr)
            return 2
        register_seed(args.seed, "development", "development cohort (benchmarks/validate.py)")
    if args.doc is None:
        args.doc = ROOT / "docs" / f"VALIDATION-{args.purpose}.md"

    sections, skipped, summaries, all_truths = [], [], {}, []
    for render in renderers:
        out = args.out / render
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        truths = make_cohort(out, args.n, args.seed, args.reuse, render, args.bits)
        all_truths = all_truths or truths
        print(f"cohort {render}: {len(truths)} studies in {time.perf_counter() - t0:.0f} s",
              flush=True)
        ref_path = out / "reference.csv"
        atomic_write_text(ref_path, rows_to_csv(reference_rows(truths), REF_COLUMNS))
        for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
            for edge in edges:
                key = f"{render}-{mode}" + ("-maskedges" if edge == "mask" else "")
                refine = edge == "image"
                tables = [(key, None)]
                if args.site_n > 0:
                    tables.append((f"{key}+site", lambda m=mode, r=render, f=refine:
                                   derive_site_table(args, m, r, f)))
                for run_key, make_table in tables:
                    t1 = time.perf_counter()
                    try:
                        table = make_table() if make_table else None
                        with reference_table(table):
                            run = run_mode(truths, mode, args.threads, args.provider, refine)
                    except ModelError as exc:
                        skipped.append(f"run {run_key}: {exc}")
                        print(f"{run_key}: skipped ({exc})", flush=True)
                        continue
                    run["table"] = (str(table) if table
                                    else "assets/reference_ratios.json (SPIDER train)")
                    summary = evaluate_run(args, run_key, run, ref_path)
                    summary["biconcave"] = biconcave_stats(truths, run)
                    sections += mode_section(run_key, summary, run)
                    summaries[run_key] = summary
                    g = summary["by_vertebra"]["fracture"]["all"]
                    ms = summary["measurements"]
                    print(f"{run_key}: {time.perf_counter() - t1:.0f} s; by vertebra sensitivity "
                          f"{_ci(g['sensitivity'])}, specificity {_ci(g['specificity'])}; "
                          f"AH bias {ms['AH_mm']['bias']:+.2f} ICC {ms['AH_mm']['icc']:.3f}; "
                          f"PH bias {ms['PH_mm']['bias']:+.2f} ICC {ms['PH_mm']['icc']:.3f}; "
                          f"biconcave 2-3 {summary['biconcave']}", flush=True)
    if "onnx" in args.modes:
        args.spider_metrics = spider_metrics(args)
    write_markdown(args.doc, args, all_truths, sections, skipped, summaries)
    print(f"wrote {args.doc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
