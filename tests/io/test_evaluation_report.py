"""The evaluation PDF renders the tables and Bland-Altman plots of an evaluation."""

import re

import numpy as np
import pytest

from spineviewer.core.evaluate import evaluate, join_rows
from spineviewer.io.evaluation_report import (
    fracture_table_rows,
    measurement_table_rows,
    render_evaluation_pdf,
    write_evaluation_pdf,
)


def _rows(n_studies=10, seed=0):
    rng = np.random.default_rng(seed)
    ref, app = [], []
    for s in range(n_studies):
        for i, level in enumerate(("L1", "L2", "L3", "L4", "L5")):
            frac = int((s + i) % 4 == 0)
            called = frac if (s * 5 + i) % 9 else 1 - frac
            row = {"study_uid": f"S{s}", "level": level, "fracture": frac}
            out = {"study_uid": f"S{s}", "level": level, "fracture": called,
                   "vendor": ("GE", "Philips", "Siemens")[s % 3]}
            for name, mu in (("AH_mm", 24.0), ("PH_mm", 27.0), ("MH_mm", 22.0),
                             ("SC_mm", 1.0), ("IC_mm", 1.5), ("VA_deg", 3.0)):
                row[name] = mu + rng.normal(0, 2.0)
                out[name] = row[name] + 0.3 + rng.normal(0, 0.5)
            ref.append(row)
            app.append(out)
    return ref, app


@pytest.fixture(scope="module")
def evaluation():
    joined = join_rows(*_rows())
    return evaluate(joined, n_boot=100), joined


def test_table_rows_print_counts_rates_and_both_intervals(evaluation):
    summary, _ = evaluation
    rows = fracture_table_rows({"all": summary["fracture"]["all"]})
    g = summary["fracture"]["all"]
    assert rows[0][:6] == ["all", "50", str(g["tp"]), str(g["fp"]), str(g["tn"]), str(g["fn"])]
    sens = g["sensitivity"]
    assert rows[0][6] == (f"{sens['value']:.3f} ({sens['ci_low']:.3f}-{sens['ci_high']:.3f})\n"
                          f"[{sens['cluster_ci_low']:.3f}-{sens['cluster_ci_high']:.3f}]")
    mrows = measurement_table_rows(summary["measurements"])
    assert [r[0] for r in mrows] == ["AH_mm", "PH_mm", "MH_mm", "SC_mm", "IC_mm", "VA_deg"]
    ah = summary["measurements"]["AH_mm"]
    assert mrows[0][4] == f"{ah['bias']:.2f}" and abs(ah["bias"] - 0.3) < 0.3


def test_pdf_has_summary_subgroup_and_bland_altman_pages(evaluation, tmp_path):
    summary, joined = evaluation
    path = write_evaluation_pdf(summary, joined, tmp_path / "out" / "eval.pdf",
                                inputs={"reference": "ref.csv", "results": "app.csv"})
    data = path.read_bytes()
    assert data.startswith(b"%PDF") and len(data) > 20_000
    assert len(re.findall(rb"/Type\s*/Page\b", data)) == 3
    assert b"SpineViewer evaluate" in data  # document info


def test_pdf_without_measurements_or_subgroups_still_renders(tmp_path):
    ref = [{"study_uid": "A", "level": lv, "fracture": int(lv == "L1")} for lv in ("L1", "L2")]
    app = [{"study_uid": "A", "level": lv, "fracture": 1} for lv in ("L1", "L2")]
    joined = join_rows(ref, app)
    data = render_evaluation_pdf(evaluate(joined, n_boot=20), joined)
    assert data.startswith(b"%PDF")
