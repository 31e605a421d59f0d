"""Agreement statistics: exact binomial CIs, Cohen's kappa, ICC(2,1)/ICC(3,1), Bland-Altman.

Small pure functions over numpy arrays; ``spineviewer.core.evaluate`` applies them to joined
reader and app tables. Sources: Shrout & Fleiss (1979) Psychol Bull 86:420; McGraw & Wong
(1996) Psychol Methods 1:30; Bland & Altman (1986) Lancet i:307; Clopper & Pearson (1934).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

BOOTSTRAP_SEED = 20260601
BOOTSTRAP_RESAMPLES = 2000
RATES = ("sensitivity", "specificity", "accuracy")


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) binomial interval for ``k`` successes in ``n`` trials.

    Parameters
    ----------
    k, n : int
        Successes and trials, ``0 <= k <= n``, ``n > 0``.
    confidence : float
        Two-sided confidence level.

    Returns
    -------
    (low, high) : tuple of float
    """
    ci = stats.binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence,
                                                        method="exact")
    return float(ci.low), float(ci.high)


def proportion(k: int, n: int) -> dict[str, Any]:
    """A rate with its exact 95% CI: ``{"value", "ci_low", "ci_high", "k", "n"}``.

    ``value`` and the bounds are None when ``n == 0`` (rate undefined).
    """
    if n == 0:
        return {"value": None, "ci_low": None, "ci_high": None, "k": 0, "n": 0}
    lo, hi = clopper_pearson(k, n)
    return {"value": k / n, "ci_low": lo, "ci_high": hi, "k": int(k), "n": int(n)}


def cohen_kappa(tp: int, fp: int, tn: int, fn: int) -> float | None:
    """Cohen's kappa of a 2x2 table (app x reference).

    None when the reference holds one class only (e.g. a group of fractured vertebrae): kappa
    is then 0 whatever the app does, which reads as 'no agreement' in a table.
    """
    n = tp + fp + tn + fn
    if n == 0 or tp + fn == 0 or tn + fp == 0:
        return None
    p_observed = (tp + tn) / n
    p_chance = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2
    if p_chance >= 1.0:
        return None
    return (p_observed - p_chance) / (1.0 - p_chance)


@dataclass(frozen=True)
class IccResult:
    """ICC(2,1) and ICC(3,1) of an (n targets x k raters) table, with 95% CIs and the ANOVA."""

    icc2_1: float
    icc2_1_ci: tuple[float, float]
    icc3_1: float
    icc3_1_ci: tuple[float, float]
    ms_rows: float
    ms_cols: float
    ms_error: float
    n: int
    k: int


def two_way_anova(ratings: np.ndarray) -> tuple[float, float, float]:
    """Mean squares (rows = targets, columns = raters, error) of a complete two-way table."""
    y = np.asarray(ratings, dtype=float)
    n, k = y.shape
    grand = y.mean()
    ss_rows = k * np.sum((y.mean(axis=1) - grand) ** 2)
    ss_cols = n * np.sum((y.mean(axis=0) - grand) ** 2)
    ss_error = np.sum((y - grand) ** 2) - ss_rows - ss_cols
    return ss_rows / (n - 1), ss_cols / (k - 1), ss_error / ((n - 1) * (k - 1))


def icc(ratings: np.ndarray, confidence: float = 0.95) -> IccResult:
    """Intraclass correlations ICC(2,1) and ICC(3,1) with F-based confidence intervals.

    Parameters
    ----------
    ratings : array (n_targets, k_raters)
        Complete table, no missing values; ``n >= 2``, ``k >= 2``.
    confidence : float
        Two-sided confidence level of the intervals.

    Returns
    -------
    IccResult

    Notes
    -----
    Shrout & Fleiss (1979) cases 2 and 3; the ICC(2,1) interval is McGraw & Wong (1996)
    case 2A (Satterthwaite degrees of freedom), the ICC(3,1) interval case 3A.
    """
    y = np.asarray(ratings, dtype=float)
    if y.ndim != 2 or y.shape[0] < 2 or y.shape[1] < 2 or not np.all(np.isfinite(y)):
        raise ValueError(f"need a complete (n >= 2, k >= 2) table, got shape {y.shape}")
    n, k = y.shape
    msr, msc, mse = two_way_anova(y)
    alpha = 1.0 - confidence
    df_r, df_e = n - 1, (n - 1) * (k - 1)
    icc3 = (msr - mse) / (msr + (k - 1) * mse)
    icc2 = (msr - mse) / (msr + (k - 1) * mse + k * (msc - mse) / n)
    if mse > 0:
        f0 = msr / mse
        fl = f0 / stats.f.ppf(1 - alpha / 2, df_r, df_e)
        fu = f0 * stats.f.ppf(1 - alpha / 2, df_e, df_r)
        ci3 = ((fl - 1) / (fl + k - 1), (fu - 1) / (fu + k - 1))
        ci2 = _icc2_ci(icc2, msr, msc, mse, n, k, alpha)
    else:  # perfect agreement: the F statistics are infinite
        ci3 = ci2 = (1.0, 1.0)
    return IccResult(float(icc2), ci2, float(icc3), (float(ci3[0]), float(ci3[1])),
                     float(msr), float(msc), float(mse), n, k)


