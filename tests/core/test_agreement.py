"""Agreement statistics against published worked examples, closed forms and brute checks."""

import numpy as np
import pytest

from spineviewer.core.agreement import (
    bland_altman,
    clopper_pearson,
    cluster_bootstrap_ci,
    cohen_kappa,
    fracture_group,
    icc,
    non_overlapping_pairs,
    two_way_anova,
)

# Shrout & Fleiss (1979), Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8],
                          [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]], dtype=float)


def test_icc_shrout_fleiss_worked_example():
    res = icc(SHROUT_FLEISS)
    # Shrout & Fleiss (1979) Table 4: ICC(2,1) = .29, ICC(3,1) = .71.
    assert res.icc2_1 == pytest.approx(0.29, abs=0.005)
    assert res.icc3_1 == pytest.approx(0.71, abs=0.005)
    # The F-based intervals as printed by R psych::ICC(sf) (same data, its documented example):
    # ICC2 0.019-0.76, ICC3 0.342-0.95.
    assert res.icc2_1_ci == pytest.approx((0.019, 0.76), abs=0.005)
    assert res.icc3_1_ci == pytest.approx((0.342, 0.95), abs=0.005)
    # Their Table 3 mean squares: BMS 11.24, JMS 32.49, EMS 1.02.
    assert (res.ms_rows, res.ms_cols, res.ms_error) == pytest.approx((11.24, 32.49, 1.02), abs=0.01)


def test_two_way_anova_matches_a_brute_least_squares_fit():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(9, 3)) + rng.normal(size=(9, 1)) * 2 + np.array([0.0, 0.5, -1.0])
    n, k = y.shape
    rows, cols = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")

    def rss(design: np.ndarray) -> float:
        beta, *_ = np.linalg.lstsq(design, y.ravel(), rcond=None)
        return float(np.sum((y.ravel() - design @ beta) ** 2))

    one = np.ones((n * k, 1))
    d_rows = (rows.ravel()[:, None] == np.arange(n)).astype(float)
    d_cols = (cols.ravel()[:, None] == np.arange(k)).astype(float)
    rss_full = rss(np.hstack([d_rows, d_cols]))
    ms_rows_brute = (rss(np.hstack([one, d_cols])) - rss_full) / (n - 1)
    ms_cols_brute = (rss(np.hstack([one, d_rows])) - rss_full) / (k - 1)
    ms_err_brute = rss_full / ((n - 1) * (k - 1))
    assert two_way_anova(y) == pytest.approx((ms_rows_brute, ms_cols_brute, ms_err_brute),
                                             rel=1e-9)


def test_icc_absolute_agreement_penalises_a_rater_offset_consistency_does_not():
    rng = np.random.default_rng(5)
    truth = rng.normal(20.0, 3.0, size=40)
    y = np.column_stack([truth + rng.normal(0, 0.5, 40), truth + rng.normal(0, 0.5, 40)])
    shifted = y + np.array([0.0, 3.0])
    base, off = icc(y), icc(shifted)
    assert off.icc3_1 == pytest.approx(base.icc3_1, abs=1e-12)
    assert off.icc2_1 < base.icc2_1 - 0.2


def test_icc2_interval_covers_the_true_value_about_95_percent():
    # Two-way random model, two raters as app vs readers' mean:
    # ICC(2,1) = var_t / (var_t + var_r + var_e) = 4 / (4 + 0.25 + 1).
    # (The McGraw-Wong interval is approximate: with large rater variance and few raters it
    # undercovers, e.g. about 0.91 for k = 3, var_r = 1; for this setting it is near 0.95.)
    rng = np.random.default_rng(11)
    n, k, reps, truth = 30, 2, 300, 4.0 / 5.25
    hits = 0
    for _ in range(reps):
        y = (rng.normal(0, 2.0, (n, 1)) + rng.normal(0, 0.5, (1, k)) + rng.normal(0, 1.0, (n, k)))
        lo, hi = icc(y).icc2_1_ci
        hits += lo <= truth <= hi
    assert 0.91 <= hits / reps <= 0.99


def test_icc_of_identical_raters_is_one():
    y = np.column_stack([np.arange(5.0), np.arange(5.0)])
    res = icc(y)
    assert res.icc2_1 == pytest.approx(1.0) and res.icc2_1_ci == (1.0, 1.0)


def test_clopper_pearson_closed_forms():
    # k = 0: upper = 1 - (alpha/2)^(1/n); k = n: lower = (alpha/2)^(1/n).
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 1 - 0.025 ** 0.1), abs=1e-9)
    assert clopper_pearson(10, 10) == pytest.approx((0.025 ** 0.1, 1.0), abs=1e-9)


