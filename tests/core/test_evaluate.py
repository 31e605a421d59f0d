"""Joining reader and app tables, and the paper's contingency table reproduced."""

import json
from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pytest

from spineviewer.core.errors import SpineViewerError
from spineviewer.core.evaluate import (
    EvaluationInputError,
    evaluate,
    evaluate_files,
    join_rows,
    load_joined,
    measurement_pairs,
    summary_to_json,
)
from spineviewer.core.results import CSV_COLUMNS, rows_to_csv

# PAPER.md, contingency table: (TP, FP, TN, FN) and the printed rates with 95% CIs.
PAPER_LEVELS = {
    "L1": ((89, 5, 103, 3), (0.967, 0.908, 0.993), (0.954, 0.895, 0.985), (0.960, 0.923, 0.983)),
    "L2": ((49, 12, 136, 3), (0.942, 0.841, 0.988), (0.919, 0.863, 0.957), (0.925, 0.879, 0.957)),
    "L3": ((35, 2, 161, 2), (0.946, 0.818, 0.993), (0.988, 0.956, 0.999), (0.980, 0.950, 0.995)),
    "L4": ((29, 3, 165, 3), (0.906, 0.750, 0.980), (0.982, 0.949, 0.996), (0.970, 0.936, 0.989)),
    # The paper prints L5 sensitivity 0.880 (0.688-0.999); 22/25 has the exact upper bound
    # 0.9745 -> 0.975: the 0.999 is a misprint (PAPER.md, MORPHOMETRY.md).
    "L5": ((22, 2, 173, 3), (0.880, 0.688, 0.975), (0.989, 0.959, 0.999), (0.975, 0.943, 0.992)),
}
PAPER_ALL = ((224, 24, 738, 14), (0.941, 0.903, 0.968), (0.969, 0.954, 0.980),
             (0.962, 0.948, 0.973))
PAPER_SUBGROUPS = {  # column -> value -> (TP, FP, TN, FN), (sens, spec, acc) as printed
    "institution": {"in-house": ((112, 13, 365, 5), (0.957, 0.966, 0.964)),
                    "outside": ((112, 11, 373, 9), (0.926, 0.971, 0.960))},
    "vendor": {"Siemens": ((113, 13, 369, 5), (0.958, 0.966, 0.964)),
               "GE": ((50, 7, 162, 1), (0.980, 0.959, 0.964)),
               "Philips": ((61, 4, 207, 8), (0.884, 0.981, 0.957))},
    "field_strength": {"1.5 T": ((119, 9, 393, 9), (0.930, 0.978, 0.966)),
                       "3.0 T": ((105, 15, 345, 5), (0.955, 0.958, 0.957))},
}
CELLS = ("tp", "fp", "tn", "fn")
CALLS = {"tp": (1, 1), "fp": (1, 0), "tn": (0, 0), "fn": (0, 1)}  # (app, reference)


def paper_round(x: float) -> float:
    """The paper's rounding: to a two-decimal percentage first (96.747% -> 96.75%), then 0.968."""
    pct = Decimal(str(round(x * 100, 2)))
    return float(pct.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)) / 100


def paper_rows() -> tuple[list[dict], list[dict]]:
    """One synthetic vertebra per row reproducing every count of the paper's table.

    Each cell type (TP, FP, ...) gets its level, institution, vendor and field-strength labels
    as independent lists with the paper's marginal counts; the subgroup columns are split
    between the two files to check that either may carry them.
    """
    labels: dict[str, dict[str, list[str]]] = {c: {} for c in CELLS}
    for i, cell in enumerate(CELLS):
        labels[cell]["level"] = [lv for lv, row in PAPER_LEVELS.items() for _ in range(row[0][i])]
        for col, groups in PAPER_SUBGROUPS.items():
            labels[cell][col] = [v for v, row in groups.items() for _ in range(row[0][i])]
    ref, app = [], []
    for cell in CELLS:
        for j in range(len(labels[cell]["level"])):
            uid = f"1.2.826.0.1.{cell}.{j}"
            a, r = CALLS[cell]
            app.append({"study_uid": uid, "level": labels[cell]["level"][j], "fracture": a,
                        "vendor": labels[cell]["vendor"][j]})
            ref.append({"study_uid": uid, "level": labels[cell]["level"][j], "fracture": r,
                        "institution": labels[cell]["institution"][j],
                        "field_strength": labels[cell]["field_strength"][j]})
    return ref, app


@pytest.fixture(scope="module")
def paper_summary():
    ref, app = paper_rows()
    return evaluate(join_rows(ref, app), n_boot=200)


