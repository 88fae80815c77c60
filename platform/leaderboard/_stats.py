"""Paired tests of a variant against a baseline over the same cases, and Holm's correction."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

#: Decimal places kept in paired differences (see ``paired_tests``).
DECIMALS = 12


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    With the m defined p-values sorted ascending p_(1) <= ... <= p_(m), the adjusted value of
    p_(i) is max over j <= i of min(1, (m - j + 1) p_(j)). NaN entries (no test possible)
    stay NaN and do not count in m.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"`p_values` must be a flat sequence of floats, but got shape {p.shape}")
    if np.any((p < 0) | (p > 1)):
        raise ValueError(f"`p_values` must lie in [0, 1] (or be NaN), but got {p.tolist()}")
    out = np.full(p.shape, np.nan)
    defined = np.flatnonzero(~np.isnan(p))
    m = defined.size
    order = defined[np.argsort(p[defined], kind="stable")]
    running = 0.0
    for i, index in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[index]))
        out[index] = running
    return out.tolist()


def paired_tests(x: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Paired t-test and Wilcoxon signed-rank of ``x`` against ``b`` (same cases, same order).

    Returns n_cases, delta (mean of x - b), p_ttest, p_wilcoxon. Differences are rounded to
    ``DECIMALS`` places first: scores are ratios of counts, and float noise (0.6 vs
    0.6000000000000001) must not turn a tie into a difference, or equal differences into
    ranked ones. With fewer than 2 pairs the p-values are NaN; when every difference is 0
    both are 1.0 (no evidence of a difference; scipy's statistics are 0/0 there). Wilcoxon
    drops zero differences (``zero_method="wilcox"``) and uses scipy's default exact/normal
    choice.
    """
    x, b = np.asarray(x, dtype=np.float64), np.asarray(b, dtype=np.float64)
    d = np.round(x - b, DECIMALS)
    out = {"n_cases": int(d.size), "delta": float(d.mean()) if d.size else math.nan,
           "p_ttest": math.nan, "p_wilcoxon": math.nan}
    if d.size < 2:
        return out
    if not np.any(d):
        out.update(p_ttest=1.0, p_wilcoxon=1.0)
        return out
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # precision-loss / small-sample notes from scipy
        out["p_ttest"] = float(stats.ttest_1samp(d, 0.0).pvalue)  # = ttest_rel(x, b) on the rounded d
        try:
            out["p_wilcoxon"] = float(stats.wilcoxon(d).pvalue)
        except ValueError:  # e.g. too few non-zero differences for the chosen method
            pass
    return out