def _icc2_ci(icc2: float, msr: float, msc: float, mse: float, n: int, k: int,
             alpha: float) -> tuple[float, float]:
    """McGraw & Wong (1996) case 2A interval of ICC(A,1)."""
    if icc2 >= 1.0:
        return 1.0, 1.0
    a = k * icc2 / (n * (1 - icc2))
    b = 1 + k * icc2 * (n - 1) / (n * (1 - icc2))
    v = (a * msc + b * mse) ** 2 / ((a * msc) ** 2 / (k - 1) + (b * mse) ** 2 / ((n - 1) * (k - 1)))
    f_low = stats.f.ppf(1 - alpha / 2, n - 1, v)
    f_high = stats.f.ppf(1 - alpha / 2, v, n - 1)
    c = k * msc + (k * n - k - n) * mse
    low = n * (msr - f_low * mse) / (f_low * c + n * msr)
    high = n * (f_high * msr - mse) / (c + n * f_high * msr)
    return float(low), float(high)


def bland_altman(app: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Bias (mean of app - reference) and 95% limits of agreement (bias +- 1.96 SD, ddof 1)."""
    d = np.asarray(app, dtype=float) - np.asarray(reference, dtype=float)
    bias = float(d.mean())
    sd = float(d.std(ddof=1)) if d.size > 1 else float("nan")
    return {"bias": bias, "sd_diff": sd, "loa_low": bias - 1.96 * sd,
            "loa_high": bias + 1.96 * sd}


def confusion_counts(app: np.ndarray, reference: np.ndarray) -> dict[str, int]:
    """TP/FP/TN/FN of boolean app calls against boolean reference calls."""
    a = np.asarray(app, dtype=bool)
    r = np.asarray(reference, dtype=bool)
    return {"tp": int(np.sum(a & r)), "fp": int(np.sum(a & ~r)),
            "tn": int(np.sum(~a & ~r)), "fn": int(np.sum(~a & r))}


def cluster_bootstrap_ci(app: np.ndarray, reference: np.ndarray, clusters: np.ndarray, *,
                         n_boot: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                         confidence: float = 0.95) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap CIs of sensitivity/specificity/accuracy resampling whole clusters.

    Parameters
    ----------
    app, reference : bool arrays (N,)
    clusters : array (N,)
        Cluster id per vertebra (study or patient); clusters are drawn with replacement.
    n_boot, seed : int
        Number of resamples and the seed of the generator (fixed: reproducible reports).

    Returns
    -------
    dict
        ``{"sensitivity": (lo, hi) | None, "specificity": ..., "accuracy": ...}``.
    """
    _, cluster_idx = np.unique(np.asarray(clusters), return_inverse=True)
    a = np.asarray(app, dtype=bool)
    r = np.asarray(reference, dtype=bool)
    m = int(cluster_idx.max()) + 1 if cluster_idx.size else 0
    if m == 0:
        return {name: None for name in RATES}
    per = np.stack([np.bincount(cluster_idx, weights=w, minlength=m)
                    for w in (a & r, a & ~r, ~a & ~r, ~a & r)], axis=1)  # (m, 4)
    rng = np.random.default_rng(seed)
    # how often each cluster is drawn in each resample (n_boot, m), then the resampled sums
    draws = rng.integers(0, m, size=(n_boot, m)) + m * np.arange(n_boot)[:, None]
    times_drawn = np.bincount(draws.ravel(), minlength=n_boot * m).reshape(n_boot, m)
    tp, fp, tn, fn = (times_drawn @ per).T
    q = (100 * (1 - confidence) / 2, 100 * (1 + confidence) / 2)
    out: dict[str, tuple[float, float] | None] = {}
    for name, num, den in (("sensitivity", tp, tp + fn), ("specificity", tn, tn + fp),
                           ("accuracy", tp + tn, tp + fp + tn + fn)):
        ok = den > 0  # a resample without positives has no sensitivity: left out
        if not np.any(ok):
            out[name] = None
            continue
        lo, hi = np.percentile(num[ok] / den[ok], q)
        out[name] = (float(lo), float(hi))
    return out


def paired_icc_difference(reference: np.ndarray, first: np.ndarray, second: np.ndarray,
                          clusters: np.ndarray, *, n_boot: int = BOOTSTRAP_RESAMPLES,
                          seed: int = BOOTSTRAP_SEED) -> dict[str, float]:
    """ICC(2,1) of ``second`` against ``reference`` minus that of ``first``, on the same
    targets, with a cluster (patient) bootstrap of the difference.

    Both methods are resampled together, cluster by cluster, so the spread is that of the
    difference, not of either ICC (much smaller when the two agree closely). Used to judge a
    candidate model against the shipped one ("non-inferior by a margin").

    Returns
    -------
    dict
        ``first``, ``second``, ``difference`` (point estimates) and ``lower_95_one_sided``,
        ``upper_95_one_sided`` (5th and 95th percentiles of the resampled differences).
    """
    g, a, b = (np.asarray(x, dtype=float) for x in (reference, first, second))
    if not g.shape == a.shape == b.shape or g.ndim != 1:
        raise ValueError("reference, first and second must be equal-length 1-D arrays")
    _, idx = np.unique(np.asarray(clusters), return_inverse=True)
    members = [np.nonzero(idx == k)[0] for k in range(int(idx.max()) + 1)] if idx.size else []
    if len(members) < 2:
        raise ValueError("need at least two clusters")

    def diff(sel: np.ndarray) -> float:
        return (icc(np.stack([g[sel], b[sel]], 1)).icc2_1
                - icc(np.stack([g[sel], a[sel]], 1)).icc2_1)

    rng = np.random.default_rng(seed)
    boot = []
    for _ in range(n_boot):
        sel = np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
        if len(sel) >= 3:
            boot.append(diff(sel))
    first_icc = float(icc(np.stack([g, a], 1)).icc2_1)
    second_icc = float(icc(np.stack([g, b], 1)).icc2_1)
    lo, hi = np.percentile(boot, (5, 95))
    return {"first": first_icc, "second": second_icc, "difference": second_icc - first_icc,
            "lower_95_one_sided": float(lo), "upper_95_one_sided": float(hi)}


def fracture_group(app: np.ndarray, reference: np.ndarray, clusters: np.ndarray | None = None,
                   *, n_boot: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
                   ) -> dict[str, Any]:
    """The statistics ``G`` of one group of vertebrae (JSON contract of ``spineviewer evaluate``).

    Returns
    -------
    dict
        ``{"tp", "fp", "tn", "fn", "n", "kappa", "sensitivity", "specificity", "accuracy"}``;
        each rate is ``proportion(...)`` plus ``cluster_ci_low``/``cluster_ci_high`` (study
        bootstrap) when ``clusters`` is given and ``n_boot > 0``.
    """
    c = confusion_counts(app, reference)
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    g: dict[str, Any] = {**c, "n": tp + fp + tn + fn, "kappa": cohen_kappa(tp, fp, tn, fn),
                         "sensitivity": proportion(tp, tp + fn),
                         "specificity": proportion(tn, tn + fp),
                         "accuracy": proportion(tp + tn, tp + fp + tn + fn)}
    if clusters is not None and n_boot > 0:
        boot = cluster_bootstrap_ci(app, reference, clusters, n_boot=n_boot, seed=seed)
        for name in RATES:
            lo_hi = boot[name]
            g[name]["cluster_ci_low"] = None if lo_hi is None else lo_hi[0]
            g[name]["cluster_ci_high"] = None if lo_hi is None else lo_hi[1]
    return g


def non_overlapping_pairs(groups: dict[str, dict[str, Any]], family: str) -> list[dict[str, Any]]:
    """Pairs of groups whose exact 95% CIs of a rate do not overlap (the paper's criterion)."""
    out = []
    names = list(groups)
    for rate in RATES:
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                ra, rb = groups[a][rate], groups[b][rate]
                if ra["value"] is None or rb["value"] is None:
                    continue
                if ra["ci_high"] < rb["ci_low"] or rb["ci_high"] < ra["ci_low"]:
                    out.append({"family": family, "rate": rate, "a": a, "b": b,
                                "a_value": ra["value"], "b_value": rb["value"],
                                "text": (f"{family}: {rate} of {a} ({ra['value']:.3f}, "
                                         f"{ra['ci_low']:.3f}-{ra['ci_high']:.3f}) and {b} "
                                         f"({rb['value']:.3f}, {rb['ci_low']:.3f}-"
                                         f"{rb['ci_high']:.3f}) have non-overlapping 95% CIs")})
    return out