def _assert_group(g: dict, counts: tuple, *printed: tuple) -> None:
    assert tuple(g[c] for c in CELLS) == counts
    for rate, want in zip(("sensitivity", "specificity", "accuracy"), printed):
        got = g[rate]
        assert paper_round(got["value"]) == pytest.approx(want[0], abs=1e-9), rate
        if len(want) == 3:
            assert paper_round(got["ci_low"]) == pytest.approx(want[1], abs=1e-9), rate
            assert paper_round(got["ci_high"]) == pytest.approx(want[2], abs=1e-9), rate


def test_paper_contingency_table_all_and_by_level(paper_summary):
    fr = paper_summary["fracture"]
    _assert_group(fr["all"], *PAPER_ALL)
    assert list(fr["by_level"]) == ["L1", "L2", "L3", "L4", "L5"]
    for level, (counts, *printed) in PAPER_LEVELS.items():
        _assert_group(fr["by_level"][level], counts, *printed)
    # the misprint, stated explicitly: the exact bound is 0.975, not the printed 0.999
    assert fr["by_level"]["L5"]["sensitivity"]["ci_high"] == pytest.approx(0.9745, abs=5e-5)
    # kappa of the whole table from its own definition
    po, pe = 962 / 1000, (248 * 238 + 752 * 762) / 1000**2
    assert fr["all"]["kappa"] == pytest.approx((po - pe) / (1 - pe))


def test_paper_subgroups_from_either_file(paper_summary):
    fr = paper_summary["fracture"]
    for col, groups in PAPER_SUBGROUPS.items():
        assert set(fr[f"by_{col}"]) == set(groups)
        for value, (counts, printed) in groups.items():
            _assert_group(fr[f"by_{col}"][value], counts, *[(p,) for p in printed])


def test_paper_non_overlapping_intervals_are_noted(paper_summary):
    pairs = {(p["family"], p["rate"], p["a"], p["b"])
             for p in paper_summary["significant_differences"]}
    # printed: L2 specificity 0.863-0.957 vs L5 0.959-0.999 do not overlap; L2 vs L3
    # (0.956-0.999) just overlap.
    assert ("by_level", "specificity", "L2", "L5") in pairs
    assert ("by_level", "specificity", "L2", "L3") not in pairs
    assert not any(p[0] != "by_level" for p in pairs)  # no vendor/site/field difference
    assert any("L2" in n and "L5" in n and "specificity" in n for n in paper_summary["notes"])


def test_json_contract_keys(paper_summary):
    back = json.loads(summary_to_json(paper_summary))
    g = back["fracture"]["all"]
    assert {"tp", "fp", "tn", "fn", "kappa", "sensitivity", "specificity", "accuracy"} <= set(g)
    assert {"value", "ci_low", "ci_high"} <= set(g["sensitivity"])
    assert g["sensitivity"]["cluster_ci_low"] < g["sensitivity"]["value"]
    assert set(back["measurements"]) == {"AH_mm", "PH_mm", "MH_mm", "SC_mm", "IC_mm", "VA_deg"}
    assert {"n", "icc", "icc_ci", "bias", "loa_low", "loa_high"} <= set(back["measurements"]["AH_mm"])
    assert back["measurements"]["AH_mm"]["n"] == 0


# ---- readers and measurements ----------------------------------------------------------------
def _reader_rows():
    rng = np.random.default_rng(8)
    ref, app = [], []
    for s in range(12):
        for level in ("L1", "L2", "L3", "L4", "L5"):
            truth = 25.0 + rng.normal(0, 2.0)
            r1, r2 = truth + rng.normal(0, 0.3), truth + rng.normal(0, 0.3)
            frac = int(level == "L1" and s % 3 == 0)
            uid = f"S{s}"
            ref.append({"study_uid": uid, "level": level, "reader": "R1", "AH_mm": r1,
                        "fracture": frac})
            ref.append({"study_uid": uid, "level": level, "reader": "R2", "AH_mm": r2,
                        "fracture": 1 if (s == 1 and level == "L2") else frac})
            app.append({"study_uid": uid, "level": level, "series_uid": "x", "patient_id": f"P{s // 2}",
                        "AH_mm": (r1 + r2) / 2 + 0.4 + rng.normal(0, 0.2),
                        "fracture": frac, "vendor": "GE" if s < 6 else "Philips"})
    # a consensus row resolves the disagreement (S1 L2) as no fracture
    ref.append({"study_uid": "S1", "level": "L2", "reader": "consensus", "fracture": 0,
                "AH_mm": 99.0})
    # an unresolved tie (S2 L3): counted as fracture
    for r in ref:
        if r["study_uid"] == "S2" and r["level"] == "L3" and r["reader"] == "R2":
            r["fracture"] = 1
    return ref, app