def test_cohen_kappa_textbook_example():
    # 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no: p_o = 0.70, p_e = 0.50 -> kappa 0.40.
    assert cohen_kappa(tp=20, fp=5, tn=15, fn=10) == pytest.approx(0.40)
    assert cohen_kappa(tp=10, fp=0, tn=0, fn=0) is None
    assert cohen_kappa(tp=15, fp=0, tn=0, fn=6) is None  # reference all fractured
    assert cohen_kappa(tp=0, fp=0, tn=40, fn=10) == pytest.approx(0.0)  # app never calls


def test_bland_altman_by_hand():
    app = np.array([10.0, 12.0, 11.0, 15.0])
    ref = np.array([9.0, 12.5, 10.0, 13.0])
    d = np.array([1.0, -0.5, 1.0, 2.0])
    sd = np.sqrt(np.sum((d - 0.875) ** 2) / 3)
    ba = bland_altman(app, ref)
    assert ba["bias"] == pytest.approx(0.875)
    assert ba["loa_low"] == pytest.approx(0.875 - 1.96 * sd)
    assert ba["loa_high"] == pytest.approx(0.875 + 1.96 * sd)


def test_cluster_bootstrap_widens_for_correlated_vertebrae_and_is_reproducible():
    rng = np.random.default_rng(2)
    n_studies = 60
    study_ref = rng.random(n_studies) < 0.5
    study_app = np.where(rng.random(n_studies) < 0.85, study_ref, ~study_ref)
    # five identical vertebrae per study: fully clustered calls
    ref, app = np.repeat(study_ref, 5), np.repeat(study_app, 5)
    clusters = np.repeat(np.arange(n_studies), 5)
    by_study = cluster_bootstrap_ci(app, ref, clusters, n_boot=1000, seed=1)
    by_vertebra = cluster_bootstrap_ci(app, ref, np.arange(ref.size), n_boot=1000, seed=1)
    w_study = by_study["accuracy"][1] - by_study["accuracy"][0]
    w_vert = by_vertebra["accuracy"][1] - by_vertebra["accuracy"][0]
    assert w_study > 1.6 * w_vert  # about sqrt(5) = 2.2 in expectation
    assert cluster_bootstrap_ci(app, ref, clusters, n_boot=1000, seed=1) == by_study


def test_unclustered_bootstrap_is_close_to_the_exact_interval():
    ref = np.array([True] * 200 + [False] * 200)
    app = np.concatenate([np.arange(200) < 180, np.arange(200) < 20])
    g = fracture_group(app, ref, np.arange(400), n_boot=2000, seed=4)
    sens = g["sensitivity"]
    assert sens["value"] == pytest.approx(0.90)
    assert sens["cluster_ci_low"] == pytest.approx(sens["ci_low"], abs=0.015)
    assert sens["cluster_ci_high"] == pytest.approx(sens["ci_high"], abs=0.015)


def test_non_overlapping_pairs_reports_only_separated_intervals():
    def grp(k, n):
        return fracture_group(np.arange(n) < k, np.ones(n, dtype=bool), None)

    groups = {"A": grp(95, 100), "B": grp(50, 100), "C": grp(90, 100)}
    pairs = non_overlapping_pairs(groups, "by_site")
    sens = {(p["a"], p["b"]) for p in pairs if p["rate"] == "sensitivity"}
    assert sens == {("A", "B"), ("B", "C")}


def test_paired_icc_difference_is_zero_for_the_same_method_and_positive_for_a_better_one():
    import numpy as np

    from spineviewer.core.agreement import paired_icc_difference

    rng = np.random.default_rng(3)
    truth = rng.normal(30, 3, 120)
    clusters = np.repeat(np.arange(12), 10)
    noisy = truth + rng.normal(0, 1.5, 120)
    same = paired_icc_difference(truth, noisy, noisy.copy(), clusters, n_boot=200)
    assert same["difference"] == 0.0
    assert same["lower_95_one_sided"] == 0.0 == same["upper_95_one_sided"]
    better = paired_icc_difference(truth, noisy, truth + rng.normal(0, 0.3, 120), clusters,
                                   n_boot=200)
    assert better["second"] > better["first"]
    assert better["difference"] == better["second"] - better["first"]
    assert better["lower_95_one_sided"] > 0          # clearly better: the bound shows it
    worse = paired_icc_difference(truth, truth + rng.normal(0, 0.3, 120), noisy, clusters,
                                  n_boot=200)
    assert worse["upper_95_one_sided"] < 0


def test_paired_icc_difference_refuses_unpaired_or_single_cluster_input():
    import numpy as np
    import pytest

    from spineviewer.core.agreement import paired_icc_difference

    x = np.arange(10.0)
    with pytest.raises(ValueError, match="equal-length"):
        paired_icc_difference(x, x, x[:9], np.zeros(10))
    with pytest.raises(ValueError, match="two clusters"):
        paired_icc_difference(x, x + 1, x + 2, np.zeros(10))