def test_readers_are_averaged_and_consensus_or_tie_decides_fracture():
    ref, app = _reader_rows()
    joined = join_rows(ref, app)
    assert joined.readers == ("R1", "R2", "consensus")
    rec = {(r["study_uid"], r["level"]): r for r in joined.records}
    s1l2 = [r for r in ref if r["study_uid"] == "S1" and r["level"] == "L2"]
    assert rec["S1", "L2"]["ref"]["AH_mm"] == pytest.approx((s1l2[0]["AH_mm"] + s1l2[1]["AH_mm"]) / 2)
    assert rec["S1", "L2"]["ref"]["fracture"] == 0  # consensus beats R2's call
    assert rec["S2", "L3"]["ref"]["fracture"] == 1  # 1:1 tie without consensus
    assert rec["S0", "L1"]["ref"]["fracture"] == 1
    assert rec["S5", "L1"]["cluster"] == "P2"  # patient_id groups studies for the bootstrap
    assert any("disagreed on 2 vertebrae (1 ties" in n for n in joined.notes)
    assert joined.subgroup_columns == ("vendor",)  # patient_id/series_uid/reader are not


def test_measurement_statistics_against_direct_computation():
    ref, app = _reader_rows()
    summary = evaluate(join_rows(ref, app), n_boot=0)
    ah = summary["measurements"]["AH_mm"]
    a, r = measurement_pairs(join_rows(ref, app), "AH_mm")
    assert ah["n"] == 60 == a.size
    d = a - r
    assert ah["bias"] == pytest.approx(d.mean()) and ah["bias"] == pytest.approx(0.4, abs=0.1)
    assert ah["loa_high"] - ah["loa_low"] == pytest.approx(2 * 1.96 * d.std(ddof=1))
    assert 0.8 < ah["icc"] < ah["icc3"] < 1.0  # the 0.4 mm offset costs absolute agreement
    assert ah["icc_ci"][0] < ah["icc"] < ah["icc_ci"][1]
    assert summary["measurements"]["PH_mm"]["n"] == 0 and summary["measurements"]["PH_mm"]["icc"] is None
    ra = summary["reader_agreement"]
    assert ra["readers"] == ["R1", "R2"]
    assert set(ra["kappa"]) == {"R1 vs R2", "R1 vs app", "R2 vs app"}
    assert ra["icc"]["AH_mm"]["R1 vs R2"] > 0.9
    assert set(summary["fracture"]["by_vendor"]) == {"GE", "Philips"}


# ---- files and errors ------------------------------------------------------------------------
def _write(path, rows, columns):
    path.write_text(rows_to_csv(rows, tuple(columns)), encoding="utf-8")
    return path


def test_files_round_trip_and_errors(tmp_path):
    ref, app = _reader_rows()
    rp = _write(tmp_path / "ref.csv", ref, ["study_uid", "level", "reader", "AH_mm", "fracture"])
    sp = _write(tmp_path / "app.csv", app, [*CSV_COLUMNS, "patient_id", "vendor"])
    summary, joined = evaluate_files(rp, sp, n_boot=50)
    assert len(joined.records) == summary["n_vertebrae"] == 60 and summary["n_studies"] == 12
    assert summary["fracture"]["all"]["tp"] + summary["fracture"]["all"]["fn"] == 5

    with pytest.raises(EvaluationInputError, match="reference file not found"):
        load_joined(tmp_path / "nope.csv", sp)
    bad = _write(tmp_path / "bad.csv", [{"study_uid": "S0", "AH_mm": 1.0}], ["study_uid", "AH_mm"])
    with pytest.raises(SpineViewerError, match="lacks column"):
        load_joined(bad, sp)
    other = _write(tmp_path / "other.csv", [{"study_uid": "Z", "level": "L1", "fracture": 0}],
                   ["study_uid", "level", "fracture"])
    with pytest.raises(EvaluationInputError, match="no vertebra is in both files"):
        load_joined(other, sp)
    junk = tmp_path / "junk.csv"
    junk.write_text("study_uid,level,AH_mm\nS0,L1,tall\n", encoding="utf-8")
    with pytest.raises(EvaluationInputError) as exc:
        load_joined(junk, sp)
    assert "\n" not in str(exc.value)
    dup = _write(tmp_path / "dup.csv", app[:1] * 2, CSV_COLUMNS)
    with pytest.raises(EvaluationInputError, match="twice"):
        load_joined(rp, dup)
